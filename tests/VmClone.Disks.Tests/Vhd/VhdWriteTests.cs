using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using System.Text;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhd;
using Xunit;

namespace VmClone.Disks.Tests.Vhd;

/// <summary>VHDs VmClone creates and writes: their layout, what the bitmaps say, XenServer's marks, and how qemu and libvhdi read them.</summary>
public class VhdWriteTests
{
    private const long MiB = 1 << 20;

    private static byte[] Pattern(int seed, int length)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static void Write(string path, long at, byte[] data)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
        disk.Content.Position = at;
        disk.Content.Write(data, 0, data.Length);
    }

    private static string Sha(string path)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        return Hashing.Sha256Stream(disk.Content);
    }

    /// <summary>Random writes of any length and alignment into <paramref name="path"/>, mirrored in <paramref name="model"/>.</summary>
    private static void RandomWrites(string path, byte[] model, int seed, int count)
    {
        var rnd = new Random(seed);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
        for (int i = 0; i < count; i++)
        {
            int length = rnd.Next(1, 200_000);
            int at = rnd.Next(0, model.Length - length);
            byte[] data = Pattern(rnd.Next(), length);
            disk.Content.Position = at;
            disk.Content.Write(data, 0, length);
            data.CopyTo(model, at);
        }
    }

    [OracleFact(tools: new[] { "qemu-img" }, python: new[] { "pyvhdi" })]
    public void ADynamicVhdVmCloneWritesIsReadIdenticallyByQemuAndLibvhdi()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vhd");
        long size = 10 * MiB + 7 * 512;
        VirtualDisk.CreateDynamic(path, size).Dispose();
        var model = new byte[size];
        RandomWrites(path, model, 1, 25);
        string expected = Hashing.Sha256Bytes(model);
        Assert.Equal(expected, Sha(path));
        Assert.Equal(expected, Oracle.QemuRawSha256(path, "vpc"));
        Assert.Equal(expected, Oracle.LibvhdiSha256(path));
        string info = Oracle.Run("qemu-img", $"info -f vpc --output=json \"{path}\"").StdOut;
        Assert.Contains($"\"virtual-size\": {size}", info);
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData("fixed")]
    [InlineData("dynamic")]
    public void AQemuMadeVhdVmCloneWritesIsReadByQemuAsVmCloneReadsIt(string subformat)
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vhd");
        Oracle.Run("qemu-img", $"create -q -f vpc -o subformat={subformat},force_size=on \"{path}\" {6 * MiB}");
        var model = new byte[6 * MiB];
        RandomWrites(path, model, 2, 12);
        Assert.Equal(Hashing.Sha256Bytes(model), Sha(path));
        Assert.Equal(Hashing.Sha256Bytes(model), Oracle.QemuRawSha256(path, "vpc"));
    }

    [OracleFact(python: new[] { "pyvhdi" })]
    public void AChainOfThreeWithRandomWritesInEveryLayerIsReadIdenticallyByLibvhdi()
    {
        using var dir = new TempFolder();
        string[] chain = { dir.File("base.vhd"), dir.File("mid.vhd"), dir.File("top.vhd") };
        long size = 8 * MiB + 512;
        var model = new byte[size];
        VirtualDisk.CreateDynamic(chain[0], size).Dispose();
        RandomWrites(chain[0], model, 10, 15);
        for (int i = 1; i < chain.Length; i++)
        {
            VirtualDisk.CreateDifferencing(chain[i], chain[i - 1]).Dispose();
            RandomWrites(chain[i], model, 10 + i, 15);
        }
        string expected = Hashing.Sha256Bytes(model);
        Assert.Equal(expected, Sha(chain[2]));
        Assert.Equal(expected, Oracle.LibvhdiSha256(chain));
    }

    [Fact]
    public void ADifferencingVhdIsLaidOutAsHyperVWritesIt()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.vhd"), child = dir.File("child.vhd");
        long size = 5 * MiB;
        VirtualDisk.CreateDynamic(parent, size).Dispose();
        VirtualDisk.CreateDifferencing(child, parent).Dispose();
        byte[] p = File.ReadAllBytes(parent), c = File.ReadAllBytes(child);
        byte[] head = c.AsSpan(0, 512).ToArray(), tail = c.AsSpan(c.Length - 512).ToArray();
        Assert.Equal(head, tail);
        Assert.Equal("conectix", Encoding.ASCII.GetString(head, 0, 8));
        Assert.Equal(BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(64)), VhdChecksum.Compute(head, 64));
        Assert.Equal("win ", Encoding.ASCII.GetString(head, 28, 4));
        Assert.Equal("Wi2k", Encoding.ASCII.GetString(head, 36, 4));
        Assert.Equal((ulong)size, BinaryPrimitives.ReadUInt64BigEndian(head.AsSpan(48)));
        DiskGeometry g = DiskGeometry.ForSectors(size / 512);
        Assert.Equal(g.Cylinders, BinaryPrimitives.ReadUInt16BigEndian(head.AsSpan(56)));
        Assert.Equal(g.Heads, head[58]);
        Assert.Equal(g.SectorsPerTrack, head[59]);
        Assert.Equal(4u, BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(60)));
        Assert.NotEqual(p.AsSpan(68, 16).ToArray(), head.AsSpan(68, 16).ToArray());

        byte[] h = c.AsSpan(512, 1024).ToArray();
        Assert.Equal("cxsparse", Encoding.ASCII.GetString(h, 0, 8));
        Assert.Equal(BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(36)), VhdChecksum.Compute(h, 36));
        Assert.Equal(2u * 1024 * 1024, BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(32)));
        Assert.Equal(p.AsSpan(68, 16).ToArray(), h.AsSpan(40, 16).ToArray());
        string Locator(int i, out uint code, out uint space)
        {
            code = BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(576 + i * 24));
            space = BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(576 + i * 24 + 4));
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(576 + i * 24 + 8));
            long offset = (long)BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(576 + i * 24 + 16));
            return Encoding.Unicode.GetString(c, (int)offset, length);
        }
        Assert.Equal(".\\base.vhd", Locator(0, out uint code0, out uint space0));
        Assert.Equal("W2ru", Encoding.ASCII.GetString(BitConverter.GetBytes(BinaryPrimitives.ReverseEndianness(code0))));
        Assert.Equal(512u, space0); // bytes, as Windows writes it
        Assert.Equal(parent, Locator(1, out uint code1, out _));
        Assert.Equal("W2ku", Encoding.ASCII.GetString(BitConverter.GetBytes(BinaryPrimitives.ReverseEndianness(code1))));
    }

    [Fact]
    public void OnlyTheSectorsWrittenGetTheirBitmapBitsSoTheParentShowsThroughElsewhere()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.vhd"), child = dir.File("child.vhd");
        VirtualDisk.CreateDynamic(parent, 4 * MiB).Dispose();
        byte[] below = Pattern(3, (int)(4 * MiB));
        Write(parent, 0, below);
        VirtualDisk.CreateDifferencing(child, parent).Dispose();
        Write(child, 5 * 512, Pattern(4, 512));
        Write(child, 3 * 512 + 7, new byte[] { 0xEE }); // one byte: sector 3 is completed from the parent

        byte[] c = File.ReadAllBytes(child);
        long tableOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(c.AsSpan(512 + 16));
        uint sector = BinaryPrimitives.ReadUInt32BigEndian(c.AsSpan((int)tableOffset));
        Assert.NotEqual(0xFFFFFFFFu, sector);
        byte[] bitmap = c.AsSpan((int)(sector * 512L), 512).ToArray();
        Assert.Equal(0x14, bitmap[0]); // sectors 3 (0x10) and 5 (0x04), most significant bit first
        Assert.True(bitmap.Skip(1).All(b => b == 0));

        using VirtualDisk disk = VirtualDisk.Open(child, FileAccess.Read);
        var all = new byte[disk.Capacity];
        disk.Content.ReadExactly(all, 0, all.Length);
        byte[] expected = (byte[])below.Clone();
        Pattern(4, 512).CopyTo(expected, 5 * 512);
        expected[3 * 512 + 7] = 0xEE;
        Assert.Equal(expected, all);
    }

    [Fact]
    public void XenServersHiddenByteIsKeptThroughWrites()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vhd");
        VirtualDisk.CreateDynamic(path, 4 * MiB).Dispose();
        byte[] bytes = File.ReadAllBytes(path);
        VhdBuilder.PatchFooters(bytes, f => f[85] = 1);
        File.WriteAllBytes(path, bytes);
        Write(path, 3 * MiB, Pattern(5, 100_000));
        byte[] after = File.ReadAllBytes(path);
        foreach (int at in new[] { 0, after.Length - 512 })
        {
            byte[] footer = after.AsSpan(at, 512).ToArray();
            Assert.Equal("conectix", Encoding.ASCII.GetString(footer, 0, 8));
            Assert.Equal(1, footer[85]);
            Assert.Equal(BinaryPrimitives.ReadUInt32BigEndian(footer.AsSpan(64)), VhdChecksum.Compute(footer, 64));
        }
    }

    [Fact]
    public void AWriteIntoAVhdWithABatmapIsRefusedAndTheFileLeftUnchanged()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vhd");
        VirtualDisk.CreateDynamic(path, 4 * MiB).Dispose();
        byte[] bytes = File.ReadAllBytes(path);
        long tableOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(512 + 16));
        var grown = new byte[bytes.Length + 512];
        bytes.AsSpan(0, bytes.Length - 512).CopyTo(grown);
        // A batmap header in the sector after the BAT, the footer moved past it.
        Encoding.ASCII.GetBytes("tdbatmap").CopyTo(grown, (int)tableOffset + 512);
        bytes.AsSpan(bytes.Length - 512).CopyTo(grown.AsSpan(grown.Length - 512));
        File.WriteAllBytes(path, grown);
        string before = Hashing.Sha256File(path);
        var ex = Assert.Throws<VirtualDiskException>(() => Write(path, 0, Pattern(6, 4096)));
        Assert.Contains("batmap", ex.Message);
        Assert.Contains(path, ex.Message);
        Assert.Equal(before, Hashing.Sha256File(path));
    }
}
