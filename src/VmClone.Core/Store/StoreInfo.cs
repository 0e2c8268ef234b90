using System;
using System.Collections.Generic;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>Whether a clone can be used as it is.</summary>
// ConvertTo-Json (Newtonsoft in PowerShell) writes the name, not the number, without -EnumsAsStrings.
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum CloneState
{
    /// <summary>Every volume's chain opens and its base is as it was made.</summary>
    Ready,
    /// <summary>A base file the clone depends on was modified after the clone was made: its content may be corrupted.</summary>
    BaseModified,
    /// <summary>A volume file or a parent is missing, damaged or outside the store.</summary>
    Broken,
    /// <summary>An operation on the clone was cut off (or is still running); the next command on the clone or Test-VmStore -Repair finishes or undoes it. Until then a volume may not open.</summary>
    Interrupted,
    /// <summary>The clone's manifest names a file outside the clone's folder (or is otherwise untrustworthy): nothing it names is opened, and no command acts on it until it is mended.</summary>
    ManifestInvalid,
    /// <summary>The clone's folder was renamed (or copied): its manifest names another clone. No command acts on it until Test-VmStore -Repair makes the folder's name its name (or the folder is renamed back).</summary>
    Renamed,
    /// <summary>The clone's clone.json cannot be read (damaged, empty, not a regular file, or written by a newer VmClone); <see cref="VmCloneInfo.Problem"/> says why. Test-VmStore -Repair rebuilds it from the volumes' own parent links where that is unambiguous.</summary>
    Unreadable,
}

/// <summary>One volume of a base or a clone, as Get-VmVolume shows it.</summary>
public sealed class VmVolumeInfo
{
    /// <summary>Name of the base or clone the volume belongs to.</summary>
    public string Owner { get; set; } = "";

    /// <summary>"Base" or "Clone".</summary>
    public string OwnerKind { get; set; } = "";

    public string Name { get; set; } = "";

    public VolumeType Type { get; set; }

    public DiskFormat Format { get; set; }

    /// <summary>Full path of the volume file.</summary>
    public string Path { get; set; } = "";

    /// <summary>Full path of the parent the file links to (what the disk says), or null for a standalone volume.</summary>
    public string? ParentPath { get; set; }

    public long VirtualSize { get; set; }

    /// <summary>Space the volume's file takes on the file system: allocated bytes (Linux st_blocks × 512, Windows GetCompressedFileSize), not the length, so a sparse file counts only what it holds; the length on macOS.</summary>
    public long SizeOnDisk { get; set; }

    /// <summary>Bytes of virtual content stored in the volume's own file (allocated blocks or grains).</summary>
    public long OwnedBytes { get; set; }

    /// <summary>
    /// Bytes of the volume that no longer read as its base, in 512-byte sectors. For a volume
    /// over a parent, the sectors its own file answers instead of the parent, as finely as the
    /// file records them: each sector for VHDX (its sector bitmap) and VHD, whole grains (64 KiB)
    /// for VMDK and whole clusters for qcow2, whose files record no finer. For a standalone
    /// volume (a clone's data volume made empty because the base's held nothing), whose base is
    /// empty, the sectors that no longer read as zeros: Get-VmVolume
    /// (<see cref="VmStore.GetCloneVolumes"/>, <see cref="VmStore.GetBaseVolumes"/>) reads what
    /// the file stores to count them, in proportion to the data it holds. Elsewhere (the
    /// volumes of Get-VmClone and Get-VmBase, and the -PassThru of the fleet commands) a
    /// standalone data volume is not read and shows the bytes its file stores instead, an upper
    /// bound (whole blocks, grains or clusters); a standalone system or temporary volume, which a
    /// clone's own <see cref="VmCloneInfo.DivergedBytes"/> sums, is always counted.
    /// </summary>
    public long DivergedBytes { get; set; }

    /// <summary>Why the volume's chain does not open cleanly, or null.</summary>
    public string? Problem { get; set; }

    /// <summary>What is wrong with the volume's parent chain as a type (the parent was modified, is missing, ...), or null when the chain opens or the problem is not the chain's.</summary>
    public ChainProblem? ChainProblem { get; set; }

    /// <summary>Why the volume file itself was not opened (a link, a FIFO, outside its folder), or None.</summary>
    internal BoundaryProblem Boundary { get; set; }

    public override string ToString() => $"{Owner}/{Name}";

    internal VmVolumeInfo Copy() => (VmVolumeInfo)MemberwiseClone();
}

/// <summary>A base as Get-VmBase shows it.</summary>
public sealed class VmBaseInfo
{
    public string Name { get; set; } = "";

    /// <summary>The store the base is in (lets piped objects find it).</summary>
    public string Store { get; set; } = "";

    /// <summary>Full path of the base's folder.</summary>
    public string Path { get; set; } = "";

    public DateTimeOffset Created { get; set; }

    /// <summary>Where the content came from ("files", or "clone NAME").</summary>
    public string? Source { get; set; }

    public IReadOnlyList<VmVolumeInfo> Volumes { get; set; } = Array.Empty<VmVolumeInfo>();

    /// <summary>Number of clones whose manifest names this base, and of clones whose manifest cannot be read whose volumes depend on it.</summary>
    public int CloneCount { get; set; }

    /// <summary>Space the base's volume files take on the file system (allocated bytes, see <see cref="VmVolumeInfo.SizeOnDisk"/>).</summary>
    public long SizeOnDisk { get; set; }

    /// <summary>True when a volume's identity differs from the one recorded when the base was made.</summary>
    public bool IsModified { get; set; }

    public override string ToString() => Name;
}

/// <summary>A clone as Get-VmClone shows it.</summary>
public sealed class VmCloneInfo
{
    public string Name { get; set; } = "";

    /// <summary>The base the clone's manifest names.</summary>
    public string Base { get; set; } = "";

    /// <summary>The store the clone is in (lets piped objects find it).</summary>
    public string Store { get; set; } = "";

    /// <summary>Full path of the clone's folder.</summary>
    public string Path { get; set; } = "";

    public CloneState State { get; set; }

    public DateTimeOffset Created { get; set; }

    public DateTimeOffset? LastRestored { get; set; }

    public DateTimeOffset? LastRebased { get; set; }

    public IReadOnlyList<VmVolumeInfo> Volumes { get; set; } = Array.Empty<VmVolumeInfo>();

    /// <summary>Space the clone's volume files take on the file system (allocated bytes, see <see cref="VmVolumeInfo.SizeOnDisk"/>).</summary>
    public long SizeOnDisk { get; set; }

    /// <summary>Bytes of virtual content the clone's files store themselves.</summary>
    public long OwnedBytes { get; set; }

    /// <summary>
    /// Bytes of its system and temporary volumes that no longer read as the base, in 512-byte
    /// sectors (the sum of their <see cref="VmVolumeInfo.DivergedBytes"/>): what a restore would
    /// discard. No data volume is read for it.
    /// </summary>
    public long DivergedBytes { get; set; }

    /// <summary>Why the clone is <see cref="CloneState.Renamed"/> or <see cref="CloneState.Unreadable"/> (naming the folder and its manifest), or null.</summary>
    public string? Problem { get; set; }

    public override string ToString() => Name;
}

/// <summary>What kind of problem Test-VmStore found.</summary>
// ConvertTo-Json (Newtonsoft in PowerShell) writes the name, not the number, without -EnumsAsStrings.
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum StoreProblemKind
{
    /// <summary>store.json, base.json or clone.json is missing, unreadable or too new.</summary>
    ManifestInvalid,
    /// <summary>A base volume's content changed after the base was made.</summary>
    BaseModified,
    /// <summary>A base volume file is not marked read-only.</summary>
    BaseNotReadOnly,
    /// <summary>A volume file named by a manifest does not exist.</summary>
    VolumeMissing,
    /// <summary>A volume's parent is missing, modified, outside the store, or the file is damaged.</summary>
    ChainBroken,
    /// <summary>A volume's parent link (the truth) differs from what the manifest says.</summary>
    ManifestMismatch,
    /// <summary>A clone names a base that does not exist.</summary>
    BaseMissing,
    /// <summary>A file or folder in the store that no manifest accounts for.</summary>
    OrphanedFile,
    /// <summary>An operation was cut off and left its staging folder.</summary>
    InterruptedOperation,
    /// <summary>A volume file is a symbolic link, lies in a linked folder, is not a regular file, or is a VMDK descriptor naming other files: it is not opened.</summary>
    VolumeNotContained,
    /// <summary>A clone's folder was renamed (or copied): the name its manifest holds is not the folder's.</summary>
    CloneRenamed,
}

/// <summary>One problem Test-VmStore found, naming the base, clone or file.</summary>
public sealed class VmStoreProblem
{
    public StoreProblemKind Kind { get; set; }

    /// <summary>"base NAME", "clone NAME" or "store".</summary>
    public string Subject { get; set; } = "";

    /// <summary>The file or folder concerned.</summary>
    public string Path { get; set; } = "";

    public string Description { get; set; } = "";

    /// <summary>True when -Repair fixed it.</summary>
    public bool Repaired { get; set; }

    /// <summary>What -Repair did, or why it could not fix it safely.</summary>
    public string? Repair { get; set; }

    public override string ToString() => $"{Subject}: {Description}";
}

/// <summary>The outcome of Test-VmStore.</summary>
public sealed class VmStoreReport
{
    public string Store { get; set; } = "";

    /// <summary>True when nothing is wrong (after repairs, when -Repair fixed everything).</summary>
    public bool IsHealthy { get; set; }

    public int BaseCount { get; set; }

    public int CloneCount { get; set; }

    public IReadOnlyList<VmStoreProblem> Problems { get; set; } = Array.Empty<VmStoreProblem>();

    public override string ToString() => IsHealthy ? $"{Store}: healthy" : $"{Store}: {Problems.Count} problem(s)";
}
