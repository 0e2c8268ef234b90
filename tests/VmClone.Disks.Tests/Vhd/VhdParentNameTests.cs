using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vhd;

/// <summary>
/// The parent name field's file name, looked for beside the child, is the last way to a VHD's
/// parent. A child named as its parent (a store's clones/lab/system.vhd over
/// bases/v1/system.vhd) finds itself there: that is no loop, and the real problem is told.
/// </summary>
public class VhdParentNameTests
{
    private static (string Parent, string Child) Chain(TempFolder dir)
    {
        Directory.CreateDirectory(dir.File("base"));
        Directory.CreateDirectory(dir.File("clone"));
        string parent = dir.File(Path.Combine("base", "system.vhd"));
        string child = dir.File(Path.Combine("clone", "system.vhd"));
        VirtualDisk.CreateDynamic(parent, 4L << 20, new DiskCreateOptions { Format = DiskFormat.Vhd }).Dispose();
        VirtualDisk.CreateDifferencing(child, parent, new DiskCreateOptions { Format = DiskFormat.Vhd }).Dispose();
        return (parent, child);
    }

    [Fact]
    public void AModifiedParentOfAChildOfTheSameNameIsReportedModified()
    {
        using var dir = new TempFolder();
        (string parent, string child) = Chain(dir);
        using (VirtualDisk disk = VirtualDisk.Open(parent, FileAccess.ReadWrite))
        {
            disk.Content.Position = 0;
            disk.Content.Write(new byte[] { 1, 2, 3 }, 0, 3);
        }
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child, FileAccess.Read).Dispose());
        Assert.Equal(ChainProblem.ParentModified, ex.Problem);
        Assert.Contains(parent, ex.Message);
    }

    [Fact]
    public void AMissingParentOfAChildOfTheSameNameIsReportedMissing()
    {
        using var dir = new TempFolder();
        (string parent, string child) = Chain(dir);
        File.Delete(parent);
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child, FileAccess.Read).Dispose());
        Assert.Equal(ChainProblem.ParentMissing, ex.Problem);
        Assert.Contains(parent, ex.Message);
    }
}
