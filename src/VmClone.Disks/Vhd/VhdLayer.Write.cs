using System;
using System.Buffers;
using System.Collections.Generic;

namespace VmClone.Disks.Vhd;

/// <summary>
/// Writing a VHD. A new block goes where the footer at the end lay, its data 4 KiB aligned as
/// Windows places it, in the order that leaves the file readable wherever it is cut off: the
/// block's data, its bitmap, flush; the BAT entry, flush; the footer at the new end, flush. Cut
/// off before the BAT entry, the block is unused space; before the footer, the copy at offset 0
/// still describes the disk. Bitmap bits are set only for the sectors written, so the parent
/// shows through the rest; the rest of a new block's data holds what lies below (the parent's
/// content, or zeros), so readers that ignore the bitmap (qemu) read the same content.
/// In a write batch (<see cref="DiskLayer.BeginBatch"/>) the same order holds for all the
/// batch's writes together: every write's data, one flush; every changed bitmap, one flush;
/// every new BAT entry, one flush; the footer, one flush.
/// </summary>
internal sealed partial class VhdLayer
{
    private bool _identityChanged;

    // What a batch has written data for but not yet made reachable.
    // Bitmaps changed in a batch are held here (not only in the cache, which may be emptied) until written.
    private readonly SortedDictionary<long, byte[]> _pendingBitmaps = new();
    private readonly SortedSet<long> _pendingEntries = new();

    public override void Write(long position, byte[] buffer, int offset, int count)
    {
        EnsureWritable();
        CheckRange(position, count);
        if (count == 0)
            return;
        if (_hasBatmap)
            throw new VirtualDiskException(Path, $"VHD disk '{Path}' carries a XenServer batmap after its BAT; VmClone does not keep a batmap consistent, so it does not write this file (coalesce or copy it with vhd-util first).");
        ChangeIdentity();
        if (_bat is null)
        {
            // A fixed disk: the data in place. In a batch (a conversion) the flush waits for its end.
            _file.Write(position, buffer, offset, count);
            if (!Batching)
                _file.Flush();
            return;
        }
        while (count > 0)
        {
            long block = position / _blockSize;
            long inBlock = position % _blockSize;
            int n = (int)Math.Min(count, _blockSize - inBlock);
            if (_bat.IsAllocated(block))
                WriteStored(block, inBlock, buffer, offset, n);
            else
                WriteNew(block, inBlock, buffer, offset, n);
            position += n;
            offset += n;
            count -= n;
        }
    }

    /// <summary>
    /// Content changes: the footer gets a new unique id (both copies, before any data), so a
    /// child made over this disk before sees that its parent is no longer what it recorded.
    /// </summary>
    private void ChangeIdentity()
    {
        if (_identityChanged)
            return;
        WriteIdentity(Guid.NewGuid());
    }

    internal override void AdoptIdentity(DiskLayer original)
    {
        EnsureWritable();
        if (original is not VhdLayer from)
            throw new ArgumentException($"'{original.Path}' is not a VHD disk.", nameof(original));
        CommitBatch();
        Flush();
        WriteIdentity(from._footer.UniqueId);
    }

    private void WriteIdentity(Guid id)
    {
        _footer.SetUniqueId(id);
        _footer.UpdateChecksum();
        if (_bat is null)
        {
            _file.Write(_footerOffset, _footer.Raw);
        }
        else
        {
            // The copy at 0, then the footer where the next block would go: that is where the
            // footer at the end lies, or (a file cut off mid-write) past everything in use.
            _file.Write(0, _footer.Raw);
            _file.Write(_nextFree, _footer.Raw);
        }
        _file.Flush();
        _identityChanged = true;
    }

    /// <summary>A write into a block already stored: data (whole sectors, partial ones completed from what they read now), flush, then the bitmap when bits change.</summary>
    private void WriteStored(long block, long inBlock, byte[] buffer, int offset, int count)
    {
        long dataAt = _bat!.BitmapOffset(block) + _bitmapBytes;
        byte[] bitmap = Bitmap(block);
        long first = inBlock / 512;
        long end = (inBlock + count + 511) / 512;
        if (inBlock % 512 == 0 && count % 512 == 0)
        {
            _file.Write(dataAt + inBlock, buffer, offset, count);
        }
        else
        {
            int spanLength = (int)((end - first) * 512);
            byte[] span = ArrayPool<byte>.Shared.Rent(spanLength);
            try
            {
                ReadSectorAsItReads(block, first, bitmap, span, 0);
                if (end - 1 != first)
                    ReadSectorAsItReads(block, end - 1, bitmap, span, spanLength - 512);
                Array.Copy(buffer, offset, span, inBlock - first * 512, count);
                _file.Write(dataAt + first * 512, span, 0, spanLength);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(span);
            }
        }
        if (!Batching)
            _file.Flush();
        bool changed = false;
        for (long s = first; s < end; s++)
        {
            if (!BlockBitmap.Get(bitmap, s, _lsbFirstBitmaps))
            {
                changed = true;
                break;
            }
        }
        if (!changed)
            return;
        BlockBitmap.SetRange(bitmap, first, end - first, _lsbFirstBitmaps);
        if (Batching)
        {
            _pendingBitmaps[block] = bitmap;
            return;
        }
        _file.Write(_bat.BitmapOffset(block), bitmap, 0, bitmap.Length);
        _file.Flush();
    }

    /// <summary>One sector of a stored block as a reader sees it now: its own data when its bit is set, else what lies below.</summary>
    private void ReadSectorAsItReads(long block, long sector, byte[] bitmap, byte[] into, int at)
    {
        long virtualAt = block * _blockSize + sector * 512;
        if (BlockBitmap.Get(bitmap, sector, _lsbFirstBitmaps))
            _file.ReadExactly(_bat!.BitmapOffset(block) + _bitmapBytes + sector * 512, into, at, 512, "block data");
        else if (_footer.DiskType == VhdDiskType.Differencing)
            ReadBelow(virtualAt, into, at, 512);
        else
            Array.Clear(into, at, 512);
    }

    /// <summary>A write into a block not yet stored: a new block at the end, in the crash-safe order.</summary>
    private void WriteNew(long block, long inBlock, byte[] buffer, int offset, int count)
    {
        long used = UsedBytes(block);
        long dataAt = RoundUp(_nextFree + _bitmapBytes, 4096);
        long bitmapAt = dataAt - _bitmapBytes;
        long first = inBlock / 512;
        long end = (inBlock + count + 511) / 512;

        // The block's data: the write, and below it what the disk reads there now.
        byte[] data = ArrayPool<byte>.Shared.Rent((int)used);
        try
        {
            if (_footer.DiskType == VhdDiskType.Differencing)
                ReadBelow(block * _blockSize, data, 0, (int)used);
            else
                Array.Clear(data, 0, (int)used);
            Array.Copy(buffer, offset, data, inBlock, count);
            // Runs of zeros are left as holes of the grown file, which read as zeros.
            long headZeros = 0;
            while (headZeros < used && ZeroBytes.All(data.AsSpan((int)headZeros, (int)Math.Min(64 * 1024, used - headZeros))))
                headZeros += Math.Min(64 * 1024, used - headZeros);
            // The last sector is always written: the file then holds the whole block before
            // its BAT entry names it, however much of it is zeros.
            long from = Math.Min(headZeros, used - 512);
            _file.Write(dataAt + from, data, (int)from, (int)(used - from));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(data);
        }
        var bitmap = new byte[Math.Max(1, _blockSize / 512 / 8)];
        BlockBitmap.SetRange(bitmap, first, end - first, _lsbFirstBitmaps);
        uint sector = checked((uint)(bitmapAt / 512));
        long footerAt = dataAt + _blockSize;
        _bat!.Set(block, sector);
        _bitmaps[block] = bitmap;
        _bitmapCacheBytes += bitmap.Length;
        _allocatedBlocks++;
        _nextFree = footerAt;
        if (Batching)
        {
            _pendingBitmaps[block] = bitmap;
            _pendingEntries.Add(block);
            return;
        }
        WriteBitmap(block, bitmap);
        _file.Flush();
        WriteEntry(block);
        _file.Flush();
        _file.Write(footerAt, _footer.Raw, 0, VhdFooter.Length);
        _file.Flush();
    }

    /// <summary>A block's bitmap in the file: its bits, the rest of its sectors zero.</summary>
    private void WriteBitmap(long block, byte[] bitmap)
    {
        var sectors = new byte[_bitmapBytes];
        bitmap.CopyTo(sectors, 0);
        _file.Write(_bat!.BitmapOffset(block), sectors, 0, sectors.Length);
    }

    private void WriteEntry(long block) =>
        _file.Write((long)_header!.TableOffset + block * BlockAllocationTable.EntrySize, BlockAllocationTable.EntryBytes(_bat![block]), 0, BlockAllocationTable.EntrySize);

    /// <summary>Makes a batch's writes reachable: data flushed, then bitmaps, then BAT entries, then the footer, a flush after each.</summary>
    protected override void CommitBatch()
    {
        if (_pendingBitmaps.Count == 0 && _pendingEntries.Count == 0)
            return;
        _file.Flush();
        foreach (KeyValuePair<long, byte[]> pending in _pendingBitmaps)
            WriteBitmap(pending.Key, pending.Value);
        _file.Flush();
        if (_pendingEntries.Count > 0)
        {
            foreach (long block in _pendingEntries)
                WriteEntry(block);
            _file.Flush();
            _file.Write(_nextFree, _footer.Raw, 0, VhdFooter.Length);
            _file.Flush();
        }
        _pendingBitmaps.Clear();
        _pendingEntries.Clear();
    }
}
