using System;

namespace VmClone.Disks;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as VHDX uses for headers, region
/// tables and log entries. System.IO.Hashing.Crc32 is the IEEE polynomial and must not be used.
/// Slicing-by-8 tables: the log replay and checker hash whole megabytes.
/// </summary>
public static class Crc32C
{
    private const uint Polynomial = 0x82F63B78u;
    private static readonly uint[] Table = BuildTable();

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

    /// <summary>CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(0xFFFFFFFFu, data);

    /// <summary>
    /// CRC-32C of <paramref name="data"/> computed as if the four bytes at
    /// <paramref name="checksumOffset"/> were zero: how VHDX structures checksum themselves.
    /// </summary>
    public static uint ComputeWithZeroedField(ReadOnlySpan<byte> data, int checksumOffset)
    {
        uint crc = Append(0xFFFFFFFFu, data.Slice(0, checksumOffset));
        crc = Append(crc, stackalloc byte[4]);
        crc = Append(crc, data.Slice(checksumOffset + 4));
        return ~crc;
    }

    private static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        var t = Table;
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            uint lo = crc ^ (uint)(data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24);
            uint hi = (uint)(data[i + 4] | data[i + 5] << 8 | data[i + 6] << 16 | data[i + 7] << 24);
            crc = t[7 * 256 + (lo & 0xFF)] ^ t[6 * 256 + ((lo >> 8) & 0xFF)] ^
                  t[5 * 256 + ((lo >> 16) & 0xFF)] ^ t[4 * 256 + (lo >> 24)] ^
                  t[3 * 256 + (hi & 0xFF)] ^ t[2 * 256 + ((hi >> 8) & 0xFF)] ^
                  t[1 * 256 + ((hi >> 16) & 0xFF)] ^ t[hi >> 24];
        }
        for (; i < data.Length; i++)
            crc = (crc >> 8) ^ t[(crc ^ data[i]) & 0xFF];
        return crc;
    }
}
