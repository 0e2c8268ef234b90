using System;
using System.IO;
using System.Threading;
using CsCheck;
using VmClone.Core;
using VmClone.Core.Disks;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

public class ReparentTests
{
    private const long Size = 48L << 20;

    private static DiskCreateOptions Small(string ext) =>
        new() { BlockSizeBytes = ext == "vhdx" ? DiskFiles.MiB : 64 * 1024 };

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    public void AMovedParentIsFollowedByRewritingTheLinkOnly(string ext)
    {
        using var dir = new TempFolder();
        string b = dir.File($"base.{ext}"), c = dir.File($"child.{ext}");
        VirtualDisk.CreateDynamic(b, Size, Small(ext)).Dispose();
        DiskFiles.WriteRandom(b, new Random(1), 10);
        VirtualDisk.CreateDifferencing(c, b).Dispose();
        DiskFiles.WriteRandom(c, new Random(2), 10);
        string expected = DiskFiles.ContentHash(c);
        long allocated;
        using (DiskLayer l = VirtualDisk.OpenLayer(c, FileAccess.Read))
            allocated = l.AllocatedBytes;

        Directory.CreateDirectory(dir.File("moved"));
        string moved = Path.Combine(dir.File("moved"), $"base.{ext}");
        File.Move(b, moved);
        var missing = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(c, FileAccess.Read));
        Assert.Equal(ChainProblem.ParentMissing, missing.Problem);

        VmDiskInfo info = DiskOperations.SetParent(c, moved, preserveContent: false, ignoreIdMismatch: false, null, CancellationToken.None);

        Assert.Equal(moved, info.ParentPath);
        Assert.Equal(expected, DiskFiles.ContentHash(c));
        Assert.Equal(allocated, info.AllocatedSize);
        Assert.True(DiskOperations.Check(c).IsHealthy);
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    public void ADifferentParentIsRefusedWithoutPreserveContent(string ext)
    {
        using var dir = new TempFolder();
        string b = dir.File($"base.{ext}"), other = dir.File($"other.{ext}"), c = dir.File($"child.{ext}");
        VirtualDisk.CreateDynamic(b, Size, Small(ext)).Dispose();
        VirtualDisk.CreateDynamic(other, Size, Small(ext)).Dispose();
        VirtualDisk.CreateDifferencing(c, b).Dispose();
        string before = Hashing.Sha256File(c);

        var ex = Assert.Throws<DiskChainException>(() => DiskOperations.SetParent(c, other, false, false, null, CancellationToken.None));

        Assert.Equal(ChainProblem.ParentModified, ex.Problem);
        Assert.Equal(before, Hashing.Sha256File(c));
    }

    /// <summary>
    /// The content-preserving rebase, randomized: old parent chain, new parent (unrelated, or
    /// derived from the old base as a new VDI base is) and the child's own writes all random.
    /// The child hashes the same before, after, and after the old parent is deleted.
    /// </summary>
    [Theory]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    public void PreservingContentKeepsEveryByteForRandomParents(string ext)
    {
        Gen.Select(Gen.Int[0, 1_000_000], Gen.Bool, Gen.Int[1, 5]).Sample((seed, derived, chunksPerGroup) =>
        {
            using var dir = new TempFolder();
            var rng = new Random(seed);
            string oldBase = dir.File($"old.{ext}"), newBase = dir.File($"new.{ext}"), c = dir.File($"clone.{ext}");
            VirtualDisk.CreateDynamic(oldBase, Size, Small(ext)).Dispose();
            DiskFiles.WriteRandom(oldBase, rng, rng.Next(0, 12));
            if (derived)
            {
                // A new base made the usual way: a child of the old one, changed, then used as is.
                VirtualDisk.CreateDifferencing(newBase, oldBase).Dispose();
            }
            else
            {
                VirtualDisk.CreateDynamic(newBase, Size, Small(ext)).Dispose();
            }
            DiskFiles.WriteRandom(newBase, rng, rng.Next(0, 12));
            VirtualDisk.CreateDifferencing(c, oldBase).Dispose();
            DiskFiles.WriteRandom(c, rng, rng.Next(0, 12));
            string expected = DiskFiles.ContentHash(c);

            // Groups of a few chunks: the new chain is mapped and read ahead group by group.
            var batching = new DiskOperations.CopyBatching { ChunksPerGroup = chunksPerGroup };
            DiskOperations.SetParent(c, newBase, preserveContent: true, ignoreIdMismatch: false, null, null, CancellationToken.None, batching);

            Assert.Equal(expected, DiskFiles.ContentHash(c));
            using (VirtualDisk reopened = VirtualDisk.Open(c, FileAccess.Read))
                Assert.Equal(newBase, reopened.Layers[1].Path);
            if (!derived)
            {
                File.Delete(oldBase);
                Assert.Equal(expected, DiskFiles.ContentHash(c));
            }
            Assert.True(DiskOperations.Check(c).IsHealthy);
        }, iter: 6, threads: 1);
    }

    /// <summary>
    /// A disk of several 256 MiB mapping windows, rebased with the default batches and with tiny
    /// ones (a batch committed after every 64 KiB copied, the child's runs listed one window at a
    /// time, two chunks read ahead per group): the copies made reachable batch by batch keep every
    /// byte, for every format, and qemu-img agrees for VMDK and qcow2.
    /// </summary>
    [OracleTheory(tools: new[] { "qemu-img" }, python: new[] { "pyvhdi" })]
    [InlineData("vhdx", false)]
    [InlineData("vhdx", true)]
    [InlineData("vmdk", false)]
    [InlineData("vmdk", true)]
    [InlineData("qcow2", false)]
    [InlineData("qcow2", true)]
    public void ARebaseAcrossWindowsAndBatchesKeepsEveryByte(string ext, bool tinyBatches)
    {
        const long size = 600L << 20;
        using var dir = new TempFolder();
        var rng = new Random(tinyBatches ? 21 : 22);
        string oldBase = dir.File($"old.{ext}"), newBase = dir.File($"new.{ext}"), c = dir.File($"clone.{ext}");
        VirtualDisk.CreateDynamic(oldBase, size, Small(ext)).Dispose();
        DiskFiles.WriteRandom(oldBase, rng, 40, maxLength: 3_000_000);
        VirtualDisk.CreateDifferencing(newBase, oldBase).Dispose();
        DiskFiles.WriteRandom(newBase, rng, 30, maxLength: 3_000_000);
        VirtualDisk.CreateDifferencing(c, oldBase).Dispose();
        DiskFiles.WriteRandom(c, rng, 30, maxLength: 3_000_000);
        string expected = DiskFiles.ContentHash(c);
        var batching = tinyBatches
            ? new DiskOperations.CopyBatching { BatchBytes = 64 * 1024, MaxListedRuns = 1, ChunksPerGroup = 2 }
            : DiskOperations.CopyBatching.Default;

        var reports = new System.Collections.Generic.List<OperationProgress>();
        DiskOperations.SetParent(c, newBase, preserveContent: true, ignoreIdMismatch: false, null, new SyncProgress(reports.Add), CancellationToken.None, batching);

        Assert.Equal(expected, DiskFiles.ContentHash(c));
        // Progress once per 256 MiB window's worth, ending at 100 %, however many runs were copied.
        Assert.InRange(reports.Count, 1, 4);
        Assert.Equal(100, reports[reports.Count - 1].Percent);
        using (VirtualDisk reopened = VirtualDisk.Open(c, FileAccess.Read))
            Assert.Equal(newBase, reopened.Layers[1].Path);
        Assert.True(DiskOperations.Check(c).IsHealthy);
        if (ext != "vhdx")
        {
            Oracle.Run("qemu-img", $"check -f {ext} \"{c}\"");
            Assert.Equal(expected, Oracle.QemuRawSha256(c, ext), ignoreCase: true);
        }
        else
        {
            // libvhdi reads the chain on its own: the bitmaps and BAT entries each batch made reachable.
            Assert.Equal(expected, Oracle.LibvhdiSha256(oldBase, newBase, c), ignoreCase: true);
        }
    }

    /// <summary>
    /// A rebase cancelled halfway through its copy (while the new base is being read ahead)
    /// ends with the cancellation, and the child, still over its old base, reads as before.
    /// </summary>
    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData("vmdk")]
    [InlineData("qcow2")]
    public void ARebaseCancelledDuringItsCopyEndsAndTheChildReadsAsBefore(string ext)
    {
        const long size = 600L << 20;
        using var dir = new TempFolder();
        var rng = new Random(31);
        string oldBase = dir.File($"old.{ext}"), newBase = dir.File($"new.{ext}"), c = dir.File($"clone.{ext}");
        VirtualDisk.CreateDynamic(oldBase, size, Small(ext)).Dispose();
        DiskFiles.WriteRandom(oldBase, rng, 40, maxLength: 3_000_000);
        VirtualDisk.CreateDynamic(newBase, size, Small(ext)).Dispose();
        DiskFiles.WriteRandom(newBase, rng, 40, maxLength: 3_000_000);
        VirtualDisk.CreateDifferencing(c, oldBase).Dispose();
        DiskFiles.WriteRandom(c, rng, 20, maxLength: 3_000_000);
        string expected = DiskFiles.ContentHash(c);
        using var cancel = new CancellationTokenSource();
        // The first report comes after the first 256 MiB window: the copy is then under way.
        var progress = new SyncProgress(_ => cancel.Cancel());

        Assert.ThrowsAny<OperationCanceledException>(() =>
            DiskOperations.SetParent(c, newBase, preserveContent: true, ignoreIdMismatch: false, null, progress, cancel.Token));

        using (VirtualDisk reopened = VirtualDisk.Open(c, FileAccess.Read))
            Assert.Equal(oldBase, reopened.Layers[1].Path);
        Assert.Equal(expected, DiskFiles.ContentHash(c));
        Oracle.Run("qemu-img", $"check -f {ext} \"{c}\"");
        Assert.Equal(expected, Oracle.QemuRawSha256(c, ext), ignoreCase: true);
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void QemuReadsARebasedVmdkChildAsBefore()
    {
        using var dir = new TempFolder();
        var rng = new Random(5);
        string oldBase = dir.File("old.vmdk"), newBase = dir.File("new.vmdk"), c = dir.File("clone.vmdk");
        VirtualDisk.CreateDynamic(oldBase, Size).Dispose();
        DiskFiles.WriteRandom(oldBase, rng, 10);
        VirtualDisk.CreateDynamic(newBase, Size).Dispose();
        DiskFiles.WriteRandom(newBase, rng, 10);
        VirtualDisk.CreateDifferencing(c, oldBase).Dispose();
        DiskFiles.WriteRandom(c, rng, 10);
        string before = Oracle.QemuRawSha256(c, "vmdk");

        DiskOperations.SetParent(c, newBase, true, false, null, CancellationToken.None);
        File.Delete(oldBase);

        Oracle.Run("qemu-img", $"check -f vmdk \"{c}\"");
        Assert.Equal(before, Oracle.QemuRawSha256(c, "vmdk"));
    }

    /// <summary>
    /// A VHDX child moved onto an unrelated base with its content kept: what it copies in is
    /// written in batches (sector bitmaps and BAT entries made reachable at each batch's end), so
    /// libvhdi, reading the chain on its own, judges before and after.
    /// </summary>
    [OracleFact(python: new[] { "pyvhdi" })]
    public void LibvhdiReadsAVhdxChildRebasedWithItsContentAsBefore()
    {
        using var dir = new TempFolder();
        var rng = new Random(8);
        string oldBase = dir.File("old.vhdx"), newBase = dir.File("new.vhdx"), c = dir.File("clone.vhdx");
        VirtualDisk.CreateDynamic(oldBase, Size, Small("vhdx")).Dispose();
        DiskFiles.WriteRandom(oldBase, rng, 12);
        VirtualDisk.CreateDynamic(newBase, Size, Small("vhdx")).Dispose();
        DiskFiles.WriteRandom(newBase, rng, 12);
        VirtualDisk.CreateDifferencing(c, oldBase).Dispose();
        DiskFiles.WriteRandom(c, rng, 12);
        string before = Oracle.LibvhdiSha256(oldBase, c);

        DiskOperations.SetParent(c, newBase, true, false, null, CancellationToken.None);
        File.Delete(oldBase);

        Assert.Equal(before, Oracle.LibvhdiSha256(newBase, c));
        Assert.NotEqual(before, Oracle.LibvhdiSha256(newBase));
    }

    [OracleFact(python: new[] { "pyvhdi" })]
    public void LibvhdiFollowsARepointedVhdxLocator()
    {
        using var dir = new TempFolder();
        string b = dir.File("base.vhdx"), c = dir.File("child.vhdx");
        VirtualDisk.CreateDynamic(b, Size, Small("vhdx")).Dispose();
        DiskFiles.WriteRandom(b, new Random(6), 10);
        VirtualDisk.CreateDifferencing(c, b).Dispose();
        DiskFiles.WriteRandom(c, new Random(7), 10);
        Directory.CreateDirectory(dir.File("moved"));
        string moved = Path.Combine(dir.File("moved"), "base.vhdx");
        File.Move(b, moved);

        DiskOperations.SetParent(c, moved, false, false, null, CancellationToken.None);

        string info = Oracle.Run("vhdiinfo", $"\"{c}\"").StdOut;
        Assert.Contains("moved", info);
        Assert.Equal(DiskFiles.ContentHash(c), Oracle.LibvhdiSha256(moved, c), ignoreCase: true);
    }
}
