using System;

namespace VmClone.Disks.Vhd;

internal sealed partial class VhdLayer
{
    internal override long MaxResizeSize => VhdFooter.MaxVirtualSize;

    /// <summary>
    /// A new size in the footer (current size and CHS geometry). A fixed disk's footer moves to
    /// the new end of its data; a dynamic or differencing disk's BAT takes the entries the new
    /// size needs, moved to the end of the file when its space cannot hold them.
    /// </summary>
    /// <remarks>
    /// Growing keeps the unique id (children read the same bytes through this disk); shrinking
    /// gives a new one, so a child larger than the new size no longer links to it. A disk whose
    /// size its creator states by geometry alone ("vpc ", "qemu") takes only sizes a geometry
    /// can state exactly.
    /// </remarks>
    internal override void ResizeInPlace(long newSize)
    {
        EnsureWritable();
        CommitBatch();
        if (_hasBatmap)
            throw new DiskResizeException(Path, ResizeProblem.Unsupported,
                $"VHD disk '{Path}' carries a XenServer batmap after its BAT; VmClone does not keep a batmap consistent, so it does not resize this file (coalesce or copy it with vhd-util first).");
        if (_sizeByGeometry && DiskGeometry.ForSectors(newSize / 512).TotalSectors * 512 != newSize)
            throw new DiskResizeException(Path, ResizeProblem.InvalidSize,
                $"VHD disk '{Path}' states its size by its CHS geometry (creator \"{_footer.CreatorApplication}\"), and no geometry gives exactly {newSize} bytes; choose {DiskGeometry.ForSectors(newSize / 512).TotalSectors * 512} bytes.");
        bool shrink = newSize < _virtualSize;
        byte[] before = (byte[])_footer.Raw.Clone();
        _footer.SetSize(newSize);
        if (shrink)
            _footer.SetUniqueId(Guid.NewGuid());
        _footer.UpdateChecksum();
        if (_bat is null)
            ResizeFixed(newSize);
        else
            ResizeDynamic(newSize, shrink, before);
        _virtualSize = newSize;
    }

    /// <summary>
    /// The footer written at the new end of the data, flushed; then the old footer's sector
    /// cleared when it now lies inside the disk and the file cut to its new length. Cut off
    /// between the two, the file opens at the new size (its last sector is the new footer).
    /// </summary>
    private void ResizeFixed(long newSize)
    {
        long oldFooter = _footerOffset;
        _file.Write(newSize, _footer.Raw, 0, VhdFooter.Length);
        _file.Flush();
        if (oldFooter < newSize)
            _file.Write(oldFooter, new byte[VhdFooter.Length], 0, VhdFooter.Length);
        _file.SetLength(newSize + VhdFooter.Length);
        _file.Flush();
        _footerOffset = newSize;
    }

    /// <summary>
    /// To grow: the added entries made unused in place, or a new BAT at the end of the file, then
    /// the dynamic header pointing at it (its first sector holds the table offset, the count and
    /// the checksum), then both footer copies with the new size, each step flushed. Cut off before
    /// the footers, the file opens at the old size.
    /// </summary>
    private void ResizeDynamic(long newSize, bool shrink, byte[] oldFooter)
    {
        DynamicHeader h = _header!;
        long blocks = _bat!.Count;
        long newBlocks = (newSize + _blockSize - 1) / _blockSize;
        long tableAt = (long)h.TableOffset;
        if (!shrink && newBlocks > blocks)
        {
            // The table's space: whole sectors, as every creator writes it.
            long capacity = RoundUp(h.MaxTableEntries * (long)BlockAllocationTable.EntrySize, 512) / BlockAllocationTable.EntrySize;
            if (newBlocks <= capacity)
            {
                _file.Write(tableAt + blocks * BlockAllocationTable.EntrySize, UnusedEntries(newBlocks - blocks));
                _file.Flush();
                if (newBlocks > h.MaxTableEntries)
                    WriteHeaderTable(h, (ulong)tableAt, (uint)newBlocks);
            }
            else
            {
                long newTableAt = RoundUp(_nextFree, 512);
                long tableBytes = RoundUp(newBlocks * BlockAllocationTable.EntrySize, 512);
                byte[] table = UnusedEntries(tableBytes / BlockAllocationTable.EntrySize);
                for (long b = 0; b < blocks; b++)
                    BlockAllocationTable.EntryBytes(_bat[b]).CopyTo(table, (int)(b * BlockAllocationTable.EntrySize));
                // The new table and a footer past it (still the old size): the file reads as before.
                _file.Write(newTableAt, table);
                _nextFree = newTableAt + tableBytes;
                _file.Write(_nextFree, oldFooter, 0, VhdFooter.Length);
                _file.Flush();
                WriteHeaderTable(h, (ulong)newTableAt, (uint)newBlocks);
            }
        }
        _file.Write(0, _footer.Raw, 0, VhdFooter.Length);
        _file.Write(_nextFree, _footer.Raw, 0, VhdFooter.Length);
        _file.SetLength(_nextFree + VhdFooter.Length);
        _file.Flush();
    }

    private void WriteHeaderTable(DynamicHeader h, ulong tableOffset, uint entries)
    {
        h.SetTable(tableOffset, entries);
        h.UpdateChecksum();
        _file.Write((long)_footer.DataOffset, h.Raw, 0, DynamicHeader.Length);
        _file.Flush();
    }

    private static byte[] UnusedEntries(long count)
    {
        var bytes = new byte[count * BlockAllocationTable.EntrySize];
        bytes.AsSpan().Fill(0xFF);
        return bytes;
    }
}
