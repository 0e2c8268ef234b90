using System;
using System.Buffers.Binary;

namespace VmClone.Disks.Vmdk;

/// <summary>
/// Grain directory and grain tables (spec B.2): arrays of u32 sector numbers. A GD entry
/// points at a grain table (0 = table not allocated); a GT entry points at a grain
/// (0 = unallocated: read the parent; 1 with header flag bit 2 = zeroed grain: zeros even
/// over a parent). In streamOptimized extents a GT entry points at the grain's marker.
/// </summary>
internal static class GrainTable
{
    /// <summary>GTE/GDE value: nothing allocated.</summary>
    public const uint Unallocated = 0;

    /// <summary>GTE value of a zeroed grain (only with header flag bit 2).</summary>
    public const uint Zeroed = 1;

    /// <summary>Decodes <paramref name="count"/> little-endian u32 entries.</summary>
    public static uint[] Parse(byte[] bytes, int count) => Parse(new ReadOnlySpan<byte>(bytes), count);

    /// <summary>Decodes <paramref name="count"/> little-endian u32 entries.</summary>
    public static uint[] Parse(ReadOnlySpan<byte> bytes, int count)
    {
        var entries = new uint[count];
        for (int i = 0; i < count; i++)
            entries[i] = BinaryPrimitives.ReadUInt32LittleEndian(bytes.Slice(i * 4, 4));
        return entries;
    }

    /// <summary>Encodes entries as little-endian u32.</summary>
    public static byte[] ToBytes(uint[] entries, int start, int count)
    {
        var bytes = new byte[count * 4];
        for (int i = 0; i < count; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(bytes, i * 4, 4), entries[start + i]);
        return bytes;
    }
}
