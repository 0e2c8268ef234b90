using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Cleans a clone's temporary volumes back to their initial state; what a shutdown hook calls.</summary>
/// <remarks>
/// <para>Only temporary volumes (swap, pagefile, scratch) are touched: each is replaced by a fresh child of the base's temporary volume. System and data volumes stay exactly as they are. Call it from the hypervisor's shutdown hook or a scheduled task, after the machine has stopped; it asks no questions.</para>
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
public sealed class ClearVmTemporaryVolumeCommand : VmStoreCmdlet
{
    /// <summary>Names of the clones whose temporary volumes to clean.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    /// <summary>Write each cleaned clone.</summary>
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
                StorePlan plan = store.PlanClearTemporary(name);
                if (!FirstTime(store, name) || !ShouldRun(plan, $"Clean the temporary volumes of clone '{name}'"))
                    return;
                Fleet(ThrottleLimit, "Cleaning temporary volumes").Run(store, name, $"Clean the temporary volumes of clone '{name}'", (progress, cancel) => store.Execute(plan, progress, cancel), PassThru);
            });
        }
    }
}
