using System;
using System.Buffers.Binary;

namespace VmClone.Disks.Vmdk;

internal sealed partial class SparseExtent
{
    /// <summary>
    /// A new capacity in the header, with grain directories that cover it: entries added in place
    /// when the directories' last sectors have room (both set to "no table", which writes then
    /// allocate), else both directories copied to the end of the file first. The header's
    /// capacity and directory offsets then change in one write of its sector, flushed: cut off
    /// before it, the extent opens at the old capacity with its old directories intact.
    /// </summary>
    public void Resize(ulong capacitySectors)
    {
        if (_headerOffset != 0 || ReadOnlyReason is not null)
            throw new DiskResizeException(_file.Path, ResizeProblem.Unsupported,
                $"'{_file.Path}' is streamOptimized; VmClone does not resize it (convert it to monolithicSparse first).");
        ulong perGt = _header.SectorsPerGt;
        long oldEntries = _gd.Length;
        long newEntries = (long)((capacitySectors + perGt - 1) / perGt);
        ulong gdOffset = _header.GdOffset, rgdOffset = _header.RgdOffset;
        if (newEntries > oldEntries)
        {
            long room = (oldEntries * 4 + 511) / 512 * 512 / 4;
            if (newEntries <= room)
            {
                var zeros = new byte[(newEntries - oldEntries) * 4];
                if (_rgd is not null)
                    _file.Write((long)rgdOffset * 512 + oldEntries * 4, zeros, 0, zeros.Length);
                _file.Write((long)gdOffset * 512 + oldEntries * 4, zeros, 0, zeros.Length);
            }
            else
            {
                long bytes = (newEntries * 4 + 511) / 512 * 512;
                if (_rgd is not null)
                {
                    rgdOffset = Allocate(bytes, 512);
                    WriteDirectory(rgdOffset, _rgd, bytes);
                }
                gdOffset = Allocate(bytes, 512);
                WriteDirectory(gdOffset, _gd, bytes);
            }
            _file.Flush();
        }
        byte[] sector = _file.ReadBytes(0, SparseExtentHeader.Size, "sparse extent header");
        BinaryPrimitives.WriteUInt64LittleEndian(sector.AsSpan(SparseExtentHeader.OffCapacity), capacitySectors);
        BinaryPrimitives.WriteUInt64LittleEndian(sector.AsSpan(SparseExtentHeader.OffRgdOffset), rgdOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(sector.AsSpan(SparseExtentHeader.OffGdOffset), gdOffset);
        _file.Write(0, sector, 0, sector.Length);
        _file.Flush();
        _header.Capacity = capacitySectors;
        _header.GdOffset = gdOffset;
        _header.RgdOffset = rgdOffset;
    }

    private void WriteDirectory(ulong sector, uint[] entries, long bytes)
    {
        var table = new byte[bytes];
        GrainTable.ToBytes(entries, 0, entries.Length).AsSpan(0, entries.Length * 4).CopyTo(table);
        _file.Write((long)sector * 512, table, 0, table.Length);
    }
}
