using System;
using System.Buffers.Binary;
using System.Collections.Generic;

namespace VmClone.Disks.Vhdx;

/// <summary>One metadata table entry ([MS-VHDX] 2.6.1.2), 32 bytes.</summary>
internal readonly struct MetadataTableEntry
{
    /// <summary>GUID of the item; with IsUser it names a user item, otherwise a system item (2.6.2).</summary>
    public const int ItemIdOffset = 0;
    /// <summary>u32 offset of the item from the start of the metadata region; at least 64 KiB (or 0 when Length is 0).</summary>
    public const int OffsetOffset = 16;
    /// <summary>u32 item length; at most 1 MiB.</summary>
    public const int LengthOffset = 20;
    /// <summary>u32 bit 0 IsUser, bit 1 IsVirtualDisk, bit 2 IsRequired (unknown required item: MUST NOT open).</summary>
    public const int FlagsOffset = 24;
    public const int Size = 32;

    public const uint IsUserFlag = 1;
    public const uint IsVirtualDiskFlag = 2;
    public const uint IsRequiredFlag = 4;

    public MetadataTableEntry(Guid itemId, uint offset, uint length, uint flags)
    {
        ItemId = itemId;
        Offset = offset;
        Length = length;
        Flags = flags;
    }

    public Guid ItemId { get; }
    public uint Offset { get; }
    public uint Length { get; }
    public uint Flags { get; }
    public bool IsUser => (Flags & IsUserFlag) != 0;
    public bool IsRequired => (Flags & IsRequiredFlag) != 0;
}

/// <summary>
/// The metadata table at the start of the metadata region ([MS-VHDX] 2.6.1): a 32-byte header
/// ("metadata", EntryCount ≤ 2047) then 32-byte entries, all in the region's first 64 KiB.
/// </summary>
internal sealed class MetadataTable
{
    /// <summary>The table occupies the first 64 KiB of the region; items follow.</summary>
    public const int Length = 64 * 1024;
    /// <summary>8 bytes "metadata".</summary>
    public const int SignatureOffset = 0;
    /// <summary>u16 entry count at 10 (2 reserved bytes at 8, 20 reserved after).</summary>
    public const int EntryCountOffset = 10;
    public const int EntriesOffset = 32;
    public const ulong Signature = 0x617461646174656DUL; // "metadata"
    /// <summary>2.6.1.2: an item is at most 1 MiB.</summary>
    public const uint MaxItemLength = 1024 * 1024;

    public MetadataTable(IReadOnlyList<MetadataTableEntry> entries)
    {
        Entries = entries;
    }

    public IReadOnlyList<MetadataTableEntry> Entries { get; }

    public MetadataTableEntry? Find(Guid itemId)
    {
        foreach (MetadataTableEntry e in Entries)
            if (!e.IsUser && e.ItemId == itemId)
                return e;
        return null;
    }

    /// <summary>
    /// Parses and validates the table (2.6.1.1, 2.6.1.2): signature, count, every item inside
    /// the region and past the table, at most 1 MiB, no two items overlapping, no duplicate
    /// system item, no unknown required item.
    /// </summary>
    public static MetadataTable Parse(ReadOnlySpan<byte> data, string path, long regionOffset, long regionLength, ICollection<Guid> knownItems)
    {
        if (data.Length < Length || BinaryPrimitives.ReadUInt64LittleEndian(data) != Signature)
            throw new DiskFormatException(path, "metadata table", "the signature is not 'metadata' (MS-VHDX 2.6.1.1)", regionOffset);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(data.Slice(EntryCountOffset));
        if (count > VhdxConstants.MaxTableEntries)
            throw new DiskFormatException(path, "metadata table", $"it claims {count} entries (at most {VhdxConstants.MaxTableEntries}, MS-VHDX 2.6.1.1)", regionOffset);
        var entries = new List<MetadataTableEntry>(count);
        var seen = new HashSet<Guid>();
        var ranges = new List<(long Start, long End)>();
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> e = data.Slice(EntriesOffset + i * MetadataTableEntry.Size, MetadataTableEntry.Size);
            var entry = new MetadataTableEntry(
                new Guid(e.Slice(MetadataTableEntry.ItemIdOffset, 16).ToArray()),
                BinaryPrimitives.ReadUInt32LittleEndian(e.Slice(MetadataTableEntry.OffsetOffset)),
                BinaryPrimitives.ReadUInt32LittleEndian(e.Slice(MetadataTableEntry.LengthOffset)),
                BinaryPrimitives.ReadUInt32LittleEndian(e.Slice(MetadataTableEntry.FlagsOffset)));
            long entryOffset = regionOffset + EntriesOffset + i * MetadataTableEntry.Size;
            string name = $"metadata item {entry.ItemId:B}";
            if (!entry.IsUser && !seen.Add(entry.ItemId))
                throw new DiskFormatException(path, "metadata table", $"{name} is listed twice (MS-VHDX 2.6.1.2)", entryOffset);
            if (!entry.IsUser && entry.IsRequired && !knownItems.Contains(entry.ItemId))
                throw new DiskFormatException(path, "metadata table", $"unknown required {name}; this VHDX uses a feature VmClone does not support (MS-VHDX 2.6.1.2)", entryOffset);
            if (entry.Length > MaxItemLength)
                throw new DiskFormatException(path, "metadata table", $"{name} claims {entry.Length} bytes (at most 1 MiB, MS-VHDX 2.6.1.2)", entryOffset);
            if (entry.Length > 0)
            {
                if (entry.Offset < Length || entry.Offset + (long)entry.Length > regionLength)
                    throw new DiskFormatException(path, "metadata table", $"{name} ({entry.Length} bytes at region offset {entry.Offset}) is outside the item area of the {regionLength}-byte metadata region (MS-VHDX 2.6.1.2)", entryOffset);
                long start = entry.Offset, end = entry.Offset + (long)entry.Length;
                foreach (var r in ranges)
                    if (start < r.End && r.Start < end)
                        throw new DiskFormatException(path, "metadata table", $"{name} overlaps another metadata item (MS-VHDX 2.6.1.2)", entryOffset);
                ranges.Add((start, end));
            }
            entries.Add(entry);
        }
        return new MetadataTable(entries);
    }

    public byte[] ToBytes()
    {
        var data = new byte[Length];
        BinaryPrimitives.WriteUInt64LittleEndian(data, Signature);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(EntryCountOffset), (ushort)Entries.Count);
        for (int i = 0; i < Entries.Count; i++)
        {
            MetadataTableEntry e = Entries[i];
            Span<byte> s = data.AsSpan(EntriesOffset + i * MetadataTableEntry.Size, MetadataTableEntry.Size);
            e.ItemId.ToByteArray().CopyTo(s);
            BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(MetadataTableEntry.OffsetOffset), e.Offset);
            BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(MetadataTableEntry.LengthOffset), e.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(MetadataTableEntry.FlagsOffset), e.Flags);
        }
        return data;
    }
}
