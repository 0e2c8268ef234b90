using System;
using System.Buffers.Binary;

namespace VmClone.Disks.Vhdx;

/// <summary>
/// One of the two headers ([MS-VHDX] 2.2.2), at 64 KiB and 128 KiB. Only the first 4 KiB
/// is meaningful and checksummed. The valid header with the larger sequence number is current.
/// </summary>
internal sealed class VhdxHeader
{
    /// <summary>Bytes covered by the checksum (2.2.2: "the entire 4 KB header").</summary>
    public const int Length = 4096;

    /// <summary>u32 "head"; MUST match.</summary>
    public const int SignatureOffset = 0;
    /// <summary>u32 CRC-32C over 4 KiB with this field zero.</summary>
    public const int ChecksumOffset = 4;
    /// <summary>u64; the valid header with the larger value is current.</summary>
    public const int SequenceNumberOffset = 8;
    /// <summary>GUID; MUST change before the first modification of the file after it is opened.</summary>
    public const int FileWriteGuidOffset = 16;
    /// <summary>GUID; MUST change before the first modification of user-visible data. Children record it as parent_linkage.</summary>
    public const int DataWriteGuidOffset = 32;
    /// <summary>GUID; zero when the log is empty, otherwise the log entries carrying it must be replayed.</summary>
    public const int LogGuidOffset = 48;
    /// <summary>u16; MUST be 0.</summary>
    public const int LogVersionOffset = 64;
    /// <summary>u16; MUST be 1.</summary>
    public const int VersionOffset = 66;
    /// <summary>u32; multiple of 1 MiB.</summary>
    public const int LogLengthOffset = 68;
    /// <summary>u64; multiple of 1 MiB, outside the header section.</summary>
    public const int LogOffsetOffset = 72;

    public const uint Signature = 0x64616568; // "head"

    public ulong SequenceNumber { get; set; }
    public Guid FileWriteGuid { get; set; }
    public Guid DataWriteGuid { get; set; }
    public Guid LogGuid { get; set; }
    public ushort LogVersion { get; set; }
    public ushort Version { get; set; } = 1;
    public uint LogLength { get; set; }
    public ulong LogOffset { get; set; }

    public VhdxHeader Clone() => (VhdxHeader)MemberwiseClone();

    /// <summary>Parses a header; null when signature or checksum fail (2.2.2: such a header is simply not valid).</summary>
    public static VhdxHeader? TryParse(ReadOnlySpan<byte> data)
    {
        if (data.Length < Length)
            return null;
        data = data.Slice(0, Length);
        if (BinaryPrimitives.ReadUInt32LittleEndian(data) != Signature)
            return null;
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(ChecksumOffset));
        if (Crc32C.ComputeWithZeroedField(data, ChecksumOffset) != stored)
            return null;
        return new VhdxHeader
        {
            SequenceNumber = BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(SequenceNumberOffset)),
            FileWriteGuid = new Guid(data.Slice(FileWriteGuidOffset, 16).ToArray()),
            DataWriteGuid = new Guid(data.Slice(DataWriteGuidOffset, 16).ToArray()),
            LogGuid = new Guid(data.Slice(LogGuidOffset, 16).ToArray()),
            LogVersion = BinaryPrimitives.ReadUInt16LittleEndian(data.Slice(LogVersionOffset)),
            Version = BinaryPrimitives.ReadUInt16LittleEndian(data.Slice(VersionOffset)),
            LogLength = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(LogLengthOffset)),
            LogOffset = BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(LogOffsetOffset)),
        };
    }

    /// <summary>The 4 KiB on-disk form with its checksum.</summary>
    public byte[] ToBytes()
    {
        var data = new byte[Length];
        BinaryPrimitives.WriteUInt32LittleEndian(data, Signature);
        BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(SequenceNumberOffset), SequenceNumber);
        FileWriteGuid.ToByteArray().CopyTo(data, FileWriteGuidOffset);
        DataWriteGuid.ToByteArray().CopyTo(data, DataWriteGuidOffset);
        LogGuid.ToByteArray().CopyTo(data, LogGuidOffset);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(LogVersionOffset), LogVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(VersionOffset), Version);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(LogLengthOffset), LogLength);
        BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(LogOffsetOffset), LogOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(ChecksumOffset), Crc32C.Compute(data));
        return data;
    }

    /// <summary>Field rules of 2.2.2 for the current header, against the file length.</summary>
    public void Validate(string path, long fileOffset, long fileLength)
    {
        if (Version != 1)
            throw new DiskFormatException(path, "header", $"version {Version} is not supported (MS-VHDX 2.2.2 requires 1)", fileOffset);
        if (LogVersion != 0)
            throw new DiskFormatException(path, "header", $"log version {LogVersion} is not supported (MS-VHDX 2.2.2 requires 0)", fileOffset);
        if (LogLength % VhdxConstants.MiB != 0 || LogOffset % VhdxConstants.MiB != 0)
            throw new DiskFormatException(path, "header", $"log at {LogOffset} of {LogLength} bytes is not 1 MiB aligned (MS-VHDX 2.2.2)", fileOffset);
        if (LogLength > 0)
        {
            if (LogOffset < VhdxConstants.HeaderSectionLength)
                throw new DiskFormatException(path, "header", $"the log at {LogOffset} overlaps the header section (MS-VHDX 2.2.2)", fileOffset);
            if (LogOffset > (ulong)fileLength || LogLength > (ulong)fileLength - LogOffset)
                throw new DiskFormatException(path, "header", $"the log ({LogLength} bytes at {LogOffset}) lies beyond the end of the file ({fileLength} bytes)", fileOffset);
        }
        else if (LogGuid != Guid.Empty)
        {
            throw new DiskFormatException(path, "header", "a log GUID is set but the log has no space (MS-VHDX 2.2.2)", fileOffset);
        }
    }
}
