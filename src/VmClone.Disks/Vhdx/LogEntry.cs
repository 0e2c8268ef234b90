using System;
using System.Buffers.Binary;
using System.Collections.Generic;

namespace VmClone.Disks.Vhdx;

/// <summary>One file update a log entry describes: 4 KiB of data, or a run of zeros (Data null).</summary>
internal readonly struct LogOperation
{
    public LogOperation(long fileOffset, long length, byte[]? data)
    {
        FileOffset = fileOffset;
        Length = length;
        Data = data;
    }

    public long FileOffset { get; }
    public long Length { get; }
    /// <summary>The 4 KiB to write, or null for zeros.</summary>
    public byte[]? Data { get; }
    public long End => FileOffset + Length;
}

/// <summary>
/// A log entry ([MS-VHDX] 2.3.1): a 64-byte header, 32-byte zero/data descriptors filling the
/// first ceil((64 + 32 × DescriptorCount) / 4096) sectors, then one 4 KiB data sector per data
/// descriptor. The checksum covers EntryLength bytes.
/// </summary>
internal sealed class LogEntry
{
    public const int SectorSize = 4096;
    /// <summary>u32 "loge".</summary>
    public const int SignatureOffset = 0;
    /// <summary>u32 CRC-32C over EntryLength bytes with this field zero.</summary>
    public const int ChecksumOffset = 4;
    /// <summary>u32, multiple of 4 KiB.</summary>
    public const int EntryLengthOffset = 8;
    /// <summary>u32 log offset of the first entry of the sequence this entry ends (4 KiB aligned).</summary>
    public const int TailOffset = 12;
    /// <summary>u64, non-zero; consecutive entries of a sequence increase by one.</summary>
    public const int SequenceNumberOffset = 16;
    /// <summary>u32 number of descriptors.</summary>
    public const int DescriptorCountOffset = 24;
    /// <summary>GUID; must equal the header's LogGuid.</summary>
    public const int LogGuidOffset = 32;
    /// <summary>u64: the file is known to be at least this long; a shorter file lost flushed data.</summary>
    public const int FlushedFileOffsetOffset = 48;
    /// <summary>u64: the file size once this entry is applied.</summary>
    public const int LastFileOffsetOffset = 56;
    public const int HeaderSize = 64;
    public const int DescriptorSize = 32;

    public const uint Signature = 0x65676F6C; // "loge"
    public const uint ZeroSignature = 0x6F72657A; // "zero"
    public const uint DescSignature = 0x63736564; // "desc"
    public const uint DataSignature = 0x61746164; // "data"

    public uint EntryLength { get; private set; }
    public uint Tail { get; private set; }
    public ulong SequenceNumber { get; private set; }
    public uint DescriptorCount { get; private set; }
    public Guid LogGuid { get; private set; }
    public ulong FlushedFileOffset { get; private set; }
    public ulong LastFileOffset { get; private set; }

    /// <summary>
    /// The header checks that need no checksum (2.3.1.1): signature, lengths within the log,
    /// 4 KiB alignment, non-zero sequence, descriptors fitting the entry. Null when any fails.
    /// </summary>
    public static LogEntry? TryParseHeader(ReadOnlySpan<byte> header, long logLength, Guid logGuid)
    {
        if (header.Length < HeaderSize || BinaryPrimitives.ReadUInt32LittleEndian(header) != Signature)
            return null;
        var e = new LogEntry
        {
            EntryLength = BinaryPrimitives.ReadUInt32LittleEndian(header.Slice(EntryLengthOffset)),
            Tail = BinaryPrimitives.ReadUInt32LittleEndian(header.Slice(TailOffset)),
            SequenceNumber = BinaryPrimitives.ReadUInt64LittleEndian(header.Slice(SequenceNumberOffset)),
            DescriptorCount = BinaryPrimitives.ReadUInt32LittleEndian(header.Slice(DescriptorCountOffset)),
            LogGuid = new Guid(header.Slice(LogGuidOffset, 16).ToArray()),
            FlushedFileOffset = BinaryPrimitives.ReadUInt64LittleEndian(header.Slice(FlushedFileOffsetOffset)),
            LastFileOffset = BinaryPrimitives.ReadUInt64LittleEndian(header.Slice(LastFileOffsetOffset)),
        };
        if (e.LogGuid != logGuid || e.SequenceNumber == 0)
            return null;
        if (e.EntryLength == 0 || e.EntryLength % SectorSize != 0 || e.EntryLength > logLength)
            return null;
        if (e.Tail % SectorSize != 0 || e.Tail >= logLength)
            return null;
        if (e.DescriptorCount > (e.EntryLength - HeaderSize) / DescriptorSize)
            return null;
        if (e.DescriptorSectors > e.EntryLength / SectorSize)
            return null;
        return e;
    }

    public long DescriptorSectors => (HeaderSize + (long)DescriptorCount * DescriptorSize + SectorSize - 1) / SectorSize;

    public static bool ChecksumMatches(ReadOnlySpan<byte> entry) =>
        Crc32C.ComputeWithZeroedField(entry, ChecksumOffset) == BinaryPrimitives.ReadUInt32LittleEndian(entry.Slice(ChecksumOffset));

    /// <summary>
    /// Decodes the descriptors of a checksummed entry (2.3.1.2 – 2.3.1.4). Null when a descriptor
    /// or data sector is malformed or carries another sequence number: the entry is not valid.
    /// </summary>
    public List<LogOperation>? Decode(ReadOnlySpan<byte> entry)
    {
        var ops = new List<LogOperation>((int)DescriptorCount);
        long dataSector = DescriptorSectors;
        long sectors = EntryLength / SectorSize;
        for (int i = 0; i < DescriptorCount; i++)
        {
            ReadOnlySpan<byte> d = entry.Slice(HeaderSize + i * DescriptorSize, DescriptorSize);
            uint sig = BinaryPrimitives.ReadUInt32LittleEndian(d);
            ulong fileOffset = BinaryPrimitives.ReadUInt64LittleEndian(d.Slice(16));
            ulong seq = BinaryPrimitives.ReadUInt64LittleEndian(d.Slice(24));
            if (seq != SequenceNumber || fileOffset % SectorSize != 0 || fileOffset > long.MaxValue / 4)
                return null;
            if (sig == ZeroSignature)
            {
                ulong zeroLength = BinaryPrimitives.ReadUInt64LittleEndian(d.Slice(8));
                if (zeroLength == 0 || zeroLength % SectorSize != 0 || zeroLength > long.MaxValue / 4)
                    return null;
                ops.Add(new LogOperation((long)fileOffset, (long)zeroLength, null));
            }
            else if (sig == DescSignature)
            {
                if (dataSector >= sectors)
                    return null;
                ReadOnlySpan<byte> s = entry.Slice((int)(dataSector * SectorSize), SectorSize);
                dataSector++;
                if (BinaryPrimitives.ReadUInt32LittleEndian(s) != DataSignature ||
                    BinaryPrimitives.ReadUInt32LittleEndian(s.Slice(4)) != (uint)(SequenceNumber >> 32) ||
                    BinaryPrimitives.ReadUInt32LittleEndian(s.Slice(SectorSize - 4)) != (uint)SequenceNumber)
                    return null;
                // 2.3.1.3/2.3.1.4: the sector written = LeadingBytes (8) + data payload (4084) + TrailingBytes (4).
                var data = new byte[SectorSize];
                d.Slice(8, 8).CopyTo(data);
                s.Slice(8, SectorSize - 12).CopyTo(data.AsSpan(8));
                d.Slice(4, 4).CopyTo(data.AsSpan(SectorSize - 4));
                ops.Add(new LogOperation((long)fileOffset, SectorSize, data));
            }
            else
            {
                return null;
            }
        }
        return ops;
    }

    /// <summary>
    /// Builds a checksummed entry of data descriptors (used by tests to make hostile and
    /// well-formed logs; VmClone itself updates metadata by ordered writes, not the log).
    /// </summary>
    public static byte[] Build(Guid logGuid, ulong sequence, uint tail, IReadOnlyList<(long FileOffset, byte[] Sector)> writes, ulong flushedFileOffset, ulong lastFileOffset)
    {
        int descriptorSectors = (HeaderSize + writes.Count * DescriptorSize + SectorSize - 1) / SectorSize;
        var entry = new byte[(descriptorSectors + writes.Count) * SectorSize];
        BinaryPrimitives.WriteUInt32LittleEndian(entry, Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(EntryLengthOffset), (uint)entry.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(TailOffset), tail);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(SequenceNumberOffset), sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(DescriptorCountOffset), (uint)writes.Count);
        logGuid.ToByteArray().CopyTo(entry, LogGuidOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(FlushedFileOffsetOffset), flushedFileOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(LastFileOffsetOffset), lastFileOffset);
        for (int i = 0; i < writes.Count; i++)
        {
            Span<byte> d = entry.AsSpan(HeaderSize + i * DescriptorSize, DescriptorSize);
            byte[] sector = writes[i].Sector;
            BinaryPrimitives.WriteUInt32LittleEndian(d, DescSignature);
            sector.AsSpan(SectorSize - 4, 4).CopyTo(d.Slice(4));
            sector.AsSpan(0, 8).CopyTo(d.Slice(8));
            BinaryPrimitives.WriteUInt64LittleEndian(d.Slice(16), (ulong)writes[i].FileOffset);
            BinaryPrimitives.WriteUInt64LittleEndian(d.Slice(24), sequence);
            Span<byte> s = entry.AsSpan((descriptorSectors + i) * SectorSize, SectorSize);
            BinaryPrimitives.WriteUInt32LittleEndian(s, DataSignature);
            BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(4), (uint)(sequence >> 32));
            sector.AsSpan(8, SectorSize - 12).CopyTo(s.Slice(8));
            BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(SectorSize - 4), (uint)sequence);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(ChecksumOffset), Crc32C.Compute(entry));
        return entry;
    }
}
