using VmClone.Disks;

namespace VmClone.Core.Disks;

/// <summary>What Optimize-VmDisk did to one disk file: the space it gave back, the content read through the chain unchanged.</summary>
public sealed class VmDiskOptimization
{
    /// <summary>Full path of the disk file optimized (only this layer is rewritten; its parents are only read).</summary>
    public string Path { get; set; } = "";

    public DiskFormat Format { get; set; }

    public DiskType Type { get; set; }

    /// <summary>Virtual size in bytes (unchanged).</summary>
    public long VirtualSize { get; set; }

    /// <summary>How the space was given back.</summary>
    public OptimizeMethod Method { get; set; }

    /// <summary>Virtual bytes the file stored itself before (allocated blocks, grains or clusters; for a fixed disk its whole size).</summary>
    public long StoredBytesBefore { get; set; }

    /// <summary>Virtual bytes the file stores itself after.</summary>
    public long StoredBytesAfter { get; set; }

    /// <summary>Bytes the file took on the file system before (allocated blocks, not its length).</summary>
    public long SizeOnDiskBefore { get; set; }

    /// <summary>Bytes the file takes on the file system after.</summary>
    public long SizeOnDiskAfter { get; set; }

    /// <summary>Runs of stored content no longer stored: zeros, or (in a differencing disk) the same bytes its parent chain reads there.</summary>
    public long RangesDropped { get; set; }

    /// <summary>Bytes of virtual content in those runs.</summary>
    public long BytesDropped { get; set; }

    /// <summary>File-system bytes given back (never negative).</summary>
    public long BytesReclaimed => System.Math.Max(0, SizeOnDiskBefore - SizeOnDiskAfter);

    public override string ToString() => $"{Path}: {RangesDropped} range(s) dropped, {BytesReclaimed} bytes given back";
}

/// <summary>How Optimize-VmDisk gives space back.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum OptimizeMethod
{
    /// <summary>A compacted copy of the layer (same format, parent link and identity) replaced the file in one rename.</summary>
    Rewritten,

    /// <summary>A fixed disk or raw file: its all-zero ranges were punched out in place (they read as zeros before and after).</summary>
    Punched,

    /// <summary>Nothing to give back: the file was left as it was (a compacted copy would not have been smaller).</summary>
    Unchanged,
}
