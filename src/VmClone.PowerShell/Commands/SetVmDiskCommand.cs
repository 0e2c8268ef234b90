using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Re-points a differencing disk at a moved parent, or re-parents it onto a different disk while keeping its content.</summary>
/// <remarks>
/// <para>Without -PreserveContent, Set-VmDisk only rewrites the child's link (its relative and absolute parent path). The new parent must hold the very content the child was made from — a parent that was moved or copied — which is checked by identity (VHDX DataWriteGuid, VMDK CID, VHD unique id; a VHD child gets new W2ru and W2ku locators and parent name); a different disk is refused unless -IgnoreIdMismatch. A qcow2 overlay records no identity of its backing file, so any file at the new path with the same size is accepted (as qemu-img rebase -u does): the header's backing file name (relative to the overlay's folder) and backing format are rewritten, every other header field and extension kept byte for byte.</para>
/// <para>With -PreserveContent the new parent may hold different content: every range the child does not store itself and where the old and the new parent differ is first copied from the old parent into the child, then the link is switched. The child reads byte for byte as before, and the old parent can be deleted. This is the content-preserving rebase qemu-img offers for qcow2 and VMDK, here for VHDX too. The old parent must still be readable.</para>
/// <para>On a file inside a store (a folder above it holds store.json) the store's boundary applies: parents are followed only inside the store (DiskParentOutsideRoot), and a file that is a link leading out of the store or a FIFO, device or socket is refused (VolumeOutsideStore, VolumeNotRegularFile) before it is opened.</para>
/// </remarks>
/// <example>
/// <summary>Follow a parent that was moved</summary>
/// <code>New-Item -ItemType Directory ./bases | Out-Null
/// Move-Item ./base.vhdx ./bases/base.vhdx
/// Set-VmDisk -Path ./child.vhdx -ParentPath ./bases/base.vhdx</code>
/// <para>Only metadata is written.</para>
/// </example>
/// <example>
/// <summary>Move a data disk onto a new base without changing a byte of what it shows</summary>
/// <code>New-VmDisk ./newbase.vhdx -SizeBytes 1GB | Out-Null
/// Set-VmDisk -Path ./child.vhdx -ParentPath ./newbase.vhdx -PreserveContent -PassThru</code>
/// <para>Afterwards child.vhdx no longer depends on base.vhdx.</para>
/// </example>
[Cmdlet(VerbsCommon.Set, "VmDisk", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmDiskInfo))]
public sealed class SetVmDiskCommand : VmCloneCmdlet
{
    /// <summary>The differencing disk to change.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = null!;

    /// <summary>The disk that is to be its parent from now on.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string ParentPath { get; set; } = null!;

    /// <summary>Keep the child's content byte-identical by copying, from the old parent, every range where old and new parent differ.</summary>
    [Parameter]
    public SwitchParameter PreserveContent { get; set; }

    /// <summary>Accept a parent whose identity does not match (without -PreserveContent the child may then show corrupted content).</summary>
    [Parameter]
    public SwitchParameter IgnoreIdMismatch { get; set; }

    /// <summary>Write the changed disk's description.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        Try(Path, () =>
        {
            string child = ResolveSinglePath(Path);
            string parent = ResolveSinglePath(ParentPath);
            string what = PreserveContent ? $"Re-parent onto '{parent}', copying what differs" : $"Re-point at '{parent}' (metadata only)";
            if (!ShouldProcess(child, what))
                return;
            using var progress = new CmdletProgress(this);
            VmDiskInfo info = DiskOperations.SetParent(child, parent, PreserveContent.IsPresent, IgnoreIdMismatch.IsPresent,
                StoreOfFile.Apply(child, new DiskOpenOptions()), progress, CancellationToken);
            if (PassThru)
                WriteObject(info);
        });
    }
}
