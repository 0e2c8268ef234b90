using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;
using VmClone.Core;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

public class OptimizeTests
{
    private const long Size = 64L << 20;
    private const int Block = 1 << 20;

    /// <summary>qemu-img's name of each format we write.</summary>
    private static string QemuFormat(string ext) => ext switch { "vhd" => "vpc", "img" => "raw", _ => ext };

    private static DiskCreateOptions Options(string ext) => new() { BlockSizeBytes = ext is "vhdx" or "vhd" ? DiskFiles.MiB : null };

    /// <summary>
    /// A base with data in its first blocks, then blocks written with zeros (stored, reading as
    /// zeros) and a block half zeros: what an optimize of a base gives back.
    /// </summary>
    private static string MakeBase(TempFolder dir, string ext, string name = "base")
    {
        string b = dir.File($"{name}.{ext}");
        VirtualDisk.CreateDynamic(b, Size, Options(ext)).Dispose();
        using VirtualDisk disk = VirtualDisk.Open(b, FileAccess.ReadWrite);
        for (int i = 0; i < 8; i++)
            WriteAt(disk, (long)i * Block, DiskFiles.Random(i + 1, Block));
        for (int i = 8; i < 16; i++)
            WriteAt(disk, (long)i * Block, new byte[Block]);
        WriteAt(disk, 20L * Block, DiskFiles.Random(99, Block / 2));
        WriteAt(disk, 20L * Block + Block / 2, new byte[Block / 2]);
        return b;
    }

    /// <summary>
    /// A child of <paramref name="parent"/> that rewrote blocks with the parent's own content (the
    /// same bytes: nothing to keep), zeros over parent data (must stay), zeros over parent zeros
    /// (nothing to keep) and new data.
    /// </summary>
    private static string MakeChild(TempFolder dir, string parent, string ext, string name = "child")
    {
        string c = dir.File($"{name}.{ext}");
        VirtualDisk.CreateDifferencing(c, parent, Options(ext)).Dispose();
        using VirtualDisk disk = VirtualDisk.Open(c, FileAccess.ReadWrite);
        for (int i = 0; i < 4; i++)
            WriteAt(disk, (long)i * Block, DiskFiles.Random(i + 1, Block));
        WriteAt(disk, 5L * Block, new byte[Block]);
        WriteAt(disk, 9L * Block, new byte[Block]);
        WriteAt(disk, 30L * Block + 4096, DiskFiles.Random(7, 100_000));
        return c;
    }

    private static void WriteAt(VirtualDisk disk, long position, byte[] data)
    {
        disk.Content.Position = position;
        disk.Content.Write(data, 0, data.Length);
    }

    private static VmDiskOptimization Optimize(string path) => DiskOperations.Optimize(path, null, null, CancellationToken.None);

    /// <summary>
    /// Writes <paramref name="pristine"/>'s bytes over <paramref name="path"/> without asking
    /// for it alone: a process another test starts at that instant holds, until it execs, a copy
    /// of every descriptor open then (with its shared lock), and File.Copy's exclusive open
    /// would be refused as "used by another process".
    /// </summary>
    private static void PutBack(string pristine, string path)
    {
        using var from = new FileStream(pristine, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var to = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite);
        from.CopyTo(to);
    }

    private static long Stored(string path)
    {
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        return layer.AllocatedBytes;
    }

    /// <summary>Runs qemu-img map of one layer and counts the runs it stores itself.</summary>
    private static int QemuAllocatedRuns(string path, string ext)
    {
        string json = Oracle.Run("qemu-img", $"map --output=json -f {QemuFormat(ext)} \"{path}\"").StdOut;
        using JsonDocument doc = JsonDocument.Parse(json);
        return doc.RootElement.EnumerateArray().Count(e => e.GetProperty("depth").GetInt32() == 0 && e.GetProperty("data").GetBoolean());
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    [InlineData("qcow2")]
    [InlineData("vhd")]
    public void ABaseGivesBackItsZeroBlocksAndReadsTheSame(string ext)
    {
        using var dir = new TempFolder();
        string b = MakeBase(dir, ext);
        string ours = DiskFiles.ContentHash(b);
        string qemu = Oracle.QemuRawSha256(b, QemuFormat(ext));
        int runs = QemuAllocatedRuns(b, ext);
        long stored = Stored(b);
        long onDisk = new FileInfo(b).Length;

        VmDiskOptimization result = Optimize(b);

        Assert.Equal(OptimizeMethod.Rewritten, result.Method);
        Assert.Equal(ours, DiskFiles.ContentHash(b));
        Assert.Equal(qemu, Oracle.QemuRawSha256(b, QemuFormat(ext)));
        Assert.Equal(stored, result.StoredBytesBefore);
        Assert.True(result.StoredBytesAfter <= stored - 8L * Block, $"stored {result.StoredBytesAfter} of {stored} before");
        Assert.Equal(Stored(b), result.StoredBytesAfter);
        Assert.True(result.SizeOnDiskAfter < result.SizeOnDiskBefore);
        Assert.True(new FileInfo(b).Length < onDisk);
        Assert.True(result.RangesDropped >= 1);
        Assert.True(result.BytesDropped >= 8L * Block);
        Assert.True(QemuAllocatedRuns(b, ext) <= runs);
        Assert.True(DiskOperations.Check(b).IsHealthy);
        if (ext == "qcow2")
            Oracle.Run("qemu-img", $"check -f qcow2 \"{b}\"");
        if (ext is "vhdx" or "vhd")
            Assert.Equal(ours, Oracle.LibvhdiSha256(b));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path, ".vmclone-*"));

        // Again: nothing left to give back, and the file is left alone, even where the file
        // system counts more blocks for the same bytes (an extent-tree block of a fragmented
        // file, space reserved past its end): those are the file system's, not the disk's.
        Oracle.Run("fallocate", $"--keep-size --offset {new FileInfo(b).Length} --length 1MiB \"{b}\"");
        string bytes = Hashing.Sha256File(b);
        VmDiskOptimization again = Optimize(b);
        Assert.Equal(OptimizeMethod.Unchanged, again.Method);
        Assert.Equal(0, again.RangesDropped);
        Assert.Equal(bytes, Hashing.Sha256File(b));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path, ".vmclone-*"));
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void ACompressedQcow2ThatACopyWouldGrowIsLeftAlone()
    {
        using var dir = new TempFolder();
        // Text compresses well: qemu-img stores it in compressed clusters, which a copy stores plainly.
        string raw = dir.File("text.img");
        File.WriteAllBytes(raw, System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("all work and no play ", 400_000))));
        string z = dir.File("compressed.qcow2");
        Oracle.Run("qemu-img", $"convert -c -f raw -O qcow2 \"{raw}\" \"{z}\"");
        string bytes = Hashing.Sha256File(z);

        VmDiskOptimization result = Optimize(z);

        Assert.Equal(OptimizeMethod.Unchanged, result.Method);
        Assert.Equal(bytes, Hashing.Sha256File(z));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path, ".vmclone-*"));
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    [InlineData("qcow2")]
    [InlineData("vhd")]
    public void AChildDropsWhatItsParentReadsAndKeepsZerosOverParentData(string ext)
    {
        using var dir = new TempFolder();
        string b = MakeBase(dir, ext);
        string c = MakeChild(dir, b, ext);
        // A grandchild made before: it must still take the optimized child as its parent.
        string g = dir.File($"grand.{ext}");
        VirtualDisk.CreateDifferencing(g, c, Options(ext)).Dispose();
        DiskFiles.Write(g, 40L * Block, DiskFiles.Random(5, 3000));
        string child = DiskFiles.ContentHash(c), grand = DiskFiles.ContentHash(g);
        string baseBytes = Hashing.Sha256File(b);
        long stored = Stored(c);

        VmDiskOptimization result = Optimize(c);

        Assert.Equal(child, DiskFiles.ContentHash(c));
        Assert.Equal(grand, DiskFiles.ContentHash(g));
        Assert.Equal(baseBytes, Hashing.Sha256File(b));
        Assert.Equal(DiskType.Differencing, result.Type);
        // The four blocks equal to the parent's and the zeros over zeros are gone; the zeros over
        // parent data and the new data stay.
        Assert.True(result.StoredBytesAfter <= stored - 5L * Block, $"stored {result.StoredBytesAfter} of {stored} before");
        Assert.True(result.StoredBytesAfter >= Block, "the zeros over the parent's data were dropped");
        Assert.True(DiskOperations.Check(c).IsHealthy);
        if (ext is "qcow2" or "vmdk")
        {
            Assert.Equal(Oracle.QemuRawSha256(c, QemuFormat(ext)), child);
            Assert.Equal(Oracle.QemuRawSha256(g, QemuFormat(ext)), grand);
        }
        if (ext == "qcow2")
            Oracle.Run("qemu-img", $"check -f qcow2 \"{c}\"");
        if (ext is "vhdx" or "vhd")
        {
            Assert.Equal(child, Oracle.LibvhdiSha256(b, c));
            Assert.Equal(grand, Oracle.LibvhdiSha256(b, c, g));
        }
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData("img")]
    [InlineData("fixed.vhd")]
    [InlineData("fixed.vhdx")]
    [InlineData("fixed.vmdk")]
    public void AFixedDiskHasItsZeroRangesPunchedInPlace(string ext)
    {
        using var dir = new TempFolder();
        string path = dir.File("disk." + ext);
        VirtualDisk.CreateDynamic(path, Size, new DiskCreateOptions { Fixed = ext != "img", Format = VirtualDisk.FormatFromExtension(path) }).Dispose();
        string qemuFormat = QemuFormat(Path.GetExtension(path).TrimStart('.'));
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            for (int i = 0; i < 16; i++)
                WriteAt(disk, (long)i * Block, i % 2 == 0 ? DiskFiles.Random(i, Block) : new byte[Block]);
        }
        string hash = DiskFiles.ContentHash(path);
        Assert.Equal(hash, Oracle.QemuRawSha256(path, qemuFormat));
        long length = new FileInfo(path).Length;

        VmDiskOptimization result = Optimize(path);

        Assert.Equal(OptimizeMethod.Punched, result.Method);
        Assert.Equal(hash, DiskFiles.ContentHash(path));
        Assert.Equal(hash, Oracle.QemuRawSha256(path, qemuFormat));
        Assert.Equal(length, new FileInfo(path).Length);
        Assert.True(result.SizeOnDiskAfter <= result.SizeOnDiskBefore - 7L * Block, $"{result.SizeOnDiskAfter} of {result.SizeOnDiskBefore} before");
        Assert.True(result.RangesDropped >= 8);
        Assert.True(DiskOperations.Check(path).IsHealthy);
        // Again: nothing left to punch.
        Assert.Equal(0, Optimize(path).RangesDropped);
    }

    public static IEnumerable<object[]> CrashPoints() =>
        from ext in new[] { "vhdx", "vmdk", "qcow2", "vhd" }
        from point in new[] { "optimize:created", "optimize:copied", "optimize:durable", "optimize:renamed" }
        select new object[] { ext, point };

    [Theory]
    [MemberData(nameof(CrashPoints))]
    public void ACutOffOptimizeLeavesTheDiskReadingTheSameAndTheNextOneCleansUp(string ext, string point)
    {
        using var dir = new TempFolder();
        string b = MakeBase(dir, ext);
        string c = MakeChild(dir, b, ext);
        string g = dir.File($"grand.{ext}");
        VirtualDisk.CreateDifferencing(g, c, Options(ext)).Dispose();
        string child = DiskFiles.ContentHash(c), grand = DiskFiles.ContentHash(g);

        FaultPoint.Hook = p => { if (p == point) throw new SimulatedCrash(p); };
        try
        {
            Assert.Throws<SimulatedCrash>(() => Optimize(c));
        }
        finally
        {
            FaultPoint.Hook = null;
        }

        Assert.Equal(child, DiskFiles.ContentHash(c));
        Assert.Equal(grand, DiskFiles.ContentHash(g));
        Optimize(c);
        Assert.Equal(child, DiskFiles.ContentHash(c));
        Assert.Equal(grand, DiskFiles.ContentHash(g));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path, ".vmclone-*"));
    }

    /// <summary>Counts writes, resizes and flushes (and the files written), and throws <see cref="SimulatedCrash"/> at the chosen one.</summary>
    private sealed class Cutter : IFileWriteObserver
    {
        public int Hits;
        public int CrashAt = -1;
        public readonly HashSet<string> Written = new();

        private void Hit(string what, string path)
        {
            Written.Add(path);
            if (++Hits == CrashAt)
                throw new SimulatedCrash(what);
        }

        public void BeforeWrite(string path, long position, byte[] buffer, int offset, int count) => Hit("write", path);

        public void BeforeSetLength(string path, long length) => Hit("resize", path);

        public void BeforeFlush(string path) => Hit("flush", path);

        public void AfterFlush(string path)
        {
        }
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    [InlineData("qcow2")]
    [InlineData("vhd")]
    public void CutOffAtAnyWriteTheDiskReadsTheSameForItWritesOnlyItsCopy(string ext)
    {
        using var dir = new TempFolder();
        string b = MakeBase(dir, ext);
        string c = MakeChild(dir, b, ext);
        string g = dir.File($"grand.{ext}");
        VirtualDisk.CreateDifferencing(g, c, Options(ext)).Dispose();
        string child = DiskFiles.ContentHash(c), grand = DiskFiles.ContentHash(g);
        string pristine = dir.File("pristine." + ext);
        File.Copy(c, pristine);
        var counter = new Cutter();
        FileAccessor.Observer = counter;
        try
        {
            Optimize(c);
        }
        finally
        {
            FileAccessor.Observer = null;
        }
        // Every write went to the copy in its staging folder, none to the file or its chain.
        Assert.All(counter.Written, w => Assert.Contains(DiskOperations.OptimizeStagingPrefix, w));
        Assert.True(counter.Hits > 4);

        foreach (int point in Enumerable.Range(1, 8).Select(i => Math.Max(1, counter.Hits * i / 8)).Distinct())
        {
            PutBack(pristine, c);
            var cutter = new Cutter { CrashAt = point };
            FileAccessor.Observer = cutter;
            try
            {
                Assert.Throws<SimulatedCrash>(() => Optimize(c));
            }
            finally
            {
                FileAccessor.Observer = null;
            }
            Assert.Equal(child, DiskFiles.ContentHash(c));
            Assert.Equal(grand, DiskFiles.ContentHash(g));
        }
        Optimize(c);
        Assert.Equal(child, DiskFiles.ContentHash(c));
        Assert.Equal(grand, DiskFiles.ContentHash(g));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path, ".vmclone-*"));
    }

    [Fact]
    public void AVolumeWithoutRoomForTheCopyIsRefusedUpFrontWithDiskFull()
    {
        using var dir = new TempFolder();
        string b = MakeBase(dir, "vhdx");
        string bytes = Hashing.Sha256File(b);
        using (FreeSpace.Pretend(_ => 2 * DiskFiles.MiB))
        {
            var ex = Assert.Throws<VmCloneException>(() => Optimize(b));
            Assert.Equal(StoreErrorIds.DiskFull, ex.ErrorId);
            Assert.Contains(dir.Path, ex.Message);
            Assert.True(ex.Data.Contains("BytesNeeded"));
        }
        Assert.Equal(bytes, Hashing.Sha256File(b));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path, ".vmclone-*"));
    }

    [Fact]
    public void AFileAnotherProgramHoldsIsRefusedAndUnchanged()
    {
        using var dir = new TempFolder();
        string b = MakeBase(dir, "vhdx");
        string bytes = Hashing.Sha256File(b);
        using (new FileStream(b, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            var ex = Assert.Throws<VmCloneException>(() => Optimize(b));
            Assert.Equal(StoreErrorIds.DiskInUse, ex.ErrorId);
        }
        Assert.Equal(bytes, Hashing.Sha256File(b));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path, ".vmclone-*"));
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void AStreamOptimizedVmdkIsRefusedAndUnchanged()
    {
        using var dir = new TempFolder();
        string b = MakeBase(dir, "qcow2");
        string s = dir.File("stream.vmdk");
        Oracle.Run("qemu-img", $"convert -f qcow2 -O vmdk -o subformat=streamOptimized \"{b}\" \"{s}\"");
        string bytes = Hashing.Sha256File(s);

        var ex = Assert.Throws<VmCloneException>(() => Optimize(s));

        Assert.Equal(StoreErrorIds.OptimizeNotSupported, ex.ErrorId);
        Assert.Equal(bytes, Hashing.Sha256File(s));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path, ".vmclone-*"));
    }

    [Fact]
    public void AStoreVolumeGivenByPathIsRefused()
    {
        using var t = new Store.TestStore();
        t.Store.Execute(t.Store.PlanNewBase("b1", new[] { new VolumeSpec { Name = "system", Type = VolumeType.System, Path = t.SourceDisk("sys.vhdx", "system") } }));
        t.Store.Execute(t.Store.PlanNewClone("lab", "b1"));
        string volume = t.Volume("lab", "system");
        string bytes = Hashing.Sha256File(volume);

        var ex = Assert.Throws<VmCloneException>(() => Optimize(volume));

        Assert.Equal(StoreErrorIds.DiskInStore, ex.ErrorId);
        Assert.Equal(bytes, Hashing.Sha256File(volume));
    }
}
