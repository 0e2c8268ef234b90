using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhdx;
using Xunit;

namespace VmClone.Disks.Tests.Vhdx;

/// <summary>
/// Byte-level fixtures: a good file made by our writer, then one rule broken at a time. Each
/// failure must be a DiskFormatException naming the file, and must leave the file unchanged.
/// </summary>
public class VhdxStructureTests
{
    private const long MiB = 1024 * 1024;

    private static DiskFormatException AssertRefused(string path, params string[] fragments)
    {
        string before = Hashing.Sha256File(path);
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(path, FileAccess.Read));
        Assert.Contains(path, ex.Message);
        foreach (string f in fragments)
            Assert.Contains(f, ex.Message, StringComparison.OrdinalIgnoreCase);
        // A read-write open must refuse just the same, and neither may write.
        var ex2 = Assert.ThrowsAny<VirtualDiskException>(() => VirtualDisk.Open(path, FileAccess.ReadWrite));
        Assert.IsType<DiskFormatException>(ex2);
        Assert.Equal(before, Hashing.Sha256File(path));
        return ex;
    }

    [Fact]
    public void GoodFileOpensWithBothHeadersValidAndConsecutive()
    {
        using var dir = new TempFolder();
        string path = dir.File("good.vhdx");
        byte[] model = VhdxFixture.CreateWritten(path, 40 * MiB, 1 * MiB);
        VhdxHeader h1 = VhdxFixture.ReadHeader(path, 0)!, h2 = VhdxFixture.ReadHeader(path, 1)!;
        Assert.Equal(1UL, Math.Max(h1.SequenceNumber, h2.SequenceNumber) - Math.Min(h1.SequenceNumber, h2.SequenceNumber));
        Assert.Equal(h1.DataWriteGuid, h2.DataWriteGuid);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        Assert.Equal(model, VhdxFixture.ReadAll(disk));
        Assert.Equal("VmClone", disk.Top.Details["Creator"]);
        Assert.Empty(disk.Top.Check());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void OneDamagedHeaderStillOpensFromTheOther(int slot)
    {
        using var dir = new TempFolder();
        string path = dir.File("one-bad.vhdx");
        byte[] model = VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        Guid expected = VhdxFixture.ReadHeader(path, 1 - slot)!.DataWriteGuid;
        VhdxFixture.WriteAt(path, VhdxFixture.HeaderOffset(slot) + 100, new byte[] { 0xEE }); // checksum now wrong
        Assert.Null(VhdxFixture.ReadHeader(path, slot));
        string before = Hashing.Sha256File(path);
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read))
        {
            Assert.Equal(expected.ToString("B"), disk.Top.Identity);
            Assert.Equal(model, VhdxFixture.ReadAll(disk));
            Assert.Contains(disk.Top.Check(), p => p.Contains("header copy") && p.Contains("not valid"));
        }
        Assert.Equal(before, Hashing.Sha256File(path));
    }

    [Fact]
    public void HeaderWithTheLargerSequenceNumberIsCurrent()
    {
        using var dir = new TempFolder();
        string path = dir.File("seq.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        var marker = Guid.NewGuid();
        VhdxFixture.EditHeader(path, 0, h =>
        {
            h.SequenceNumber = 1000;
            h.DataWriteGuid = marker;
        });
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        Assert.Equal(marker.ToString("B"), layer.Identity);
    }

    [Fact]
    public void BothHeadersDamagedIsRefusedClearly()
    {
        using var dir = new TempFolder();
        string path = dir.File("no-header.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        VhdxFixture.WriteAt(path, VhdxFixture.HeaderOffset(0) + 8, new byte[] { 1 });
        VhdxFixture.WriteAt(path, VhdxFixture.HeaderOffset(1) + 8, new byte[] { 1 });
        AssertRefused(path, "header", "checksum");
    }

    [Fact]
    public void UnsupportedHeaderVersionIsRefused()
    {
        using var dir = new TempFolder();
        string path = dir.File("v2.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        VhdxFixture.EditHeaders(path, h => h.Version = 2);
        AssertRefused(path, "version 2");
    }

    [Fact]
    public void RegionsOverlappingEachOtherAreRefused()
    {
        using var dir = new TempFolder();
        string path = dir.File("overlap.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        RegionTable t = VhdxFixture.ReadRegionTable(path);
        VhdxFixture.WriteRegionTable(path, new[]
        {
            t.Bat,
            new RegionTableEntry(RegionTable.MetadataRegion, t.Bat.FileOffset, t.Metadata.Length, true),
        });
        AssertRefused(path, "region table", "overlaps");
    }

    [Fact]
    public void RegionOverlappingTheLogIsRefused()
    {
        using var dir = new TempFolder();
        string path = dir.File("overlap-log.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        RegionTable t = VhdxFixture.ReadRegionTable(path);
        VhdxFixture.WriteRegionTable(path, new[] { new RegionTableEntry(RegionTable.BatRegion, 1 * MiB, t.Bat.Length, true), t.Metadata });
        AssertRefused(path, "overlaps the log");
    }

    [Fact]
    public void RegionBeyondTheEndOfTheFileIsRefused()
    {
        using var dir = new TempFolder();
        string path = dir.File("region-eof.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        RegionTable t = VhdxFixture.ReadRegionTable(path);
        VhdxFixture.WriteRegionTable(path, new[] { t.Bat, new RegionTableEntry(RegionTable.MetadataRegion, 1L << 40, t.Metadata.Length, true) });
        AssertRefused(path, "beyond the end of the file");
    }

    [Fact]
    public void DamagedFirstRegionTableFallsBackToTheSecond()
    {
        using var dir = new TempFolder();
        string path = dir.File("rt.vhdx");
        byte[] model = VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        VhdxFixture.WriteAt(path, 192 * 1024 + 40, new byte[] { 0x55 });
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read))
        {
            Assert.Equal(model, VhdxFixture.ReadAll(disk));
            Assert.Contains(disk.Top.Check(), p => p.Contains("Region table copy 1"));
        }
        VhdxFixture.WriteAt(path, 256 * 1024 + 40, new byte[] { 0x55 });
        AssertRefused(path, "region table", "neither copy");
    }

    [Fact]
    public void UnknownRequiredRegionIsRefusedButAnOptionalOneIsNot()
    {
        using var dir = new TempFolder();
        string path = dir.File("unknown-region.vhdx");
        byte[] model = VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        RegionTable t = VhdxFixture.ReadRegionTable(path);
        long end = new FileInfo(path).Length;
        VhdxFixture.WriteAt(path, end + MiB - 1, new byte[1]);
        var extra = new RegionTableEntry(Guid.NewGuid(), end, (uint)MiB, false);
        VhdxFixture.WriteRegionTable(path, new[] { t.Bat, t.Metadata, extra });
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read))
            Assert.Equal(model, VhdxFixture.ReadAll(disk));
        VhdxFixture.WriteRegionTable(path, new[] { t.Bat, t.Metadata, new RegionTableEntry(extra.Id, end, (uint)MiB, true) });
        AssertRefused(path, "unknown required region", extra.Id.ToString());
    }

    [Fact]
    public void UnknownRequiredMetadataItemIsRefusedButAnOptionalOneIsNot()
    {
        using var dir = new TempFolder();
        string path = dir.File("unknown-item.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        var id = Guid.NewGuid();
        VhdxFixture.ReplaceMetadataItem(path, id, new byte[16], flags: 0);
        VirtualDisk.Open(path, FileAccess.Read).Dispose();
        VhdxFixture.ReplaceMetadataItem(path, id, new byte[16], flags: MetadataTableEntry.IsRequiredFlag);
        AssertRefused(path, "unknown required metadata item", id.ToString());
    }

    [Fact]
    public void MissingRequiredMetadataItemIsRefused()
    {
        using var dir = new TempFolder();
        string path = dir.File("no-size.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        long region = VhdxFixture.MetadataOffset(path);
        MetadataTable t = VhdxFixture.ReadMetadataTable(path);
        var kept = t.Entries.Where(e => e.ItemId != VirtualDiskMetadata.VirtualDiskSizeId).ToList();
        VhdxFixture.WriteAt(path, region, new MetadataTable(kept).ToBytes());
        AssertRefused(path, "virtual disk size", "missing");
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(100L)]
    [InlineData(64 * 1024L)]
    [InlineData(200 * 1024L)]
    [InlineData(1024 * 1024L - 1)]
    [InlineData(2 * 1024 * 1024L + 4096)]
    [InlineData(3 * 1024 * 1024L + 100)]
    public void TruncatedFilesAreRefused(long length)
    {
        using var dir = new TempFolder();
        string path = dir.File("truncated.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        using (var fs = new FileStream(path, FileMode.Open))
            fs.SetLength(length);
        AssertRefused(path);
    }

    [Fact]
    public void TruncatedPayloadIsReportedWhenReadNeverReturnedAsGarbage()
    {
        using var dir = new TempFolder();
        string path = dir.File("cut-payload.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        long length = new FileInfo(path).Length;
        using (var fs = new FileStream(path, FileMode.Open))
            fs.SetLength(length - MiB / 2);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        Assert.Contains(disk.Top.Check(), p => p.Contains("beyond the end of the file"));
        var ex = Assert.Throws<DiskFormatException>(() => VhdxFixture.ReadAll(disk));
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void BatEntryPointingPastTheEndIsRefusedWhenUsedAndReportedByCheck()
    {
        using var dir = new TempFolder();
        string path = dir.File("bat-eof.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        VhdxFixture.WriteBatEntry(path, 5, (1000UL << 20) | 6); // block 5 at 1000 MiB, FULLY_PRESENT
        string before = Hashing.Sha256File(path);
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read))
        {
            Assert.Contains(disk.Top.Check(), p => p.Contains("payload block 5") && p.Contains("beyond the end of the file"));
            var buffer = new byte[4096];
            disk.Content.Position = 5 * MiB + 10;
            var ex = Assert.Throws<DiskFormatException>(() => disk.Content.Read(buffer, 0, buffer.Length));
            Assert.Contains(path, ex.Message);
            Assert.Contains("BAT", ex.Message);
            disk.Content.Position = 0;
            Assert.Equal(4096, disk.Content.Read(buffer, 0, buffer.Length)); // other blocks still read
        }
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            disk.Content.Position = 5 * MiB;
            Assert.Throws<DiskFormatException>(() => disk.Content.Write(new byte[512], 0, 512));
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(7)]
    public void UndefinedOrMisplacedBatStatesAreRefusedWhenUsed(int state)
    {
        using var dir = new TempFolder();
        string path = dir.File("bad-state.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        ulong raw = VhdxFixture.ReadBatEntry(path, 2);
        VhdxFixture.WriteBatEntry(path, 2, (raw & ~7UL) | (uint)state | (4UL << 20));
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        Assert.NotEmpty(disk.Top.Check());
        disk.Content.Position = 2 * MiB;
        var ex = Assert.Throws<DiskFormatException>(() => disk.Content.Read(new byte[512], 0, 512));
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void BlockOverlappingTheBatAndAnotherBlockIsReported()
    {
        using var dir = new TempFolder();
        string path = dir.File("overlap-block.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        long bat = VhdxFixture.BatOffset(path);
        VhdxFixture.WriteBatEntry(path, 1, ((ulong)(bat / MiB) << 20) | 6);
        ulong zero = VhdxFixture.ReadBatEntry(path, 0);
        VhdxFixture.WriteBatEntry(path, 3, 6UL | (ulong)(4 * MiB / MiB << 20));
        VhdxFixture.WriteBatEntry(path, 4, 6UL | (ulong)(4 * MiB / MiB << 20));
        VhdxFixture.WriteBatEntry(path, 6, zero | (1UL << 3)); // reserved bit
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        var problems = layer.Check();
        Assert.Contains(problems, p => p.Contains("payload block 1") && p.Contains("overlaps the BAT"));
        Assert.Contains(problems, p => p.Contains("payload block 4") && p.Contains("overlaps the payload block 3"));
        Assert.Contains(problems, p => p.Contains("reserved bits"));
        Assert.Throws<DiskFormatException>(() => layer.GetExtent(1 * MiB, 10));
    }

    [Theory]
    [InlineData(1L << 62, "virtual disk size")]
    [InlineData(64L << 40, "BAT")]
    [InlineData(1000L, "not a multiple")]
    public void AbsurdVirtualSizesAreRefused(long size, string fragment)
    {
        using var dir = new TempFolder();
        string path = dir.File("size.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        VhdxFixture.ReplaceMetadataItem(path, VirtualDiskMetadata.VirtualDiskSizeId, BitConverter.GetBytes(size));
        AssertRefused(path, fragment);
    }

    [Theory]
    [InlineData(3u * 1024 * 1024)]
    [InlineData(512u * 1024 * 1024)]
    [InlineData(4096u)]
    [InlineData(0u)]
    public void AbsurdBlockSizesAreRefused(uint blockSize)
    {
        using var dir = new TempFolder();
        string path = dir.File("block.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        VhdxFixture.ReplaceMetadataItem(path, FileParameters.ItemId, new FileParameters(blockSize, false, false).ToBytes());
        AssertRefused(path, "block size");
    }

    [Fact]
    public void OddSectorSizeIsRefused()
    {
        using var dir = new TempFolder();
        string path = dir.File("sector.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        VhdxFixture.ReplaceMetadataItem(path, VirtualDiskMetadata.LogicalSectorSizeId, BitConverter.GetBytes(1024u));
        AssertRefused(path, "logical sector size", "1024");
    }

    [Fact]
    public void HugeMetadataCountsAreRefused()
    {
        using var dir = new TempFolder();
        string path = dir.File("count.vhdx");
        VhdxFixture.CreateWritten(path, 8 * MiB, 1 * MiB);
        VhdxFixture.WriteAt(path, VhdxFixture.MetadataOffset(path) + MetadataTable.EntryCountOffset, BitConverter.GetBytes((ushort)60000));
        AssertRefused(path, "metadata table", "entries");
    }

    [Fact]
    public void GarbageAfterTheSignatureNeverEscapesAsAnotherExceptionType()
    {
        using var dir = new TempFolder();
        string good = dir.File("good.vhdx");
        VhdxFixture.CreateWritten(good, 8 * MiB, 1 * MiB);
        byte[] original = File.ReadAllBytes(good);
        var rng = new Random(7);
        // Flip bytes in the structures (headers, region tables, metadata, BAT) and open: only our exception types may come out.
        long[] areas = { 64 * 1024, 128 * 1024, 192 * 1024, 256 * 1024, 2 * MiB, 2 * MiB + 64 * 1024, 3 * MiB };
        for (int i = 0; i < 150; i++)
        {
            byte[] copy = (byte[])original.Clone();
            long area = areas[rng.Next(areas.Length)];
            for (int k = 0; k < 1 + rng.Next(4); k++)
                copy[area + rng.Next(128)] = (byte)rng.Next(256);
            string path = dir.File($"fuzz{i}.vhdx");
            File.WriteAllBytes(path, copy);
            try
            {
                using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
                Hashing.Sha256Stream(disk.Content);
                disk.Top.Check();
            }
            catch (VirtualDiskException ex)
            {
                Assert.Contains(path, ex.Message);
            }
            File.Delete(path);
        }
    }

    [Fact]
    public void CreatingADifferencingDiskIsMetadataOnly()
    {
        using var dir = new TempFolder();
        string parent = dir.File("big-parent.vhdx");
        using (VirtualDisk p = VirtualDisk.CreateDynamic(parent, 2L << 40)) // 2 TiB, a few blocks written
        {
            p.Content.Position = (1L << 40) + 12345;
            p.Content.Write(new byte[] { 1, 2, 3 }, 0, 3);
        }
        using (VirtualDisk child = VirtualDisk.CreateDifferencing(dir.File("child.vhdx"), parent))
        {
            Assert.Equal(DiskType.Differencing, child.Type);
            Assert.Equal(2L << 40, child.Capacity);
            Assert.Equal(2L << 20, child.Top.BlockSize);
            Assert.Equal(0, child.Top.AllocatedBytes);
        }
        Assert.True(new FileInfo(dir.File("child.vhdx")).Length < 16 * MiB);
    }

    [Fact]
    public void CreateRefusesBadGeometryAndLeavesNoFile()
    {
        using var dir = new TempFolder();
        Assert.ThrowsAny<ArgumentException>(() => VirtualDisk.CreateDynamic(dir.File("a.vhdx"), 1000));
        Assert.ThrowsAny<ArgumentException>(() => VirtualDisk.CreateDynamic(dir.File("b.vhdx"), 8 * MiB, new DiskCreateOptions { BlockSizeBytes = 3 * MiB }));
        Assert.ThrowsAny<ArgumentException>(() => VirtualDisk.CreateDynamic(dir.File("c.vhdx"), 8 * MiB, new DiskCreateOptions { LogicalSectorSizeBytes = 1024 }));
        Assert.ThrowsAny<ArgumentException>(() => VirtualDisk.CreateDynamic(dir.File("d.vhdx"), 65L << 40));
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void ChildOfANonVhdxParentIsRefusedAsIncompatible()
    {
        using var dir = new TempFolder();
        string raw = dir.File("base.raw");
        VirtualDisk.CreateDynamic(raw, 8 * MiB).Dispose();
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.CreateDifferencing(dir.File("child.vhdx"), raw));
        Assert.Equal(ChainProblem.Incompatible, ex.Problem);
        Assert.Contains("VHDX parent", ex.Message);
        Assert.False(File.Exists(dir.File("child.vhdx")));
    }
}
