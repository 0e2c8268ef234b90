namespace VmClone.Disks.Vhd;

/// <summary>
/// A block's sector bitmap (spec, "Block Allocation Table and Data Blocks"): one bit per
/// 512-byte sector of the block, padded to a whole sector. Bit order is most significant bit
/// first (sector 0 is 0x80 of byte 0, as blktap's be_test_bit and Windows read it); only
/// blktap's tapdisk 0.1 wrote least significant bit first, which the lsbFirst arguments read.
/// A set bit: the sector is stored in the block; a clear one: it comes from the parent
/// (differencing) or reads as zero (dynamic).
/// </summary>
internal static class BlockBitmap
{
    /// <summary>Bytes the bitmap of a block of <paramref name="blockSize"/> bytes takes in the file, whole sectors.</summary>
    public static int SizeInFile(long blockSize) => (int)((blockSize / 512 / 8 + 511) / 512 * 512);

    public static bool Get(byte[] bitmap, long sector, bool lsbFirst = false) =>
        (bitmap[sector >> 3] & Mask(sector, lsbFirst)) != 0;

    public static void SetRange(byte[] bitmap, long first, long count, bool lsbFirst = false)
    {
        for (long s = first; s < first + count; s++)
            bitmap[s >> 3] |= Mask(s, lsbFirst);
    }

    /// <summary>How many sectors from <paramref name="start"/> (at most <paramref name="max"/>) share its bit; whole bytes at a time where possible.</summary>
    public static long RunLength(byte[] bitmap, long start, long max, bool lsbFirst, out bool value)
    {
        value = Get(bitmap, start, lsbFirst);
        byte whole = value ? (byte)0xFF : (byte)0;
        long s = start;
        long end = start + max;
        while (s < end)
        {
            if ((s & 7) == 0 && s + 8 <= end && bitmap[s >> 3] == whole)
            {
                s += 8;
                continue;
            }
            if (Get(bitmap, s, lsbFirst) != value)
                break;
            s++;
        }
        return s - start;
    }

    private static byte Mask(long sector, bool lsbFirst) =>
        (byte)(lsbFirst ? 1 << (int)(sector & 7) : 0x80 >> (int)(sector & 7));
}
