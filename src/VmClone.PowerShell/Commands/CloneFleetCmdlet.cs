using System.Management.Automation;

namespace VmClone.PowerShell.Commands;

/// <summary>
/// Base of the fleet commands that take clone names only (restore, clean temporary volumes,
/// remove): names from the parameter or the pipeline, each worked on by the fleet loop.
/// </summary>
public abstract class CloneFleetCmdlet : FleetCmdlet
{
    /// <summary>Names of the clones to work on.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    protected override void ProcessRecord() => RunFleet(Name);
}
