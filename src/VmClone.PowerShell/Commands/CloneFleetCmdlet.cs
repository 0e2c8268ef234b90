using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>
/// Base of the cmdlets that do one store operation per named clone (restore, clean temporary
/// volumes, remove): names from the parameter or the pipeline, a plan per clone, confirmation,
/// then the fleet runner that works on up to -ThrottleLimit clones at once.
/// </summary>
public abstract class CloneFleetCmdlet : VmStoreCmdlet
{
    /// <summary>Names of the clones to work on.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    /// <summary>How many clones are worked on at the same time; by default twice the number of processors (at most 64), since the work on a clone mostly waits for the disk. With 1, one clone after the other on the pipeline thread. Results and errors are written in input order either way.</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int ThrottleLimit { get; set; } = FleetRunner.DefaultThrottleLimit;

    /// <summary>The side-effect-free plan of the operation on one clone.</summary>
    private protected abstract StorePlan Plan(VmStore store, string name);

    /// <summary>What the confirmation prompt says is about to happen to the clone.</summary>
    private protected abstract string Caption(string name);

    /// <summary>The progress activity and the per-clone description.</summary>
    private protected abstract (string Activity, string Description) Describe(string name);

    /// <summary>True to skip confirmation (a -Force the cmdlet has).</summary>
    private protected virtual bool SkipConfirmation => false;

    /// <summary>True to write the clone after the operation (a -PassThru the cmdlet has).</summary>
    private protected virtual bool WriteResult => false;

    protected override void ProcessRecord()
    {
        foreach (string name in Name)
        {
            Try(name, () =>
            {
                VmStore store = OpenStore();
                StorePlan plan = Plan(store, name);
                if (!FirstTime(store, name) || !ShouldRun(plan, Caption(name), SkipConfirmation))
                    return;
                (string activity, string description) = Describe(name);
                Fleet(ThrottleLimit, activity).Run(store, name, description, (progress, cancel) => store.Execute(plan, progress, cancel, describeResult: WriteResult), WriteResult);
            });
        }
    }
}
