using System;

namespace VmClone.Disks.Vhdx;

internal sealed partial class VhdxLayer
{
    internal override long MaxResizeSize => VhdxConstants.MaxVirtualSize;

    /// <summary>
    /// A new virtual disk size (2.6.2.2), with the BAT region grown when the new size needs more
    /// entries than it holds (2.5). Entries keep their indices at any size (payload entry n and
    /// the sector bitmap entry after every chunkRatio of them depend only on the block), so
    /// growing only appends entries.
    /// </summary>
    /// <remarks>
    /// Order, each step flushed: the header (new FileWriteGuid; on a shrink a new DataWriteGuid too,
    /// since a child larger than the new size would read content that is gone); then, to grow,
    /// the added entries cleared in place or, when the region is too small, a copy of the BAT at
    /// the end of the file and region table copy 1 then copy 2 pointing at it; then the size item
    /// (8 bytes in one sector). Cut off before the size item, the file opens at the old size
    /// (with a larger BAT region, the old one left as unused space); after it, at the new size.
    /// A shrink writes the size first and only then clears the entries past the new end, which
    /// the file no longer reads, so they cannot come back if the disk grows again.
    /// </remarks>
    internal override void ResizeInPlace(long newSize)
    {
        EnsureWritable();
        CommitBatch();
        bool shrink = newSize < _virtualSize;
        long oldEntries = _bat.EntryCount;
        long newEntries = Bat.ComputeEntryCount(newSize, BlockSize, _logicalSectorSize, _parameters.HasParent);
        long neededBytes = newEntries * BatEntry.Size;
        long regionLength = VhdxConstants.RoundUp(neededBytes, VhdxConstants.MiB);
        if (!shrink && neededBytes > _regions.Bat.Length && regionLength > uint.MaxValue - VhdxConstants.MiB)
            throw new DiskResizeException(Path, ResizeProblem.InvalidSize,
                $"'{Path}' cannot grow to {newSize} bytes: with its {BlockSize}-byte blocks the BAT would be larger than a VHDX region can hold.");

        UpdateHeader(h =>
        {
            h.FileWriteGuid = Guid.NewGuid();
            if (shrink)
                h.DataWriteGuid = Guid.NewGuid();
        });
        _fileWriteGuidChanged = true;
        _dataWriteGuidChanged |= shrink;

        if (!shrink)
        {
            if (neededBytes <= _regions.Bat.Length)
                ClearBatRange(_regions.Bat.FileOffset, oldEntries, newEntries);
            else
                MoveBat(oldEntries, regionLength);
            _view.Flush();
        }
        _view.Write(_virtualSizeItemOffset, VirtualDiskMetadata.UInt64Bytes((ulong)newSize));
        _view.Flush();
        _virtualSize = newSize;
        if (shrink && newEntries < oldEntries)
        {
            ClearBatRange(_regions.Bat.FileOffset, newEntries, oldEntries);
            _view.Flush();
        }
    }

    /// <summary>Writes zeros (NOT_PRESENT) over entries [<paramref name="from"/>, <paramref name="to"/>) of the BAT at <paramref name="batOffset"/>.</summary>
    private void ClearBatRange(long batOffset, long from, long to)
    {
        var zeros = new byte[(int)Math.Min((to - from) * BatEntry.Size, VhdxConstants.MiB)];
        for (long at = from * BatEntry.Size; at < to * BatEntry.Size; at += zeros.Length)
            _view.Write(batOffset + at, zeros, 0, (int)Math.Min(zeros.Length, to * BatEntry.Size - at));
    }

    /// <summary>
    /// Copies the BAT's <paramref name="entries"/> entries to a new region of <paramref name="length"/>
    /// bytes at the 1 MiB aligned end of the file (the rest of it zeros from extending the file),
    /// then points both region table copies at it, one after the other (2.2.3): a torn copy 1 leaves
    /// copy 2 and the old BAT, which is still intact.
    /// </summary>
    private void MoveBat(long entries, long length)
    {
        RegionTableEntry old = _regions.Bat;
        long at = Allocate(length);
        var buffer = new byte[(int)Math.Min(Math.Max(entries * BatEntry.Size, 1), VhdxConstants.MiB)];
        for (long done = 0; done < entries * BatEntry.Size; done += buffer.Length)
        {
            int n = (int)Math.Min(buffer.Length, entries * BatEntry.Size - done);
            _view.ReadExactly(old.FileOffset + done, buffer, 0, n, "BAT");
            _view.Write(at + done, buffer, 0, n);
        }
        _view.Flush();
        var moved = new RegionTableEntry[_regions.Entries.Count];
        for (int i = 0; i < moved.Length; i++)
        {
            RegionTableEntry e = _regions.Entries[i];
            moved[i] = e.Id == RegionTable.BatRegion ? new RegionTableEntry(e.Id, at, (uint)length, e.Required) : e;
        }
        var table = new RegionTable(moved);
        byte[] bytes = table.ToBytes();
        _view.Write(VhdxConstants.RegionTable1Offset, bytes);
        _view.Flush();
        _view.Write(VhdxConstants.RegionTable2Offset, bytes);
        _view.Flush();
        _regions = table;
    }
}
