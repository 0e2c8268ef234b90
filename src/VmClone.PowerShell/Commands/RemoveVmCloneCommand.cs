using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Removes clones: their volumes, data included, their manifest and their folder.</summary>
/// <remarks>
/// <para>The clone disappears at once (its folder is renamed away), then its files are deleted. Its data volumes go with it. The base is not changed. The command asks for confirmation; -Force skips it.</para>
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
public sealed class RemoveVmCloneCommand : VmStoreCmdlet
{
    /// <summary>Names of the clones to remove (no wildcards).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    /// <summary>Do not ask for confirmation.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>How many clones are worked on at the same time; by default the number of processors. With 1, one clone after the other on the pipeline thread. Results and errors are written in input order either way.</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int ThrottleLimit { get; set; } = System.Environment.ProcessorCount;

    protected override void ProcessRecord()
    {
        foreach (string name in Name)
        {
            Try(name, () =>
            {
                VmStore store = OpenStore();
                StorePlan plan = store.PlanRemoveClone(name);
                if (FirstTime(store, name) && ShouldRun(plan, $"Remove clone '{name}' with its volumes, data included", Force))
                    Fleet(ThrottleLimit, "Removing clones").Run(store, name, $"Remove clone '{name}'", (progress, cancel) => store.Execute(plan, progress, cancel), writeResult: false);
            });
        }
    }
}
