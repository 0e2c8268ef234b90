using System.Collections.Generic;
using VmClone.Disks;

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

    public override string ToString() => Path;
}

/// <summary>One problem Test-VmDisk found, naming the file it is in.</summary>
public sealed class VmDiskProblem
{
    public VmDiskProblem(string path, string description)
    {
        Path = path;
        Description = description;
    }

    public string Path { get; }

    public string Description { get; }

    public override string ToString() => $"{Path}: {Description}";
}

/// <summary>The outcome of checking a disk and its whole chain.</summary>
public sealed class VmDiskCheckResult
{
    public VmDiskCheckResult(string path, IReadOnlyList<string> checkedPaths, IReadOnlyList<VmDiskProblem> problems)
    {
        Path = path;
        CheckedPaths = checkedPaths;
        Problems = problems;
    }

    /// <summary>The disk that was checked.</summary>
    public string Path { get; }

    /// <summary>True when no problem was found in the disk or its chain.</summary>
    public bool IsHealthy => Problems.Count == 0;

    /// <summary>Every file of the chain that was checked, top first.</summary>
    public IReadOnlyList<string> CheckedPaths { get; }

    /// <summary>What is wrong; empty when healthy.</summary>
    public IReadOnlyList<VmDiskProblem> Problems { get; }

    public override string ToString() => IsHealthy ? $"{Path}: healthy" : $"{Path}: {Problems.Count} problem(s)";
}
