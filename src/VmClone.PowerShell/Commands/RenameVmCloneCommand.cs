using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Renames a clone: its folder and its manifest.</summary>
/// <remarks>
/// <para>The clone's folder is renamed in one step and its manifest takes the new name; its volumes keep every byte, and their parent links need no change (they name the base's files). A hypervisor configured with the old paths must be pointed at the new folder.</para>
/// <para>Refused while another program (a running virtual machine) holds one of the clone's volumes open (VolumeInUse), when the new name is taken by another clone (CloneExists; names are one whatever their case) and when it is not a valid name (InvalidName).</para>
/// <para>The rename is journalled: cut off at any point (power loss, kill), it is undone if the folder was not renamed yet and finished otherwise, by the next command on the old name, by running the rename again, or by Test-VmStore -Repair. -WhatIf lists every file that changes.</para>
/// </remarks>
/// <example>
/// <summary>Rename a clone</summary>
/// <code>Rename-VmClone lab-01 -NewName lab-99 -PassThru</code>
/// <para>The clone is now lab-99, on the same base, with the same volumes.</para>
/// </example>
/// <example>
/// <summary>Rename a clone from the pipeline, and preview first</summary>
/// <code>Get-VmClone lab-02 | Rename-VmClone -NewName kiosk-02 -WhatIf</code>
/// <para>Clones from Get-VmClone bind by name (and store); -WhatIf prints the folder, the manifest and every volume file that would move.</para>
/// </example>
[Cmdlet(VerbsCommon.Rename, "VmClone", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmCloneInfo))]
public sealed class RenameVmCloneCommand : VmStoreCmdlet
{
    /// <summary>The clone to rename (a name, or a clone piped from Get-VmClone).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = null!;

    /// <summary>The clone's new name: letters, digits, '.', '_' and '-', at most 64 characters, not taken by another clone.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string NewName { get; set; } = null!;

    /// <summary>Write the renamed clone.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        Try(Name, () =>
        {
            VmStore store = OpenStore();
            StorePlan plan = store.PlanRenameClone(Name, NewName);
            if (!ShouldRun(plan, $"Rename clone '{Name}' to '{NewName}'"))
                return;
            object? result = store.Execute(plan, null, CancellationToken, describeResult: PassThru);
            if (PassThru)
                WriteObject(result);
        });
    }
}
