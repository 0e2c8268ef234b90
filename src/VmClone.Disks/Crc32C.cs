using System;
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace VmClone.Disks;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as VHDX uses for headers, region
/// tables and log entries. System.IO.Hashing.Crc32 is the IEEE polynomial and must not be used.
/// </summary>
/// <remarks>
/// Every open checksums two 64 KiB region tables and two 4 KiB headers, which are almost all
/// zeros (a region table holds two 32-byte entries). So the zero tail of a buffer is not
/// hashed byte by byte: appending n zero bytes multiplies the CRC register by x^(8n) modulo the
/// polynomial, a few dozen shift-and-xor steps however long the tail (the same algebra as
/// zlib's crc32_combine). The rest goes through slicing-by-8 tables, eight bytes per step
/// (the log replay and the checker hash whole megabytes).
/// </remarks>
public static class Crc32C
{
    private const uint Polynomial = 0x82F63B78u;
    private static readonly uint[] Table = BuildTable();

    /// <summary>x^(2^k) mod P in the reflected representation, k = 0..63.</summary>
    private static readonly uint[] PowersOfX = BuildPowers();

    // Tails shorter than this are cheaper to hash than to skip.
    private const int MinZeroRun = 64;

    private static uint[] BuildTable()
    {
        var table = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) != 0 ? (c >> 1) ^ Polynomial : c >> 1;
            table[i] = c;
        }
        for (int t = 1; t < 8; t++)
            for (int i = 0; i < 256; i++)
                table[t * 256 + i] = (table[(t - 1) * 256 + i] >> 8) ^ table[table[(t - 1) * 256 + i] & 0xFF];
        return table;
    }

    private static uint[] BuildPowers()
    {
        var powers = new uint[64];
        uint p = 1u << 30; // x^1 (bit 31 is x^0 in the reflected form)
        for (int k = 0; k < powers.Length; k++)
        {
            powers[k] = p;
            p = MultiplyModP(p, p);
        }
        return powers;
    }

    /// <summary>CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        int used = LengthWithoutZeroTail(data);
        return ~AppendZeros(Append(0xFFFFFFFFu, data.Slice(0, used)), data.Length - used);
    }

    /// <summary>
    /// CRC-32C of <paramref name="data"/> computed as if the four bytes at
    /// <paramref name="checksumOffset"/> were zero: how VHDX structures checksum themselves.
    /// </summary>
    public static uint ComputeWithZeroedField(ReadOnlySpan<byte> data, int checksumOffset)
    {
        ReadOnlySpan<byte> rest = data.Slice(checksumOffset + 4);
        int used = LengthWithoutZeroTail(rest);
        uint crc = Append(0xFFFFFFFFu, data.Slice(0, checksumOffset));
        crc = AppendZeros(crc, 4);
        crc = Append(crc, rest.Slice(0, used));
        return ~AppendZeros(crc, rest.Length - used);
    }

    /// <summary>Advances a CRC register (not inverted) over <paramref name="data"/>.</summary>
    internal static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        uint[] t = Table;
        if (BitConverter.IsLittleEndian && data.Length >= 8)
        {
            // Eight bytes per step, read as one little-endian word.
            ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
            foreach (ulong w in words)
            {
                uint lo = crc ^ (uint)w;
                uint hi = (uint)(w >> 32);
                crc = t[7 * 256 + (lo & 0xFF)] ^ t[6 * 256 + ((lo >> 8) & 0xFF)] ^
                      t[5 * 256 + ((lo >> 16) & 0xFF)] ^ t[4 * 256 + (lo >> 24)] ^
                      t[3 * 256 + (hi & 0xFF)] ^ t[2 * 256 + ((hi >> 8) & 0xFF)] ^
                      t[1 * 256 + ((hi >> 16) & 0xFF)] ^ t[hi >> 24];
            }
            data = data.Slice(words.Length * 8);
        }
        foreach (byte b in data)
            crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF];
        return crc;
    }

    /// <summary>Advances a CRC register over <paramref name="count"/> zero bytes without touching them.</summary>
    internal static uint AppendZeros(uint crc, long count)
    {
        if (count < MinZeroRun)
        {
            uint[] t = Table;
            for (long i = 0; i < count; i++)
                crc = (crc >> 8) ^ t[crc & 0xFF];
            return crc;
        }
        // crc × x^(8·count): multiply by x^(2^k) for each bit k of 8·count.
        ulong bits = (ulong)count << 3;
        for (int k = 0; bits != 0; k++, bits >>= 1)
        {
            if ((bits & 1) != 0)
                crc = MultiplyModP(PowersOfX[k], crc);
        }
        return crc;
    }

    /// <summary>a × b modulo the polynomial, both in the reflected representation (bit 31 = x^0).</summary>
    private static uint MultiplyModP(uint a, uint b)
    {
        uint product = 0;
        for (uint m = 1u << 31; m != 0; m >>= 1)
        {
            if ((a & m) != 0)
            {
                product ^= b;
                if ((a & (m - 1)) == 0)
                    break;
            }
            b = (b & 1) != 0 ? (b >> 1) ^ Polynomial : b >> 1;
        }
        return product;
    }

    private const int ZeroBlock = 4096;

    /// <summary>Length of <paramref name="data"/> without its trailing zero bytes.</summary>
    private static int LengthWithoutZeroTail(ReadOnlySpan<byte> data)
    {
        int end = data.Length;
        // Whole zero blocks first, many bytes per step.
        while (end >= ZeroBlock && ZeroBytes.All(data.Slice(end - ZeroBlock, ZeroBlock)))
            end -= ZeroBlock;
        while (end >= 8 && BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(end - 8)) == 0)
            end -= 8;
        while (end > 0 && data[end - 1] == 0)
            end--;
        return end;
    }
}
