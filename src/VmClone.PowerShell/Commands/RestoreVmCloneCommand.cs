using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Restores clones to their base: system and temporary content discarded, data kept.</summary>
/// <remarks>
/// <para>Each system volume is replaced by a fresh child of the base's, so the base's content shows again; each temporary volume goes back to its initial state; data volumes are not touched. The clone stays listed (unlike Remove-VmClone). New files are built beside the clone and moved into place only when all are complete; the manifest is written last.</para>
/// <para>A base modified behind VmClone's back is refused (BaseModified): restoring onto it would build on corrupted content. The command asks for confirmation; -Force skips it.</para>
/// </remarks>
/// <example>
/// <summary>Restore one clone</summary>
/// <code>Restore-VmClone lab-01 -Force</code>
/// <para>lab-01 starts again as its base made it; its data volume is as it was.</para>
/// </example>
/// <example>
/// <summary>Restore every clone that has drifted by more than 1 GiB, and show them</summary>
/// <code>Get-VmClone | Where-Object DivergedBytes -gt 1GB | Restore-VmClone -Force -PassThru</code>
/// <para>Clones from Get-VmClone bind by name (and store).</para>
/// </example>
[Cmdlet(VerbsData.Restore, "VmClone", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(VmCloneInfo))]
public sealed class RestoreVmCloneCommand : VmStoreCmdlet
{
    /// <summary>Names of the clones to restore.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    /// <summary>Do not ask for confirmation.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Write each restored clone.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

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
                StorePlan plan = store.PlanRestore(name);
                if (!FirstTime(store, name) || !ShouldRun(plan, $"Restore clone '{name}' (its system and temporary content is discarded)", Force))
                    return;
                Fleet(ThrottleLimit, "Restoring clones").Run(store, name, $"Restore clone '{name}'", (progress, cancel) => store.Execute(plan, progress, cancel), PassThru);
            });
        }
    }
}
