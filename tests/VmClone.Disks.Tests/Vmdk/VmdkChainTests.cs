using System;
using System.IO;
using System.Linq;
using System.Text;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vmdk;

/// <summary>CIDs, parent hints, parent identity, unclean-shutdown flag.</summary>
public class VmdkChainTests
{
    private static void WriteAt(VirtualDisk disk, long position, byte value, int count)
    {
        disk.Content.Position = position;
        disk.Content.Write(Enumerable.Repeat(value, count).ToArray(), 0, count);
    }

    private static string EmbeddedDescriptor(string path)
    {
        byte[] b = File.ReadAllBytes(path);
        return Encoding.UTF8.GetString(b, 512, 20 * 512).TrimEnd('\0');
    }

    private static byte HeaderByte(string path, int offset)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        fs.Position = offset;
        return (byte)fs.ReadByte();
    }

    [Fact]
    public void WritingToTheParentInvalidatesTheChildUnlessIgnored()
    {
        using var dir = new TempFolder();
        string basePath = dir.File("base.vmdk");
        string child = dir.File("child.vmdk");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(basePath, 32L << 20))
            WriteAt(d, 0, 0x11, 100_000);
        using (VirtualDisk c = VirtualDisk.CreateDifferencing(child, basePath))
        {
            Assert.Equal(DiskType.Differencing, c.Type);
            Assert.Equal(c.Layers[1].Identity, c.Top.ParentReference!.ExpectedIdentity);
            WriteAt(c, 70_000, 0x22, 10);
        }
        string baseCid = VirtualDisk.OpenLayer(basePath, FileAccess.Read).Using(l => l.Identity);
        Assert.Contains($"parentCID={baseCid}", EmbeddedDescriptor(child));
        Assert.Contains("parentFileNameHint=\"base.vmdk\"", EmbeddedDescriptor(child));

        using (VirtualDisk d = VirtualDisk.Open(basePath, FileAccess.ReadWrite))
            WriteAt(d, 200_000, 0x33, 1);
        string newBaseCid = VirtualDisk.OpenLayer(basePath, FileAccess.Read).Using(l => l.Identity);
        Assert.NotEqual(baseCid, newBaseCid);

        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child, FileAccess.Read));
        Assert.Equal(ChainProblem.ParentModified, ex.Problem);
        Assert.Contains(child, ex.Message);

        using VirtualDisk forced = VirtualDisk.Open(child, FileAccess.Read, new DiskOpenOptions { IgnoreParentIdentityMismatch = true });
        Assert.Equal(2, forced.Layers.Count);
        byte[] buf = new byte[3];
        forced.Content.Position = 69_999;
        forced.Content.ReadExactly(buf, 0, 3);
        Assert.Equal(new byte[] { 0x11, 0x22, 0x22 }, buf);
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void CidIsRenewedOncePerOpenOnTheFirstWrite()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vmdk");
        VirtualDisk.CreateDynamic(path, 16L << 20).Dispose();
        string cid0 = VmdkOracle.QemuCid(path);
        Assert.Equal(cid0, VirtualDisk.OpenLayer(path, FileAccess.Read).Using(l => l.Identity));

        string unchanged = Hashing.Sha256File(path);
        VirtualDisk.Open(path, FileAccess.ReadWrite).Dispose(); // open for write, no write
        Assert.Equal(unchanged, Hashing.Sha256File(path));

        string cid1;
        using (VirtualDisk d = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            WriteAt(d, 0, 1, 10);
            cid1 = d.Top.Identity;
            Assert.NotEqual(cid0, cid1);
            WriteAt(d, 1_000_000, 2, 10);
            WriteAt(d, 0, 3, 10);
            Assert.Equal(cid1, d.Top.Identity); // once per open
        }
        Assert.Equal(cid1, VmdkOracle.QemuCid(path));
        Assert.Contains($"CID={cid1}", EmbeddedDescriptor(path));
        using (VirtualDisk d = VirtualDisk.Open(path, FileAccess.ReadWrite))
            WriteAt(d, 5, 4, 1);
        string cid2 = VmdkOracle.QemuCid(path);
        Assert.NotEqual(cid1, cid2);
        Assert.NotEqual("ffffffff", cid2);
        Assert.Equal(0, VmdkOracle.QemuCheck(path).Code);
    }

    [Fact]
    public void UncleanShutdownIsSetWhileWritingAndClearedOnClose()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vmdk");
        VirtualDisk.CreateDynamic(path, 8L << 20).Dispose();
        Assert.Equal(0, HeaderByte(path, 72));
        using (VirtualDisk d = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            Assert.Equal(0, HeaderByte(path, 72)); // not before the first write
            WriteAt(d, 4096, 9, 100);
            Assert.Equal(1, HeaderByte(path, 72));
        }
        Assert.Equal(0, HeaderByte(path, 72));

        // A file left unclean (a crash) opens and Check says so.
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            fs.Position = 72;
            fs.WriteByte(1);
        }
        using VirtualDisk again = VirtualDisk.Open(path, FileAccess.Read);
        Assert.Contains(again.Top.Check(), p => p.Contains("uncleanShutdown"));
        Assert.Equal("True", again.Top.Details["UncleanShutdown"]);
    }

    [Fact]
    public void ChildInAnotherFolderRecordsARelativeHintWithForwardSlashes()
    {
        using var dir = new TempFolder();
        Directory.CreateDirectory(dir.File("bases"));
        Directory.CreateDirectory(dir.File("clones"));
        string basePath = dir.File("bases/win.vmdk");
        string child = dir.File("clones/lab-01.vmdk");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(basePath, 8L << 20))
            WriteAt(d, 512, 0x5a, 512);
        VirtualDisk.CreateDifferencing(child, basePath).Dispose();
        Assert.Contains("parentFileNameHint=\"../bases/win.vmdk\"", EmbeddedDescriptor(child));
        using VirtualDisk c = VirtualDisk.Open(child, FileAccess.Read);
        Assert.Equal(ParentPathKind.Relative, c.Top.ParentReference!.Candidates[0].Kind);
        Assert.Equal("../bases/win.vmdk", c.Top.Details["ParentFileNameHint"]);
        byte[] b = new byte[1];
        c.Content.Position = 600;
        c.Content.ReadExactly(b, 0, 1);
        Assert.Equal(0x5a, b[0]);
    }

    [Fact]
    public void ChildOverANonVmdkParentIsRefused()
    {
        using var dir = new TempFolder();
        string raw = dir.File("base.raw");
        VirtualDisk.CreateDynamic(raw, 1 << 20).Dispose();
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.CreateDifferencing(dir.File("child.vmdk"), raw));
        Assert.Equal(ChainProblem.Incompatible, ex.Problem);
        Assert.Contains("VMDK", ex.Message);
        Assert.False(File.Exists(dir.File("child.vmdk")));
    }

    [Fact]
    public void MissingParentIsReportedWithTheHint()
    {
        using var dir = new TempFolder();
        string basePath = dir.File("base.vmdk");
        string child = dir.File("child.vmdk");
        VirtualDisk.CreateDynamic(basePath, 1 << 20).Dispose();
        VirtualDisk.CreateDifferencing(child, basePath).Dispose();
        File.Move(basePath, dir.File("moved.vmdk"));
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child, FileAccess.Read));
        Assert.Equal(ChainProblem.ParentMissing, ex.Problem);
        Assert.Contains("base.vmdk", ex.Message);
        // Re-pointing by override works when the identity still matches.
        using VirtualDisk ok = VirtualDisk.Open(child, FileAccess.Read, new DiskOpenOptions { ParentPathOverride = dir.File("moved.vmdk") });
        Assert.Equal(2, ok.Layers.Count);
    }

    [Fact]
    public void WritingPartOfAnUnallocatedGrainKeepsTheParentsBytesAroundIt()
    {
        using var dir = new TempFolder();
        string basePath = dir.File("base.vmdk");
        string child = dir.File("child.vmdk");
        byte[] pattern = Enumerable.Range(0, 200_000).Select(i => (byte)(i * 7 + 3)).ToArray();
        using (VirtualDisk d = VirtualDisk.CreateDynamic(basePath, 4L << 20, new DiskCreateOptions { BlockSizeBytes = 16384 }))
        {
            d.Content.Write(pattern, 0, pattern.Length);
        }
        using (VirtualDisk c = VirtualDisk.CreateDifferencing(child, basePath))
        {
            Assert.Equal(65536, c.Top.BlockSize); // the child takes the default grain
            WriteAt(c, 100_001, 0xEE, 3);
            Assert.Equal(65536, c.Top.AllocatedBytes);
            Assert.Equal(ExtentKind.Data, c.Top.GetExtent(65536, 65536).Kind);
            Assert.Equal(ExtentKind.Parent, c.Top.GetExtent(0, 65536).Kind);
        }
        byte[] all = VmdkTestData.ReadAll(child);
        for (int i = 100_001; i < 100_004; i++)
            pattern[i] = 0xEE;
        Assert.Equal(pattern, all.Take(pattern.Length).ToArray());
        Assert.All(all.Skip(pattern.Length), b => Assert.Equal(0, b));
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void ZeroedGrainsHideTheParentAndStayZeroAroundAPartialWrite()
    {
        using var dir = new TempFolder();
        string parent = dir.File("p.vmdk");
        string child = dir.File("c.vmdk");
        VmdkOracle.QemuCreate(parent, 8L << 20);
        VmdkOracle.QemuIo(parent, "write -P 0x44 0 1048576");
        VmdkOracle.QemuCreate(child, 8L << 20, "p.vmdk", "zeroed_grain=on");
        VmdkOracle.QemuIo(child, "write -z 65536 131072");
        using (VirtualDisk c = VirtualDisk.Open(child, FileAccess.Read))
        {
            Assert.Equal(ExtentKind.Zero, c.Top.GetExtent(65536, 1 << 20).Kind);
            Assert.Equal(131072, c.Top.GetExtent(65536, 1 << 20).Length);
        }
        using (VirtualDisk c = VirtualDisk.Open(child, FileAccess.ReadWrite))
            WriteAt(c, 70_000, 0x55, 10);
        Assert.Equal(0, VmdkOracle.QemuCheck(child).Code);
        byte[] all = VmdkTestData.ReadAll(child);
        Assert.Equal(0x44, all[65535]);
        Assert.Equal(0, all[65536]);
        Assert.Equal(0, all[69_999]);
        Assert.Equal(0x55, all[70_000]);
        Assert.Equal(0, all[70_010]);
        Assert.Equal(0x44, all[196_608]);
        Assert.Equal(Oracle.QemuRawSha256(child, "vmdk"), Hashing.Sha256Bytes(all));
    }

    [Fact]
    public void DetailsNameTheImportantFacts()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vmdk");
        using VirtualDisk d = VirtualDisk.CreateDynamic(path, (10L << 20) + 512);
        var details = d.Top.Details;
        Assert.Equal("monolithicSparse", details["CreateType"]);
        Assert.Equal(d.Top.Identity, details["CID"]);
        Assert.Equal("ffffffff", details["ParentCID"]);
        Assert.Equal("65536", details["GrainSize"]);
        Assert.Equal("ide", details["AdapterType"]);
        Assert.Equal("1", details["DescriptorVersion"]);
        Assert.Equal((10L << 20) + 512, d.Capacity);
        Assert.Equal(DiskType.Dynamic, d.Type);
    }
}

internal static class LayerExtensions
{
    public static T Using<T>(this DiskLayer layer, Func<DiskLayer, T> f)
    {
        using (layer)
            return f(layer);
    }
}
