using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Compares the virtual content of two disks, as qemu-img compare does: identical, or the first offset where they differ.</summary>
/// <remarks>
/// <para>Compare-VmDisk reads each disk through its whole parent chain, so a clone compares with its base, a flattened copy with its chain, and disks of different formats (VHDX, VMDK, qcow2, VHD, raw) with each other by what a VM would read. Nothing is written to either file.</para>
/// <para>It writes one result per disk compared: Identical (True or False), Difference (None, Content, Allocation or Size), FirstDifferenceOffset (the virtual offset of the first byte that differs; qemu-img compare names the 512-byte sector holding it), Size and DifferenceSize (the two virtual sizes) and BytesRead. Disks that differ are a result, not an error: a script tests Identical, as with Test-VmDisk's IsHealthy, and an error is written only when a disk cannot be read (not found, not a disk, a broken chain, refused by a store's boundary).</para>
/// <para>Disks of different sizes are identical when the common range reads the same and the larger disk's extra range reads as zeros (qemu's rule). -Strict makes differing sizes a difference (Size), and also compares allocation (qemu-img compare -s): a run stored as data in one disk and stated zero (a zero block or cluster) or unallocated in the other is a difference (Allocation) even when both read as zeros. Unlike qemu, -Strict does not call two unallocated runs different because one of them reaches the end of its image.</para>
/// <para>Only what must be read is read: runs both disks know to be zero or unallocated, and runs both take from the same file (a clone and its base), are decided from the block maps alone; the rest is read in two 1 MiB buffers, so memory does not grow with the disks.</para>
/// <para>Several disks (from -Path wildcards or the pipeline) are each compared with -DifferencePath.</para>
/// <para>On a file inside a store (a folder above it holds store.json) the store's boundary applies to both disks: parents are followed only inside the store (DiskParentOutsideRoot), and a file that is a link leading out of the store or a FIFO, device or socket is refused (VolumeOutsideStore, VolumeNotRegularFile) before it is opened.</para>
/// </remarks>
/// <example>
/// <summary>Does a clone still read as its base?</summary>
/// <code>Compare-VmDisk -Path ./child.vhdx -DifferencePath ./base.vhdx</code>
/// <para>Identical is True for a clone nothing was written to; only the blocks the child stores are read.</para>
/// </example>
/// <example>
/// <summary>Check a conversion in a script</summary>
/// <code>Convert-VmDisk ./child.vhdx ./flat.qcow2 | Out-Null; if (-not (Compare-VmDisk ./child.vhdx ./flat.qcow2 | Select-Object -ExpandProperty Identical)) { throw 'the copy differs' }</code>
/// <para>Differences are results, so the script decides on Identical; an unreadable disk is an error.</para>
/// </example>
/// <example>
/// <summary>Compare allocation too, as qemu-img compare -s</summary>
/// <code>Compare-VmDisk ./child.vhdx ./base.vhdx -Strict | Format-List</code>
/// <para>Difference is Allocation, with its offset, when one disk stores data where the other stores nothing.</para>
/// </example>
/// <example>
/// <summary>Which disks in a folder differ from the base</summary>
/// <code>Get-ChildItem -Path . -Filter *.vhdx | Compare-VmDisk -DifferencePath ./base.vhdx | Where-Object { -not $_.Identical }</code>
/// <para>Each piped file is compared with base.vhdx.</para>
/// </example>
[Cmdlet(VerbsData.Compare, "VmDisk", DefaultParameterSetName = "Path")]
[OutputType(typeof(VmDiskComparison))]
public sealed class CompareVmDiskCommand : DiskFileCmdlet
{
    /// <summary>The disk to compare with (read through its chain).</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string DifferencePath { get; set; } = null!;

    /// <summary>Treat -DifferencePath as this format instead of detecting it (for raw images without a .raw or .img extension).</summary>
    [Parameter]
    [ValidateDiskFormat(DiskFormatUse.Read)]
    public DiskFormat DifferenceFormat { get; set; }

    /// <summary>Also compare allocation, and count differing sizes as a difference (qemu-img compare -s).</summary>
    [Parameter]
    public SwitchParameter Strict { get; set; }

    protected override void ProcessDisk(string path, DiskOpenOptions options)
    {
        string other = ResolveSinglePath(DifferencePath);
        DiskOpenOptions otherOptions = StoreOfFile.Apply(other, new DiskOpenOptions { Format = IsBound(nameof(DifferenceFormat)) ? DifferenceFormat : null });
        using var progress = new CmdletProgress(this);
        WriteObject(DiskOperations.Compare(path, other, Strict.IsPresent, options, otherOptions, progress, CancellationToken));
    }
}
