using System.Management.Automation;
using VmClone.Core;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Grows a virtual disk file, or shrinks it when nothing is stored past the new end (like Hyper-V's Resize-VHD).</summary>
/// <remarks>
/// <para>Resize-VmDisk changes a disk's virtual size in place, in the format's own structures: the VHDX metadata and BAT (moved to a larger region when the new size needs more entries), a VMDK's sparse header, grain directories and descriptor (a VMDK of one sparse or flat extent), a qcow2 header and L1 table (a larger table written first, as qemu-img resize does), a VHD footer with its CHS geometry and BAT (a fixed VHD's footer moves to the new end), a raw file's length. Every byte below the old size keeps its content; the added range reads as zeros. A cut-off resize leaves a file that opens at the old or the new size.</para>
/// <para>A shrink is refused with ShrinkBelowData when the disk stores data past the new end (allocated blocks, grains or clusters; for a fixed or raw disk, bytes that are not zero); the message gives the smallest size it can take, and -ToMinimumSize shrinks to exactly that. The file system inside the disk is not changed: shrink or grow the partition with the guest's tools.</para>
/// <para>Growing keeps the disk's identity (VHDX DataWriteGuid, VMDK CID, VHD unique id), since every byte a child can read through it is unchanged, so its children stay linked. Shrinking gives it a new identity. A differencing disk grows only with its parent: a size past its parent's is refused with ChildPastParent; grow the parent first, then the child.</para>
/// <para>Refused, nothing written: a file another process holds open, such as a running machine's disk (DiskInUse); a volume inside a VmClone store (DiskInStore): to give clones larger volumes, make a new base of the larger size and move the clones onto it with Invoke-VmRebase, which grows each data volume with its content kept.</para>
/// <para>Growing a fixed or raw disk can write its whole added range: before it grows, that much (with 2 MiB more) is checked against the free space where the disk lies, and a disk that would not fit is refused at once with DiskFull, naming the folder and the numbers, unchanged. A dynamic disk grows its tables only and is not checked.</para>
/// </remarks>
/// <example>
/// <summary>Grow a disk at the monthly update</summary>
/// <code>New-VmDisk -Path ./grow.vhdx -SizeBytes 1GB | Out-Null
/// Resize-VmDisk -Path ./grow.vhdx -SizeBytes 2GB</code>
/// <para>grow.vhdx is now 2 GiB; its first GiB reads as before, the rest as zeros.</para>
/// </example>
/// <example>
/// <summary>Preview, then shrink a disk to the end of what it stores</summary>
/// <code>New-VmDisk -Path ./shrink.qcow2 -SizeBytes 1GB | Out-Null
/// Resize-VmDisk -Path ./shrink.qcow2 -ToMinimumSize -WhatIf
/// Resize-VmDisk -Path ./shrink.qcow2 -ToMinimumSize</code>
/// <para>-WhatIf says the current and the new size without writing.</para>
/// </example>
/// <example>
/// <summary>Grow every disk in a folder</summary>
/// <code>New-Item -ItemType Directory ./many | Out-Null
/// New-VmDisk -Path ./many/a.vmdk, ./many/b.qcow2 -SizeBytes 64MB | Out-Null
/// Get-ChildItem ./many | Resize-VmDisk -SizeBytes 128MB</code>
/// </example>
[Cmdlet(VerbsCommon.Resize, "VmDisk", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = PathSet)]
[OutputType(typeof(VmDiskInfo))]
public sealed class ResizeVmDiskCommand : DiskFileCmdlet
{
    /// <summary>The new virtual size in bytes (PowerShell's 40GB notation works); a multiple of the disk's logical sector size.</summary>
    [Parameter(Position = 1)]
    [Alias("Size")]
    [ValidateRange(1L, long.MaxValue)]
    public long SizeBytes { get; set; }

    /// <summary>Shrink to the smallest size that keeps everything the disk stores.</summary>
    [Parameter]
    public SwitchParameter ToMinimumSize { get; set; }

    protected override void BeginProcessing()
    {
        if (IsBound(nameof(SizeBytes)) == ToMinimumSize.IsPresent)
            ThrowTerminatingError(new ErrorRecord(
                new PSArgumentException("Give either -SizeBytes or -ToMinimumSize."), StoreErrorIds.InvalidArgument, ErrorCategory.InvalidArgument, null));
        base.BeginProcessing();
    }

    protected override void ProcessDisk(string path, DiskOpenOptions options)
    {
        (long current, long minimum) = DiskOperations.PlanResize(path, options);
        long target = ToMinimumSize ? minimum : SizeBytes;
        string what = target == current
            ? $"Keep the size of {SizeFormat.Bytes(current)} ({current} bytes)"
            : $"{(target > current ? "Grow" : "Shrink")} from {SizeFormat.Bytes(current)} ({current} bytes) to {SizeFormat.Bytes(target)} ({target} bytes)";
        if (!ShouldProcess(path, what))
            return;
        WriteObject(DiskOperations.Resize(path, target, toMinimum: false, options));
    }
}
