using System;
using System.IO;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

/// <summary>
/// Merge-VmDisk -KeepChild: the child's content goes into its parent and the child stays, now
/// an empty child of the merged parent (what qemu-img commit does without -d), for every
/// format that has parents.
/// </summary>
public class MergeKeepChildTests
{
    private const long Size = 16L << 20;

    [Theory]
    [InlineData(DiskFormat.Vhdx, ".vhdx")]
    [InlineData(DiskFormat.Vmdk, ".vmdk")]
    [InlineData(DiskFormat.Vhd, ".vhd")]
    [InlineData(DiskFormat.Qcow2, ".qcow2")]
    public void TheChildStaysAsAnEmptyChildOfTheMergedParent(DiskFormat format, string extension)
    {
        using var dir = new TempFolder();
        var options = new DiskCreateOptions { Format = format };
        string parent = dir.File("base" + extension), mid = dir.File("mid" + extension), child = dir.File("child" + extension);
        using (VirtualDisk d = VirtualDisk.CreateDynamic(parent, Size, options))
            DiskFiles.WriteRandom(d, new Random(1), 8, maxLength: 100_000);
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(mid, parent, options))
            DiskFiles.WriteRandom(d, new Random(2), 8, maxLength: 100_000);
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(child, mid, options))
            DiskFiles.WriteRandom(d, new Random(3), 8, maxLength: 100_000);
        string expected = DiskFiles.ContentHash(child);

        VmDiskInfo merged = DiskOperations.Merge(child, parent, force: false, keepChild: true, null, null, CancellationToken.None);

        Assert.Equal(Path.GetFullPath(parent), merged.Path);
        Assert.Equal(expected, DiskFiles.ContentHash(parent));
        Assert.False(File.Exists(mid));
        Assert.True(File.Exists(child));
        using (VirtualDisk kept = VirtualDisk.Open(child, FileAccess.Read))
        {
            Assert.Equal(2, kept.Layers.Count);
            Assert.Equal(DiskType.Differencing, kept.Top.Type);
            Assert.Equal(format, kept.Top.Format);
            Assert.Equal(Path.GetFullPath(parent), kept.Layers[1].Path);
            Assert.Equal(0, kept.Top.AllocatedBytes);
        }
        Assert.Equal(expected, DiskFiles.ContentHash(child));
        Assert.Empty(DiskOperations.Check(child).Problems);
        Assert.False(File.Exists(child + ".vmclone-merging"));
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void QemuOpensTheKeptQcow2OverlayOverItsMergedBacking()
    {
        using var dir = new TempFolder();
        var options = new DiskCreateOptions { Format = DiskFormat.Qcow2 };
        string parent = dir.File("base.qcow2"), child = dir.File("child.qcow2");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(parent, Size, options))
            DiskFiles.WriteRandom(d, new Random(4), 6, maxLength: 100_000);
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(child, parent, options))
            DiskFiles.WriteRandom(d, new Random(5), 6, maxLength: 100_000);
        string expected = DiskFiles.ContentHash(child);

        DiskOperations.Merge(child, null, force: false, keepChild: true, null, null, CancellationToken.None);

        Oracle.Run("qemu-img", $"check -f qcow2 \"{child}\"");
        Oracle.Run("qemu-img", $"check -f qcow2 \"{parent}\"");
        Assert.Equal(expected, Oracle.QemuRawSha256(child, "qcow2"));
        Assert.Equal(expected, Oracle.QemuRawSha256(parent, "qcow2"));
    }
}
