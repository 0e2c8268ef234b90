using System;
using System.Buffers.Binary;
using System.IO;
using System.IO.Compression;
using System.Text;
using System.Threading.Tasks;
using VmClone.Disks.Qcow2;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Qcow2;

/// <summary>
/// Hostile and unsupported qcow2 images, made by qemu-img and then patched: each is refused
/// with a message naming the file, the structure and (where there is one) the offset, without
/// a hang, without an allocation beyond what the file holds, and without a byte written.
/// </summary>
public class Qcow2BadInputTests
{
    private const long Cluster = 64 * 1024;

    /// <summary>A 1 GiB image (two L1 entries of 64 KiB clusters) with data at 0 and at 600 MiB.</summary>
    private static string MakeImage(TempFolder dir, string name = "disk.qcow2", string extra = "")
    {
        string image = QemuImage.Create(dir.File(name), 1L << 30, "cluster_size=64k" + extra);
        Oracle.Run("qemu-io", $"-f qcow2 -c \"write -P 0x5a 0 128k\" -c \"write -P 0x6b 600M 64k\" \"{image}\"");
        return image;
    }

    private static ulong U64(string path, long at)
    {
        byte[] b = new byte[8];
        using (FileStream fs = File.OpenRead(path))
        {
            fs.Position = at;
            fs.ReadExactly(b, 0, 8);
        }
        return BinaryPrimitives.ReadUInt64BigEndian(b);
    }

    private static void Patch(string path, long at, byte[] bytes)
    {
        using FileStream fs = File.OpenWrite(path);
        fs.Position = at;
        fs.Write(bytes, 0, bytes.Length);
    }

    private static void PatchU64(string path, long at, ulong value)
    {
        byte[] b = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        Patch(path, at, b);
    }

    private static void PatchU32(string path, long at, uint value)
    {
        byte[] b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        Patch(path, at, b);
    }

    /// <summary>Opens (and reads all of) the image; returns the refusal, asserting it names the file and left it unchanged.</summary>
    private static DiskFormatException Refused(string image, DiskOpenOptions? options = null)
    {
        string before = Hashing.Sha256File(image);
        var ex = Assert.Throws<DiskFormatException>(() =>
        {
            using VirtualDisk disk = Qcow2Chain.Open(image, options);
            Hashing.Sha256Stream(disk.Content);
        });
        Assert.Contains(image, ex.Message);
        Assert.Equal(image, ex.Path);
        Assert.Equal(before, Hashing.Sha256File(image));
        return ex;
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void RefcountTablePastTheEndIsRefused()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        PatchU64(image, 48, (ulong)(new FileInfo(image).Length + 16 * Cluster) & ~(ulong)(Cluster - 1));
        DiskFormatException ex = Refused(image);
        Assert.Equal("refcount table", ex.Structure);
        Assert.Contains("past the end of the file", ex.Message);
        Assert.NotNull(ex.Offset);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void L1TablePastTheEndIsRefused()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        PatchU64(image, 40, 1UL << 40);
        DiskFormatException ex = Refused(image);
        Assert.Equal("L1 table", ex.Structure);
        Assert.Contains("past the end of the file", ex.Message);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void L1SizeClaimingPetabytesIsRefusedWithoutAllocatingIt()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        PatchU64(image, 24, 1UL << 52); // 4 PiB virtual size
        PatchU32(image, 36, uint.MaxValue); // an L1 table of 32 GiB
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<DiskFormatException>(() => Qcow2Layer.Open(image, false));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 1 << 20, "the open allocated more than 1 MiB");
        Assert.Equal("L1 table", ex.Structure);
        Assert.Contains(image, ex.Message);

        // The size alone, with the L1 table qemu wrote: the table cannot map it.
        PatchU32(image, 36, 2);
        DiskFormatException small = Refused(image);
        Assert.Contains("cannot map a virtual size", small.Message);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void L2TableOverlappingMetadataIsRefused()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        long l1 = (long)U64(image, 40);
        long refcountTable = (long)U64(image, 48);
        PatchU64(image, l1, (ulong)refcountTable | (1UL << 63));
        DiskFormatException ex = Refused(image);
        Assert.Equal("L2 table", ex.Structure);
        Assert.Contains("overlaps", ex.Message);
        Assert.Equal(refcountTable, ex.Offset);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void TwoL1EntriesNamingOneL2TableAreRefused()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        long l1 = (long)U64(image, 40);
        PatchU64(image, l1 + 8, U64(image, l1));
        DiskFormatException ex = Refused(image);
        Assert.Equal("L2 table", ex.Structure);
        Assert.Contains("another L2 table", ex.Message);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void DataClusterPastTheEndIsRefusedWhenRead()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        long l2 = (long)(U64(image, (long)U64(image, 40)) & 0x00FF_FFFF_FFFF_FE00UL);
        PatchU64(image, l2, (1UL << 40) | (1UL << 63));
        DiskFormatException ex = Refused(image);
        Assert.Contains("past the end of the file", ex.Message);
    }

    /// <summary>Points guest cluster 0 at <paramref name="payload"/>, appended at a sector boundary, as a compressed cluster.</summary>
    private static void PlantCompressed(string image, byte[] payload)
    {
        long end = (new FileInfo(image).Length + 511) & ~511L;
        Patch(image, end, payload);
        int x = 62 - (16 - 8);
        ulong extraSectors = (ulong)((payload.Length + 511) / 512 - 1);
        long l2 = (long)(U64(image, (long)U64(image, 40)) & 0x00FF_FFFF_FFFF_FE00UL);
        PatchU64(image, l2, (1UL << 62) | (extraSectors << x) | (ulong)end);
    }

    private static byte[] Deflate(byte[] data, bool finish)
    {
        var output = new MemoryStream();
        var deflater = new DeflateStream(output, CompressionLevel.Optimal, leaveOpen: true);
        deflater.Write(data, 0, data.Length);
        if (finish)
            deflater.Dispose();
        else
            deflater.Flush();
        return output.ToArray();
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void CompressedClusterInflatingBeyondAClusterIsRefused()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        PlantCompressed(image, Deflate(new byte[4 * Cluster], finish: true));
        DiskFormatException ex = Refused(image);
        Assert.Equal("compressed cluster", ex.Structure);
        Assert.Contains("inflates beyond one cluster", ex.Message);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void CompressedClusterThatNeverEndsIsRefused()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        var random = new Random(7);
        byte[] half = new byte[Cluster / 2];
        random.NextBytes(half);
        // A deflate stream without its final block: its input runs out before a cluster is made.
        PlantCompressed(image, Deflate(half, finish: false));
        Task<DiskFormatException> read = Task.Run(() => Refused(image));
        Assert.True(read.Wait(TimeSpan.FromSeconds(30)), "reading the cluster did not finish");
        Assert.Contains("ends after", read.Result.Message);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void ZstdFrameDeclaringMoreThanAClusterIsRefused()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir, extra: ",compression_type=zstd");
        using var compressor = new ZstdSharp.Compressor();
        PlantCompressed(image, compressor.Wrap(new byte[2 * Cluster]).ToArray());
        DiskFormatException ex = Refused(image);
        Assert.Contains("beyond one cluster", ex.Message);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void BackingNameOf1024BytesIsRefused()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        PatchU64(image, 8, 0x1000);
        PatchU32(image, 16, 1024);
        DiskFormatException ex = Refused(image);
        Assert.Contains("at most 1023", ex.Message);
        Assert.Equal(16, ex.Offset);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void ProtocolBackingNameIsRefused()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        byte[] name = Encoding.ASCII.GetBytes("nbd://attacker.example/export");
        Patch(image, 0x1000, name);
        PatchU64(image, 8, 0x1000);
        PatchU32(image, 16, (uint)name.Length);
        DiskFormatException ex = Refused(image);
        Assert.Equal("backing file name", ex.Structure);
        Assert.Contains("protocol", ex.Message);
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void BackingFileOutsideTheAllowedRootIsRefused()
    {
        using var dir = new TempFolder();
        Directory.CreateDirectory(dir.File("store"));
        Directory.CreateDirectory(dir.File("elsewhere"));
        string secret = dir.File("elsewhere/secret.raw");
        File.WriteAllBytes(secret, new byte[1 << 20]);
        string overlay = QemuImage.Create(dir.File("store/clone.qcow2"), 0, "", "../elsewhere/secret.raw", "raw");
        var options = new DiskOpenOptions { AllowedParentRoot = dir.File("store") };
        var ex = Assert.Throws<DiskChainException>(() => Qcow2Chain.Open(overlay, options));
        Assert.Equal(ChainProblem.OutsideAllowedRoot, ex.Problem);
        Assert.Contains(overlay, ex.Message);
        Assert.Contains("secret.raw", ex.Message);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void UnknownBackingFormatIsRefused()
    {
        using var dir = new TempFolder();
        string baseImage = dir.File("base.vhd");
        Oracle.Run("qemu-img", $"create -q -f vpc \"{baseImage}\" 1M");
        string overlay = QemuImage.Create(dir.File("overlay.qcow2"), 0, "", "base.vhd", "vpc");
        DiskFormatException ex = Refused(overlay);
        Assert.Contains("'vpc'", ex.Message);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void AesEncryptionIsRefusedByName()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        PatchU32(image, 32, 1);
        DiskFormatException ex = Refused(image);
        Assert.Contains("encrypted (AES)", ex.Message);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void LuksEncryptionIsRefusedByName()
    {
        // crypt_method 2, as qemu-img create -o encrypt.format=luks writes it (making a real
        // LUKS image costs seconds of key derivation; the header field is what is judged).
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        PatchU32(image, 32, 2);
        DiskFormatException ex = Refused(image);
        Assert.Contains("encrypted (LUKS)", ex.Message);
    }

    /// <summary>File offset of the first header extension of <paramref name="type"/> in the image's first 4 KiB.</summary>
    private static long FindExtension(string image, uint type)
    {
        byte[] head = new byte[4096];
        using (FileStream fs = File.OpenRead(image))
            fs.ReadExactly(head, 0, head.Length);
        for (int at = (int)BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(100)); at + 8 <= head.Length;)
        {
            uint t = BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(at));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(at + 4));
            if (t == type)
                return at;
            if (t == 0)
                break;
            at += 8 + (int)((length + 7) & ~7u);
        }
        throw new InvalidOperationException($"no extension 0x{type:x8}");
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void UnknownIncompatibleFeatureIsRefusedByItsTableName()
    {
        using var dir = new TempFolder();
        string image = MakeImage(dir);
        ulong incompatible = U64(image, 72);
        PatchU64(image, 72, incompatible | (1UL << 9));
        DiskFormatException ex = Refused(image);
        Assert.Contains("incompatible feature bit 9", ex.Message);

        // The image's feature-name table names it: the refusal uses that name.
        long table = FindExtension(image, 0x6803f857) + 8;
        byte[] entry = new byte[48];
        entry[0] = 0;
        entry[1] = 9;
        Encoding.ASCII.GetBytes("time travel").CopyTo(entry, 2);
        Patch(image, table, entry);
        DiskFormatException named = Refused(image);
        Assert.Contains("incompatible feature bit 9 (\"time travel\")", named.Message);
    }

    [CorpusFact]
    public void ExternalDataFileOutsideTheImageFolderIsRefusedEvenWhenAllowed()
    {
        using var dir = new TempFolder();
        string image = Corpus.Extract("dissect.hypervisor/data-file.qcow2.gz", dir);
        long ext = FindExtension(image, 0x44415441);
        uint length = (uint)U64(image, ext) & 0xFFFFFFFF;
        byte[] name = Encoding.ASCII.GetBytes("../" + new string('x', (int)length - 3));
        Patch(image, ext + 8, name);
        DiskFormatException ex = Refused(image, new DiskOpenOptions { AllowExternalDataFile = true });
        Assert.Contains("does not lie beside the image", ex.Message);
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void TruncatedHeaderIsRefused()
    {
        using var dir = new TempFolder();
        string image = QemuImage.Create(dir.File("disk.qcow2"), 1 << 20, "");
        using (FileStream fs = File.OpenWrite(image))
            fs.SetLength(90);
        DiskFormatException ex = Refused(image);
        Assert.Equal("qcow2 header", ex.Structure);
    }

    /// <summary>A header declaring 8 KiB (legal up to its cluster): read whole, not refused for passing the first 4 KiB.</summary>
    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void HeaderLongerThanFourKibIsRead()
    {
        using var dir = new TempFolder();
        string image = QemuImage.Create(dir.File("disk.qcow2"), 4 << 20, "");
        Oracle.Run("qemu-io", $"-f qcow2 -c \"write -P 0x5a 64k 128k\" \"{image}\"");
        PatchU32(image, 100, 8192);
        Patch(image, 112, new byte[8192 - 112]); // no extensions: the end marker at 8192 is zeros
        string expected = Oracle.QemuRawSha256(image, "qcow2");
        using VirtualDisk disk = Qcow2Chain.Open(image);
        Assert.Equal(expected, Hashing.Sha256Stream(disk.Content));
    }
}
