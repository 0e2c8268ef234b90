using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Cleans a clone's temporary volumes back to their initial state; what a shutdown hook calls.</summary>
/// <remarks>
/// <para>Only temporary volumes (swap, pagefile, scratch) are touched: each is replaced by a fresh child of the base's temporary volume. System and data volumes stay exactly as they are. Call it from the hypervisor's shutdown hook or a scheduled task, after the machine has stopped; it asks no questions.</para>
/// <para>A clone whose manifest names a file outside the clone's folder (an absolute path, '..', a base's volume) is refused with ManifestInvalid and nothing it names is touched; a volume file that is a symbolic link, lies in a linked folder or is a VMDK descriptor is refused with VolumeOutsideStore, one that is a FIFO, device or socket with VolumeNotRegularFile. Everything the plan checked is checked again once the clone's locks are held (CloneChanged when a volume was replaced or written since planning).</para>
/// </remarks>
/// <example>
/// <summary>From a shutdown hook</summary>
/// <code>Clear-VmTemporaryVolume -Name lab-01</code>
/// <para>lab-01's pagefile volume is empty again.</para>
/// </example>
/// <example>
/// <summary>Every clone of a base, at night</summary>
/// <code>Get-VmClone -Base win11 | Clear-VmTemporaryVolume -PassThru | Format-Table Name, DivergedBytes</code>
/// <para>Clones from Get-VmClone bind by name (and store).</para>
/// </example>
[Cmdlet(VerbsCommon.Clear, "VmTemporaryVolume", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmCloneInfo))]
public sealed class ClearVmTemporaryVolumeCommand : CloneFleetCmdlet
{
    /// <summary>Write each cleaned clone.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private protected override StorePlan Plan(VmStore store, string name) => store.PlanClearTemporary(name);

    private protected override string Caption(string name) => $"Clean the temporary volumes of clone '{name}'";

    private protected override string Activity => "Cleaning temporary volumes";

    private protected override string Describe(string name) => $"Clean the temporary volumes of clone '{name}'";

    private protected override bool WriteResult => PassThru;
}
