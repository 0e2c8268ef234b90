using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Text;

namespace VmClone.Disks.Vhdx;

/// <summary>
/// The parent locator metadata item of a differencing disk ([MS-VHDX] 2.6.2.6): a locator
/// type GUID then key/value pairs of UTF-16LE strings. For the VHDX locator type (2.6.2.6.1)
/// the keys are parent_linkage (parent's DataWriteGuid, mandatory), parent_linkage2,
/// relative_path, volume_path and absolute_win32_path.
/// </summary>
internal sealed class ParentLocator
{
    public static readonly Guid ItemId = new("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
    /// <summary>The locator type Hyper-V writes and the only one defined by the spec.</summary>
    public static readonly Guid VhdxLocatorType = new("B04AEFB7-D19E-4A81-B789-25B8E9445913");

    /// <summary>GUID LocatorType.</summary>
    public const int LocatorTypeOffset = 0;
    /// <summary>u16 KeyValueCount at 18 (u16 reserved at 16).</summary>
    public const int KeyValueCountOffset = 18;
    /// <summary>12-byte entries: u32 KeyOffset, u32 ValueOffset (from the item start), u16 KeyLength, u16 ValueLength (bytes).</summary>
    public const int EntriesOffset = 20;
    public const int EntrySize = 12;

    public const string ParentLinkageKey = "parent_linkage";
    public const string ParentLinkage2Key = "parent_linkage2";
    public const string RelativePathKey = "relative_path";
    public const string VolumePathKey = "volume_path";
    public const string AbsoluteWin32PathKey = "absolute_win32_path";

    public ParentLocator(Guid locatorType, IReadOnlyList<KeyValuePair<string, string>> entries)
    {
        LocatorType = locatorType;
        Entries = entries;
    }

    public Guid LocatorType { get; }

    /// <summary>Key/value pairs in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Entries { get; }

    public string? this[string key]
    {
        get
        {
            foreach (var kv in Entries)
                if (kv.Key == key)
                    return kv.Value;
            return null;
        }
    }

    public static ParentLocator Parse(ReadOnlySpan<byte> data, string path, long offset)
    {
        if (data.Length < EntriesOffset)
            throw new DiskFormatException(path, "parent locator", $"the item is {data.Length} bytes, too short for its header (MS-VHDX 2.6.2.6)", offset);
        var type = new Guid(data.Slice(0, 16).ToArray());
        int count = BinaryPrimitives.ReadUInt16LittleEndian(data.Slice(KeyValueCountOffset));
        if (EntriesOffset + (long)count * EntrySize > data.Length)
            throw new DiskFormatException(path, "parent locator", $"{count} key/value entries do not fit in the {data.Length}-byte item (MS-VHDX 2.6.2.6)", offset);
        var entries = new List<KeyValuePair<string, string>>(count);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> e = data.Slice(EntriesOffset + i * EntrySize, EntrySize);
            uint keyOffset = BinaryPrimitives.ReadUInt32LittleEndian(e);
            uint valueOffset = BinaryPrimitives.ReadUInt32LittleEndian(e.Slice(4));
            ushort keyLength = BinaryPrimitives.ReadUInt16LittleEndian(e.Slice(8));
            ushort valueLength = BinaryPrimitives.ReadUInt16LittleEndian(e.Slice(10));
            string key = ReadString(data, keyOffset, keyLength, path, offset, i, "key");
            string value = ReadString(data, valueOffset, valueLength, path, offset, i, "value");
            if (key.Length == 0)
                throw new DiskFormatException(path, "parent locator", $"entry {i} has an empty key (MS-VHDX 2.6.2.6.2)", offset);
            if (!keys.Add(key))
                throw new DiskFormatException(path, "parent locator", $"key '{key}' appears twice (MS-VHDX 2.6.2.6.2)", offset);
            entries.Add(new KeyValuePair<string, string>(key, value));
        }
        return new ParentLocator(type, entries);
    }

    private static string ReadString(ReadOnlySpan<byte> data, uint at, ushort length, string path, long offset, int index, string what)
    {
        if (length % 2 != 0 || at > data.Length || length > data.Length - at)
            throw new DiskFormatException(path, "parent locator", $"the {what} of entry {index} ({length} bytes at item offset {at}) is outside the {data.Length}-byte item or not UTF-16 (MS-VHDX 2.6.2.6.2)", offset);
        return Encoding.Unicode.GetString(data.Slice((int)at, length).ToArray());
    }

    /// <summary>What the layer reports to the chain: candidates relative → volume → absolute (2.6.2.6.1), expected identities.</summary>
    public ParentReference ToParentReference(string path, long offset)
    {
        if (LocatorType != VhdxLocatorType)
            throw new DiskFormatException(path, "parent locator", $"locator type {LocatorType:B} is not the VHDX locator type; the parent cannot be located (MS-VHDX 2.6.2.6)", offset);
        string linkage = NormalizeGuid(this[ParentLinkageKey], ParentLinkageKey, path, offset)
            ?? throw new DiskFormatException(path, "parent locator", "the mandatory parent_linkage key is missing (MS-VHDX 2.6.2.6.1)", offset);
        string? linkage2 = null;
        if (this[ParentLinkage2Key] is string raw2 && Guid.TryParse(raw2, out Guid g2) && g2 != Guid.Empty)
            linkage2 = g2.ToString("B");
        var candidates = new List<ParentPathCandidate>();
        if (this[RelativePathKey] is string rel && rel.Length > 0)
            candidates.Add(new ParentPathCandidate(ParentPathKind.Relative, rel));
        if (this[VolumePathKey] is string vol && vol.Length > 0)
            candidates.Add(new ParentPathCandidate(ParentPathKind.Volume, vol));
        if (this[AbsoluteWin32PathKey] is string abs && abs.Length > 0)
            candidates.Add(new ParentPathCandidate(ParentPathKind.Absolute, abs));
        if (candidates.Count == 0)
            throw new DiskFormatException(path, "parent locator", "no parent path key (relative_path, volume_path, absolute_win32_path) is present (MS-VHDX 2.6.2.6.1)", offset);
        return new ParentReference(candidates, linkage, linkage2);
    }

    private static string? NormalizeGuid(string? value, string key, string path, long offset)
    {
        if (value is null)
            return null;
        if (!Guid.TryParse(value, out Guid g))
            throw new DiskFormatException(path, "parent locator", $"{key} '{value}' is not a GUID (MS-VHDX 2.6.2.6.1)", offset);
        return g.ToString("B");
    }

    public byte[] ToBytes()
    {
        int tableEnd = EntriesOffset + Entries.Count * EntrySize;
        var strings = new List<byte>();
        var data = new byte[tableEnd];
        LocatorType.ToByteArray().CopyTo(data, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(KeyValueCountOffset), (ushort)Entries.Count);
        for (int i = 0; i < Entries.Count; i++)
        {
            byte[] k = Encoding.Unicode.GetBytes(Entries[i].Key);
            byte[] v = Encoding.Unicode.GetBytes(Entries[i].Value);
            if (k.Length > ushort.MaxValue || v.Length > ushort.MaxValue)
                throw new ArgumentException($"Parent locator value for '{Entries[i].Key}' is too long ({v.Length} bytes).");
            Span<byte> e = data.AsSpan(EntriesOffset + i * EntrySize, EntrySize);
            BinaryPrimitives.WriteUInt32LittleEndian(e, (uint)(tableEnd + strings.Count));
            strings.AddRange(k);
            BinaryPrimitives.WriteUInt32LittleEndian(e.Slice(4), (uint)(tableEnd + strings.Count));
            strings.AddRange(v);
            BinaryPrimitives.WriteUInt16LittleEndian(e.Slice(8), (ushort)k.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(e.Slice(10), (ushort)v.Length);
        }
        var result = new byte[tableEnd + strings.Count];
        data.CopyTo(result, 0);
        strings.CopyTo(result, tableEnd);
        return result;
    }
}
