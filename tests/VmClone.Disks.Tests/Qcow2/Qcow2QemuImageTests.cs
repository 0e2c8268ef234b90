using System.IO;
using VmClone.Disks.Qcow2;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Qcow2;

/// <summary>
/// Images qemu-img makes with every layout option a farm uses, written by qemu-io at random
/// offsets: VmClone reads exactly what `qemu-img convert -O raw` reads.
/// </summary>
public class Qcow2QemuImageTests
{
    private const long Size = 24L * 1024 * 1024 + 1536; // not a whole number of clusters

    [OracleTheory(tools: new[] { "qemu-img", "qemu-io" })]
    [InlineData("cluster_size=512", 1)]
    [InlineData("cluster_size=4k", 2)]
    [InlineData("cluster_size=64k", 3)]
    [InlineData("cluster_size=2M", 4)]
    [InlineData("cluster_size=16k,extended_l2=on", 5)]
    [InlineData("cluster_size=64k,extended_l2=on", 6)]
    [InlineData("cluster_size=2M,extended_l2=on", 7)]
    [InlineData("refcount_bits=1", 8)]
    [InlineData("refcount_bits=16", 9)]
    [InlineData("refcount_bits=64", 10)]
    [InlineData("compat=0.10", 11)]
    [InlineData("compat=0.10,cluster_size=4k", 12)]
    [InlineData("lazy_refcounts=on", 13)]
    public void QemuWrittenImageReadsAsQemuReadsIt(string options, int seed)
    {
        using var dir = new TempFolder();
        string image = QemuImage.Create(dir.File("disk.qcow2"), Size, options);
        QemuImage.WriteRandom(image, "qcow2", Size, seed, 60);
        string before = Hashing.Sha256File(image);
        using (VirtualDisk disk = Qcow2Chain.Open(image))
        {
            Assert.Equal(Size, disk.Capacity);
            Assert.Equal(Oracle.QemuRawSha256(image, "qcow2"), Hashing.Sha256Stream(disk.Content));
            Assert.Empty(disk.Top.Check());
        }
        Assert.Equal(before, Hashing.Sha256File(image));
    }

    [OracleTheory(tools: new[] { "qemu-img", "qemu-io" })]
    [InlineData("cluster_size=64k", 21)]
    [InlineData("cluster_size=4k", 22)]
    [InlineData("cluster_size=128k,extended_l2=on", 23)]
    [InlineData("cluster_size=16k,extended_l2=on", 24)]
    [InlineData("compat=0.10", 25)]
    public void QemuWrittenOverlayReadsThroughItsBackingFile(string options, int seed)
    {
        using var dir = new TempFolder();
        string baseImage = QemuImage.Create(dir.File("base.qcow2"), Size, "");
        QemuImage.WriteRandom(baseImage, "qcow2", Size, seed, 40);
        // Named relative to the overlay's folder, as Proxmox and qemu-img -b with a bare name do.
        string overlay = QemuImage.Create(dir.File("overlay.qcow2"), Size, options, "base.qcow2", "qcow2");
        QemuImage.WriteRandom(overlay, "qcow2", Size, seed + 100, 60, maxLength: 48 * 1024);
        using VirtualDisk disk = Qcow2Chain.Open(overlay);
        Assert.Equal(2, disk.Layers.Count);
        Assert.Equal(DiskType.Differencing, disk.Type);
        Assert.Equal(Oracle.QemuRawSha256(overlay, "qcow2"), Hashing.Sha256Stream(disk.Content));
    }

    [OracleTheory(tools: new[] { "qemu-img", "qemu-io" })]
    [InlineData("raw", "base.data", DiskFormat.Raw)]
    [InlineData("vmdk", "base.vmdk", DiskFormat.Vmdk)]
    [InlineData("vhdx", "base.vhdx", DiskFormat.Vhdx)]
    public void BackingFileOfAnotherFormatIsReadThroughTheEngine(string format, string name, DiskFormat expected)
    {
        using var dir = new TempFolder();
        string baseImage = dir.File(name);
        Oracle.Run("qemu-img", $"create -q -f {format} \"{baseImage}\" {Size - 1536}");
        QemuImage.WriteRandom(baseImage, format, Size - 1536, 31, 30);
        // A raw parent named base.data is read as raw only because the overlay says so.
        string overlay = QemuImage.Create(dir.File("overlay.qcow2"), 0, "", name, format);
        QemuImage.WriteRandom(overlay, "qcow2", Size - 1536, 32, 30, maxLength: 48 * 1024);
        using VirtualDisk disk = Qcow2Chain.Open(overlay);
        Assert.Equal(expected, disk.Layers[1].Format);
        Assert.Equal(Oracle.QemuRawSha256(overlay, "qcow2"), Hashing.Sha256Stream(disk.Content));
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData("zlib", "cluster_size=64k", 41)]
    [InlineData("zstd", "cluster_size=64k", 42)]
    [InlineData("zlib", "cluster_size=4k", 43)]
    [InlineData("zstd", "cluster_size=4k", 44)]
    [InlineData("zstd", "cluster_size=2M", 45)]
    [InlineData("zlib", "cluster_size=64k,extended_l2=on", 46)]
    public void CompressedImageReadsAsQemuReadsIt(string compression, string options, int seed)
    {
        using var dir = new TempFolder();
        string raw = QemuImage.MixedRaw(dir.File("source.raw"), 12L * 1024 * 1024, seed);
        string image = dir.File("compressed.qcow2");
        Oracle.Run("qemu-img", $"convert -q -c -f raw -O qcow2 -o compression_type={compression},{options} \"{raw}\" \"{image}\"");
        using VirtualDisk disk = Qcow2Chain.Open(image);
        Assert.Equal(compression == "zstd" ? "zstd" : "zlib", disk.Top.Details["CompressionType"]);
        Assert.Equal(Hashing.Sha256File(raw), Hashing.Sha256Stream(disk.Content));
    }
}
