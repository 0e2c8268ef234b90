using System;
using System.Collections.Generic;

namespace VmClone.Disks.Vhdx;

/// <summary>
/// Sector bitmap handling ([MS-VHDX] 2.5.1.2, 2.6 differencing): a 1 MiB sector bitmap block
/// covers chunkRatio payload blocks; bit n (LSB first in each byte) says whether logical
/// sector n of the chunk is stored in this file (set) or comes from the parent (clear).
/// We handle the bitmap one payload block at a time: the slice of BlockSize /
/// LogicalSectorSize bits that belongs to it (512 bytes for 2 MiB blocks of 512-byte sectors).
/// </summary>
internal static class SectorBitmap
{
    public static bool Get(byte[] slice, long bit) => (slice[bit >> 3] & (1 << (int)(bit & 7))) != 0;

    public static void SetRange(byte[] slice, long first, long last)
    {
        for (long b = first; b <= last; b++)
            slice[b >> 3] |= (byte)(1 << (int)(b & 7));
    }

    public static bool AllSet(byte[] slice)
    {
        foreach (byte b in slice)
            if (b != 0xFF)
                return false;
        return true;
    }

    /// <summary>Number of consecutive bits equal to bit <paramref name="start"/>, at most <paramref name="max"/>; byte-at-a-time where possible.</summary>
    public static long RunLength(byte[] slice, long start, long max, out bool value)
    {
        value = Get(slice, start);
        byte whole = value ? (byte)0xFF : (byte)0;
        long bit = start;
        long end = start + max;
        while (bit < end)
        {
            if ((bit & 7) == 0 && bit + 8 <= end && slice[bit >> 3] == whole)
            {
                bit += 8;
                continue;
            }
            if (Get(slice, bit) != value)
                break;
            bit++;
        }
        return bit - start;
    }
}

/// <summary>
/// Cached bitmap slices of partially present blocks, so a read does not go back to the file
/// for every sector. Bounded: when the cache would pass its byte budget it is emptied.
/// </summary>
internal sealed class SectorBitmapCache
{
    private const long BudgetBytes = 64L * 1024 * 1024;
    private readonly Dictionary<long, byte[]> _slices = new();
    private long _bytes;

    public bool TryGet(long block, out byte[] slice) => _slices.TryGetValue(block, out slice!);

    public void Put(long block, byte[] slice)
    {
        if (_slices.TryGetValue(block, out byte[]? old))
            _bytes -= old.Length;
        if (_bytes + slice.Length > BudgetBytes)
        {
            _slices.Clear();
            _bytes = 0;
        }
        _slices[block] = slice;
        _bytes += slice.Length;
    }

    public void Remove(long block)
    {
        if (_slices.TryGetValue(block, out byte[]? old))
        {
            _bytes -= old.Length;
            _slices.Remove(block);
        }
    }
}
