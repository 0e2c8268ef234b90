using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Removes clones: their volumes, data included, their manifest and their folder.</summary>
/// <remarks>
/// <para>The clone disappears at once (its folder is renamed away), then its files are deleted. Its data volumes go with it. The base is not changed. The command asks for confirmation; -Force skips it.</para>
/// <para>Links are deleted as links: a clone folder that is a symbolic link, or links inside it, never make VmClone enter, change (read-only mark included) or delete what they lead to. A FIFO or device in place of a volume is deleted as an entry, never opened. A clone whose manifest cannot be trusted (ManifestInvalid) can still be removed: its folder is deleted, nothing its manifest names outside it.</para>
/// </remarks>
/// <example>
/// <summary>Remove one clone</summary>
/// <code>Remove-VmClone lab-02 -Force</code>
/// <para>lab-02 and all its volumes are gone.</para>
/// </example>
/// <example>
/// <summary>Remove every clone of a base, previewing first</summary>
/// <code>Get-VmClone -Base win11 | Remove-VmClone -WhatIf</code>
/// <para>-WhatIf lists every file that would be deleted.</para>
/// </example>
[Cmdlet(VerbsCommon.Remove, "VmClone", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
public sealed class RemoveVmCloneCommand : CloneFleetCmdlet
{
    /// <summary>Do not ask for confirmation.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    private protected override StorePlan Plan(VmStore store, string name) => store.PlanRemoveClone(name);

    private protected override string Caption(string name) => $"Remove clone '{name}' with its volumes, data included";

    private protected override string Activity => "Removing clones";

    private protected override string Describe(string name) => $"Remove clone '{name}'";

    private protected override bool SkipConfirmation => Force;
}
