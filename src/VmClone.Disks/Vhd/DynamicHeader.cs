using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Text;

namespace VmClone.Disks.Vhd;

/// <summary>
/// The 1024-byte dynamic disk header (spec, "Dynamic Disk Header Format"), big-endian, at the
/// footer's data offset of a dynamic or differencing disk: where the BAT is, how large blocks
/// are, and for a differencing disk its parent's unique id, time stamp, name and locators.
/// The bytes are kept as read, so a rewrite keeps what this type does not interpret.
/// </summary>
internal sealed class DynamicHeader
{
    public const int Length = 1024;

    public static readonly byte[] Cookie = Encoding.ASCII.GetBytes("cxsparse");

    private const int DataOffsetOffset = 8;         // u64, unused: all ones
    private const int TableOffsetOffset = 16;       // u64: the BAT's file offset
    private const int HeaderVersionOffset = 24;     // u32 0x00010000
    private const int MaxTableEntriesOffset = 28;   // u32
    private const int BlockSizeOffset = 32;         // u32, a power of two (2 MiB by default)
    public const int ChecksumOffset = 36;           // u32
    private const int ParentUniqueIdOffset = 40;    // 16 bytes
    private const int ParentTimestampOffset = 56;   // u32
    private const int ParentNameOffset = 64;        // 512 bytes UTF-16BE
    private const int ParentNameLength = 512;
    private const int LocatorsOffset = 576;         // 8 entries of 24 bytes
    public const int LocatorCount = 8;

    /// <summary>Smallest and largest block accepted: one sector, and 256 MiB (far above what any creator writes; bounds a block's bitmap).</summary>
    public const long MinBlockSize = 512;
    public const long MaxBlockSize = 256L << 20;

    private readonly byte[] _raw;

    private DynamicHeader(byte[] raw) => _raw = raw;

    public byte[] Raw => _raw;

    public bool HasCookie => _raw.AsSpan(0, Cookie.Length).SequenceEqual(Cookie);

    public ulong TableOffset => BinaryPrimitives.ReadUInt64BigEndian(_raw.AsSpan(TableOffsetOffset));

    public uint HeaderVersion => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(HeaderVersionOffset));

    public uint MaxTableEntries => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(MaxTableEntriesOffset));

    public uint BlockSize => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(BlockSizeOffset));

    public uint StoredChecksum => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(ChecksumOffset));

    public bool ChecksumValid => StoredChecksum == VhdChecksum.Compute(_raw, ChecksumOffset);

    public Guid ParentUniqueId
    {
        get => VhdFooter.ReadGuid(_raw, ParentUniqueIdOffset);
        set => VhdFooter.WriteGuid(_raw, ParentUniqueIdOffset, value);
    }

    /// <summary>The parent's modification time as the child recorded it (reported, never trusted: Windows writes 0).</summary>
    public uint ParentTimestamp
    {
        get => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(ParentTimestampOffset));
        set => BinaryPrimitives.WriteUInt32BigEndian(_raw.AsSpan(ParentTimestampOffset), value);
    }

    /// <summary>The parent name field (UTF-16BE, up to the first NUL): Windows stores the parent's absolute path, others its file name.</summary>
    public string ParentName
    {
        get
        {
            int end = 0;
            while (end + 1 < ParentNameLength && (_raw[ParentNameOffset + end] | _raw[ParentNameOffset + end + 1]) != 0)
                end += 2;
            return Encoding.BigEndianUnicode.GetString(_raw, ParentNameOffset, end);
        }
        set
        {
            Array.Clear(_raw, ParentNameOffset, ParentNameLength);
            byte[] bytes = Encoding.BigEndianUnicode.GetBytes(value);
            Array.Copy(bytes, 0, _raw, ParentNameOffset, Math.Min(bytes.Length, ParentNameLength - 2));
        }
    }

    /// <summary>The eight locator entries (empty ones included, code 0).</summary>
    public IReadOnlyList<ParentLocatorEntry> Locators
    {
        get
        {
            var list = new ParentLocatorEntry[LocatorCount];
            for (int i = 0; i < LocatorCount; i++)
                list[i] = ParentLocatorEntry.Parse(_raw.AsSpan(LocatorsOffset + i * ParentLocatorEntry.Length, ParentLocatorEntry.Length));
            return list;
        }
    }

    /// <summary>Replaces locator entry <paramref name="index"/>.</summary>
    public void SetLocator(int index, ParentLocatorEntry entry) =>
        entry.Write(_raw.AsSpan(LocatorsOffset + index * ParentLocatorEntry.Length, ParentLocatorEntry.Length));

    /// <summary>The header in <paramref name="data"/> (1024 bytes); its cookie and checksum are judged by the caller.</summary>
    public static DynamicHeader Parse(ReadOnlySpan<byte> data) => new(data.Slice(0, Length).ToArray());

    /// <summary>A new header (checksum not yet set) for a disk VmClone creates.</summary>
    public static DynamicHeader Create(ulong tableOffset, uint maxTableEntries, uint blockSize)
    {
        var raw = new byte[Length];
        Cookie.CopyTo(raw, 0);
        BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(DataOffsetOffset), ulong.MaxValue);
        BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(TableOffsetOffset), tableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(raw.AsSpan(HeaderVersionOffset), VhdFooter.Version1);
        BinaryPrimitives.WriteUInt32BigEndian(raw.AsSpan(MaxTableEntriesOffset), maxTableEntries);
        BinaryPrimitives.WriteUInt32BigEndian(raw.AsSpan(BlockSizeOffset), blockSize);
        return new DynamicHeader(raw);
    }

    /// <summary>Where the BAT lies and how many entries it has (both in the header's first sector); the checksum is the caller's to update.</summary>
    public void SetTable(ulong tableOffset, uint maxTableEntries)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_raw.AsSpan(TableOffsetOffset), tableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(_raw.AsSpan(MaxTableEntriesOffset), maxTableEntries);
    }

    public void UpdateChecksum() =>
        BinaryPrimitives.WriteUInt32BigEndian(_raw.AsSpan(ChecksumOffset), VhdChecksum.Compute(_raw, ChecksumOffset));
}
