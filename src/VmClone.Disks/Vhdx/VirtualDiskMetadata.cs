using System;
using System.Buffers.Binary;

namespace VmClone.Disks.Vhdx;

/// <summary>
/// The small fixed-size system metadata items ([MS-VHDX] 2.6.2.2 – 2.6.2.5): virtual disk
/// size, page 83 virtual disk id, logical and physical sector size. Each carries the
/// IsVirtualDisk flag because it describes the virtual disk rather than the file.
/// </summary>
internal static class VirtualDiskMetadata
{
    /// <summary>2.6.2.2 Virtual Disk Size: u64, a multiple of the logical sector size, at most 64 TiB.</summary>
    public static readonly Guid VirtualDiskSizeId = new("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
    /// <summary>2.6.2.3 Page 83 Data: a GUID, the SCSI identity of the virtual disk; keep it across conversions.</summary>
    public static readonly Guid Page83DataId = new("BECA12AB-B2E6-4523-93EF-C309E000C746");
    /// <summary>2.6.2.4 Logical Sector Size: u32, 512 or 4096.</summary>
    public static readonly Guid LogicalSectorSizeId = new("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
    /// <summary>2.6.2.5 Physical Sector Size: u32, 512 or 4096.</summary>
    public static readonly Guid PhysicalSectorSizeId = new("CDA348C7-445D-4471-9CC9-E9885251C556");

    public static long ParseVirtualDiskSize(ReadOnlySpan<byte> data, string path, long offset)
    {
        RequireLength(data, 8, "virtual disk size", path, offset);
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(data);
        if (size == 0 || size > VhdxConstants.MaxVirtualSize)
            throw new DiskFormatException(path, "virtual disk size", $"{size} bytes is outside 1 byte to 64 TiB (MS-VHDX 2.6.2.2)", offset);
        return (long)size;
    }

    public static Guid ParsePage83Data(ReadOnlySpan<byte> data, string path, long offset)
    {
        RequireLength(data, 16, "page 83 data", path, offset);
        return new Guid(data.Slice(0, 16).ToArray());
    }

    public static int ParseSectorSize(ReadOnlySpan<byte> data, string path, long offset, string structure, string section)
    {
        RequireLength(data, 4, structure, path, offset);
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (!VhdxConstants.IsValidSectorSize(size))
            throw new DiskFormatException(path, structure, $"{size} is neither 512 nor 4096 (MS-VHDX {section})", offset);
        return (int)size;
    }

    public static byte[] UInt64Bytes(ulong value)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        return b;
    }

    public static byte[] UInt32Bytes(uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        return b;
    }

    private static void RequireLength(ReadOnlySpan<byte> data, int length, string structure, string path, long offset)
    {
        if (data.Length < length)
            throw new DiskFormatException(path, structure, $"the item is {data.Length} bytes, at least {length} expected", offset);
    }
}
