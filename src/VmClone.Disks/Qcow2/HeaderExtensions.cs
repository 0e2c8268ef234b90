using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Text;

namespace VmClone.Disks.Qcow2;

/// <summary>One header extension as stored: its type and its data, unpadded.</summary>
internal readonly struct HeaderExtension
{
    public HeaderExtension(uint type, byte[] data, long offset)
    {
        Type = type;
        Data = data;
        Offset = offset;
    }

    public uint Type { get; }

    public byte[] Data { get; }

    /// <summary>File offset of the extension's type field.</summary>
    public long Offset { get; }
}

/// <summary>
/// The header extensions that follow the header in the first cluster (qcow2.rst "Header
/// extensions"): u32 type, u32 length, data padded to 8 bytes, until type 0. Every one is kept
/// as stored, in order, so that a rewrite puts back those this reader does not know.
/// </summary>
internal sealed class HeaderExtensions
{
    public const uint EndType = 0x00000000;
    public const uint BackingFormatType = 0xe2792aca;
    public const uint FeatureNameTableType = 0x6803f857;
    public const uint BitmapsType = 0x23852875;
    public const uint FullDiskEncryptionType = 0x0537be77;
    public const uint ExternalDataFileType = 0x44415441;

    private HeaderExtensions(List<HeaderExtension> all, int endOffset)
    {
        All = all;
        EndOffset = endOffset;
    }

    /// <summary>Every extension in file order.</summary>
    public IReadOnlyList<HeaderExtension> All { get; }

    /// <summary>Offset just after the end marker (where a backing file name may begin).</summary>
    public int EndOffset { get; }

    /// <summary>The first extension of <paramref name="type"/>, or null.</summary>
    public byte[]? Find(uint type)
    {
        foreach (HeaderExtension e in All)
        {
            if (e.Type == type)
                return e.Data;
        }
        return null;
    }

    /// <summary>The backing-format extension as text ("qcow2", "raw", ...), or null.</summary>
    public string? BackingFormat => Find(BackingFormatType) is byte[] d ? Encoding.UTF8.GetString(d).TrimEnd('\0') : null;

    /// <summary>The external data file name, or null.</summary>
    public string? ExternalDataFile => Find(ExternalDataFileType) is byte[] d ? Encoding.UTF8.GetString(d).TrimEnd('\0') : null;

    /// <summary>The feature-name table, empty when the image has none.</summary>
    public FeatureNameTable FeatureNames => FeatureNameTable.Parse(Find(FeatureNameTableType));

    /// <summary>
    /// Reads the extensions from <paramref name="start"/> within the first <paramref name="limit"/>
    /// bytes of <paramref name="head"/> (the first cluster, or up to the backing file name).
    /// Version 2 images may have none and no end marker: a run of zeros or the limit ends them.
    /// </summary>
    public static HeaderExtensions Parse(string path, byte[] head, int start, int limit)
    {
        var all = new List<HeaderExtension>();
        int at = start;
        while (at + 8 <= limit)
        {
            uint type = BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(at));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(at + 4));
            if (type == EndType)
                return new HeaderExtensions(all, at + 8);
            if (length > (uint)(limit - at - 8))
                throw new DiskFormatException(path, "qcow2 header extension", $"extension 0x{type:x8} claims {length} bytes, past the first cluster", at);
            all.Add(new HeaderExtension(type, head.AsSpan(at + 8, (int)length).ToArray(), at));
            at += 8 + (int)((length + 7) & ~7u);
        }
        return new HeaderExtensions(all, Math.Min(at, limit));
    }

    /// <summary>Extensions as stored: each type, length and data padded to 8 bytes, then the end marker.</summary>
    public static byte[] Compose(IReadOnlyList<(uint Type, byte[] Data)> extensions)
    {
        int length = 8;
        foreach ((uint _, byte[] data) in extensions)
            length += 8 + ((data.Length + 7) & ~7);
        byte[] all = new byte[length];
        int at = 0;
        foreach ((uint type, byte[] data) in extensions)
        {
            BinaryPrimitives.WriteUInt32BigEndian(all.AsSpan(at), type);
            BinaryPrimitives.WriteUInt32BigEndian(all.AsSpan(at + 4), (uint)data.Length);
            data.CopyTo(all, at + 8);
            at += 8 + ((data.Length + 7) & ~7);
        }
        return all; // the last 8 bytes stay zero: type 0 ends the list
    }
}
