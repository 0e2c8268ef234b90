using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhdx;
using Xunit;

namespace VmClone.Disks.Tests.Vhdx;

/// <summary>Log replay on crafted logs: a good one, and hostile ones that must neither hang nor be trusted.</summary>
public class VhdxLogTests
{
    private const long MiB = 1024 * 1024;
    private const long LogOffset = MiB;

    /// <summary>A disk whose BAT says block 0 is NOT_PRESENT while a log entry would make it FULLY_PRESENT at a written block.</summary>
    private static (string Path, Guid LogGuid, byte[] Block) DirtyDisk(TempFolder dir)
    {
        string path = dir.File("dirty.vhdx");
        VirtualDisk.CreateDynamic(path, 8 * MiB, new DiskCreateOptions { BlockSizeBytes = MiB }).Dispose();
        long bat = VhdxFixture.BatOffset(path);
        long blockAt = new FileInfo(path).Length; // a block's worth of data after the BAT, not yet referenced
        var block = new byte[MiB];
        new Random(5).NextBytes(block);
        VhdxFixture.WriteAt(path, blockAt, block);
        byte[] batSector = VhdxFixture.ReadAt(path, bat, 4096);
        BinaryPrimitives.WriteUInt64LittleEndian(batSector, (ulong)(blockAt / MiB) << 20 | 6);
        var logGuid = Guid.NewGuid();
        long length = new FileInfo(path).Length;
        byte[] entry = LogEntry.Build(logGuid, 10, 0, new[] { (bat, batSector) }, (ulong)length, (ulong)length);
        VhdxFixture.WriteAt(path, LogOffset, entry);
        VhdxFixture.EditHeaders(path, h => h.LogGuid = logGuid);
        return (path, logGuid, block);
    }

    [Fact]
    public void CraftedLogIsReplayedInMemoryReadOnlyAndIntoTheFileReadWrite()
    {
        using var dir = new TempFolder();
        var (path, _, block) = DirtyDisk(dir);
        string before = Hashing.Sha256File(path);
        using (VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read))
        {
            Assert.Equal(block, VhdxFixture.ReadAll(d)[..(int)MiB]);
            Assert.Contains(d.Top.Check(), p => p.Contains("not been replayed"));
        }
        Assert.Equal(before, Hashing.Sha256File(path));
        using (VirtualDisk d = VirtualDisk.Open(path, FileAccess.ReadWrite))
            Assert.Equal(block, VhdxFixture.ReadAll(d)[..(int)MiB]);
        Assert.NotEqual(before, Hashing.Sha256File(path));
        using (var layer = (VhdxLayer)VirtualDisk.OpenLayer(path, FileAccess.Read))
        {
            Assert.Equal(Guid.Empty, layer.LogGuid);
            Assert.Empty(layer.Check());
            Assert.Equal(BatState.FullyPresent, layer.Bat.Payload(0).State);
        }
    }

    [Fact]
    public void EntryWithABadChecksumIsNotReplayed()
    {
        using var dir = new TempFolder();
        var (path, _, _) = DirtyDisk(dir);
        VhdxFixture.WriteAt(path, LogOffset + 4096 + 100, new byte[] { 0xFF, 0xFE }); // inside the data sector
        using VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read);
        Assert.Equal(new byte[MiB], VhdxFixture.ReadAll(d)[..(int)MiB]);
        Assert.Contains("no complete log sequence", d.Top.Details["Log"]);
    }

    [Fact]
    public void LogClaimingMoreFlushedDataThanTheFileHoldsIsRefused()
    {
        using var dir = new TempFolder();
        var (path, logGuid, _) = DirtyDisk(dir);
        long bat = VhdxFixture.BatOffset(path);
        byte[] entry = LogEntry.Build(logGuid, 10, 0, new[] { (bat, new byte[4096]) }, 1UL << 40, 1UL << 40);
        VhdxFixture.WriteAt(path, LogOffset, entry);
        string before = Hashing.Sha256File(path);
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(path, FileAccess.ReadWrite));
        Assert.Contains(path, ex.Message);
        Assert.Contains("flushed", ex.Message);
        Assert.Equal(before, Hashing.Sha256File(path));
    }

    [Fact]
    public void LogEntryWritingIntoTheHeadersIsRefused()
    {
        using var dir = new TempFolder();
        var (path, logGuid, _) = DirtyDisk(dir);
        long length = new FileInfo(path).Length;
        byte[] entry = LogEntry.Build(logGuid, 10, 0, new[] { (64 * 1024L, new byte[4096]) }, (ulong)length, (ulong)length);
        VhdxFixture.WriteAt(path, LogOffset, entry);
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(path, FileAccess.Read));
        Assert.Contains(path, ex.Message);
        Assert.Contains("log", ex.Message);
    }

    [Fact]
    public async System.Threading.Tasks.Task HostileLogFullOfCrossLinkedEntriesIsScannedInBoundedTime()
    {
        using var dir = new TempFolder();
        var (path, logGuid, _) = DirtyDisk(dir);
        long length = new FileInfo(path).Length;
        long bat = VhdxFixture.BatOffset(path);
        // Every 8 KiB a valid entry whose tail points at the next slot and whose sequence numbers never chain.
        var log = new byte[MiB];
        for (int slot = 0; slot < 128; slot++)
        {
            uint tail = (uint)((slot + 1) % 128 * 8192);
            byte[] entry = LogEntry.Build(logGuid, (ulong)(1000 + slot * 7), tail, new[] { (bat, new byte[4096]) }, (ulong)length, (ulong)length);
            entry.CopyTo(log, slot * 8192);
        }
        VhdxFixture.WriteAt(path, LogOffset, log);
        // A hang guard, not a speed measurement: the scan's work is bounded, so it ends.
        var open = System.Threading.Tasks.Task.Run(() =>
        {
            using VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read);
            return d.Top.Details["Log"];
        });
        var finished = await System.Threading.Tasks.Task.WhenAny(open, System.Threading.Tasks.Task.Delay(TimeSpan.FromMinutes(2)));
        Assert.True(finished == open, "opening a disk with a cross-linked log did not finish");
        Assert.Contains("no complete log sequence", await open);
    }

    [Fact]
    public void SequenceWithTheHighestCompleteHeadWins()
    {
        using var dir = new TempFolder();
        var (path, logGuid, block) = DirtyDisk(dir);
        long length = new FileInfo(path).Length;
        long bat = VhdxFixture.BatOffset(path);
        byte[] batSector = VhdxFixture.ReadAt(path, bat, 4096); // still NOT_PRESENT on disk
        // Entry 10 at 0 (tail 0) makes block 0 present; entry 11 at 8 KiB continues it (tail 0) and adds block 1.
        byte[] afterFirst = (byte[])batSector.Clone();
        long blockAt = length - MiB;
        // Block 1 gets its own copy of the data: a block in the file belongs to one BAT entry.
        VhdxFixture.WriteAt(path, length, block);
        BinaryPrimitives.WriteUInt64LittleEndian(afterFirst, (ulong)(blockAt / MiB) << 20 | 6);
        BinaryPrimitives.WriteUInt64LittleEndian(afterFirst.AsSpan(8), (ulong)(length / MiB) << 20 | 6);
        length += MiB;
        VhdxFixture.WriteAt(path, LogOffset + 8192, LogEntry.Build(logGuid, 11, 0, new[] { (bat, afterFirst) }, (ulong)length, (ulong)length));
        // A stale, higher-numbered entry whose tail points at itself but whose checksum is broken must not win.
        byte[] stale = LogEntry.Build(logGuid, 50, 16384, new[] { (bat, new byte[4096]) }, (ulong)length, (ulong)length);
        stale[5000] ^= 1;
        VhdxFixture.WriteAt(path, LogOffset + 16384, stale);
        using VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read);
        byte[] all = VhdxFixture.ReadAll(d);
        Assert.Equal(block, all[..(int)MiB]);
        Assert.Equal(block, all[(int)MiB..(int)(2 * MiB)]);
        Assert.Contains("2 entries", d.Top.Details["Log"]);
    }
}
