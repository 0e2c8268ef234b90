namespace VmClone.Disks.Vhdx;

/// <summary>Fixed positions and limits of the VHDX layout ([MS-VHDX] 2.1, 2.2).</summary>
internal static class VhdxConstants
{
    public const long KiB = 1024;
    public const long MiB = 1024 * 1024;

    /// <summary>2.1: file type identifier at 0, headers at 64 KiB and 128 KiB, region tables at 192 KiB and 256 KiB.</summary>
    public const long FileIdentifierOffset = 0;
    public const long Header1Offset = 64 * KiB;
    public const long Header2Offset = 128 * KiB;
    public const long RegionTable1Offset = 192 * KiB;
    public const long RegionTable2Offset = 256 * KiB;

    /// <summary>2.1: the first 1 MiB is the header section; every other object is 1 MiB aligned after it.</summary>
    public const long HeaderSectionLength = MiB;

    /// <summary>2.2.4 / 2.2.3: at most 2047 region table and metadata table entries.</summary>
    public const int MaxTableEntries = 2047;

    /// <summary>2.6.1.1: block size is a power of two between 1 MiB and 256 MiB.</summary>
    public const long MinBlockSize = MiB;
    public const long MaxBlockSize = 256 * MiB;

    /// <summary>2.6.2.2: virtual disk size at most 64 TiB.</summary>
    public const long MaxVirtualSize = 64L * 1024 * 1024 * MiB;

    /// <summary>2.5.1: a sector bitmap block is 1 MiB and covers 2^23 logical sectors.</summary>
    public const long SectorBitmapBlockSize = MiB;
    public const long SectorsPerBitmapBlock = 1L << 23;

    /// <summary>Hyper-V's defaults: 32 MiB blocks for dynamic disks, 2 MiB for differencing disks.</summary>
    public const long DefaultDynamicBlockSize = 32 * MiB;
    public const long DefaultDifferencingBlockSize = 2 * MiB;

    public static bool IsValidSectorSize(long size) => size == 512 || size == 4096;

    public static bool IsValidBlockSize(long size) =>
        size >= MinBlockSize && size <= MaxBlockSize && (size & (size - 1)) == 0;

    public static long RoundUp(long value, long unit) => (value + unit - 1) / unit * unit;
}
