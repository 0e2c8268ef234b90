using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Commits a differencing disk's content into its parent (or a further ancestor) and removes the merged child.</summary>
/// <remarks>
/// <para>Merge-VmDisk works like Hyper-V's Merge-VHD: afterwards the ancestor reads exactly what the child showed, and the child (and any disks between it and the ancestor) are deleted.</para>
/// <para>For qcow2 it does what qemu-img commit does: the overlay's clusters are written into its backing image (a qcow2 without internal snapshots, bitmaps or an external data file), which qemu-img check then finds clean.</para>
/// <para>-KeepChild keeps the merged child instead of deleting it: it becomes a new, empty child of the ancestor it was merged into, under its own name and in its own format, so a VM attached to it keeps its disk and starts a new layer (what qemu-img commit does by default; qemu-img commit -d is Merge-VmDisk without -KeepChild, leaving the child unchanged, and Merge-VmDisk then deletes it). Disks between the child and the ancestor are deleted either way.</para>
/// <para>For VHD the child's sectors (those its sector bitmaps mark) are written into its VHD parent, which takes a new unique id.</para>
/// <para>Writing into the ancestor changes it, which would corrupt any other child made from it. Merge-VmDisk looks for such children in the folders of the chain and refuses, naming them, unless -Force says they may be discarded. A merge that was cut off is finished by running the same command again.</para>
/// <para>On a file inside a store (a folder above it holds store.json) the store's boundary applies: parents are followed only inside the store (DiskParentOutsideRoot), and a file that is a link leading out of the store or a FIFO, device or socket is refused (VolumeOutsideStore, VolumeNotRegularFile) before it is opened. A *.vmclone-merging marker that is not a small regular file (a link, a FIFO) is refused with MergeMarkerInvalid.</para>
/// <para>Before anything is written, what the merge can add to the ancestor (every block of it the layers above store data in) is checked against its file system's free space: a merge that does not fit is refused at once with DiskFull, naming the folder and the numbers, and nothing is changed.</para>
/// </remarks>
/// <example>
/// <summary>Merge a child into its parent</summary>
/// <code>Merge-VmDisk -Path ./child.vhdx</code>
/// <para>base.vhdx now holds child.vhdx's content; child.vhdx is gone.</para>
/// </example>
/// <example>
/// <summary>Merge two levels at once, previewing first</summary>
/// <code>New-VmDisk ./grandchild.vhdx -ParentPath ./child.vhdx | Out-Null
/// Merge-VmDisk ./grandchild.vhdx -DestinationPath ./base.vhdx -WhatIf
/// Merge-VmDisk ./grandchild.vhdx -DestinationPath ./base.vhdx -PassThru</code>
/// <para>Commits both grandchild.vhdx and child.vhdx into base.vhdx and shows the result.</para>
/// </example>
/// <example>
/// <summary>Merge a child into its parent and keep it as an empty child</summary>
/// <code>Merge-VmDisk -Path ./child.vhdx -KeepChild -PassThru</code>
/// <para>base.vhdx now holds what child.vhdx showed; child.vhdx is still there, an empty child of base.vhdx, so the VM using it carries on.</para>
/// </example>
[Cmdlet(VerbsData.Merge, "VmDisk", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmDiskInfo))]
public sealed class MergeVmDiskCommand : VmCloneCmdlet
{
    /// <summary>The differencing disk to merge.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = null!;

    /// <summary>The ancestor to merge into; by default the direct parent.</summary>
    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string DestinationPath { get; set; } = null!;

    /// <summary>Merge even though the ancestor has other children, which will then show corrupted content.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Keep the child as a new, empty child of the ancestor it was merged into instead of deleting it (qemu-img commit without -d).</summary>
    [Parameter]
    public SwitchParameter KeepChild { get; set; }

    /// <summary>Write the merged ancestor's description.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        Try(Path, () =>
        {
            string child = ResolveSinglePath(Path);
            string? destination = IsBound(nameof(DestinationPath)) ? ResolveSinglePath(DestinationPath) : null;
            string after = KeepChild ? "keep it as an empty child of the merged disk" : "delete the merged disk(s)";
            if (!ShouldProcess(child, $"Merge into {(destination is null ? "its parent" : $"'{destination}'")} and {after}"))
                return;
            using var progress = new CmdletProgress(this);
            VmDiskInfo merged = DiskOperations.Merge(child, destination, Force.IsPresent, KeepChild.IsPresent, StoreOfFile.Apply(child, new DiskOpenOptions()), progress, CancellationToken);
            WriteVerbose($"Merged '{child}' into '{merged.Path}'.");
            if (PassThru)
                WriteObject(merged);
        });
    }
}
