using System;
using System.Buffers.Binary;

namespace VmClone.Disks.Vhd;

/// <summary>
/// The block allocation table (spec, "Block Allocation Table and Data Blocks"): one big-endian
/// u32 per block, the sector where the block's bitmap starts, 0xFFFFFFFF for a block not
/// stored. Only the entries the virtual size needs are held; the table must lie inside the
/// file, so its size in memory follows the file's real length.
/// </summary>
internal sealed class BlockAllocationTable
{
    public const uint Unused = 0xFFFFFFFF;
    public const int EntrySize = 4;

    private readonly uint[] _entries;

    private BlockAllocationTable(uint[] entries) => _entries = entries;

    public int Count => _entries.Length;

    public uint this[long block] => _entries[block];

    public bool IsAllocated(long block) => _entries[block] != Unused;

    /// <summary>File offset of block <paramref name="block"/>'s bitmap (the block must be allocated).</summary>
    public long BitmapOffset(long block) => (long)_entries[block] * 512;

    public void Set(long block, uint sector) => _entries[block] = sector;

    public static BlockAllocationTable Parse(ReadOnlySpan<byte> data, int count)
    {
        var entries = new uint[count];
        for (int i = 0; i < count; i++)
            entries[i] = BinaryPrimitives.ReadUInt32BigEndian(data.Slice(i * EntrySize));
        return new BlockAllocationTable(entries);
    }

    /// <summary>An entry as the file stores it.</summary>
    public static byte[] EntryBytes(uint sector)
    {
        var bytes = new byte[EntrySize];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, sector);
        return bytes;
    }
}
