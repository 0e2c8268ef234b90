using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Shows a virtual disk file and, with -Chain, every disk in its parent chain.</summary>
/// <remarks>
/// <para>Get-VmDisk reads a disk's metadata without changing the file: format, type (Dynamic, Fixed, Differencing), virtual size, file length (FileSize), space on disk (SizeOnDisk), bytes it stores itself (AllocatedSize), block size, sector sizes, parent path and the depth of its chain.</para>
/// <para>SizeOnDisk is the space the file system has allocated for the file (Linux: st_blocks × 512; Windows: GetCompressedFileSize), which the table shows as OnDisk: a sparse 64 GiB file that holds nothing shows a few MiB where FileSize shows 64 GiB. On macOS, where the system does not say, it is the length.</para>
/// <para>A qcow2 image also has a Qcow2 property (null for every other format): ClusterSize, Compat (0.10 or 1.1) and Version, ExtendedL2, CompressionType (Zlib or Zstd), RefcountBits, BackingFile exactly as stored and BackingFileResolved (the full path it resolves to), BackingFormat, SnapshotCount (the active state is what is read), IsDirty and IsCorrupt (either refuses writing until qemu-img check -r all repairs the image) and DataFile.</para>
/// <para>A differencing disk whose parent is missing or was modified is still shown: ChainDepth is empty and ChainProblem says what is wrong, and a warning is written. With -Chain, one object per layer is written, from the disk itself (Level 0) down to its base.</para>
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
[Cmdlet(VerbsCommon.Get, "VmDisk", DefaultParameterSetName = "Path")]
[OutputType(typeof(VmDiskInfo))]
public sealed class GetVmDiskCommand : DiskFileCmdlet
{
    /// <summary>Also show every parent down to the base, one object per layer.</summary>
    [Parameter]
    public SwitchParameter Chain { get; set; }

    /// <summary>Read a qcow2 image whose data lies in an external data file (incompatible feature bit 2, qemu-img create -o data_file=...), provided that file really lies in the image's own folder (links resolved). Without it such an image is refused, the message naming the data file: an image that names another file to read is how CVE-2024-32498 leaked host files. Never applies inside a store: a store's volumes are one file each.</summary>
    [Parameter]
    public SwitchParameter AllowExternalDataFile { get; set; }

    protected override bool AllowsExternalDataFile => AllowExternalDataFile;

    protected override void ProcessDisk(string path, DiskOpenOptions options)
    {
        foreach (VmDiskInfo info in DiskOperations.Inspect(path, Chain.IsPresent, options))
        {
            if (info.ChainProblem is string problem)
                WriteWarning(problem);
            WriteObject(info);
        }
    }
}
