using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhdx;
using Xunit;

namespace VmClone.Disks.Tests.Vhdx;

/// <summary>
/// Dirty logs that are large or hostile: a read costs a lookup in the replayed log, not a scan
/// of it; a read-write open validates everything before it writes, and never grows the file to
/// a size only the log claims.
/// </summary>
public class VhdxLogBoundTests
{
    private const long KiB = 1024;
    private const long MiB = 1024 * 1024;
    private const long TiB = 1024L * 1024 * MiB;


    /// <summary>A log entry of zero descriptors (Data null) and data descriptors (4 KiB each).</summary>
    private static byte[] LogEntryOf(Guid logGuid, ulong sequence, IReadOnlyList<(long Offset, long Length, byte[]? Data)> ops, ulong flushed, ulong last)
    {
        int dataCount = 0;
        foreach (var op in ops)
            dataCount += op.Data is null ? 0 : 1;
        long descriptorSectors = (64 + ops.Count * 32L + 4095) / 4096;
        var entry = new byte[(descriptorSectors + dataCount) * 4096];
        BinaryPrimitives.WriteUInt32LittleEndian(entry, LogEntry.Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(LogEntry.EntryLengthOffset), (uint)entry.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(LogEntry.SequenceNumberOffset), sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(LogEntry.DescriptorCountOffset), (uint)ops.Count);
        logGuid.ToByteArray().CopyTo(entry, LogEntry.LogGuidOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(LogEntry.FlushedFileOffsetOffset), flushed);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(LogEntry.LastFileOffsetOffset), last);
        long dataSector = descriptorSectors;
        for (int i = 0; i < ops.Count; i++)
        {
            Span<byte> d = entry.AsSpan(64 + i * 32, 32);
            BinaryPrimitives.WriteUInt64LittleEndian(d.Slice(16), (ulong)ops[i].Offset);
            BinaryPrimitives.WriteUInt64LittleEndian(d.Slice(24), sequence);
            if (ops[i].Data is not byte[] sector)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(d, LogEntry.ZeroSignature);
                BinaryPrimitives.WriteUInt64LittleEndian(d.Slice(8), (ulong)ops[i].Length);
                continue;
            }
            BinaryPrimitives.WriteUInt32LittleEndian(d, LogEntry.DescSignature);
            sector.AsSpan(4092, 4).CopyTo(d.Slice(4));
            sector.AsSpan(0, 8).CopyTo(d.Slice(8));
            Span<byte> s = entry.AsSpan((int)(dataSector++ * 4096), 4096);
            BinaryPrimitives.WriteUInt32LittleEndian(s, LogEntry.DataSignature);
            BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(4), (uint)(sequence >> 32));
            sector.AsSpan(8, 4084).CopyTo(s.Slice(8));
            BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(4092), (uint)sequence);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(LogEntry.ChecksumOffset), Crc32C.Compute(entry));
        return entry;
    }

    /// <summary>Puts <paramref name="entries"/> (back to back) into a log placed at the end of the file and marks it dirty.</summary>
    private static void MakeDirty(string path, params byte[][] entries)
    {
        long logOffset = (new FileInfo(path).Length + MiB - 1) / MiB * MiB;
        long used = 0;
        foreach (byte[] e in entries)
            used += e.Length;
        long logLength = Math.Max(MiB, (used + MiB - 1) / MiB * MiB);
        var log = new byte[logLength];
        long at = 0;
        foreach (byte[] e in entries)
        {
            // Every entry's tail is the first entry: one sequence.
            BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(LogEntry.TailOffset), 0);
            BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(LogEntry.ChecksumOffset), 0);
            BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(LogEntry.ChecksumOffset), Crc32C.Compute(e));
            e.CopyTo(log, at);
            at += e.Length;
        }
        VhdxFixture.WriteAt(path, logOffset, log);
        var logGuid = LogGuidOf(entries[0]);
        VhdxFixture.EditHeaders(path, h =>
        {
            h.LogOffset = (ulong)logOffset;
            h.LogLength = (uint)logLength;
            h.LogGuid = logGuid;
        });
    }

    private static Guid LogGuidOf(byte[] entry) => new(entry.AsSpan(LogEntry.LogGuidOffset, 16).ToArray());

    /// <summary>File offsets of the stored payload blocks of a non-differencing VHDX.</summary>
    private static List<long> BlockOffsets(string path, int blocks)
    {
        var offsets = new List<long>();
        for (int i = 0; i < blocks; i++)
            offsets.Add((long)(VhdxFixture.ReadBatEntry(path, i) >> 20) * MiB);
        return offsets;
    }

    [Fact]
    public void ReadsThroughALogOfAMillionDescriptorsDoNotScanThemAll()
    {
        using var dir = new TempFolder();
        string path = dir.File("big-log.vhdx");
        using (VirtualDisk disk = VirtualDisk.CreateDynamic(path, 16 * MiB, new DiskCreateOptions { BlockSizeBytes = MiB }))
        {
            var data = new byte[16 * MiB];
            new Random(2).NextBytes(data);
            disk.Content.Write(data, 0, data.Length);
        }
        List<long> blocks = BlockOffsets(path, 16);
        var ops = new List<(long, long, byte[]?)>(1 << 20);
        for (int i = 0; i < 1 << 20; i++)
            ops.Add((blocks[i % 16] + (i / 16 % 256) * 4096L, 4096, null));
        long length = new FileInfo(path).Length;
        MakeDirty(path, LogEntryOf(Guid.NewGuid(), 7, ops, (ulong)length, (ulong)length));

        using VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read);
        var buffer = new byte[4096];
        bool allZero = true;
        var sw = Stopwatch.StartNew();
        for (long at = 0; at < 16 * MiB; at += buffer.Length)
        {
            d.Content.Position = at;
            d.Content.ReadExactly(buffer, 0, buffer.Length);
            allZero &= Array.TrueForAll(buffer, b => b == 0);
        }
        sw.Stop();
        Assert.True(allZero, "the replayed zero descriptors must read as zeros");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), $"4096 reads of 4 KiB took {sw.Elapsed}");
    }

    [Fact]
    public void LaterLogOperationsWinOverEarlierOnesAtTheSameOffsets()
    {
        using var dir = new TempFolder();
        string path = dir.File("order.vhdx");
        using (VirtualDisk disk = VirtualDisk.CreateDynamic(path, 4 * MiB, new DiskCreateOptions { BlockSizeBytes = MiB }))
            disk.Content.Write(new byte[MiB], 0, (int)MiB);
        long block = BlockOffsets(path, 1)[0];
        byte[] first = new byte[4096], second = new byte[4096];
        new Random(8).NextBytes(first);
        new Random(9).NextBytes(second);
        var guid = Guid.NewGuid();
        long length = new FileInfo(path).Length;
        byte[] e1 = LogEntryOf(guid, 20, new List<(long, long, byte[]?)> { (block, 4096, first), (block + 8192, 4096, first) }, (ulong)length, (ulong)length);
        byte[] e2 = LogEntryOf(guid, 21, new List<(long, long, byte[]?)> { (block, 12288, null), (block + 4096, 4096, second) }, (ulong)length, (ulong)length);
        MakeDirty(path, e1, e2);
        foreach (FileAccess access in new[] { FileAccess.Read, FileAccess.ReadWrite })
        {
            using VirtualDisk d = VirtualDisk.Open(path, access);
            var got = new byte[12288];
            d.Content.Position = 0;
            d.Content.ReadExactly(got, 0, got.Length);
            Assert.True(Array.TrueForAll(got[..4096], b => b == 0));
            Assert.Equal(second, got[4096..8192]);
            Assert.True(Array.TrueForAll(got[8192..], b => b == 0));
        }
    }

    /// <summary>A dynamic disk with a dirty log that makes block 0 present; the log claims a file of <paramref name="lastFileOffset"/> bytes.</summary>
    private static (string Path, byte[] Block) DirtyDisk(TempFolder dir, string name, long? lastFileOffset = null)
    {
        string path = dir.File(name);
        VirtualDisk.CreateDynamic(path, 8 * MiB, new DiskCreateOptions { BlockSizeBytes = MiB }).Dispose();
        long bat = VhdxFixture.BatOffset(path);
        long blockAt = (new FileInfo(path).Length + MiB - 1) / MiB * MiB;
        var block = new byte[MiB];
        new Random(5).NextBytes(block);
        VhdxFixture.WriteAt(path, blockAt, block);
        byte[] batSector = VhdxFixture.ReadAt(path, bat, 4096);
        BinaryPrimitives.WriteUInt64LittleEndian(batSector, (ulong)(blockAt / MiB) << 20 | 6);
        long length = new FileInfo(path).Length;
        MakeDirty(path, LogEntryOf(Guid.NewGuid(), 10, new List<(long, long, byte[]?)> { (bat, 4096, batSector) }, (ulong)length, (ulong)(lastFileOffset ?? length)));
        return (path, block);
    }

    private static void AssertRefusedUntouched(string path)
    {
        long length = new FileInfo(path).Length;
        string before = Hashing.Sha256File(path);
        var ex = Assert.ThrowsAny<VirtualDiskException>(() => VirtualDisk.OpenLayer(path, FileAccess.ReadWrite).Dispose());
        Assert.Contains(path, ex.Message);
        // The length first: a file grown to terabytes is not hashed.
        Assert.Equal(length, new FileInfo(path).Length);
        Assert.Equal(before, Hashing.Sha256File(path));
    }

    [Fact]
    public void ReadWriteOpenWithADirtyLogAndABadRegionTableWritesNothing()
    {
        using var dir = new TempFolder();
        var (path, _) = DirtyDisk(dir, "bad-region.vhdx");
        VhdxFixture.WriteAt(path, 192 * KiB + 16, new byte[] { 0xde, 0xad, 0xbe, 0xef });
        VhdxFixture.WriteAt(path, 256 * KiB + 16, new byte[] { 0xde, 0xad, 0xbe, 0xef });
        AssertRefusedUntouched(path);
    }

    [Fact]
    public void ReadWriteOpenWithADirtyLogAndBadMetadataWritesNothing()
    {
        using var dir = new TempFolder();
        var (path, _) = DirtyDisk(dir, "bad-metadata.vhdx");
        VhdxFixture.WriteAt(path, VhdxFixture.MetadataOffset(path), Encoding.ASCII.GetBytes("notmeta!"));
        AssertRefusedUntouched(path);
    }

    [Fact]
    public void ReadWriteOpenWithALogClaimingAHugeFileAndBadMetadataWritesNothing()
    {
        using var dir = new TempFolder();
        var (path, _) = DirtyDisk(dir, "huge-bad.vhdx", 10 * TiB);
        VhdxFixture.WriteAt(path, VhdxFixture.MetadataOffset(path), Encoding.ASCII.GetBytes("notmeta!"));
        AssertRefusedUntouched(path);
    }

    [Fact]
    public void LogClaimingAHugeFileDoesNotGrowTheFile()
    {
        using var dir = new TempFolder();
        var (path, block) = DirtyDisk(dir, "huge.vhdx", 10 * TiB);
        long length = new FileInfo(path).Length;
        using (VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read))
            Assert.Equal(block, VhdxFixture.ReadAll(d)[..(int)MiB]);
        using (VirtualDisk d = VirtualDisk.Open(path, FileAccess.ReadWrite))
            Assert.Equal(block, VhdxFixture.ReadAll(d)[..(int)MiB]);
        Assert.True(new FileInfo(path).Length <= length, $"the file grew from {length} to {new FileInfo(path).Length} bytes");
        using var layer = (VhdxLayer)VirtualDisk.OpenLayer(path, FileAccess.Read);
        Assert.Equal(Guid.Empty, layer.LogGuid);
        Assert.Empty(layer.Check());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ReadWriteOpenWithALogWritingFarPastTheFileIsRefusedAndWritesNothing(bool withBatEntry)
    {
        using var dir = new TempFolder();
        string path = dir.File("far-log.vhdx");
        VirtualDisk.CreateDynamic(path, 8 * MiB, new DiskCreateOptions { BlockSizeBytes = MiB }).Dispose();
        long bat = VhdxFixture.BatOffset(path);
        long length = new FileInfo(path).Length;
        // The log makes block 0 present 64 GiB past the end of an 8 MiB file and writes a
        // sector there, claiming a file that long: nothing of this file reaches that far.
        long far = 64 * 1024 * MiB;
        byte[] batSector = VhdxFixture.ReadAt(path, bat, 4096);
        BinaryPrimitives.WriteUInt64LittleEndian(batSector, (ulong)(far / MiB) << 20 | 6);
        var data = new byte[4096];
        new Random(12).NextBytes(data);
        var ops = new List<(long, long, byte[]?)> { (far, 4096, data) };
        if (withBatEntry)
            ops.Add((bat, 4096, batSector));
        MakeDirty(path, LogEntryOf(Guid.NewGuid(), 30, ops, (ulong)length, (ulong)(far + MiB)));
        AssertRefusedUntouched(path);
    }

    [Fact]
    public void ABatEntryPastTheEndOfTheFileDoesNotDecideWhereNewBlocksGo()
    {
        using var dir = new TempFolder();
        string path = dir.File("far-bat.vhdx");
        using (VirtualDisk disk = VirtualDisk.CreateDynamic(path, 8 * MiB, new DiskCreateOptions { BlockSizeBytes = MiB }))
            disk.Content.Write(new byte[4096], 0, 4096);
        long bat = VhdxFixture.BatOffset(path);
        // Block 1 is said to be present 64 GiB past the end of the file.
        var entry = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(entry, (ulong)(64 * 1024) << 20 | 6);
        VhdxFixture.WriteAt(path, bat + 8, entry);
        long length = new FileInfo(path).Length;
        var sector = new byte[512];
        new Random(4).NextBytes(sector);
        long[] at = { 2 * MiB, 4 * MiB, 8 * MiB - 512 };
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            foreach (long a in at)
            {
                disk.Content.Position = a;
                disk.Content.Write(sector, 0, sector.Length);
            }
            disk.Content.Flush();
            // The block the entry names is refused, naming the file.
            disk.Content.Position = MiB;
            var ex = Assert.Throws<DiskFormatException>(() => disk.Content.Write(sector, 0, sector.Length));
            Assert.Contains(path, ex.Message);
            Assert.Contains("BAT", ex.Message);
        }
        // Three new 1 MiB blocks at the real end of the file, not 64 GiB on.
        Assert.True(new FileInfo(path).Length <= length + 4 * MiB, $"the file grew from {length} to {new FileInfo(path).Length} bytes");
        using VirtualDisk ro = VirtualDisk.Open(path, FileAccess.Read);
        var back = new byte[512];
        foreach (long a in at)
        {
            ro.Content.Position = a;
            ro.Content.ReadExactly(back, 0, back.Length);
            Assert.Equal(sector, back);
        }
    }
}
