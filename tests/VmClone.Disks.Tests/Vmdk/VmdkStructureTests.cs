using System;
using System.Linq;
using System.Text;
using VmClone.Disks.Vmdk;
using Xunit;

namespace VmClone.Disks.Tests.Vmdk;

/// <summary>The on-disk structures from byte fixtures: header, descriptor, zlib checksum.</summary>
public class VmdkStructureTests
{
    [Fact]
    public void HeaderRoundTripsAndMatchesQemusLayout()
    {
        var h = new SparseExtentHeader
        {
            Capacity = 204800,
            GrainSize = 128,
            DescriptorOffset = 1,
            DescriptorSize = 20,
            RgdOffset = 21,
            GdOffset = 38,
            OverHead = 128,
        };
        byte[] b = h.ToBytes();
        // Bytes qemu-img 7.2 writes for a 100 MiB monolithicSparse (first 80 bytes of its header).
        string qemu = "4b444d56010000000300000000200300000000008000000000000000010000000000000014000000000000000002000015000000000000002600000000000000800000000000000000" + "0a200d0a0000";
        Assert.Equal(qemu, Convert.ToHexString(b, 0, 79).ToLowerInvariant());
        SparseExtentHeader back = SparseExtentHeader.Parse(b, "x", 0, 65536);
        Assert.Equal(204800UL, back.Capacity);
        Assert.Equal(4UL, back.NumGdEntries);
        Assert.True(back.HasRedundantGd);
        Assert.False(back.HasZeroedGrainGtes);
        Assert.Equal(b, back.ToBytes());
    }

    [Fact]
    public void DescriptorParsingIsTolerant()
    {
        string text =
            "# Disk DescriptorFile\r\n" +
            "version=1\r\n" +
            "encoding=\"windows-1252\"\r\n" +
            "   CID = 0000Abcd   \r\n" +
            "parentCID=\"1234fedc\"\r\n" +
            "isNativeSnapshot=\"no\"\r\n" +
            "createType=twoGbMaxExtentSparse\r\n" +
            "parentFileNameHint=\"C:\\VMs\\Base disk.vmdk\"\r\n" +
            "someFutureKey = \"whatever\"\r\n" +
            "\r\n" +
            "# Extent description\r\n" +
            "RW 4192256 SPARSE \"disk name-s001.vmdk\"\r\n" +
            "RDONLY\t8192\tFLAT\t\"caf\u00e9-flat.vmdk\"\t2048\r\n" +
            "RW 100 ZERO\r\n" +
            "\r\n" +
            "# The disk Data Base \r\n" +
            "#DDB\r\n" +
            "ddb.adapterType = \"lsilogic\"\r\n" +
            "ddb.geometry.cylinders=\"261\"\r\n" +
            "ddb.uuid.image=\"e7f6b6a1-3b6b-4d54-b3a9-5e9d1b8d6a57\"\r\n";
        byte[] latin1 = text.Select(c => (byte)c).ToArray(); // é as the single byte 0xE9
        Descriptor d = Descriptor.Parse(latin1, latin1.Length, "x", 512);
        Assert.Equal(0xabcdu, d.Cid);
        Assert.Equal(0x1234fedcu, d.ParentCid);
        Assert.True(d.HasParent);
        Assert.Equal("twoGbMaxExtentSparse", d.CreateType);
        Assert.Equal("C:\\VMs\\Base disk.vmdk", d.ParentFileNameHint);
        Assert.Equal("whatever", d.Value("someFutureKey"));
        Assert.Equal(3, d.Extents.Count);
        Assert.Equal("disk name-s001.vmdk", d.Extents[0].FileName);
        Assert.Equal(ExtentAccess.ReadOnly, d.Extents[1].Access);
        Assert.Equal("caf\u00e9-flat.vmdk", d.Extents[1].FileName);
        Assert.Equal(2048UL, d.Extents[1].Offset);
        Assert.Equal("ZERO", d.Extents[2].Type);
        Assert.Null(d.Extents[2].FileName);
        Assert.Equal(4192256UL + 8192 + 100, d.TotalSectors);
        Assert.Equal("lsilogic", d.Ddb["ddb.adapterType"]);
        Assert.Equal(latin1, d.ToBytes()); // round-trips byte for byte
    }

    [Fact]
    public void SettingTheCidChangesOnlyTheCidValue()
    {
        string text = "# Disk DescriptorFile\r\nversion=1\r\nCID=\"0a0b0c0d\"\r\nparentCID=ffffffff\r\ncreateType=\"monolithicSparse\"\r\nRW 8 SPARSE \"a.vmdk\"\r\n";
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        Descriptor d = Descriptor.Parse(bytes, bytes.Length, "x", 0);
        d.SetCid(0xdeadbeef);
        Assert.Equal(text.Replace("0a0b0c0d", "deadbeef"), Encoding.UTF8.GetString(d.ToBytes()));
        Assert.Equal(0xdeadbeefu, d.Cid);
        Assert.Equal("ffffffff", d.Value("parentCID"));
    }

    [Fact]
    public void EmbeddedDescriptorEndsAtTheFirstNul()
    {
        byte[] area = new byte[1024];
        byte[] t = Encoding.ASCII.GetBytes("CID=00000001\nRW 8 SPARSE \"a.vmdk\"\n");
        Buffer.BlockCopy(t, 0, area, 0, t.Length);
        area[900] = 0x01; // junk after the padding is not looked at
        Descriptor d = Descriptor.Parse(area, area.Length, "x", 512);
        Assert.Equal(1u, d.Cid);
        Assert.False(d.HasParent);
    }

    [Fact]
    public void CreatedDescriptorReadsBack()
    {
        string text = Descriptor.CreateMonolithicSparse(0x12345678, 0x9abcdef0, "../base.vmdk", 2097152, "child.vmdk");
        byte[] b = Encoding.UTF8.GetBytes(text);
        Descriptor d = Descriptor.Parse(b, b.Length, "x", 0);
        Assert.Equal(0x12345678u, d.Cid);
        Assert.Equal(0x9abcdef0u, d.ParentCid);
        Assert.Equal("../base.vmdk", d.ParentFileNameHint);
        Assert.Equal(2097152UL, d.TotalSectors);
        Assert.Equal("2080", d.Ddb["ddb.geometry.cylinders"]);
    }

    [Fact]
    public void Adler32MatchesTheRfcExample()
    {
        byte[] w = Encoding.ASCII.GetBytes("Wikipedia");
        Assert.Equal(0x11E60398u, StreamMarker.Adler32(w, w.Length));
        Assert.Equal(1u, StreamMarker.Adler32(Array.Empty<byte>(), 0));
        byte[] big = Enumerable.Repeat((byte)0xFF, 100_000).ToArray(); // exercises the modulo blocks
        var zlib = new System.IO.MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(zlib, System.IO.Compression.CompressionLevel.Fastest, true))
            z.Write(big, 0, big.Length);
        byte[] zb = zlib.ToArray();
        uint stored = (uint)(zb[^4] << 24 | zb[^3] << 16 | zb[^2] << 8 | zb[^1]);
        Assert.Equal(stored, StreamMarker.Adler32(big, big.Length));
    }
}
