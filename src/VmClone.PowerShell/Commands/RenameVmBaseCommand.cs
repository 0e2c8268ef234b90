using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Renames a base: its folder, its manifest, and every clone's link to it.</summary>
/// <remarks>
/// <para>The base's folder is renamed in one step and its manifest takes the new name; then every clone on it is re-pointed: each volume that is a child of one of the base's files gets its parent link rewritten to the same file at its new path (metadata only: no byte of the base is written, so its files keep the identities the base recorded and no clone reads as BaseModified), and each clone's manifest names the new base. Every clone reads exactly as before.</para>
/// <para>Refused while another program (a running virtual machine) holds a volume of the base or of one of its clones open (VolumeInUse), when the new name is taken by another base (BaseExists) or is not a valid name (InvalidName), and while a disk file that no clone manifest accounts for depends on the base (BaseInUse, naming it).</para>
/// <para>The rename is journalled: cut off at any point, it is undone if the folder was not renamed yet and finished otherwise (every clone re-pointed), by running the rename again, by the next command on the base, or by Test-VmStore -Repair. -WhatIf lists every file that changes: the base's files, its manifest, each clone's manifest and each re-pointed volume.</para>
/// </remarks>
/// <example>
/// <summary>Rename a base and every clone's link to it</summary>
/// <code>Rename-VmBase win11 -NewName win11-2026-11 -PassThru</code>
/// <para>lab-01 and lab-02 are now clones of win11-2026-11 and read as before.</para>
/// </example>
/// <example>
/// <summary>Rename a base from the pipeline, and preview first</summary>
/// <code>Get-VmBase win11 | Rename-VmBase -NewName win11-lab -WhatIf</code>
/// <para>Bases from Get-VmBase bind by name (and store).</para>
/// </example>
[Cmdlet(VerbsCommon.Rename, "VmBase", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmBaseInfo))]
public sealed class RenameVmBaseCommand : VmStoreCmdlet
{
    /// <summary>The base to rename (a name, or a base piped from Get-VmBase).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(BaseNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = null!;

    /// <summary>The base's new name: letters, digits, '.', '_' and '-', at most 64 characters, not taken by another base.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string NewName { get; set; } = null!;

    /// <summary>Write the renamed base.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        Try(Name, () =>
        {
            VmStore store = OpenStore();
            StorePlan plan = store.PlanRenameBase(Name, NewName);
            if (!ShouldRun(plan, $"Rename base '{Name}' to '{NewName}' and re-point its clones"))
                return;
            object? result = store.Execute(plan, null, CancellationToken, describeResult: PassThru);
            if (PassThru)
                WriteObject(result);
        });
    }
}
