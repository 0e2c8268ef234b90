using System;
using System.Buffers.Binary;
using System.Text;

namespace VmClone.Disks.Vhd;

/// <summary>The disk type a VHD footer records (spec, "Disk Type").</summary>
internal enum VhdDiskType
{
    None = 0,
    Fixed = 2,
    Dynamic = 3,
    Differencing = 4,
}

/// <summary>
/// The 512-byte hard disk footer (spec, "Hard Disk Footer Format"), big-endian. A fixed disk
/// has it only at the end of the file; a dynamic or differencing disk also has a copy at
/// offset 0. The bytes are kept as read, so rewriting a footer keeps what this type does not
/// interpret (the reserved area, blktap's hidden byte).
/// </summary>
internal sealed class VhdFooter
{
    public const int Length = 512;

    /// <summary>"conectix": the cookie both copies begin with.</summary>
    public static readonly byte[] Cookie = Encoding.ASCII.GetBytes("conectix");

    // Field offsets (spec table "Hard disk footer fields").
    private const int FeaturesOffset = 8;          // u32; 0x2 (reserved) is always set
    private const int VersionOffset = 12;          // u32 0x00010000
    private const int DataOffsetOffset = 16;       // u64: the dynamic header; all ones for fixed
    private const int TimestampOffset = 24;        // u32 seconds since 2000-01-01 UTC
    private const int CreatorAppOffset = 28;       // 4 ASCII bytes
    private const int CreatorVersionOffset = 32;   // u32
    private const int CreatorHostOsOffset = 36;    // 4 bytes: "Wi2k", "Mac "
    private const int OriginalSizeOffset = 40;     // u64 bytes
    private const int CurrentSizeOffset = 48;      // u64 bytes
    private const int GeometryOffset = 56;         // u16 cylinders, u8 heads, u8 sectors per track
    private const int DiskTypeOffset = 60;         // u32
    public const int ChecksumOffset = 64;          // u32
    private const int UniqueIdOffset = 68;         // 16 bytes
    private const int SavedStateOffset = 84;       // u8
    public const int HiddenOffset = 85;            // u8: blktap marks inner chain nodes (XenServer); not in the spec

    /// <summary>Largest disk VmClone accepts: 2040 GiB, the limit of the format's users (qemu's VHD_MAX_SECTORS, XenServer's MAX_VHD_SIZE).</summary>
    public const long MaxVirtualSize = 2040L << 30;

    public const uint FeatureReserved = 0x2;
    public const uint Version1 = 0x00010000;

    private readonly byte[] _raw;

    private VhdFooter(byte[] raw) => _raw = raw;

    /// <summary>The 512 bytes as they are (or will be) on disk.</summary>
    public byte[] Raw => _raw;

    public uint Features => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(FeaturesOffset));

    public uint FormatVersion => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(VersionOffset));

    public ulong DataOffset => BinaryPrimitives.ReadUInt64BigEndian(_raw.AsSpan(DataOffsetOffset));

    public uint Timestamp => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(TimestampOffset));

    /// <summary>The creator application, four characters ("win ", "qemu", "tap", "vpc ").</summary>
    public string CreatorApplication => Encoding.ASCII.GetString(_raw, CreatorAppOffset, 4).TrimEnd('\0', ' ');

    public byte[] CreatorApplicationBytes => _raw.AsSpan(CreatorAppOffset, 4).ToArray();

    public uint CreatorVersion => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(CreatorVersionOffset));

    public string CreatorHostOs => Encoding.ASCII.GetString(_raw, CreatorHostOsOffset, 4).TrimEnd('\0');

    public ulong OriginalSize => BinaryPrimitives.ReadUInt64BigEndian(_raw.AsSpan(OriginalSizeOffset));

    public ulong CurrentSize => BinaryPrimitives.ReadUInt64BigEndian(_raw.AsSpan(CurrentSizeOffset));

    public DiskGeometry Geometry => new(
        BinaryPrimitives.ReadUInt16BigEndian(_raw.AsSpan(GeometryOffset)), _raw[GeometryOffset + 2], _raw[GeometryOffset + 3]);

    public uint RawDiskType => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(DiskTypeOffset));

    public VhdDiskType DiskType => RawDiskType switch
    {
        2 => VhdDiskType.Fixed,
        3 => VhdDiskType.Dynamic,
        4 => VhdDiskType.Differencing,
        _ => VhdDiskType.None,
    };

    public uint StoredChecksum => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(ChecksumOffset));

    /// <summary>The unique id, read as a big-endian GUID (the byte order libvhdi and Hyper-V show).</summary>
    public Guid UniqueId => ReadGuid(_raw, UniqueIdOffset);

    /// <summary>Sets the unique id (the checksum is then stale until <see cref="UpdateChecksum"/>).</summary>
    public void SetUniqueId(Guid id) => WriteGuid(_raw, UniqueIdOffset, id);

    public bool SavedState => _raw[SavedStateOffset] != 0;

    /// <summary>blktap's hidden mark (XenServer sets it on the inner nodes of a chain).</summary>
    public byte Hidden => _raw[HiddenOffset];

    /// <summary>True when the cookie is "conectix".</summary>
    public bool HasCookie => _raw.AsSpan(0, Cookie.Length).SequenceEqual(Cookie);

    /// <summary>
    /// True when the stored checksum is right. Old blktap (tapdisk 0.1 and 1.1) summed the footer
    /// without its hidden byte; that sum is accepted too.
    /// </summary>
    public bool ChecksumValid =>
        StoredChecksum == VhdChecksum.Compute(_raw, ChecksumOffset)
        || StoredChecksum == VhdChecksum.Compute(_raw, ChecksumOffset, HiddenOffset);

    /// <summary>The footer in <paramref name="data"/> (512 bytes), or null when it has no cookie.</summary>
    public static VhdFooter? TryParse(ReadOnlySpan<byte> data)
    {
        if (data.Length < Length)
            return null;
        var footer = new VhdFooter(data.Slice(0, Length).ToArray());
        return footer.HasCookie ? footer : null;
    }

    /// <summary>
    /// The virtual size by the rule qemu's vpc driver uses (block/vpc.c): Virtual PC ("vpc ")
    /// and qemu before force_size ("qemu") size a disk by its CHS geometry, every other creator
    /// (Hyper-V "win ", disk2vhd "d2v ", qemu with force_size "qem2", XenServer "tap", Citrix
    /// "CTXS") by the current size; a geometry at its maximum cannot express a larger disk, so
    /// the current size then applies whatever the creator.
    /// </summary>
    public long VirtualSizeByQemuRule(out bool byGeometry)
    {
        string creator = Encoding.ASCII.GetString(_raw, CreatorAppOffset, 4);
        long chsSectors = Geometry.TotalSectors;
        byGeometry = (creator == "vpc " || creator == "qemu") && chsSectors != DiskGeometry.MaxSectors;
        if (byGeometry)
            return chsSectors * 512;
        ulong current = CurrentSize;
        return current > long.MaxValue ? long.MaxValue : (long)(current / 512 * 512);
    }

    /// <summary>A new footer (checksum set) for a disk VmClone creates, as Hyper-V writes one.</summary>
    public static VhdFooter Create(VhdDiskType type, long virtualSize, ulong dataOffset, Guid uniqueId, uint timestamp)
    {
        var raw = new byte[Length];
        Cookie.CopyTo(raw, 0);
        BinaryPrimitives.WriteUInt32BigEndian(raw.AsSpan(FeaturesOffset), FeatureReserved);
        BinaryPrimitives.WriteUInt32BigEndian(raw.AsSpan(VersionOffset), Version1);
        BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(DataOffsetOffset), dataOffset);
        BinaryPrimitives.WriteUInt32BigEndian(raw.AsSpan(TimestampOffset), timestamp);
        // Hyper-V's creator: readers (qemu among them) then take the current size, not the geometry.
        Encoding.ASCII.GetBytes("win ").CopyTo(raw, CreatorAppOffset);
        BinaryPrimitives.WriteUInt32BigEndian(raw.AsSpan(CreatorVersionOffset), 0x000A0000);
        Encoding.ASCII.GetBytes("Wi2k").CopyTo(raw, CreatorHostOsOffset);
        BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(OriginalSizeOffset), (ulong)virtualSize);
        BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(CurrentSizeOffset), (ulong)virtualSize);
        DiskGeometry g = DiskGeometry.ForSectors(virtualSize / 512);
        BinaryPrimitives.WriteUInt16BigEndian(raw.AsSpan(GeometryOffset), (ushort)g.Cylinders);
        raw[GeometryOffset + 2] = (byte)g.Heads;
        raw[GeometryOffset + 3] = (byte)g.SectorsPerTrack;
        BinaryPrimitives.WriteUInt32BigEndian(raw.AsSpan(DiskTypeOffset), (uint)type);
        WriteGuid(raw, UniqueIdOffset, uniqueId);
        var footer = new VhdFooter(raw);
        footer.UpdateChecksum();
        return footer;
    }

    /// <summary>
    /// A new size: current size, original size and the CHS geometry that matches it, as Hyper-V's
    /// Resize-VHD writes them (libvhdi takes the size from the original size field); the checksum
    /// is the caller's to update.
    /// </summary>
    public void SetSize(long virtualSize)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_raw.AsSpan(CurrentSizeOffset), (ulong)virtualSize);
        BinaryPrimitives.WriteUInt64BigEndian(_raw.AsSpan(OriginalSizeOffset), (ulong)virtualSize);
        DiskGeometry g = DiskGeometry.ForSectors(virtualSize / 512);
        BinaryPrimitives.WriteUInt16BigEndian(_raw.AsSpan(GeometryOffset), (ushort)g.Cylinders);
        _raw[GeometryOffset + 2] = (byte)g.Heads;
        _raw[GeometryOffset + 3] = (byte)g.SectorsPerTrack;
    }

    /// <summary>Recomputes the checksum over the current bytes (the hidden byte included).</summary>
    public void UpdateChecksum() =>
        BinaryPrimitives.WriteUInt32BigEndian(_raw.AsSpan(ChecksumOffset), VhdChecksum.Compute(_raw, ChecksumOffset));

    /// <summary>Seconds since 2000-01-01 UTC, the VHD epoch, for <paramref name="utc"/>.</summary>
    public static uint TimestampOf(DateTime utc)
    {
        double seconds = (utc - new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc)).TotalSeconds;
        return seconds <= 0 ? 0 : seconds >= uint.MaxValue ? uint.MaxValue : (uint)seconds;
    }

    internal static Guid ReadGuid(byte[] data, int offset)
    {
        ReadOnlySpan<byte> s = data.AsSpan(offset, 16);
        return new Guid(BinaryPrimitives.ReadInt32BigEndian(s), BinaryPrimitives.ReadInt16BigEndian(s.Slice(4)), BinaryPrimitives.ReadInt16BigEndian(s.Slice(6)),
            s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15]);
    }

    internal static void WriteGuid(byte[] data, int offset, Guid value)
    {
        byte[] le = value.ToByteArray();
        // Guid's own bytes hold the first three fields little-endian; the file holds them big-endian.
        data[offset + 0] = le[3]; data[offset + 1] = le[2]; data[offset + 2] = le[1]; data[offset + 3] = le[0];
        data[offset + 4] = le[5]; data[offset + 5] = le[4];
        data[offset + 6] = le[7]; data[offset + 7] = le[6];
        Array.Copy(le, 8, data, offset + 8, 8);
    }
}
