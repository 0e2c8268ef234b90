using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>A format value no registration knows is refused, naming the file, and never treated as raw.</summary>
public class UnknownFormatTests
{
    private const DiskFormat Unknown = (DiskFormat)99;

    [Fact]
    public void OpeningAsAnUnknownFormatIsRefusedNotReadAsRaw()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.raw");
        VirtualDisk.CreateDynamic(path, 1 << 20).Dispose();
        string before = Hashing.Sha256File(path);
        var ex = Assert.Throws<VirtualDiskException>(() => VirtualDisk.OpenLayer(path, FileAccess.ReadWrite, Unknown));
        Assert.Equal(path, ex.Path);
        Assert.Contains("not a disk format VmClone knows", ex.Message);
        Assert.Equal(before, Hashing.Sha256File(path));
        Assert.Throws<VirtualDiskException>(() => VirtualDisk.Open(path, FileAccess.Read, new DiskOpenOptions { Format = Unknown }));
    }

    [Fact]
    public void CreatingInAnUnknownFormatIsRefusedAndWritesNothing()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.raw");
        var ex = Assert.Throws<VirtualDiskException>(() => VirtualDisk.CreateDynamic(path, 1 << 20, new DiskCreateOptions { Format = Unknown }));
        Assert.Contains("not a disk format VmClone knows", ex.Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void AChildInAnUnknownFormatIsRefusedAndWritesNothing()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.vhdx");
        VirtualDisk.CreateDynamic(parent, 1 << 24).Dispose();
        string child = dir.File("child.data");
        Assert.Throws<VirtualDiskException>(() => VirtualDisk.CreateDifferencing(child, parent, new DiskCreateOptions { Format = Unknown }).Dispose());
        Assert.False(File.Exists(child));
    }

    [Fact]
    public void TheInPlaceRewriteInAnUnknownFormatIsRefusedNotSkipped()
    {
        using var dir = new TempFolder();
        string parentPath = dir.File("base.vhdx");
        VirtualDisk.CreateDynamic(parentPath, 1 << 24).Dispose();
        string child = dir.File("child.vhdx");
        VirtualDisk.CreateDifferencing(child, parentPath).Dispose();
        string before = Hashing.Sha256File(child);
        using VirtualDisk parent = VirtualDisk.Open(parentPath, FileAccess.Read);
        Assert.Throws<VirtualDiskException>(() => VirtualDisk.TryRecreateDifferencingFile(child, parent, new DiskCreateOptions { Format = Unknown }));
        Assert.Equal(before, Hashing.Sha256File(child));
    }
}
