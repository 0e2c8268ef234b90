using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using System.Text;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vmdk;

/// <summary>
/// Malformed and hostile VMDK files: always a DiskFormatException naming the file, never a
/// hang, another exception type or a write to the file.
/// </summary>
public class VmdkBadInputTests
{
    private const long Size = 4L << 20;

    /// <summary>A small valid monolithicSparse with a few grains written; returns its bytes.</summary>
    private static byte[] MakeGood(TempFolder dir, string name = "good.vmdk")
    {
        string path = dir.File(name);
        using (VirtualDisk d = VirtualDisk.CreateDynamic(path, Size))
        {
            var rng = new Random(5);
            foreach (long at in new[] { 0L, 300_000L, Size - 1000 })
            {
                byte[] data = new byte[1000];
                rng.NextBytes(data);
                d.Content.Position = at;
                d.Content.Write(data, 0, data.Length);
            }
        }
        return File.ReadAllBytes(path);
    }

    /// <summary>Opens the file (read, then read-write) and reads it whole; every failure must be a DiskFormatException naming the file; the file must not change.</summary>
    private static DiskFormatException ExpectFormatError(string path, bool alsoReadWrite = true)
    {
        string before = Hashing.Sha256File(path);
        DiskFormatException? first = null;
        foreach (FileAccess access in alsoReadWrite ? new[] { FileAccess.Read, FileAccess.ReadWrite } : new[] { FileAccess.Read })
        {
            var ex = Assert.Throws<DiskFormatException>(() =>
            {
                using VirtualDisk disk = VirtualDisk.Open(path, access);
                Hashing.Sha256Stream(disk.Content);
            });
            Assert.Contains(path, ex.Message);
            first ??= ex;
        }
        Assert.Equal(before, Hashing.Sha256File(path));
        return first!;
    }

    private static string Mutated(TempFolder dir, byte[] good, Action<byte[]> change, string name = "bad.vmdk")
    {
        byte[] copy = (byte[])good.Clone();
        change(copy);
        string path = dir.File(name);
        File.WriteAllBytes(path, copy);
        return path;
    }

    private static uint U32(byte[] b, int off) => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(off));

    private static ulong U64(byte[] b, int off) => BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(off));

    [Theory]
    [InlineData("grain7", 20, 7UL, "grain size")]
    [InlineData("grain8", 20, 8UL, "grain size")]
    [InlineData("grain100", 20, 100UL, "grain size")]
    [InlineData("grainHuge", 20, 1UL << 40, "grain size")]
    [InlineData("capacityZero", 12, 0UL, "capacity")]
    [InlineData("capacityHuge", 12, 1UL << 50, "capacity")]
    [InlineData("gdBeyondEof", 56, 1UL << 30, "grain directory")]
    [InlineData("rgdBeyondEof", 48, 1UL << 30, "redundant grain directory")]
    [InlineData("gdZero", 56, 0UL, "grain directory")]
    [InlineData("descriptorHuge", 36, 1UL << 20, "descriptor")]
    [InlineData("descriptorBeyondEof", 28, 1UL << 30, "descriptor")]
    public void AbsurdHeaderFieldsAreRefused(string name, int offset, ulong value, string mentions)
    {
        using var dir = new TempFolder();
        byte[] good = MakeGood(dir);
        string path = Mutated(dir, good, b => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(offset), value), name + ".vmdk");
        DiskFormatException ex = ExpectFormatError(path);
        Assert.Contains(mentions, ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData(44, 0u)]
    [InlineData(44, 100u)]
    [InlineData(44, 1u << 24)]
    [InlineData(4, 7u)]
    public void BadTableSizeOrVersionIsRefused(int offset, uint value)
    {
        using var dir = new TempFolder();
        byte[] good = MakeGood(dir);
        string path = Mutated(dir, good, b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(offset), value));
        ExpectFormatError(path);
    }

    [Fact]
    public void DamagedNewlineTestIsRefused()
    {
        using var dir = new TempFolder();
        byte[] good = MakeGood(dir);
        string path = Mutated(dir, good, b => b[75] = (byte)'\n'); // "\r\n" → "\n\n" as text-mode FTP would
        Assert.Contains("newline", ExpectFormatError(path).Message);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(511)]
    [InlineData(600)]
    [InlineData(20_000)]
    public void TruncatedFilesAreRefused(int length)
    {
        using var dir = new TempFolder();
        byte[] good = MakeGood(dir);
        string path = dir.File("cut.vmdk");
        File.WriteAllBytes(path, good.Take(length).ToArray());
        ExpectFormatError(path);
    }

    [Fact]
    public void TruncatedAfterTheMetadataReadsUntilAGrainIsMissing()
    {
        using var dir = new TempFolder();
        byte[] good = MakeGood(dir);
        uint overhead = (uint)U64(good, 64);
        string path = dir.File("cut.vmdk");
        File.WriteAllBytes(path, good.Take((int)overhead * 512 + 512).ToArray()); // first grain partly there, the others gone
        DiskFormatException ex = ExpectFormatError(path);
        Assert.Contains("grain table", ex.Message);
        Assert.Contains("beyond the end of the file", ex.Message);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        Assert.Contains(disk.Top.Check(), p => p.Contains("beyond the end of the file"));
    }

    [Fact]
    public void GrainTableEntryPointingOutsideTheFileFailsWhenUsed()
    {
        using var dir = new TempFolder();
        byte[] good = MakeGood(dir);
        long gd = (long)U64(good, 56) * 512;
        long gt = (long)U32(good, (int)gd) * 512;
        string path = Mutated(dir, good, b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)gt), 0x7FFFFFF0));
        string before = Hashing.Sha256File(path);
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read))
        {
            // Elsewhere the disk still reads.
            byte[] buf = new byte[1000];
            disk.Content.Position = 300_000;
            disk.Content.ReadExactly(buf, 0, buf.Length);
            var ex = Assert.Throws<DiskFormatException>(() =>
            {
                disk.Content.Position = 0;
                disk.Content.ReadExactly(buf, 0, 10);
            });
            Assert.Equal("grain table", ex.Structure);
            Assert.Equal(gt, ex.Offset);
            Assert.Contains(path, ex.Message);
            Assert.Contains(disk.Top.Check(), p => p.Contains("grain 0") && p.Contains("beyond the end of the file"));
        }
        // Writing there is refused too, and writes nothing.
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            Assert.Throws<DiskFormatException>(() =>
            {
                disk.Content.Position = 0;
                disk.Content.Write(new byte[10], 0, 10);
            });
        }
    }

    [Fact]
    public void GrainDirectoryEntryPointingOutsideTheFileFailsWhenUsed()
    {
        using var dir = new TempFolder();
        byte[] good = MakeGood(dir);
        long gd = (long)U64(good, 56) * 512;
        string path = Mutated(dir, good, b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)gd), 0xFFFFFF00));
        DiskFormatException ex = ExpectFormatError(path);
        Assert.Equal("grain directory", ex.Structure);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        var problems = disk.Top.Check();
        Assert.Contains(problems, p => p.Contains("grain directory entry 0"));
    }

    [Fact]
    public void OverlappingGrainsAndGrainsOnMetadataAreReportedByCheck()
    {
        using var dir = new TempFolder();
        byte[] good = MakeGood(dir);
        long gd = (long)U64(good, 56) * 512;
        long rgd = (long)U64(good, 48) * 512;
        long gt = (long)U32(good, (int)gd) * 512;
        long rgt = (long)U32(good, (int)rgd) * 512;
        uint grain0 = U32(good, (int)gt);
        string path = Mutated(dir, good, b =>
        {
            // grain 10 shares grain 0's sectors; grain 11 sits on the header; only in the primary table.
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)gt + 40), grain0);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)gt + 44), 2);
        });
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        var problems = disk.Top.Check();
        Assert.Contains(problems, p => p.Contains("overlap in the file"));
        Assert.Contains(problems, p => p.Contains("overlaps the file's metadata"));
        Assert.Contains(problems, p => p.Contains("redundant copy disagree"));
        Assert.True(rgt > 0);
    }

    [Theory]
    [InlineData("binary", "\u0001\u0002garbage")]
    [InlineData("noExtents", "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n")]
    [InlineData("badCid", "# Disk DescriptorFile\nversion=1\nCID=xyz\nparentCID=ffffffff\nRW 8192 SPARSE \"a.vmdk\"\n")]
    [InlineData("longCid", "# Disk DescriptorFile\nversion=1\nCID=123456789\nparentCID=ffffffff\nRW 8192 SPARSE \"a.vmdk\"\n")]
    [InlineData("badSize", "# Disk DescriptorFile\nCID=12345678\nRW -5 SPARSE \"a.vmdk\"\n")]
    [InlineData("unterminated", "# Disk DescriptorFile\nCID=12345678\nRW 8192 SPARSE \"a.vmdk\n")]
    [InlineData("unknownType", "# Disk DescriptorFile\nCID=12345678\nRW 8192 WEIRD \"a.vmdk\"\n")]
    [InlineData("noise", "# Disk DescriptorFile\nthis line means nothing\n")]
    [InlineData("empty", "")]
    public void MalformedEmbeddedDescriptorsAreRefused(string name, string text)
    {
        using var dir = new TempFolder();
        byte[] good = MakeGood(dir);
        string path = Mutated(dir, good, b =>
        {
            Array.Clear(b, 512, 20 * 512);
            byte[] t = Encoding.UTF8.GetBytes(text);
            Buffer.BlockCopy(t, 0, b, 512, t.Length);
        }, name + ".vmdk");
        DiskFormatException ex = ExpectFormatError(path);
        Assert.Contains("descriptor", ex.Message);
    }

    [Theory]
    [InlineData("escape", "RW 8192 FLAT \"../outside.bin\" 0")]
    [InlineData("absolute", "RW 8192 FLAT \"/etc/hostname\" 0")]
    [InlineData("missing", "RW 8192 FLAT \"nothere-flat.vmdk\" 0")]
    [InlineData("self", "RW 8192 FLAT \"desc.vmdk\" 0")]
    [InlineData("cowd", "RW 8192 VMFSSPARSE \"x-delta.vmdk\"")]
    [InlineData("noaccess", "NOACCESS 8192 FLAT \"data.bin\" 0")]
    public void HostileDescriptorFilesAreRefused(string name, string extentLine)
    {
        using var dir = new TempFolder();
        Directory.CreateDirectory(dir.File("d"));
        File.WriteAllBytes(dir.File("outside.bin"), new byte[8192 * 512]);
        File.WriteAllBytes(dir.File("d/data.bin"), new byte[8192 * 512]);
        string path = dir.File("d/desc.vmdk");
        File.WriteAllText(path, "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n" + extentLine + "\n");
        var ex = Assert.ThrowsAny<VirtualDiskException>(() => VirtualDisk.Open(path, FileAccess.Read).Dispose());
        Assert.Contains(path.Replace("d/desc.vmdk", ""), ex.Message);
        if (name != "missing")
            Assert.IsType<DiskFormatException>(ex);
        _ = name;
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void CompressedGrainsThatDoNotInflateAreRefused()
    {
        using var dir = new TempFolder();
        string raw = dir.File("src.raw");
        File.WriteAllBytes(raw, VmdkTestData.RandomImage(11, 1 << 20));
        string good = dir.File("s.vmdk");
        VmdkOracle.QemuConvert(raw, good, "vmdk", "subformat=streamOptimized");
        Assert.Equal(Hashing.Sha256File(raw), VmdkTestData.Sha256(good));
        byte[] bytes = File.ReadAllBytes(good);
        long gd = (long)U64(bytes, 56) * 512;
        uint firstGt = U32(bytes, (int)gd);
        int marker = -1;
        for (int i = 0; i < 512 && marker < 0; i++)
        {
            uint g = U32(bytes, (int)firstGt * 512 + i * 4);
            if (g > 1)
                marker = (int)g * 512;
        }
        Assert.True(marker > 0);
        uint compressedSize = U32(bytes, marker + 8);

        string garbage = Mutated(dir, bytes, b => { for (int i = 14; i < 60; i++) b[marker + i] ^= 0x5A; }, "garbage.vmdk");
        Assert.Contains("compressed grain", ExpectFormatError(garbage, alsoReadWrite: false).Message);

        string header = Mutated(dir, bytes, b => b[marker + 12] = 0x00, "header.vmdk");
        Assert.Contains("zlib", ExpectFormatError(header, alsoReadWrite: false).Message);

        string hugeSize = Mutated(dir, bytes, b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(marker + 8), 0x7FFFFFFF), "huge.vmdk");
        Assert.Contains("grain marker", ExpectFormatError(hugeSize, alsoReadWrite: false).Message);

        string truncatedStream = Mutated(dir, bytes, b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(marker + 8), Math.Max(3, compressedSize / 3)), "short.vmdk");
        ExpectFormatError(truncatedStream, alsoReadWrite: false);

        // A grain that inflates to more than a grain: a zlib stream of 2 grains of zeros.
        byte[] bomb = ZlibOf(new byte[2 * 65536]);
        string tooBig = Mutated(dir, bytes, b =>
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(marker + 8), (uint)bomb.Length);
            Buffer.BlockCopy(bomb, 0, b, marker + 12, bomb.Length);
        }, "big.vmdk");
        Assert.Contains("more than one grain", ExpectFormatError(tooBig, alsoReadWrite: false).Message);
    }

    private static byte[] ZlibOf(byte[] data)
    {
        var ms = new MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(ms, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            z.Write(data, 0, data.Length);
        return ms.ToArray();
    }

    [Fact]
    public void StreamOptimizedFooterMissingIsRefused()
    {
        using var dir = new TempFolder();
        byte[] good = MakeGood(dir);
        string path = Mutated(dir, good, b =>
        {
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(56), ulong.MaxValue); // GD_AT_END, no footer
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), 0x30003);
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(77), 1);
        });
        Assert.Contains("footer", ExpectFormatError(path, alsoReadWrite: false).Message);
    }

    [Fact]
    public void RandomCorruptionOfTheMetadataNeverEscapesAsAnotherException()
    {
        using var dir = new TempFolder();
        byte[] good = MakeGood(dir);
        int metadataEnd = (int)U64(good, 64) * 512;
        var rng = new Random(20260101);
        string path = dir.File("fuzz.vmdk");
        int opened = 0, refused = 0;
        for (int round = 0; round < 300; round++)
        {
            byte[] copy = (byte[])good.Clone();
            int flips = rng.Next(1, 6);
            for (int f = 0; f < flips; f++)
            {
                // Mostly header and descriptor, sometimes directories and tables.
                int at = rng.Next(3) == 0 ? rng.Next(0, metadataEnd) : rng.Next(0, 1024);
                copy[at] = (byte)rng.Next(256);
            }
            File.WriteAllBytes(path, copy);
            string before = Hashing.Sha256File(path);
            try
            {
                using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
                Hashing.Sha256Stream(disk.Content);
                disk.Top.Check();
                _ = disk.Top.AllocatedBytes;
                opened++;
            }
            catch (DiskFormatException ex)
            {
                Assert.Contains(path, ex.Message);
                refused++;
            }
            Assert.Equal(before, Hashing.Sha256File(path));
        }
        Assert.True(opened > 0 && refused > 0, $"opened {opened}, refused {refused}");
    }
}
