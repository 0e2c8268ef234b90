using System;
using System.Buffers.Binary;
using System.Numerics;

namespace VmClone.Fuzz;

/// <summary>
/// Recomputes the checksums a mutation broke, so that mutated structures are parsed instead
/// of being dropped at their checksum: in a VHDX both headers (4 KiB at 64 and 128 KiB), both
/// region tables (64 KiB at 192 and 256 KiB) and every log entry found in the log the current
/// header names (wrapping around the circular log as entries do). The metadata region, BAT,
/// sector bitmaps and parent locator carry no checksum, nor do VMDK structures (grain
/// markers, tables, descriptors), so nothing else needs repair. A structure whose signature a
/// mutation destroyed is left alone: the engine must refuse it either way.
/// </summary>
public static class ChecksumRepair
{
    private const int HeaderLength = 4096;
    private const int RegionTableLength = 64 * 1024;
    private const int LogSector = 4096;
    private const int MaxLogLength = 64 << 20;

    /// <summary>True when the bytes start like a VHDX file.</summary>
    public static bool IsVhdx(ReadOnlySpan<byte> file) =>
        file.StartsWith("vhdxfile"u8);

    /// <summary>Repairs a VHDX image in place; other bytes are left as they are.</summary>
    public static void RepairVhdx(byte[] file)
    {
        if (!IsVhdx(file))
            return;
        Fix(file, 64 * 1024, HeaderLength, 0x64616568); // "head"
        Fix(file, 128 * 1024, HeaderLength, 0x64616568);
        Fix(file, 192 * 1024, RegionTableLength, 0x69676572); // "regi"
        Fix(file, 256 * 1024, RegionTableLength, 0x69676572);

        // The log the current header names (the one with the larger sequence number).
        long current = -1;
        ulong best = 0;
        foreach (int at in new[] { 64 * 1024, 128 * 1024 })
        {
            if (at + HeaderLength > file.Length || BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at)) != 0x64616568)
                continue;
            ulong sequence = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(at + 8));
            if (current < 0 || sequence > best)
            {
                current = at;
                best = sequence;
            }
        }
        if (current < 0)
            return;
        uint logLength = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan((int)current + 68));
        ulong logOffset = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan((int)current + 72));
        if (logLength == 0 || logLength > MaxLogLength || logLength % LogSector != 0 || logOffset >= (ulong)file.Length)
            return;
        int log = (int)logOffset;
        int length = (int)Math.Min(logLength, (uint)(file.Length - log)) / LogSector * LogSector;
        for (int slot = 0; slot < length; slot += LogSector)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(log + slot)) != 0x65676F6C) // "loge"
                continue;
            uint entryLength = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(log + slot + 8));
            if (entryLength == 0 || entryLength % LogSector != 0 || entryLength > length)
                continue;
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(log + slot + 4), 0);
            int first = (int)Math.Min(entryLength, (uint)(length - slot));
            uint crc = Crc32C(uint.MaxValue, file.AsSpan(log + slot, first));
            crc = Crc32C(crc, file.AsSpan(log, (int)entryLength - first));
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(log + slot + 4), ~crc);
        }
    }

    /// <summary>
    /// Repairs a VHD in place: the footer at the end and its copy at offset 0 (each only where
    /// it starts with "conectix"), and the dynamic header ("cxsparse") the footer names. A VHD
    /// checksum is the one's complement of the byte sum, the field counted as zero.
    /// </summary>
    public static void RepairVhd(byte[] file)
    {
        const int Footer = 512, DynamicHeader = 1024;
        if (file.Length < Footer)
            return;
        int tail = file.Length - Footer;
        foreach (int at in new[] { tail, 0 })
        {
            if (!file.AsSpan(at).StartsWith("conectix"u8))
                continue;
            FixVhdSum(file.AsSpan(at, Footer), 64);
        }
        foreach (int at in new[] { 0, tail })
        {
            if (!file.AsSpan(at).StartsWith("conectix"u8))
                continue;
            ulong header = BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan(at + 16));
            // A file shorter than a header has none to repair (the length minus it is negative).
            if (file.Length >= DynamicHeader && header <= (ulong)(file.Length - DynamicHeader) && file.AsSpan((int)header).StartsWith("cxsparse"u8))
                FixVhdSum(file.AsSpan((int)header, DynamicHeader), 36);
            return;
        }
    }

    private static void FixVhdSum(Span<byte> structure, int field)
    {
        BinaryPrimitives.WriteUInt32BigEndian(structure.Slice(field), 0);
        uint sum = 0;
        foreach (byte b in structure)
            sum += b;
        BinaryPrimitives.WriteUInt32BigEndian(structure.Slice(field), ~sum);
    }

    /// <summary>CRC-32C (Castagnoli) as VHDX computes it.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data) => ~Crc32C(uint.MaxValue, data);

    private static void Fix(byte[] file, int offset, int length, uint signature)
    {
        if (offset + length > file.Length || BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(offset)) != signature)
            return;
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(offset + 4), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(offset + 4), Crc32C(file.AsSpan(offset, length)));
    }

    private static uint Crc32C(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data.Slice(8);
        }
        foreach (byte b in data)
            crc = BitOperations.Crc32C(crc, b);
        return crc;
    }
}
