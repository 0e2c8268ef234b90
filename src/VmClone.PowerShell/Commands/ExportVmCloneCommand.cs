using System.Management.Automation;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Writes every volume of a clone as a standalone disk in a folder of its own, ready to attach to a virtual machine elsewhere (a spinoff).</summary>
/// <remarks>
/// <para>Export-VmClone makes the folder DestinationPath/NAME (as Hyper-V's Export-VM does) and writes into it one standalone disk per volume — the volume's chain flattened, so nothing refers to the store — and vmclone-export.json, which lists each disk's file, volume name, type, format and virtual size. The clone and the store are only read.</para>
/// <para>System and data volumes carry the clone's current content. A temporary volume carries its initial state (the base's), as New-VmBase -FromClone does: scratch content is never worth carrying elsewhere.</para>
/// <para>By default each disk keeps the clone's format; -Format converts every volume (Vhdx, Vmdk, Qcow2, Vhd or Raw). The copy is sparse: runs that read as zeros stay holes.</para>
/// <para>The export is written in a hidden folder beside the destination (.vmclone-exporting-NAME) and moved into place only when complete: a destination that exists is a finished export. A cut-off export leaves the hidden folder, which the next export to the same place replaces. The destination must not exist and must lie outside the store (ExportInsideStore).</para>
/// <para>While the export runs, no other VmClone command changes the clone or its base (it holds both shared). A clone whose files another program holds open (a running virtual machine) is refused with VolumeInUse, since its disks may be half-written; -Force exports it anyway, for a machine you know is quiescent. A clone that is not Ready is refused as restore and rebase refuse it.</para>
/// <para>-WhatIf shows what each disk copies at most and the total. Before anything is written, that total with 2 MiB more is checked against the destination's free space: an export that does not fit is refused at once with DiskFull, naming the folder, the bytes needed and the bytes free.</para>
/// </remarks>
/// <example>
/// <summary>Export a clone to attach it elsewhere</summary>
/// <code>Export-VmClone -Name lab-01 -DestinationPath ./exports</code>
/// <para>Writes ./exports/lab-01 with system.vhdx, temp.vhdx, data.vhdx and vmclone-export.json; none of the disks has a parent.</para>
/// </example>
/// <example>
/// <summary>Export a whole fleet as qcow2 for a KVM host</summary>
/// <code>Get-VmClone -Base win11 | Export-VmClone -DestinationPath ./kvm -Format Qcow2</code>
/// <para>One folder per clone under ./kvm, each disk a standalone qcow2 image that qemu opens alone.</para>
/// </example>
/// <example>
/// <summary>See what an export would write, and how much</summary>
/// <code>Export-VmClone lab-01 ./exports -WhatIf</code>
/// <para>Prints each disk to be written with its format, virtual size and the bytes it copies; writes nothing.</para>
/// </example>
[Cmdlet(VerbsData.Export, "VmClone", SupportsShouldProcess = true)]
[OutputType(typeof(VmCloneExport))]
public sealed class ExportVmCloneCommand : VmStoreCmdlet
{
    /// <summary>The clone to export (a name, or clones piped from Get-VmClone).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = null!;

    /// <summary>The folder in which the export's own folder (named after the clone) is made; it is created when missing.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string DestinationPath { get; set; } = null!;

    /// <summary>Format of every disk written; by default each volume keeps its format.</summary>
    [Parameter]
    [ValidateDiskFormat(DiskFormatUse.Write)]
    public DiskFormat Format { get; set; }

    /// <summary>Export even while another program holds the clone's files open (a running virtual machine), for a machine whose disks you know are quiescent. Without it such a clone is refused with VolumeInUse.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        Try(Name, () =>
        {
            VmStore store = OpenStore();
            string destination = System.IO.Path.Combine(ResolveNewPath(DestinationPath), Name);
            ExportPlan plan = store.PlanExport(Name, destination, IsBound(nameof(Format)) ? Format : null, sourceMayBeInUse: Force);
            if (!ShouldProcess(plan.Describe(), $"Export clone '{Name}'?", "Confirm"))
                return;
            using var progress = new CmdletProgress(this);
            WriteObject(store.Export(plan, progress, CancellationToken));
        });
    }
}
