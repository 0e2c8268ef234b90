using System.Collections.Generic;
using VmClone.Disks;
using VmClone.Disks.Qcow2;

namespace VmClone.Core.Disks;

/// <summary>What Get-VmDisk shows about one disk file (one layer of a chain).</summary>
public sealed class VmDiskInfo
{
    /// <summary>Full path of the file.</summary>
    public string Path { get; set; } = "";

    public DiskFormat Format { get; set; }

    public DiskType Type { get; set; }

    /// <summary>Size of the virtual disk in bytes.</summary>
    public long VirtualSize { get; set; }

    /// <summary>Length of the file in bytes (for a VMDK, of the descriptor and its extent files).</summary>
    public long FileSize { get; set; }

    /// <summary>Space the file takes on the file system in bytes: allocated blocks (Linux st_blocks × 512, Windows GetCompressedFileSize), less than <see cref="FileSize"/> for a sparse file; the length on macOS.</summary>
    public long SizeOnDisk { get; set; }

    /// <summary>Bytes of virtual content stored in this file itself.</summary>
    public long AllocatedSize { get; set; }

    /// <summary>Allocation unit in bytes (VHDX block, VMDK grain).</summary>
    public long BlockSize { get; set; }

    public int LogicalSectorSize { get; set; }

    public int PhysicalSectorSize { get; set; }

    /// <summary>Full path of the parent this file resolves to, or the first stored path when it cannot be resolved; null for a disk without a parent.</summary>
    public string? ParentPath { get; set; }

    /// <summary>Number of files in the chain from this file down to its base (1 for a standalone disk); null when the chain is broken.</summary>
    public int? ChainDepth { get; set; }

    /// <summary>Position in the chain that was asked for: 0 for the file itself, 1 for its parent, ...</summary>
    public int Level { get; set; }

    /// <summary>What children record to recognise this content (VHDX DataWriteGuid, VMDK CID).</summary>
    public string Identity { get; set; } = "";

    /// <summary>The parent identity this file expects, or null.</summary>
    public string? ParentIdentity { get; set; }

    /// <summary>Why the chain below this file cannot be opened, or null when it opens.</summary>
    public string? ChainProblem { get; set; }

    /// <summary>Format-specific facts (create type, GUIDs, CID ...).</summary>
    public IReadOnlyDictionary<string, string> Details { get; set; } = new Dictionary<string, string>();

    /// <summary>A qcow2 image's own facts (cluster size, compat, backing file ...); null for every other format.</summary>
    public VmQcow2Details? Qcow2 { get; set; }

    /// <summary>A VHD file's own facts (disk type, block size, creator, geometry, parent id and locators ...); null for every other format.</summary>
    public VmVhdDetails? Vhd { get; set; }

    /// <summary>What makes a sound disk one a hypervisor would refuse (a VHD chain deeper than XenServer takes); empty when nothing does.</summary>
    public IReadOnlyList<VmDiskWarning> Warnings { get; set; } = new VmDiskWarning[0];

    public override string ToString() => Path;
}

/// <summary>How compressed qcow2 clusters are compressed (the header's compression type).</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum Qcow2CompressionType
{
    /// <summary>Deflate (zlib), qemu's default.</summary>
    Zlib,
    /// <summary>Zstandard.</summary>
    Zstd,
}

/// <summary>What Get-VmDisk shows of a qcow2 image beyond what every format has.</summary>
public sealed class VmQcow2Details
{
    /// <summary>Cluster size in bytes (512 B to 2 MiB).</summary>
    public long ClusterSize { get; set; }

    /// <summary>qemu's compat level: "0.10" (version 2) or "1.1" (version 3).</summary>
    public string Compat { get; set; } = "";

    /// <summary>Format version: 2 or 3.</summary>
    public int Version { get; set; }

    /// <summary>Extended L2 entries (32 subclusters per cluster).</summary>
    public bool ExtendedL2 { get; set; }

    /// <summary>How compressed clusters are compressed.</summary>
    public Qcow2CompressionType CompressionType { get; set; }

    /// <summary>Width of a refcount in bits.</summary>
    public int RefcountBits { get; set; }

    /// <summary>The backing file name exactly as the image stores it, or null.</summary>
    public string? BackingFile { get; set; }

    /// <summary>The full path the backing file name resolves to (relative names from the image's folder), or null when it does not resolve.</summary>
    public string? BackingFileResolved { get; set; }

    /// <summary>The backing format the image records ("qcow2", "raw", ...), or null when it records none (the format is probed).</summary>
    public string? BackingFormat { get; set; }

    /// <summary>Internal snapshots the image holds (VmClone reads and shows the active state).</summary>
    public int SnapshotCount { get; set; }

    /// <summary>Incompatible bit 0: the refcounts may be stale (a crash, or lazy refcounts); not written until repaired.</summary>
    public bool IsDirty { get; set; }

    /// <summary>Incompatible bit 1: qemu found the metadata inconsistent; not written until repaired.</summary>
    public bool IsCorrupt { get; set; }

    /// <summary>The external data file's full path when one is in use, else null.</summary>
    public string? DataFile { get; set; }

    /// <summary>One line for the list view: "64 KiB clusters, compat 1.1, backing ../base.qcow2 (qcow2)".</summary>
    public override string ToString()
    {
        var parts = new List<string> { $"{ClusterSize / 1024} KiB clusters", $"compat {Compat}" };
        if (ExtendedL2)
            parts.Add("extended L2");
        if (CompressionType != Qcow2CompressionType.Zlib)
            parts.Add(CompressionType.ToString().ToLowerInvariant());
        if (BackingFile is not null)
            parts.Add($"backing {BackingFile}" + (BackingFormat is null ? "" : $" ({BackingFormat})"));
        if (SnapshotCount > 0)
            parts.Add($"{SnapshotCount} snapshot(s)");
        if (IsDirty)
            parts.Add("dirty");
        if (IsCorrupt)
            parts.Add("corrupt");
        return string.Join(", ", parts);
    }
}

/// <summary>What a problem Test-VmDisk found does to the data.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VmDiskProblemKind
{
    /// <summary>The structures or the chain are wrong: reads may be wrong, writes may damage data.</summary>
    Corruption,
    /// <summary>Space is counted in use that nothing uses (a qcow2 leaked cluster): wasted, no data at risk.</summary>
    Leak,
}

/// <summary>One problem Test-VmDisk found, naming the file it is in.</summary>
public sealed class VmDiskProblem
{
    public VmDiskProblem(string path, string description, VmDiskProblemKind kind = VmDiskProblemKind.Corruption)
    {
        Path = path;
        Description = description;
        Kind = kind;
    }

    public string Path { get; }

    public string Description { get; }

    /// <summary>Corruption, or a leak that wastes space only.</summary>
    public VmDiskProblemKind Kind { get; }

    public override string ToString() => $"{Path}: {Description}";
}

/// <summary>The outcome of checking a disk and its whole chain.</summary>
public sealed class VmDiskCheckResult
{
    public VmDiskCheckResult(string path, IReadOnlyList<string> checkedPaths, IReadOnlyList<VmDiskProblem> problems, IReadOnlyList<VmDiskProblem>? leaks = null, IReadOnlyList<VmDiskWarning>? warnings = null, IReadOnlyList<VmRefcountsNotCompared>? refcountsNotCompared = null)
    {
        Warnings = warnings ?? new VmDiskWarning[0];
        Path = path;
        RefcountsNotCompared = refcountsNotCompared ?? new VmRefcountsNotCompared[0];
        CheckedPaths = checkedPaths;
        Problems = problems;
        Leaks = leaks ?? new VmDiskProblem[0];
    }

    /// <summary>The disk that was checked.</summary>
    public string Path { get; }

    /// <summary>True when no problem was found in the disk or its chain.</summary>
    public bool IsHealthy => Problems.Count == 0;

    /// <summary>Every file of the chain that was checked, top first.</summary>
    public IReadOnlyList<string> CheckedPaths { get; }

    /// <summary>What is wrong; empty when healthy.</summary>
    public IReadOnlyList<VmDiskProblem> Problems { get; }

    /// <summary>
    /// Clusters counted in use that nothing uses (qcow2; qemu-img check's leaks), listed apart
    /// from <see cref="Problems"/>: they waste space and put no data at risk, so a disk with
    /// leaks alone is healthy. qemu-img check -r leaks frees them.
    /// </summary>
    public IReadOnlyList<VmDiskProblem> Leaks { get; }

    /// <summary>What a hypervisor would refuse in a sound chain (a VHD chain deeper than XenServer's 30 files), apart from <see cref="Problems"/>: a disk with warnings alone is healthy.</summary>
    public IReadOnlyList<VmDiskWarning> Warnings { get; }
    /// <summary>
    /// The qcow2 files of the chain whose refcounts were not recomputed and compared (internal
    /// snapshots, persistent bitmaps, or too many clusters), each with why: their mapping was
    /// checked, their refcounts were not, so IsHealthy says nothing of them (qemu-img check
    /// does). Empty when every qcow2 file's refcounts were compared.
    /// </summary>
    public IReadOnlyList<VmRefcountsNotCompared> RefcountsNotCompared { get; }

    public override string ToString() => IsHealthy ? $"{Path}: healthy" : $"{Path}: {Problems.Count} problem(s)";
}

/// <summary>A qcow2 file of a checked chain whose refcounts were not compared, and why.</summary>
public sealed class VmRefcountsNotCompared
{
    public VmRefcountsNotCompared(string path, VmRefcountSkipReason reason)
    {
        Path = path;
        Reason = reason;
    }

    /// <summary>The qcow2 file.</summary>
    public string Path { get; }

    /// <summary>Why its refcounts were not compared.</summary>
    public VmRefcountSkipReason Reason { get; }

    public override string ToString() => $"{Path}: {Reason}";

    internal static VmRefcountSkipReason From(Qcow2RefcountSkip skip) => skip switch
    {
        Qcow2RefcountSkip.InternalSnapshots => VmRefcountSkipReason.InternalSnapshots,
        Qcow2RefcountSkip.PersistentBitmaps => VmRefcountSkipReason.PersistentBitmaps,
        _ => VmRefcountSkipReason.TooManyClusters,
    };
}

/// <summary>Why Test-VmDisk did not compare a qcow2 file's refcounts.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VmRefcountSkipReason
{
    /// <summary>Internal snapshots: their tables share clusters with the active layer, and the check does not walk them.</summary>
    InternalSnapshots,

    /// <summary>Persistent dirty bitmaps, whose tables the check does not walk.</summary>
    PersistentBitmaps,

    /// <summary>More than 256 Mi clusters: counting them would take more memory than the check allows itself.</summary>
    TooManyClusters,
}
