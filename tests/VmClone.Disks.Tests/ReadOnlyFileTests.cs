using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

public class ReadOnlyFileTests
{
    [Theory]
    [InlineData("base.vhdx")]
    [InlineData("base.raw")]
    public void FileMarkedReadOnlyIsRefusedForWritingEvenByRoot(string name)
    {
        using var dir = new TempFolder();
        string path = dir.File(name);
        VirtualDisk.CreateDynamic(path, 4 << 20).Dispose();
        byte[] before = File.ReadAllBytes(path);
        ReadOnlyFile.Mark(path, readOnly: true);
        Assert.True(ReadOnlyFile.IsMarked(path));

        var ex = Assert.Throws<VirtualDiskException>(() => VirtualDisk.Open(path, FileAccess.ReadWrite));
        Assert.Contains("read-only", ex.Message);
        Assert.Contains(path, ex.Message);
        Assert.Throws<VirtualDiskException>(() => VirtualDisk.OpenLayer(path, FileAccess.Write));

        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read))
            Assert.False(disk.CanWrite);
        Assert.Equal(before, File.ReadAllBytes(path));

        ReadOnlyFile.Mark(path, readOnly: false);
        Assert.False(ReadOnlyFile.IsMarked(path));
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
            Assert.True(disk.CanWrite);
    }

    [Fact]
    public void ParentMarkedReadOnlyStillServesItsChildren()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.vhdx");
        VirtualDisk.CreateDynamic(parent, 4 << 20).Dispose();
        ReadOnlyFile.Mark(parent, readOnly: true);
        using VirtualDisk child = VirtualDisk.CreateDifferencing(dir.File("child.vhdx"), parent);
        child.Content.Write(new byte[] { 1, 2, 3 }, 0, 3);
        Assert.Equal(2, child.Layers.Count);
    }

    [Fact]
    public void MissingFileIsNotReadOnly()
    {
        using var dir = new TempFolder();
        Assert.False(ReadOnlyFile.IsMarked(dir.File("nothing.vhdx")));
    }

    [Fact]
    public void UnixModeWithOnlyAGroupWriteBitIsWritable()
    {
        if (System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(System.Runtime.InteropServices.OSPlatform.Windows))
            return;
        using var dir = new TempFolder();
        string path = dir.File("g.vhdx");
        VirtualDisk.CreateDynamic(path, 4 << 20).Dispose();
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        Assert.False(ReadOnlyFile.IsMarked(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        Assert.True(ReadOnlyFile.IsMarked(path));
    }
}
