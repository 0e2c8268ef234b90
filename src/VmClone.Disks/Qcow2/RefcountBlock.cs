using System;
using System.Buffers.Binary;

namespace VmClone.Disks.Qcow2;

/// <summary>
/// Entries of a refcount block (qcow2.rst "Host cluster management"): one cluster of
/// 2^refcount_order-bit counts. Widths below a byte pack from the least significant bit of
/// each byte; 8 bits and more are big-endian integers.
/// </summary>
internal static class RefcountBlock
{
    /// <summary>Counts one block holds.</summary>
    public static long EntriesPerBlock(long clusterSize, int refcountBits) => clusterSize * 8 / refcountBits;

    public static ulong Get(byte[] block, long index, int bits)
    {
        if (bits < 8)
        {
            long bit = index * bits;
            return (ulong)((block[bit >> 3] >> (int)(bit & 7)) & ((1 << bits) - 1));
        }
        int bytes = bits / 8;
        ReadOnlySpan<byte> at = block.AsSpan((int)(index * bytes), bytes);
        return bytes switch
        {
            1 => at[0],
            2 => BinaryPrimitives.ReadUInt16BigEndian(at),
            4 => BinaryPrimitives.ReadUInt32BigEndian(at),
            _ => BinaryPrimitives.ReadUInt64BigEndian(at),
        };
    }

    public static void Set(byte[] block, long index, int bits, ulong value)
    {
        if (bits < 8)
        {
            long bit = index * bits;
            int shift = (int)(bit & 7);
            int mask = ((1 << bits) - 1) << shift;
            block[bit >> 3] = (byte)((block[bit >> 3] & ~mask) | (((int)value << shift) & mask));
            return;
        }
        int bytes = bits / 8;
        Span<byte> at = block.AsSpan((int)(index * bytes), bytes);
        switch (bytes)
        {
            case 1:
                at[0] = (byte)value;
                break;
            case 2:
                BinaryPrimitives.WriteUInt16BigEndian(at, (ushort)value);
                break;
            case 4:
                BinaryPrimitives.WriteUInt32BigEndian(at, (uint)value);
                break;
            default:
                BinaryPrimitives.WriteUInt64BigEndian(at, value);
                break;
        }
    }
}
