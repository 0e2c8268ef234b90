using System;
using System.Collections.Generic;

namespace VmClone.Disks.Vhdx;

internal sealed partial class VhdxLayer
{
    private const int MaxBatchEntries = 1 << 16; // bounds a batch's plan (a few MiB)

    /// <summary>The current batch's metadata changes, committed by <see cref="CommitBatch"/>; null outside a batch.</summary>
    private WritePlan? _batchPlan;

    /// <summary>What one Write call changes in metadata, committed in crash-safe order at its end.</summary>
    private sealed class WritePlan
    {
        public readonly SortedDictionary<long, BatEntry> PayloadEntries = new();
        public readonly List<(long Block, long FirstSector, long LastSector, bool Fresh)> Bits = new();
        public bool DataWritten;
    }

    public override void Write(long position, byte[] buffer, int offset, int count)
    {
        EnsureWritable();
        CheckRange(position, count);
        if (count == 0)
            return;
        if (_parameters.HasParent && Parent is null)
            throw new VirtualDiskException(Path, $"'{Path}' is a differencing disk opened without its parent; it cannot be written (sectors partly written would need the parent's content).");
        BeginUserVisibleChange();
        // In a batch, whole-sector writes add to one plan committed at the batch's end; a write
        // with a partial sector may need the bits of earlier writes, so it commits them first.
        bool deferred = Batching && position % _logicalSectorSize == 0 && count % _logicalSectorSize == 0;
        if (!deferred)
            CommitBatch();
        WritePlan plan = deferred ? _batchPlan ??= new WritePlan() : new WritePlan();
        while (count > 0)
        {
            long block = position / BlockSize;
            long inBlock = position % BlockSize;
            int n = (int)Math.Min(count, BlockSize - inBlock);
            WriteIntoBlock(block, inBlock, buffer, offset, n, plan);
            position += n;
            offset += n;
            count -= n;
        }
        if (!deferred)
            Commit(plan);
        else if (plan.PayloadEntries.Count + plan.Bits.Count >= MaxBatchEntries)
            CommitBatch();
    }

    /// <summary>Commits the current batch's plan (see <see cref="DiskLayer.BeginBatch"/>).</summary>
    protected override void CommitBatch()
    {
        if (_batchPlan is not WritePlan plan)
            return;
        _batchPlan = null;
        Commit(plan);
    }

    private void WriteIntoBlock(long block, long inBlock, byte[] buffer, int offset, int count, WritePlan plan)
    {
        long index = _bat.PayloadIndex(block);
        // A block an earlier write of the same batch allocated is where that write put it.
        bool pending = plan.PayloadEntries.TryGetValue(index, out BatEntry e);
        if (!pending)
            e = _bat[index];
        long used = Math.Min(BlockSize, _virtualSize - block * BlockSize);
        plan.DataWritten = true;
        switch (e.State)
        {
            case BatState.FullyPresent:
                _view.Write((pending ? e.FileOffset : ValidatedBlockOffset(block, e)) + inBlock, buffer, offset, count);
                return;
            case BatState.PartiallyPresent:
            {
                long fileOffset = pending ? e.FileOffset : ValidatedBlockOffset(block, e);
                // A pending block's bits are still in the plan; batched writes cover whole
                // sectors, so no edge sector needs them.
                WriteSectors(block, fileOffset, inBlock, buffer, offset, count, pending ? null : BitmapSlice(block));
                plan.Bits.Add((block, inBlock / _logicalSectorSize, (inBlock + count - 1) / _logicalSectorSize, false));
                return;
            }
            case BatState.NotPresent when _parameters.HasParent:
            {
                long fileOffset = Allocate(BlockSize);
                if (inBlock == 0 && count == used)
                {
                    _view.Write(fileOffset, buffer, offset, count);
                    plan.PayloadEntries[index] = new BatEntry(BatState.FullyPresent, fileOffset);
                    return;
                }
                // A fresh block: every sector not written stays the parent's (bit clear).
                WriteSectors(block, fileOffset, inBlock, buffer, offset, count, null);
                plan.Bits.Add((block, inBlock / _logicalSectorSize, (inBlock + count - 1) / _logicalSectorSize, true));
                plan.PayloadEntries[index] = new BatEntry(BatState.PartiallyPresent, fileOffset);
                return;
            }
            case BatState.NotPresent:
            case BatState.Undefined:
            case BatState.Zero:
            case BatState.Unmapped:
            case BatState.UnmappedV095:
            {
                // These read as zeros (also in a differencing disk, where ZERO hides the parent):
                // the new block is zero-filled by extending the file, so only the written bytes go in.
                long fileOffset = Allocate(BlockSize);
                _view.Write(fileOffset + inBlock, buffer, offset, count);
                plan.PayloadEntries[index] = new BatEntry(BatState.FullyPresent, fileOffset);
                return;
            }
            default:
                throw BatError(index, $"payload block {block} has undefined state {e.RawState}; refusing to write into it (MS-VHDX 2.5.1.1)");
        }
    }

    /// <summary>
    /// Writes bytes into a differencing block; an edge sector only partly covered whose bit is
    /// clear is first filled with the parent's content so the whole sector can become ours.
    /// </summary>
    private void WriteSectors(long block, long fileOffset, long inBlock, byte[] buffer, int offset, int count, byte[]? slice)
    {
        int lss = _logicalSectorSize;
        long start = inBlock, end = inBlock + count;
        long virtualBlock = block * BlockSize;

        void WritePiece(long from, long to)
        {
            // Only called for a sector the write covers partly.
            long sector = from / lss;
            if (slice is null || !SectorBitmap.Get(slice, sector))
            {
                var data = new byte[lss];
                ReadBelow(virtualBlock + sector * lss, data, 0, lss);
                Array.Copy(buffer, offset + (from - inBlock), data, from - sector * lss, to - from);
                _view.Write(fileOffset + sector * lss, data, 0, lss);
            }
            else
            {
                _view.Write(fileOffset + from, buffer, (int)(offset + (from - inBlock)), (int)(to - from));
            }
        }

        if (start % lss != 0)
        {
            long pieceEnd = Math.Min(end, (start / lss + 1) * lss);
            WritePiece(start, pieceEnd);
            start = pieceEnd;
        }
        if (start < end && end % lss != 0)
        {
            long tailStart = (end - 1) / lss * lss;
            WritePiece(tailStart, end);
            end = tailStart;
        }
        if (start < end)
            _view.Write(fileOffset + start, buffer, (int)(offset + (start - inBlock)), (int)(end - start));
    }

    /// <summary>Reserves <paramref name="length"/> bytes at the 1 MiB aligned end of the file, zero-filled by extending it.</summary>
    private long Allocate(long length)
    {
        long at = _nextFreeOffset;
        _nextFreeOffset = at + VhdxConstants.RoundUp(length, VhdxConstants.MiB);
        if (_file.Length < _nextFreeOffset)
            _view.SetLength(_nextFreeOffset);
        return at;
    }

    /// <summary>The ordered, flushed metadata updates described on the class.</summary>
    private void Commit(WritePlan plan)
    {
        if (plan.DataWritten)
            _unflushed = true;
        if (plan.PayloadEntries.Count == 0 && plan.Bits.Count == 0)
            return;
        _view.Flush();

        var newBitmapEntries = new SortedDictionary<long, BatEntry>();
        // Every block's bits gathered first (a batch may write one block several times; its
        // first write says whether the block is fresh), then each slice written once.
        var slices = new SortedDictionary<long, (byte[] Slice, long SbOffset)>();
        foreach (var (block, first, last, fresh) in plan.Bits)
        {
            if (!slices.TryGetValue(block, out var target))
            {
                long sbIndex = _bat.BitmapIndexForBlock(block)!.Value;
                BatEntry sb = newBitmapEntries.TryGetValue(sbIndex, out BatEntry pending) ? pending : _bat[sbIndex];
                byte[] initial;
                if (sb.State != BatState.FullyPresent)
                {
                    sb = new BatEntry(BatState.FullyPresent, Allocate(VhdxConstants.SectorBitmapBlockSize));
                    newBitmapEntries[sbIndex] = sb;
                    initial = new byte[_bat.BitmapBytesPerBlock];
                }
                else if (fresh)
                {
                    CheckStoredRange(sbIndex, sb, VhdxConstants.SectorBitmapBlockSize, "sector bitmap block");
                    initial = new byte[_bat.BitmapBytesPerBlock];
                }
                else
                {
                    initial = BitmapSlice(block);
                }
                target = (initial, sb.FileOffset);
                slices[block] = target;
            }
            SectorBitmap.SetRange(target.Slice, first, last);
        }
        foreach (var kv in slices)
        {
            long block = kv.Key;
            byte[] slice = kv.Value.Slice;
            _view.Write(kv.Value.SbOffset + (block % _bat.ChunkRatio) * slice.Length, slice);
            _bitmaps.Put(block, slice);
            long index = _bat.PayloadIndex(block);
            if (SectorBitmap.AllSet(slice))
            {
                // Every sector is ours: the block no longer needs the parent or its bitmap.
                long fileOffset = plan.PayloadEntries.TryGetValue(index, out BatEntry p) ? p.FileOffset : _bat[index].FileOffset;
                plan.PayloadEntries[index] = new BatEntry(BatState.FullyPresent, fileOffset);
                _bitmaps.Remove(block);
            }
        }
        if (plan.Bits.Count > 0)
            _view.Flush();
        if (newBitmapEntries.Count > 0)
        {
            WriteBatEntries(newBitmapEntries);
            _view.Flush();
        }
        foreach (var kv in plan.PayloadEntries)
        {
            BatEntry old = _bat[kv.Key];
            bool wasStored = old.State is BatState.FullyPresent or BatState.PartiallyPresent;
            if (!wasStored)
                _allocatedBlocks++;
        }
        WriteBatEntries(plan.PayloadEntries);
        _view.Flush();
        _unflushed = false;
    }

    /// <summary>Writes BAT entries in place, runs of adjacent entries in one write.</summary>
    private void WriteBatEntries(SortedDictionary<long, BatEntry> entries)
    {
        long runStart = -1, runEnd = -1;
        foreach (var kv in entries)
        {
            _bat[kv.Key] = kv.Value;
            if (kv.Key == runEnd)
            {
                runEnd++;
                continue;
            }
            if (runStart >= 0)
                _view.Write(_regions.Bat.FileOffset + runStart * BatEntry.Size, _bat.ToBytes(runStart, (int)(runEnd - runStart)));
            runStart = kv.Key;
            runEnd = kv.Key + 1;
        }
        if (runStart >= 0)
            _view.Write(_regions.Bat.FileOffset + runStart * BatEntry.Size, _bat.ToBytes(runStart, (int)(runEnd - runStart)));
    }

    /// <summary>
    /// 2.2.2: a new FileWriteGuid before the first modification of the file, a new DataWriteGuid
    /// before the first change a guest could see; both in one header update.
    /// </summary>
    private void BeginUserVisibleChange()
    {
        if (_dataWriteGuidChanged)
            return;
        bool newFileGuid = !_fileWriteGuidChanged;
        UpdateHeader(h =>
        {
            if (newFileGuid)
                h.FileWriteGuid = Guid.NewGuid();
            h.DataWriteGuid = Guid.NewGuid();
        });
        _fileWriteGuidChanged = true;
        _dataWriteGuidChanged = true;
    }

    internal override void AdoptIdentity(DiskLayer original)
    {
        EnsureWritable();
        if (original is not VhdxLayer from)
            throw new ArgumentException($"'{original.Path}' is not a VHDX disk.", nameof(original));
        CommitBatch();
        Flush();
        Guid data = from.DataWriteGuid;
        UpdateHeader(h =>
        {
            h.FileWriteGuid = Guid.NewGuid();
            h.DataWriteGuid = data;
        });
        _fileWriteGuidChanged = true;
        _dataWriteGuidChanged = true;
    }

    /// <summary>
    /// 2.2.2.1: write the changed header to the non-current slot with the next sequence number,
    /// flush, then the same to the other slot, so a torn write always leaves one valid header.
    /// </summary>
    private void UpdateHeader(Action<VhdxHeader> change)
    {
        VhdxHeader next = _header.Clone();
        change(next);
        for (int i = 0; i < 2; i++)
        {
            next.SequenceNumber = _header.SequenceNumber + 1;
            int target = 1 - _headerSlot;
            _view.Write(HeaderOffset(target), next.ToBytes());
            _view.Flush();
            _header = next.Clone();
            _headerSlot = target;
        }
        _otherHeaderValid = true;
    }
}
