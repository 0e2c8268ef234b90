using System;
using System.Buffers.Binary;
using System.Text;

namespace VmClone.Disks.Vhd;

/// <summary>
/// One of the dynamic header's eight parent locator entries (spec, "Parent Locator Entries"):
/// a platform code saying how the path is written and where in the file the path lies.
/// </summary>
internal readonly struct ParentLocatorEntry
{
    public const int Length = 24;

    /// <summary>Locator platform codes, as four ASCII characters read big-endian.</summary>
    public const uint W2ru = 0x57327275; // relative Windows path, UTF-16LE
    public const uint W2ku = 0x57326B75; // absolute Windows path, UTF-16LE
    public const uint MacX = 0x4D616358; // file:// URL, UTF-8
    public const uint Wi2r = 0x57693272; // deprecated relative Windows path
    public const uint Wi2k = 0x5769326B; // deprecated absolute Windows path
    public const uint Mac = 0x4D616320;  // deprecated Mac OS alias blob

    /// <summary>Longest locator data read: 64 KiB holds a Windows path of 32,767 UTF-16 units, the longest there is.</summary>
    public const int MaxDataLength = 64 * 1024;

    public ParentLocatorEntry(uint code, uint dataSpace, uint dataLength, ulong dataOffset)
    {
        Code = code;
        DataSpace = dataSpace;
        DataLength = dataLength;
        DataOffset = dataOffset;
    }

    public uint Code { get; }

    /// <summary>Space reserved for the path: sectors by the spec, bytes as Windows and blktap write it.</summary>
    public uint DataSpace { get; }

    /// <summary>Length of the path data in bytes.</summary>
    public uint DataLength { get; }

    public ulong DataOffset { get; }

    public bool IsEmpty => Code == 0;

    public string CodeName => Encoding.ASCII.GetString(new[] { (byte)(Code >> 24), (byte)(Code >> 16), (byte)(Code >> 8), (byte)Code });

    /// <summary>
    /// The bytes reserved for the path. The spec says the field counts sectors, Windows and
    /// blktap write bytes: read as bytes when that holds the data, else as sectors.
    /// </summary>
    public long ReservedBytes => DataSpace >= DataLength ? DataSpace : (long)DataSpace * 512;

    public static ParentLocatorEntry Parse(ReadOnlySpan<byte> data) => new(
        BinaryPrimitives.ReadUInt32BigEndian(data),
        BinaryPrimitives.ReadUInt32BigEndian(data.Slice(4)),
        BinaryPrimitives.ReadUInt32BigEndian(data.Slice(8)),
        BinaryPrimitives.ReadUInt64BigEndian(data.Slice(16)));

    public void Write(Span<byte> data)
    {
        data.Slice(0, Length).Clear();
        BinaryPrimitives.WriteUInt32BigEndian(data, Code);
        BinaryPrimitives.WriteUInt32BigEndian(data.Slice(4), DataSpace);
        BinaryPrimitives.WriteUInt32BigEndian(data.Slice(8), DataLength);
        BinaryPrimitives.WriteUInt64BigEndian(data.Slice(16), DataOffset);
    }

    /// <summary>
    /// The path the locator's data holds, or null for a code that holds none VmClone can use
    /// (the deprecated Mac OS alias). UTF-16LE for the Windows codes (a trailing NUL dropped),
    /// a UTF-8 file:// URL for MacX.
    /// </summary>
    public string? DecodePath(byte[] data)
    {
        string text;
        switch (Code)
        {
            case W2ru:
            case W2ku:
            case Wi2r:
            case Wi2k:
                text = Encoding.Unicode.GetString(data, 0, data.Length & ~1);
                break;
            case MacX:
                text = Encoding.UTF8.GetString(data);
                if (text.StartsWith("file://", StringComparison.OrdinalIgnoreCase))
                    text = Uri.UnescapeDataString(text.Substring("file://".Length));
                break;
            default:
                return null;
        }
        int nul = text.IndexOf('\0');
        return nul >= 0 ? text.Substring(0, nul) : text;
    }

    /// <summary>True for the codes whose path is relative to the child's folder.</summary>
    public bool IsRelative(string decoded) => Code is W2ru or Wi2r
        || (Code == MacX && !decoded.StartsWith("/", StringComparison.Ordinal));
}
