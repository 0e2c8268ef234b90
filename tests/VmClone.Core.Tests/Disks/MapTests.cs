using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

/// <summary>Get-VmDisk -Map's operation, judged by qemu-img map --output=json on the same files.</summary>
public class MapTests
{
    private static List<VmDiskMapEntry> Map(string path) => DiskOperations.Map(path, null, CancellationToken.None).ToList();

    /// <summary>qemu's map as runs of "D@depth" (data, with "@offset" in its file when <paramref name="offsets"/>), "Z@depth" (stated zero) or "U" (unallocated), neighbours merged.</summary>
    private static List<(long Start, long Length, string What)> QemuRuns(string path, bool offsets = false)
    {
        string json = Oracle.Run("qemu-img", $"map --output=json \"{path}\"").StdOut;
        var runs = new List<(long, long, string)>();
        foreach (JsonElement e in JsonDocument.Parse(json).RootElement.EnumerateArray())
        {
            string what = !e.GetProperty("present").GetBoolean() ? "U"
                : e.GetProperty("data").GetBoolean() ? $"D@{e.GetProperty("depth").GetInt32()}" + (offsets && e.TryGetProperty("offset", out JsonElement o) ? $"@{o.GetInt64()}" : "")
                : $"Z@{e.GetProperty("depth").GetInt32()}";
            Add(runs, e.GetProperty("start").GetInt64(), e.GetProperty("length").GetInt64(), what);
        }
        return runs;
    }

    private static List<(long Start, long Length, string What)> OurRuns(IEnumerable<VmDiskMapEntry> map, bool offsets = false)
    {
        var runs = new List<(long, long, string)>();
        foreach (VmDiskMapEntry e in map)
            Add(runs, e.Start, e.Length, e.Kind switch { VmDiskMapKind.Data => $"D@{e.Depth}" + (offsets ? $"@{e.Offset}" : ""), VmDiskMapKind.Zero => $"Z@{e.Depth}", _ => "U" });
        return runs;
    }

    private static void Add(List<(long Start, long Length, string What)> runs, long start, long length, string what)
    {
        if (runs.Count > 0 && runs[^1].What == what && runs[^1].Start + runs[^1].Length == start)
            runs[^1] = (runs[^1].Start, runs[^1].Length + length, what);
        else
            runs.Add((start, length, what));
    }

    private static void Qemu(string tool, string args) => Oracle.Run(tool, args);

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void AQcow2ChainMapsAsQemuMapsIt()
    {
        using var dir = new TempFolder();
        string b = dir.File("b.qcow2"), c = dir.File("c.qcow2");
        Qemu("qemu-img", $"create -f qcow2 \"{b}\" 64M");
        Qemu("qemu-io", $"-c \"write -P 1 1M 64k\" -c \"write -z 4M 64k\" -c \"write -P 3 30M 3M\" \"{b}\"");
        Qemu("qemu-img", $"create -f qcow2 -b b.qcow2 -F qcow2 \"{c}\"");
        Qemu("qemu-io", $"-c \"write -P 2 2M 64k\" -c \"write -z 31M 128k\" -c \"write -P 4 63M 1M\" \"{c}\"");

        List<VmDiskMapEntry> map = Map(c);
        Assert.Equal(QemuRuns(c), OurRuns(map));
        // And each data run where qemu says its bytes lie in its file.
        Assert.Equal(QemuRuns(c, offsets: true), OurRuns(map, offsets: true));
        Assert.All(map.Where(e => e.Depth == 0), e => Assert.Equal(c, e.File));
        Assert.All(map.Where(e => e.Depth == 1), e => Assert.Equal(b, e.File));
        Assert.All(map.Where(e => e.Kind == VmDiskMapKind.Unallocated), e => Assert.Null(e.File));
        Assert.Equal(0, map[0].Start);
        Assert.Equal(64L << 20, map[^1].End);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void AVmdkChainMapsAsQemuMapsIt()
    {
        using var dir = new TempFolder();
        string b = dir.File("b.vmdk"), c = dir.File("c.vmdk");
        Qemu("qemu-img", $"create -f vmdk \"{b}\" 64M");
        Qemu("qemu-io", $"-c \"write -P 1 1M 64k\" -c \"write -P 3 30M 3M\" \"{b}\"");
        Qemu("qemu-img", $"create -f vmdk -b b.vmdk -F vmdk \"{c}\"");
        Qemu("qemu-io", $"-c \"write -P 2 2M 64k\" -c \"write -P 4 31M 128k\" \"{c}\"");

        List<VmDiskMapEntry> map = Map(c);
        Assert.Equal(QemuRuns(c), OurRuns(map));
        Assert.Equal(QemuRuns(c, offsets: true), OurRuns(map, offsets: true));
        Assert.Contains(map, e => e.Kind == VmDiskMapKind.Data && e.Depth == 1 && e.File == b);
        Assert.Contains(map, e => e.Kind == VmDiskMapKind.Data && e.Depth == 0 && e.File == c);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void AVhdxFromQemuMapsItsBlocksAndWhatItCallsZeroReadsAsZerosInQemu()
    {
        using var dir = new TempFolder();
        string v = dir.File("q.vhdx");
        Qemu("qemu-img", $"create -f vhdx -o block_size=1M \"{v}\" 64M");
        Qemu("qemu-io", $"-c \"write -P 1 1M 1M\" -c \"write -P 2 20M 3M\" \"{v}\"");

        List<VmDiskMapEntry> map = Map(v);
        // qemu maps a whole VHDX as data (its driver reports no block status), so what it says is
        // only that every byte reads; the runs we call zero or unallocated must read as zeros there.
        Assert.Equal(new[] { (0L, 64L << 20, "D@0") }, QemuRuns(v));
        Assert.Equal(new[] { (1L << 20, 1L << 20), (20L << 20, 3L << 20) },
            map.Where(e => e.Kind == VmDiskMapKind.Data).Select(e => (e.Start, e.Length)).ToArray());
        foreach (VmDiskMapEntry e in map.Where(e => e.Kind != VmDiskMapKind.Data))
        {
            var (_, stdout, _) = Oracle.Run("qemu-io", $"-r -c \"read -P 0 {e.Start} {e.Length}\" \"{v}\"");
            Assert.DoesNotContain("Pattern verification failed", stdout);
        }
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    [InlineData("qcow2")]
    [InlineData("vhd")]
    [InlineData("raw")]
    public void EachDataRunsOffsetIsWhereItsBytesLieInTheFile(string format)
    {
        using var dir = new TempFolder();
        string path = dir.File("disk." + format);
        VirtualDisk.CreateDynamic(path, 64L << 20, new DiskCreateOptions { BlockSizeBytes = format == "vhdx" ? 1L << 20 : null }).Dispose();
        var rng = new Random(11);
        // Written out of order, so the file holds the blocks in another order than the disk.
        foreach (long at in new[] { 40L << 20, 3L << 20, 20L << 20 + 4096, 1L << 20 })
            DiskFiles.Write(path, at, DiskFiles.Random(rng.Next(), 300_000));

        List<VmDiskMapEntry> data = Map(path).Where(e => e.Kind == VmDiskMapKind.Data).ToList();
        Assert.NotEmpty(data);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        using FileStream file = File.OpenRead(path);
        foreach (VmDiskMapEntry e in data)
        {
            Assert.NotNull(e.Offset);
            Assert.Equal(path, e.File);
            byte[] expected = new byte[e.Length], actual = new byte[e.Length];
            disk.Content.Position = e.Start;
            disk.Content.ReadExactly(expected);
            file.Position = e.Offset!.Value;
            file.ReadExactly(actual);
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"{format}: run {e} does not lie at offset {e.Offset} of the file");
        }
    }

    [Fact]
    public void AnEmptyHugeDiskIsOneUnallocatedRunAndFast()
    {
        using var dir = new TempFolder();
        string v = dir.File("huge.vhdx");
        VirtualDisk.CreateDynamic(v, 4L << 40).Dispose();
        DiskFiles.Write(v, 1L << 40, new byte[] { 9 });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        List<VmDiskMapEntry> map = Map(v);
        Assert.Equal(3, map.Count);
        Assert.Equal(VmDiskMapKind.Unallocated, map[0].Kind);
        Assert.Equal(VmDiskMapKind.Data, map[1].Kind);
        Assert.Equal(1L << 40, map[1].Start);
        Assert.Equal(32L << 20, map[1].Length);
        Assert.Equal(0, map[1].Depth);
        Assert.Equal(v, map[1].File);
        Assert.Equal(4L << 40, map[2].End);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"mapping took {sw.Elapsed}");
    }
}
