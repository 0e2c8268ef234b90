using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Shows a virtual disk file and, with -Chain, every disk in its parent chain.</summary>
/// <remarks>
/// <para>Get-VmDisk reads a disk's metadata without changing the file: format, type (Dynamic, Fixed, Differencing), virtual size, file length (FileSize), space on disk (SizeOnDisk), bytes it stores itself (AllocatedSize), block size, sector sizes, parent path and the depth of its chain.</para>
/// <para>SizeOnDisk is the space the file system has allocated for the file (Linux: st_blocks × 512; Windows: GetCompressedFileSize), which the table shows as OnDisk: a sparse 64 GiB file that holds nothing shows a few MiB where FileSize shows 64 GiB. On macOS, where the system does not say, it is the length.</para>
/// <para>A qcow2 image also has a Qcow2 property (null for every other format): ClusterSize, Compat (0.10 or 1.1) and Version, ExtendedL2, CompressionType (Zlib or Zstd), RefcountBits, BackingFile exactly as stored and BackingFileResolved (the full path it resolves to), BackingFormat, SnapshotCount (the active state is what is read), IsDirty and IsCorrupt (either refuses writing until qemu-img check -r all repairs the image) and DataFile.</para>
/// <para>A VHD file also has a Vhd property (null for every other format): DiskType (Fixed, Dynamic or Differencing), BlockSize (null for a fixed disk), CreatorApplication, CreatorVersion and CreatorHostOs, the CHS geometry (Cylinders, Heads, SectorsPerTrack), CurrentSize and SizeFrom (CurrentSize or Geometry: the virtual size follows qemu's rule by creator), UniqueId, Hidden (XenServer's hidden byte, kept as found), and for a differencing disk ParentUniqueId, ParentName, ParentTimestamp (reported, not trusted) and Locators, each with its Code (W2ru, W2ku, MacX ...), StoredPath exactly as stored, Kind, ResolvedPath on this host and FileExists.</para>
/// <para>Warnings lists what makes a sound disk one a hypervisor would refuse, each with a Kind: VhdChainTooDeepForXenServer when the disk heads a VHD chain of more than 30 files (XenServer and XCP-ng refuse those); a warning is written too.</para>
/// <para>A differencing disk whose parent is missing or was modified is still shown: ChainDepth is empty and ChainProblem says what is wrong, and a warning is written. With -Chain, one object per layer is written, from the disk itself (Level 0) down to its base.</para>
/// <para>With -Map, Get-VmDisk writes the disk's block map instead, as qemu-img map --output=json does: one object per run of the virtual disk, in order from offset 0 to the end, with Start, Length and End (virtual offsets), Kind (Data: stored by a file; Zero: stated zero by a file, a zero block or cluster that hides what lies below; Unallocated: stored by no file down to the base, reads as zeros), Depth (0 for the disk itself, 1 for its parent ...; empty for Unallocated), FromParent, File and Format (the file that holds the run; for a VMDK its extent file) and, for data, Offset: where in that file the run's bytes lie, contiguous for the whole run (a run is split where they stop following each other, as qemu-img map splits it; empty for compressed data). Only metadata is read, and runs are written as they are found, so the map of a huge disk starts at once and takes little memory. -Map cannot be combined with -Chain (a map already names the layer of each run).</para>
/// <para>Accepts paths from the pipeline, so Get-ChildItem *.vhdx | Get-VmDisk works.</para>
/// <para>On a file inside a store (a folder above it holds store.json) the store's boundary applies: parents are followed only inside the store (DiskParentOutsideRoot), and a file that is a link leading out of the store or a FIFO, device or socket is refused (VolumeOutsideStore, VolumeNotRegularFile) before it is opened.</para>
/// </remarks>
/// <example>
/// <summary>Show one disk</summary>
/// <code>Get-VmDisk -Path ./child.vhdx</code>
/// <para>Shows the child's format, type, sizes, parent and chain depth.</para>
/// </example>
/// <example>
/// <summary>Show a whole chain</summary>
/// <code>Get-VmDisk ./child.vhdx -Chain | Format-Table Level, Type, VirtualSize, FileSize, Path</code>
/// <para>One row per layer, from the child (Level 0) down to its base.</para>
/// </example>
/// <example>
/// <summary>Every disk in a folder, largest files first</summary>
/// <code>Get-ChildItem -Path . -Filter *.vhdx | Get-VmDisk | Sort-Object SizeOnDisk -Descending</code>
/// <para>Files are bound from the pipeline by their path.</para>
/// </example>
/// <example>
/// <summary>Where a clone's content comes from</summary>
/// <code>Get-VmDisk ./child.vhdx -Map | Format-Table Start, Length, Kind, Depth, Offset, File</code>
/// <para>Runs the child stores have Depth 0, runs read from the base Depth 1; the rest is Unallocated.</para>
/// </example>
/// <example>
/// <summary>How much of a clone is its own</summary>
/// <code>(Get-VmDisk ./child.vhdx -Map | Where-Object { $_.Kind -eq 'Data' -and -not $_.FromParent } | Measure-Object -Property Length -Sum).Sum</code>
/// <para>The virtual bytes the child's own file stores.</para>
/// </example>
[Cmdlet(VerbsCommon.Get, "VmDisk", DefaultParameterSetName = "Path")]
[OutputType(typeof(VmDiskInfo))]
[OutputType(typeof(VmDiskMapEntry))]
public sealed class GetVmDiskCommand : DiskFileCmdlet
{
    /// <summary>Also show every parent down to the base, one object per layer.</summary>
    [Parameter]
    public SwitchParameter Chain { get; set; }

    /// <summary>Read a qcow2 image whose data lies in an external data file (incompatible feature bit 2, qemu-img create -o data_file=...), provided that file really lies in the image's own folder (links resolved). Without it such an image is refused, the message naming the data file: an image that names another file to read is how CVE-2024-32498 leaked host files. Never applies inside a store: a store's volumes are one file each.</summary>
    [Parameter]
    public SwitchParameter AllowExternalDataFile { get; set; }

    protected override bool AllowsExternalDataFile => AllowExternalDataFile;

    /// <summary>Write the disk's block map (runs of data, zero and unallocated, with the file and depth each comes from) instead of its description, as qemu-img map does.</summary>
    [Parameter]
    public SwitchParameter Map { get; set; }

    protected override void BeginProcessing()
    {
        if (Map.IsPresent && Chain.IsPresent)
            ThrowTerminatingError(new ErrorRecord(new System.ArgumentException("-Map and -Chain cannot be used together: the map already names the layer each run comes from (Depth, File)."),
                "MapWithChain", ErrorCategory.InvalidArgument, null));
        base.BeginProcessing();
    }

    protected override void ProcessDisk(string path, DiskOpenOptions options)
    {
        if (Map.IsPresent)
        {
            foreach (VmDiskMapEntry entry in DiskOperations.Map(path, options, CancellationToken))
                WriteObject(entry);
            return;
        }
        foreach (VmDiskInfo info in DiskOperations.Inspect(path, Chain.IsPresent, options))
        {
            if (info.ChainProblem is string problem)
                WriteWarning(problem);
            foreach (VmDiskWarning warning in info.Warnings)
                WriteWarning(warning.Description);
            WriteObject(info);
        }
    }
}
