using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>OpenLayer recognises the format through the same open it reads the layer with; refusals keep their order.</summary>
public class OpenLayerTests
{
    [Theory]
    [InlineData("vhdx", DiskFormat.Vhdx)]
    [InlineData("vmdk", DiskFormat.Vmdk)]
    public void TheFormatComesFromTheContentNotTheName(string ext, DiskFormat format)
    {
        using var dir = new TempFolder();
        string made = dir.File("disk." + ext);
        VirtualDisk.CreateDynamic(made, 1 << 24).Dispose();
        string renamed = dir.File("disk.data");
        File.Move(made, renamed);
        using (DiskLayer read = VirtualDisk.OpenLayer(renamed, FileAccess.Read))
            Assert.Equal(format, read.Format);
        using DiskLayer write = VirtualDisk.OpenLayer(renamed, FileAccess.ReadWrite);
        Assert.Equal(format, write.Format);
        Assert.True(write.CanWrite);
    }

    [Fact]
    public void AReadOnlyFileThatIsNoDiskIsReportedAsNoDisk()
    {
        using var dir = new TempFolder();
        string path = dir.File("notes.vhdx");
        File.WriteAllText(path, "not a disk");
        ReadOnlyFile.Mark(path, true);
        Assert.Throws<DiskFormatException>(() => VirtualDisk.OpenLayer(path, FileAccess.ReadWrite));
        ReadOnlyFile.Mark(path, false);
    }

    [Fact]
    public void AReadOnlyDiskIsRefusedForWritingAndLeftUnchanged()
    {
        using var dir = new TempFolder();
        string path = dir.File("base.vhdx");
        VirtualDisk.CreateDynamic(path, 1 << 24).Dispose();
        ReadOnlyFile.Mark(path, true);
        string before = Hashing.Sha256File(path);
        var ex = Assert.Throws<VirtualDiskException>(() => VirtualDisk.OpenLayer(path, FileAccess.ReadWrite));
        Assert.Contains("read-only", ex.Message);
        Assert.Equal(before, Hashing.Sha256File(path));
        ReadOnlyFile.Mark(path, false);
    }

    [Fact]
    public void AMissingFileIsNamed()
    {
        using var dir = new TempFolder();
        string path = dir.File("gone.vhdx");
        var ex = Assert.Throws<VirtualDiskException>(() => VirtualDisk.OpenLayer(path, FileAccess.ReadWrite));
        Assert.Contains("does not exist", ex.Message);
    }

    [Fact]
    public void AFileHeldExclusivelyForAMomentIsWaitedForAndOneHeldForLongIsRefused()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vhdx");
        VirtualDisk.CreateDynamic(path, 1 << 24).Dispose();

        // What another command's in-use probe does: an exclusive open, dropped at once.
        var held = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None);
        var release = new System.Threading.Thread(() =>
        {
            System.Threading.Thread.Sleep(30);
            held.Dispose();
        });
        release.Start();
        using (DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read))
            Assert.Equal(1 << 24, layer.VirtualSize);
        release.Join();

        // A holder that stays (a running machine) is still reported, after the short wait.
        using (new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None))
            Assert.Contains("cannot be opened", Assert.Throws<VirtualDiskException>(() => VirtualDisk.OpenLayer(path, FileAccess.Read)).Message);
    }
}
