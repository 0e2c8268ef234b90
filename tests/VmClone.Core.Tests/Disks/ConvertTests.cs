using System;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

public class ConvertTests
{
    private const long Size = 512L << 20; // 60 writes of at most 300 KB: a sparse destination stays small

    private static string MakeChain(TempFolder dir, int seed)
    {
        var rng = new Random(seed);
        string b = dir.File("base.vhdx"), m = dir.File("mid.vhdx"), t = dir.File("top.vhdx");
        VirtualDisk.CreateDynamic(b, Size, new DiskCreateOptions { BlockSizeBytes = DiskFiles.MiB }).Dispose();
        DiskFiles.WriteRandom(b, rng, 20);
        VirtualDisk.CreateDifferencing(m, b).Dispose();
        DiskFiles.WriteRandom(m, rng, 20);
        VirtualDisk.CreateDifferencing(t, m).Dispose();
        DiskFiles.WriteRandom(t, rng, 20);
        return t;
    }

    [Theory]
    [InlineData("flat.vhdx")]
    [InlineData("flat.raw")]
    public void FlatteningAChainKeepsEveryByteAndWritesNoZeros(string name)
    {
        using var dir = new TempFolder();
        string top = MakeChain(dir, 1);
        string expected = DiskFiles.ContentHash(top);

        var oneMiB = new DiskCreateOptions { BlockSizeBytes = DiskFiles.MiB };
        VmDiskInfo info = DiskOperations.Convert(top, dir.File(name), null, oneMiB, null, null, CancellationToken.None);

        Assert.Null(info.ParentPath);
        Assert.Equal(1, info.ChainDepth);
        Assert.Equal(expected, DiskFiles.ContentHash(dir.File(name)));
        if (name.EndsWith(".vhdx", StringComparison.Ordinal))
            Assert.True(info.AllocatedSize <= 120 * DiskFiles.MiB, $"zero blocks must stay unallocated, yet {info.AllocatedSize} bytes are");
        Assert.Empty(Directory.GetDirectories(dir.Path));
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void QemuReadsTheFlattenedVhdxAsOurChain()
    {
        using var dir = new TempFolder();
        string top = MakeChain(dir, 2);
        string flat = dir.File("flat.vhdx");
        DiskOperations.Convert(top, flat, null, null, null, null, CancellationToken.None);
        Oracle.Run("qemu-img", $"check -f vhdx \"{flat}\"");
        Assert.Equal(DiskFiles.ContentHash(top), Oracle.QemuRawSha256(flat, "vhdx"));
    }

    [Fact]
    public void AnExistingDestinationIsNeverOverwritten()
    {
        using var dir = new TempFolder();
        string top = MakeChain(dir, 3);
        File.WriteAllText(dir.File("taken.vhdx"), "precious");
        Assert.Throws<VmCloneException>(() => DiskOperations.Convert(top, dir.File("taken.vhdx"), null, null, null, null, CancellationToken.None));
        Assert.Equal("precious", File.ReadAllText(dir.File("taken.vhdx")));
    }

    [Fact]
    public void ACancelledConversionLeavesNoFileBehind()
    {
        using var dir = new TempFolder();
        string top = MakeChain(dir, 4);
        var cts = new CancellationTokenSource();
        var progress = new SyncProgress(p => { if (p.Completed > 0) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            DiskOperations.Convert(top, dir.File("flat.vhdx"), null, null, null, progress, cts.Token));
        Assert.False(File.Exists(dir.File("flat.vhdx")));
        Assert.Empty(Directory.GetDirectories(dir.Path));
        Assert.Equal(new[] { "base.vhdx", "mid.vhdx", "top.vhdx" }, Directory.GetFiles(dir.Path).Select(Path.GetFileName).OrderBy(n => n));
    }

    [Fact]
    public void ProgressReachesTheEnd()
    {
        using var dir = new TempFolder();
        string top = MakeChain(dir, 5);
        OperationProgress? last = null;
        DiskOperations.Convert(top, dir.File("flat.vhdx"), null, null, null, new SyncProgress(p => last = p), CancellationToken.None);
        Assert.NotNull(last);
        Assert.Equal(100, last!.Percent);
    }
}

/// <summary>Progress reported synchronously on the caller's thread (Progress&lt;T&gt; would post).</summary>
internal sealed class SyncProgress : IProgress<OperationProgress>
{
    private readonly Action<OperationProgress> _report;

    public SyncProgress(Action<OperationProgress> report) => _report = report;

    public void Report(OperationProgress value) => _report(value);
}

public class ConvertRoundTripTests
{
    /// <summary>VHDX → VMDK → VHDX → raw: every step byte-identical, zeros never allocated.</summary>
    [Fact]
    public void VhdxToVmdkToVhdxToRawIsByteIdentical()
    {
        using var dir = new TempFolder();
        string src = dir.File("src.vhdx");
        VirtualDisk.CreateDynamic(src, 2L << 30, new DiskCreateOptions { BlockSizeBytes = DiskFiles.MiB }).Dispose();
        DiskFiles.WriteRandom(src, new Random(21), 25);
        // A written run of zeros is content too, and must not become allocation anywhere.
        DiskFiles.Write(src, 700L << 20, new byte[3 << 20]);
        string expected = DiskFiles.ContentHash(src);

        var oneMiB = new DiskCreateOptions { BlockSizeBytes = DiskFiles.MiB };
        VmDiskInfo vmdk = DiskOperations.Convert(src, dir.File("a.vmdk"), null, null, null, null, CancellationToken.None);
        VmDiskInfo back = DiskOperations.Convert(dir.File("a.vmdk"), dir.File("b.vhdx"), null, oneMiB, null, null, CancellationToken.None);
        VmDiskInfo raw = DiskOperations.Convert(dir.File("b.vhdx"), dir.File("c.raw"), null, null, null, null, CancellationToken.None);

        Assert.Equal(DiskFormat.Vmdk, vmdk.Format);
        Assert.Equal(DiskFormat.Raw, raw.Format);
        Assert.Equal(expected, DiskFiles.ContentHash(dir.File("a.vmdk")));
        Assert.Equal(expected, DiskFiles.ContentHash(dir.File("b.vhdx")));
        Assert.Equal(expected, Hashing.Sha256File(dir.File("c.raw")));
        // 25 writes of < 300 KB touch at most 50 grains/blocks: the files show it.
        Assert.True(vmdk.AllocatedSize <= 50 * 300 * 1024 + 50 * 64 * 1024, $"VMDK allocated {vmdk.AllocatedSize}");
        Assert.True(back.AllocatedSize <= 50 * DiskFiles.MiB, $"VHDX allocated {back.AllocatedSize}");
        Assert.True(new FileInfo(dir.File("a.vmdk")).Length < 40 * DiskFiles.MiB);
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void AVmdkChainFlattensAsQemuImgDoes()
    {
        using var dir = new TempFolder();
        var rng = new Random(22);
        string b = dir.File("b.vmdk"), m = dir.File("m.vmdk"), t = dir.File("t.vmdk");
        VirtualDisk.CreateDynamic(b, 256L << 20).Dispose();
        DiskFiles.WriteRandom(b, rng, 15);
        VirtualDisk.CreateDifferencing(m, b).Dispose();
        DiskFiles.WriteRandom(m, rng, 15);
        VirtualDisk.CreateDifferencing(t, m).Dispose();
        DiskFiles.WriteRandom(t, rng, 15);

        DiskOperations.Convert(t, dir.File("flat.raw"), null, null, null, null, CancellationToken.None);

        Assert.Equal(Oracle.QemuRawSha256(t, "vmdk"), Hashing.Sha256File(dir.File("flat.raw")));
    }
}
