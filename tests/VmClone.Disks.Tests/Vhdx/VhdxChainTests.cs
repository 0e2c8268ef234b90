using System;
using System.IO;
using System.Linq;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhdx;
using Xunit;

namespace VmClone.Disks.Tests.Vhdx;

/// <summary>Differencing chains: parent resolution, identity, and write semantics of child blocks.</summary>
public class VhdxChainTests
{
    private const long MiB = 1024 * 1024;

    private static void WriteAt(VirtualDisk disk, long position, byte[] data)
    {
        disk.Content.Position = position;
        disk.Content.Write(data, 0, data.Length);
    }

    private static byte[] ReadAt(VirtualDisk disk, long position, int count)
    {
        var b = new byte[count];
        disk.Content.Position = position;
        Assert.Equal(count, disk.Content.Read(b, 0, count));
        return b;
    }

    private static byte[] Filled(int count, byte value) => Enumerable.Repeat(value, count).ToArray();

    [Fact]
    public void ChildLocatorRecordsParentIdentityAndWindowsStyleRelativePath()
    {
        using var dir = new TempFolder();
        Directory.CreateDirectory(dir.File("bases"));
        string parent = dir.File("bases/base.vhdx");
        VirtualDisk.CreateDynamic(parent, 16 * MiB).Dispose();
        string identity;
        using (DiskLayer p = VirtualDisk.OpenLayer(parent, FileAccess.Read))
            identity = p.Identity;
        Assert.Matches("^\\{[0-9a-f-]{36}\\}$", identity);
        Directory.CreateDirectory(dir.File("clones"));
        string child = dir.File("clones/child.vhdx");
        string sibling = dir.File("bases/sibling.avhdx");
        VirtualDisk.CreateDifferencing(child, parent).Dispose();
        VirtualDisk.CreateDifferencing(sibling, parent).Dispose();
        using (var layer = (VhdxLayer)VirtualDisk.OpenLayer(child, FileAccess.Read))
        {
            Assert.Equal(identity, layer.Locator!["parent_linkage"]);
            Assert.Equal(@"..\bases\base.vhdx", layer.Locator["relative_path"]);
            Assert.Equal(Path.GetFullPath(parent), layer.Locator["absolute_win32_path"]);
        }
        using (var layer = (VhdxLayer)VirtualDisk.OpenLayer(sibling, FileAccess.Read))
            Assert.Equal(@".\base.vhdx", layer.Locator!["relative_path"]);
        using VirtualDisk disk = VirtualDisk.Open(child, FileAccess.Read);
        Assert.Equal(2, disk.Layers.Count);
        Assert.True(PathUtil.SamePath(parent, disk.Layers[1].Path));
    }

    [Fact]
    public void ChildReadsParentUntilWrittenAndPartialBlocksKeepTheRestFromTheParent()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.vhdx");
        string child = dir.File("child.vhdx");
        using (VirtualDisk p = VirtualDisk.CreateDynamic(parent, 16 * MiB, new DiskCreateOptions { BlockSizeBytes = MiB }))
            WriteAt(p, 0, Filled((int)(4 * MiB), 0xAA));
        using (VirtualDisk c = VirtualDisk.CreateDifferencing(child, parent, new DiskCreateOptions { BlockSizeBytes = MiB }))
        {
            Assert.Equal(Filled(4096, 0xAA), ReadAt(c, 4096, 4096));
            WriteAt(c, 1000, Filled(100, 0x11)); // inside sector 1 of block 0, unaligned both sides
            WriteAt(c, 2 * MiB - 10, Filled(20, 0x22)); // spans blocks 1 and 2
        }
        using (VirtualDisk c = VirtualDisk.Open(child, FileAccess.Read))
        {
            byte[] expected = Filled(4096, 0xAA);
            Array.Fill(expected, (byte)0x11, 1000, 100);
            Assert.Equal(expected, ReadAt(c, 0, 4096));
            byte[] span = ReadAt(c, 2 * MiB - 512, 1024);
            Assert.Equal(Filled(502, 0xAA), span[..502]);
            Assert.Equal(Filled(20, 0x22), span[502..522]);
            Assert.Equal(Filled(502, 0xAA), span[522..]);
            var layer = (VhdxLayer)c.Top;
            Assert.Equal(BatState.PartiallyPresent, layer.Bat.Payload(0).State);
            Assert.Equal(BatState.PartiallyPresent, layer.Bat.Payload(1).State);
            Assert.Equal(BatState.NotPresent, layer.Bat.Payload(3).State);
            LayerExtent e = layer.GetExtent(0, MiB);
            Assert.Equal(ExtentKind.Parent, e.Kind);
            Assert.Equal(512, e.Length);
            e = layer.GetExtent(512, MiB - 512);
            Assert.Equal(ExtentKind.Data, e.Kind);
            Assert.Equal(1024, e.Length); // bytes 1000..1099 touch sectors 1 and 2
            Assert.Empty(layer.Check());
        }
    }

    [Fact]
    public void FullyWrittenPartialBlockIsPromotedToFullyPresent()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.vhdx");
        string child = dir.File("child.vhdx");
        VirtualDisk.CreateDynamic(parent, 8 * MiB, new DiskCreateOptions { BlockSizeBytes = MiB }).Dispose();
        using (VirtualDisk c = VirtualDisk.CreateDifferencing(child, parent, new DiskCreateOptions { BlockSizeBytes = MiB }))
        {
            WriteAt(c, MiB, Filled((int)(MiB / 2), 1));
            Assert.Equal(BatState.PartiallyPresent, ((VhdxLayer)c.Top).Bat.Payload(1).State);
            WriteAt(c, MiB + MiB / 2, Filled((int)(MiB / 2), 2));
            Assert.Equal(BatState.FullyPresent, ((VhdxLayer)c.Top).Bat.Payload(1).State);
            WriteAt(c, 3 * MiB, Filled((int)MiB, 3)); // a whole block at once needs no bitmap
            Assert.Equal(BatState.FullyPresent, ((VhdxLayer)c.Top).Bat.Payload(3).State);
        }
        using (VirtualDisk c = VirtualDisk.Open(child, FileAccess.Read))
        {
            Assert.Equal(Filled((int)(MiB / 2), 1).Concat(Filled((int)(MiB / 2), 2)), ReadAt(c, MiB, (int)MiB));
            Assert.Equal(2 * MiB, c.Top.AllocatedBytes);
        }
    }

    [Fact]
    public void WritingIntoAZeroBlockOfAChildKeepsTheRestZeroNotTheParent()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.vhdx");
        string child = dir.File("child.vhdx");
        using (VirtualDisk p = VirtualDisk.CreateDynamic(parent, 8 * MiB, new DiskCreateOptions { BlockSizeBytes = MiB }))
            WriteAt(p, 0, Filled((int)(8 * MiB), 0xCC));
        VirtualDisk.CreateDifferencing(child, parent, new DiskCreateOptions { BlockSizeBytes = MiB }).Dispose();
        VhdxFixture.WriteBatEntry(child, 2, (ulong)BatState.Zero);
        using (VirtualDisk c = VirtualDisk.Open(child, FileAccess.ReadWrite))
        {
            Assert.Equal(new byte[4096], ReadAt(c, 2 * MiB, 4096));
            Assert.Equal(ExtentKind.Zero, c.Top.GetExtent(2 * MiB, MiB).Kind);
            WriteAt(c, 2 * MiB + 700, Filled(10, 0x77));
        }
        using (VirtualDisk c = VirtualDisk.Open(child, FileAccess.Read))
        {
            byte[] block = ReadAt(c, 2 * MiB, (int)MiB);
            byte[] expected = new byte[MiB];
            Array.Fill(expected, (byte)0x77, 700, 10);
            Assert.Equal(expected, block);
            Assert.Equal(Filled(16, 0xCC), ReadAt(c, 3 * MiB, 16));
        }
    }

    [Fact]
    public void GuidsChangeOnlyOnTheFirstWriteAndReadOnlyOpensChangeNothing()
    {
        using var dir = new TempFolder();
        string path = dir.File("guids.vhdx");
        VirtualDisk.CreateDynamic(path, 8 * MiB).Dispose();
        VhdxHeader h0 = CurrentHeader(path);
        string before = Hashing.Sha256File(path);
        using (VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read))
            Hashing.Sha256Stream(d.Content);
        using (VirtualDisk d = VirtualDisk.Open(path, FileAccess.ReadWrite))
            Hashing.Sha256Stream(d.Content);
        Assert.Equal(before, Hashing.Sha256File(path)); // opened for writing, nothing written: untouched
        using (VirtualDisk d = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            WriteAt(d, 0, new byte[] { 1 });
            VhdxHeader h1 = CurrentHeader(path);
            Assert.NotEqual(h0.FileWriteGuid, h1.FileWriteGuid);
            Assert.NotEqual(h0.DataWriteGuid, h1.DataWriteGuid);
            Assert.Equal(h0.SequenceNumber + 2, h1.SequenceNumber);
            Assert.Equal(h1.DataWriteGuid.ToString("B"), d.Top.Identity);
            WriteAt(d, 4096, new byte[] { 2 });
            Assert.Equal(h1.SequenceNumber, CurrentHeader(path).SequenceNumber); // once per open
        }
        Assert.NotNull(VhdxFixture.ReadHeader(path, 0));
        Assert.NotNull(VhdxFixture.ReadHeader(path, 1));
    }

    private static VhdxHeader CurrentHeader(string path)
    {
        VhdxHeader a = VhdxFixture.ReadHeader(path, 0)!, b = VhdxFixture.ReadHeader(path, 1)!;
        return a.SequenceNumber > b.SequenceNumber ? a : b;
    }

    [Fact]
    public void MissingParentNamesThePathItLookedFor()
    {
        using var dir = new TempFolder();
        string parent = dir.File("gone.vhdx");
        string child = dir.File("child.vhdx");
        VirtualDisk.CreateDynamic(parent, 8 * MiB).Dispose();
        VirtualDisk.CreateDifferencing(child, parent).Dispose();
        File.Delete(parent);
        string before = Hashing.Sha256File(child);
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child, FileAccess.Read));
        Assert.Equal(ChainProblem.ParentMissing, ex.Problem);
        Assert.Contains(child, ex.Message);
        Assert.Contains(Path.GetFullPath(parent), ex.Message);
        Assert.Equal(Path.GetFullPath(parent), ex.ParentPath);
        Assert.Equal(before, Hashing.Sha256File(child));
    }

    [Fact]
    public void ModifiedParentIsDetectedUnlessExplicitlyIgnored()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.vhdx");
        string child = dir.File("child.vhdx");
        VirtualDisk.CreateDynamic(parent, 8 * MiB).Dispose();
        VirtualDisk.CreateDifferencing(child, parent).Dispose();
        using (VirtualDisk p = VirtualDisk.Open(parent, FileAccess.ReadWrite))
            WriteAt(p, 0, new byte[] { 9 });
        string before = Hashing.Sha256File(child);
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child, FileAccess.Read));
        Assert.Equal(ChainProblem.ParentModified, ex.Problem);
        Assert.Contains(child, ex.Message);
        Assert.Contains(parent, ex.Message);
        using (VirtualDisk c = VirtualDisk.Open(child, FileAccess.Read, new DiskOpenOptions { IgnoreParentIdentityMismatch = true }))
            Assert.Equal(new byte[] { 9 }, ReadAt(c, 0, 1));
        Assert.Equal(before, Hashing.Sha256File(child));
    }

    [Fact]
    public void ParentLocatorLoopIsRefused()
    {
        using var dir = new TempFolder();
        string baseDisk = dir.File("base.vhdx");
        string b = dir.File("b.vhdx");
        string a = dir.File("a.vhdx");
        VirtualDisk.CreateDynamic(baseDisk, 8 * MiB).Dispose();
        VirtualDisk.CreateDifferencing(b, baseDisk).Dispose();
        VirtualDisk.CreateDifferencing(a, b).Dispose();
        // b now points back at a (by relative path, absolute path removed, identity of a).
        string aIdentity;
        using (DiskLayer la = VirtualDisk.OpenLayer(a, FileAccess.Read))
            aIdentity = la.Identity;
        VhdxFixture.SetLocatorValue(b, "relative_path", @".\a.vhdx");
        VhdxFixture.SetLocatorValue(b, "absolute_win32_path", @".\a.vhdx");
        VhdxFixture.SetLocatorValue(b, "parent_linkage", aIdentity);
        string beforeA = Hashing.Sha256File(a), beforeB = Hashing.Sha256File(b);
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(a, FileAccess.Read));
        Assert.Equal(ChainProblem.Loop, ex.Problem);
        Assert.Contains(a, ex.Message);
        Assert.Equal(beforeA, Hashing.Sha256File(a));
        Assert.Equal(beforeB, Hashing.Sha256File(b));
    }

    [Fact]
    public void DifferencingLayerOpenedAloneRefusesToWrite()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.vhdx");
        string child = dir.File("child.vhdx");
        VirtualDisk.CreateDynamic(parent, 8 * MiB).Dispose();
        VirtualDisk.CreateDifferencing(child, parent).Dispose();
        string before = Hashing.Sha256File(child);
        using (DiskLayer layer = VirtualDisk.OpenLayer(child, FileAccess.ReadWrite))
            Assert.Throws<VirtualDiskException>(() => layer.Write(10, new byte[5], 0, 5));
        Assert.Equal(before, Hashing.Sha256File(child));
    }

    [Fact]
    public void AFullyWrittenChildReadsEveryByteFromItself()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.vhdx");
        string child = dir.File("child.vhdx");
        const long size = 256 * MiB;
        VirtualDisk.CreateDynamic(parent, size).Dispose();
        var chunk = new byte[8 * MiB];
        new Random(3).NextBytes(chunk);
        using (VirtualDisk c = VirtualDisk.CreateDifferencing(child, parent))
            for (long at = 0; at < size; at += chunk.Length)
                WriteAt(c, at, chunk);
        using (VirtualDisk c = VirtualDisk.Open(child, FileAccess.Read))
        {
            var buffer = new byte[4 * MiB];
            c.Content.Position = 0;
            long total = 0;
            int n;
            while ((n = c.Content.Read(buffer, 0, buffer.Length)) > 0)
            {
                // Every 8 MiB of the disk holds the same chunk; this read covers part of one.
                int at = (int)(total % chunk.Length);
                Assert.True(buffer.AsSpan(0, n).SequenceEqual(chunk.AsSpan(at, n)), $"wrong bytes at {total}");
                total += n;
            }
            Assert.Equal(size, total);
            Assert.Equal(size, c.Top.AllocatedBytes);
        }
    }
}
