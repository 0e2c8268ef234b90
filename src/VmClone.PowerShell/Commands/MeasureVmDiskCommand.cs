using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Shows how many bytes a standalone copy of a disk (its chain flattened) would take in a format, as qemu-img measure does.</summary>
/// <remarks>
/// <para>Measure-VmDisk reads only the block maps of the disk and its parents, never their data, and writes one result per disk: DestinationFormat, BlockSize (the copy's block, grain or cluster), VirtualSize, RequiredBytes (what Convert-VmDisk to that format needs for what the chain stores), FullyAllocatedBytes (the file once every block is written) and DataBytes (the virtual bytes the chain stores as data, which a convert reads and copies). Nothing is written.</para>
/// <para>Every block of the copy that a stored run of the chain touches is counted. For qcow2 and raw the rule is qemu-img measure's, and the numbers are the ones it prints: qcow2 counts the tables a fully allocated image needs plus the clusters that hold data (Convert-VmDisk's file never exceeds it), raw is the virtual size (the file's length; a sparse file takes less). For VHDX, VMDK and VHD, which qemu-img cannot measure, RequiredBytes is the length of the file Convert-VmDisk writes. Blocks that are stored but hold only zeros are counted, as qemu counts them; the convert skips them and writes less.</para>
/// <para>The destination format is -DestinationFormat, else the disk's own format (the size of Convert-VmDisk flattening it); -BlockSizeBytes is the block size the convert would be given.</para>
/// <para>On a file inside a store (a folder above it holds store.json) the store's boundary applies: parents are followed only inside the store (DiskParentOutsideRoot), and a file that is a link leading out of the store or a FIFO, device or socket is refused (VolumeOutsideStore, VolumeNotRegularFile) before it is opened.</para>
/// </remarks>
/// <example>
/// <summary>How large would a flattened copy be?</summary>
/// <code>Measure-VmDisk -Path ./child.vhdx</code>
/// <para>The bytes Convert-VmDisk would write for a standalone VHDX of the child's chain.</para>
/// </example>
/// <example>
/// <summary>Measure a qcow2 export, with qemu's numbers</summary>
/// <code>Measure-VmDisk ./child.vhdx -DestinationFormat Qcow2 | Format-List</code>
/// <para>RequiredBytes and FullyAllocatedBytes are what qemu-img measure -O qcow2 prints for the same content.</para>
/// </example>
/// <example>
/// <summary>Check free space before converting</summary>
/// <code>$m = Measure-VmDisk ./child.vhdx -DestinationFormat Vmdk; if ($m.RequiredBytes -lt [IO.DriveInfo]::new($PWD.Path).AvailableFreeSpace) { Convert-VmDisk ./child.vhdx ./child.vmdk | Out-Null }</code>
/// <para>Converts only when the destination's drive can hold the copy.</para>
/// </example>
/// <example>
/// <summary>Every disk in a folder</summary>
/// <code>Get-ChildItem -Path . -Filter *.vhdx | Measure-VmDisk | Format-Table DestinationFormat, RequiredBytes, FullyAllocatedBytes, Path</code>
/// <para>Files are bound from the pipeline by their path.</para>
/// </example>
[Cmdlet(VerbsDiagnostic.Measure, "VmDisk", DefaultParameterSetName = "Path")]
[OutputType(typeof(VmDiskMeasurement))]
public sealed class MeasureVmDiskCommand : DiskFileCmdlet
{
    /// <summary>Format of the copy to measure; by default the disk's own.</summary>
    [Parameter]
    [ValidateDiskFormat(DiskFormatUse.Write)]
    public DiskFormat DestinationFormat { get; set; }

    /// <summary>Allocation unit the copy would have (VHDX block size, VMDK grain, qcow2 cluster, VHD block); by default the convert's.</summary>
    [Parameter]
    [ValidateRange(512L, 256L * 1024 * 1024)]
    public long BlockSizeBytes { get; set; }

    protected override void ProcessDisk(string path, DiskOpenOptions options) =>
        WriteObject(DiskOperations.Measure(path, IsBound(nameof(DestinationFormat)) ? DestinationFormat : null,
            IsBound(nameof(BlockSizeBytes)) ? BlockSizeBytes : null, options, CancellationToken));
}
