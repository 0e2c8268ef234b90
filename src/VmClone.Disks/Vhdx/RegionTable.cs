using System;
using System.Buffers.Binary;
using System.Collections.Generic;

namespace VmClone.Disks.Vhdx;

/// <summary>One region table entry ([MS-VHDX] 2.2.3.2), 32 bytes.</summary>
internal readonly struct RegionTableEntry
{
    /// <summary>GUID of the region; 2.2.3.2 lists BAT and metadata as the known ones.</summary>
    public const int GuidOffset = 0;
    /// <summary>u64; multiple of 1 MiB, at least 1 MiB.</summary>
    public const int FileOffsetOffset = 16;
    /// <summary>u32; multiple of 1 MiB.</summary>
    public const int LengthOffset = 24;
    /// <summary>u32; bit 0 Required: an implementation that does not know the region MUST NOT open the file.</summary>
    public const int RequiredOffset = 28;
    public const int Size = 32;

    public RegionTableEntry(Guid id, long fileOffset, uint length, bool required)
    {
        Id = id;
        FileOffset = fileOffset;
        Length = length;
        Required = required;
    }

    public Guid Id { get; }
    public long FileOffset { get; }
    public uint Length { get; }
    public bool Required { get; }
    public long End => FileOffset + Length;
}

/// <summary>
/// The region table ([MS-VHDX] 2.2.3), two identical 64 KiB copies at 192 KiB and 256 KiB:
/// where the BAT and the metadata region live.
/// </summary>
internal sealed class RegionTable
{
    public const int Length = 64 * 1024;
    /// <summary>u32 "regi".</summary>
    public const int SignatureOffset = 0;
    /// <summary>u32 CRC-32C over the 64 KiB table with this field zero.</summary>
    public const int ChecksumOffset = 4;
    /// <summary>u32; at most 2047.</summary>
    public const int EntryCountOffset = 8;
    /// <summary>Entries start after the 16-byte header (4 bytes reserved at 12).</summary>
    public const int EntriesOffset = 16;
    public const uint Signature = 0x69676572; // "regi"

    public static readonly Guid BatRegion = new("2DC27766-F623-4200-9D64-115E9BFD4A08");
    public static readonly Guid MetadataRegion = new("8B7CA206-4790-4B9A-B8FE-575F050F886E");

    public RegionTable(IReadOnlyList<RegionTableEntry> entries)
    {
        Entries = entries;
    }

    public IReadOnlyList<RegionTableEntry> Entries { get; }

    public RegionTableEntry Bat => Find(BatRegion);

    public RegionTableEntry Metadata => Find(MetadataRegion);

    private RegionTableEntry Find(Guid id)
    {
        foreach (RegionTableEntry e in Entries)
            if (e.Id == id)
                return e;
        throw new InvalidOperationException("validated region missing");
    }

    /// <summary>Why the table cannot be used (signature, checksum, count), or null when it parses.</summary>
    public static RegionTable? TryParse(ReadOnlySpan<byte> data, out string? problem)
    {
        problem = null;
        if (data.Length < Length)
        {
            problem = "the table is truncated";
            return null;
        }
        data = data.Slice(0, Length);
        if (BinaryPrimitives.ReadUInt32LittleEndian(data) != Signature)
        {
            problem = "the signature is not 'regi'";
            return null;
        }
        if (Crc32C.ComputeWithZeroedField(data, ChecksumOffset) != BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(ChecksumOffset)))
        {
            problem = "the CRC-32C checksum does not match";
            return null;
        }
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(EntryCountOffset));
        if (count > VhdxConstants.MaxTableEntries)
        {
            problem = $"it claims {count} entries (at most {VhdxConstants.MaxTableEntries})";
            return null;
        }
        var entries = new List<RegionTableEntry>((int)count);
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> e = data.Slice(EntriesOffset + i * RegionTableEntry.Size, RegionTableEntry.Size);
            entries.Add(new RegionTableEntry(
                new Guid(e.Slice(RegionTableEntry.GuidOffset, 16).ToArray()),
                ClampOffset(BinaryPrimitives.ReadUInt64LittleEndian(e.Slice(RegionTableEntry.FileOffsetOffset))),
                BinaryPrimitives.ReadUInt32LittleEndian(e.Slice(RegionTableEntry.LengthOffset)),
                (BinaryPrimitives.ReadUInt32LittleEndian(e.Slice(RegionTableEntry.RequiredOffset)) & 1) != 0));
        }
        return new RegionTable(entries);
    }

    /// <summary>
    /// 2.2.3: known regions present once, required unknown regions refused, every region
    /// 1 MiB aligned, inside the file, clear of the header section, the log and each other.
    /// </summary>
    public void Validate(string path, long tableOffset, long fileLength, long logOffset, long logLength)
    {
        bool bat = false, metadata = false;
        var spans = new List<(long Start, long End, string Name)>();
        if (logLength > 0)
            spans.Add((logOffset, logOffset + logLength, "the log"));
        foreach (RegionTableEntry e in Entries)
        {
            string name;
            if (e.Id == BatRegion)
            {
                if (bat)
                    throw new DiskFormatException(path, "region table", "the BAT region is listed twice (MS-VHDX 2.2.3.2)", tableOffset);
                bat = true;
                name = "the BAT region";
            }
            else if (e.Id == MetadataRegion)
            {
                if (metadata)
                    throw new DiskFormatException(path, "region table", "the metadata region is listed twice (MS-VHDX 2.2.3.2)", tableOffset);
                metadata = true;
                name = "the metadata region";
            }
            else if (e.Required)
            {
                throw new DiskFormatException(path, "region table", $"unknown required region {e.Id:B}; this VHDX uses a feature VmClone does not support (MS-VHDX 2.2.3.2)", tableOffset);
            }
            else
            {
                name = $"region {e.Id:B}";
            }
            if (e.FileOffset % VhdxConstants.MiB != 0 || e.Length % VhdxConstants.MiB != 0 || e.Length == 0)
                throw new DiskFormatException(path, "region table", $"{name} ({e.Length} bytes at {e.FileOffset}) is not a non-empty 1 MiB aligned range (MS-VHDX 2.2.3.2)", tableOffset);
            if (e.FileOffset < VhdxConstants.HeaderSectionLength)
                throw new DiskFormatException(path, "region table", $"{name} at {e.FileOffset} overlaps the header section (MS-VHDX 2.2.3.2)", tableOffset);
            if (e.FileOffset > fileLength || e.Length > fileLength - e.FileOffset)
                throw new DiskFormatException(path, "region table", $"{name} ({e.Length} bytes at {e.FileOffset}) lies beyond the end of the file ({fileLength} bytes)", tableOffset);
            foreach (var s in spans)
                if (e.FileOffset < s.End && s.Start < e.End)
                    throw new DiskFormatException(path, "region table", $"{name} ({e.Length} bytes at {e.FileOffset}) overlaps {s.Name} (MS-VHDX 2.2.3)", tableOffset);
            spans.Add((e.FileOffset, e.End, name));
        }
        if (!bat)
            throw new DiskFormatException(path, "region table", "there is no BAT region (MS-VHDX 2.2.3.2)", tableOffset);
        if (!metadata)
            throw new DiskFormatException(path, "region table", "there is no metadata region (MS-VHDX 2.2.3.2)", tableOffset);
    }

    /// <summary>Offsets beyond any real file are clamped so later range checks cannot overflow.</summary>
    private static long ClampOffset(ulong value) => value > long.MaxValue / 4 ? long.MaxValue / 4 : (long)value;

    public byte[] ToBytes()
    {
        var data = new byte[Length];
        BinaryPrimitives.WriteUInt32LittleEndian(data, Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(EntryCountOffset), (uint)Entries.Count);
        for (int i = 0; i < Entries.Count; i++)
        {
            RegionTableEntry e = Entries[i];
            Span<byte> s = data.AsSpan(EntriesOffset + i * RegionTableEntry.Size, RegionTableEntry.Size);
            e.Id.ToByteArray().CopyTo(s);
            BinaryPrimitives.WriteUInt64LittleEndian(s.Slice(RegionTableEntry.FileOffsetOffset), (ulong)e.FileOffset);
            BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(RegionTableEntry.LengthOffset), e.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(RegionTableEntry.RequiredOffset), e.Required ? 1u : 0u);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(ChecksumOffset), Crc32C.Compute(data));
        return data;
    }
}
