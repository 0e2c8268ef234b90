using System;
using System.IO;
using System.Text.Json;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

/// <summary>
/// Measure-VmDisk's operation. Where qemu-img measure can measure the destination format (qcow2,
/// raw) the numbers must equal qemu's exactly: we follow its rule (qcow2: the metadata of a fully
/// allocated image plus every cluster a data run touches; raw: the virtual size), so any
/// difference is a bug, not rounding. Where it cannot (VHDX, VMDK, VHD: "does not support size
/// measurement") the judge is the file Convert-VmDisk writes: its length must be exactly the
/// required size, and a fully written disk's copy exactly the fully allocated size.
/// </summary>
public class MeasureTests
{
    private const long Size = 64L << 20;
    private const int Cluster = 64 * 1024;

    /// <summary>A qcow2 source whose data runs are whole 64 KiB clusters of random (never all-zero) bytes, so a convert writes every stored cluster.</summary>
    private static string MakeSource(TempFolder dir, int seed, int clusters)
    {
        string path = dir.File("source.qcow2");
        VirtualDisk.CreateDynamic(path, Size).Dispose();
        var rng = new Random(seed);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
        for (int i = 0; i < clusters; i++)
        {
            int run = rng.Next(1, 5);
            long at = rng.Next(0, (int)(Size / Cluster) - run) * (long)Cluster;
            byte[] data = new byte[run * Cluster];
            rng.NextBytes(data);
            disk.Content.Position = at;
            disk.Content.Write(data, 0, data.Length);
        }
        return path;
    }

    private static VmDiskMeasurement Measure(string path, DiskFormat format, long? block = null) =>
        DiskOperations.Measure(path, format, block, null, CancellationToken.None);

    private static (long Required, long FullyAllocated) Qemu(string path, string format, string options = "")
    {
        string json = Oracle.Run("qemu-img", $"measure --output=json -O {format} {options} \"{path}\"").StdOut;
        JsonElement root = JsonDocument.Parse(json).RootElement;
        return (root.GetProperty("required").GetInt64(), root.GetProperty("fully-allocated").GetInt64());
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData(null)]
    [InlineData(512L * 1024)]
    [InlineData(2L << 20)]
    public void Qcow2MeasuresAsQemuMeasuresIt(long? clusterSize)
    {
        using var dir = new TempFolder();
        string source = MakeSource(dir, 1, 40);
        VmDiskMeasurement m = Measure(source, DiskFormat.Qcow2, clusterSize);
        var qemu = Qemu(source, "qcow2", clusterSize is long cs ? $"-o cluster_size={cs}" : "");
        Assert.Equal(qemu.Required, m.RequiredBytes);
        Assert.Equal(qemu.FullyAllocated, m.FullyAllocatedBytes);
        Assert.Equal(clusterSize ?? Cluster, m.BlockSize);

        string copy = dir.File("copy.qcow2");
        DiskOperations.Convert(source, copy, null, new DiskCreateOptions { BlockSizeBytes = clusterSize }, null, null, CancellationToken.None);
        Assert.InRange(new FileInfo(copy).Length, 1, m.RequiredBytes);
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void RawMeasuresAsQemuMeasuresIt()
    {
        using var dir = new TempFolder();
        string source = MakeSource(dir, 2, 30);
        VmDiskMeasurement m = Measure(source, DiskFormat.Raw);
        var qemu = Qemu(source, "raw");
        Assert.Equal(qemu.Required, m.RequiredBytes);
        Assert.Equal(qemu.FullyAllocated, m.FullyAllocatedBytes);
    }

    [Theory]
    [InlineData(DiskFormat.Vhdx, null)]
    [InlineData(DiskFormat.Vhdx, 1L << 20)]
    [InlineData(DiskFormat.Vmdk, null)]
    [InlineData(DiskFormat.Vmdk, 1L << 20)]
    [InlineData(DiskFormat.Vhd, null)]
    [InlineData(DiskFormat.Vhd, 512L * 1024)]
    public void RequiredIsTheLengthOfTheFileConvertWrites(DiskFormat format, long? block)
    {
        using var dir = new TempFolder();
        string source = MakeSource(dir, 3, 25);
        VmDiskMeasurement m = Measure(source, format, block);
        string copy = dir.File("copy." + format.ToString().ToLowerInvariant());
        DiskOperations.Convert(source, copy, format, new DiskCreateOptions { BlockSizeBytes = block }, null, null, CancellationToken.None);
        Assert.Equal(new FileInfo(copy).Length, m.RequiredBytes);
    }

    [Theory]
    [InlineData(DiskFormat.Vhdx)]
    [InlineData(DiskFormat.Vmdk)]
    [InlineData(DiskFormat.Vhd)]
    [InlineData(DiskFormat.Qcow2)]
    public void FullyAllocatedIsTheLengthOfAFullDisksCopy(DiskFormat format)
    {
        using var dir = new TempFolder();
        string source = dir.File("full.qcow2");
        VirtualDisk.CreateDynamic(source, 8L << 20).Dispose();
        using (VirtualDisk disk = VirtualDisk.Open(source, FileAccess.ReadWrite))
        {
            byte[] data = DiskFiles.Random(4, 8 << 20);
            disk.Content.Write(data, 0, data.Length);
        }
        long block = 1L << 20;
        VmDiskMeasurement m = Measure(source, format, block);
        Assert.Equal(8L << 20, m.DataBytes);
        Assert.Equal(m.FullyAllocatedBytes, m.RequiredBytes);
        string copy = dir.File("copy." + format.ToString().ToLowerInvariant());
        DiskOperations.Convert(source, copy, format, new DiskCreateOptions { BlockSizeBytes = block }, null, null, CancellationToken.None);
        if (format == DiskFormat.Qcow2)
            Assert.InRange(new FileInfo(copy).Length, 1, m.FullyAllocatedBytes); // qemu's bound holds every L2 table a full image could need
        else
            Assert.Equal(new FileInfo(copy).Length, m.FullyAllocatedBytes);
    }

    [Fact]
    public void AChainIsMeasuredFlattenedAndAnEmptyDiskNeedsOnlyItsMetadata()
    {
        using var dir = new TempFolder();
        string b = dir.File("base.vhdx"), c = dir.File("child.vhdx");
        VirtualDisk.CreateDynamic(b, Size, new DiskCreateOptions { BlockSizeBytes = 1L << 20 }).Dispose();
        VmDiskMeasurement empty = Measure(b, DiskFormat.Vhdx, 1L << 20);
        Assert.Equal(0, empty.DataBytes);
        Assert.Equal(4L << 20, empty.RequiredBytes); // headers, log, metadata, BAT: 1 MiB each
        Assert.Equal((4L << 20) + Size, empty.FullyAllocatedBytes);

        DiskFiles.Write(b, 0, DiskFiles.Random(5, 1 << 20));
        VirtualDisk.CreateDifferencing(c, b).Dispose();
        DiskFiles.Write(c, 10L << 20, DiskFiles.Random(6, 1 << 20));
        VmDiskMeasurement chain = Measure(c, DiskFormat.Vhdx, 1L << 20);
        Assert.Equal(2L << 20, chain.DataBytes);
        Assert.Equal(6L << 20, chain.RequiredBytes);
        Assert.Equal(DiskFormat.Vhdx, DiskOperations.Measure(c, null, 1L << 20, null, CancellationToken.None).DestinationFormat);
    }

    [Fact]
    public void ADiskLargerThanTheFormatCanHoldIsRefusedAsConvertRefusesIt()
    {
        using var dir = new TempFolder();
        string source = dir.File("big.qcow2");
        VirtualDisk.CreateDynamic(source, 3L << 40).Dispose();
        var ex = Assert.ThrowsAny<ArgumentException>(() => Measure(source, DiskFormat.Vhd));
        Assert.Contains(source, ex.Message);
        Assert.ThrowsAny<ArgumentException>(() => DiskOperations.Convert(source, dir.File("big.vhd"), null, null, null, null, CancellationToken.None));
        Assert.Equal(3L << 40, Measure(source, DiskFormat.Vhdx).VirtualSize);
    }
}
