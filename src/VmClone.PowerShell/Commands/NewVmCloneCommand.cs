using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Creates linked clones of a base; no data is copied.</summary>
/// <remarks>
/// <para>Each clone gets one volume per volume of the base: a differencing disk over the base's file, so creating it writes only metadata and takes milliseconds whatever the base's size. A data volume is a child of the base's data volume only when that holds data; an empty one gives the clone a standalone empty disk, so nothing of the clone's data ever depends on the base.</para>
/// <para>Names come from the parameter or the pipeline. A name already in use is an error for that name; the others are still created.</para>
/// <para>A base whose manifest names a file outside the base's folder is refused with ManifestInvalid; a base volume that is a link or not a regular file with VolumeOutsideStore or VolumeNotRegularFile.</para>
/// </remarks>
/// <example>
/// <summary>A classroom of clones</summary>
/// <code>New-VmClone -Name lab-03, lab-04, lab-05 -Base win11</code>
/// <para>Three clones, each a few MiB on disk.</para>
/// </example>
/// <example>
/// <summary>Names from the pipeline</summary>
/// <code>1..3 | ForEach-Object { 'kiosk-{0:d2}' -f $_ } | New-VmClone -Base win11</code>
/// <para>Creates kiosk-01, kiosk-02 and kiosk-03.</para>
/// </example>
/// <example>
/// <summary>Clones of a base piped from Get-VmBase</summary>
/// <code>Get-VmBase win11 | New-VmClone -Name lab-09, lab-10 | Format-Table Name, Base, State</code>
/// <para>The piped base gives the base and its store.</para>
/// </example>
[Cmdlet(VerbsCommon.New, "VmClone", SupportsShouldProcess = true, DefaultParameterSetName = NameSet)]
[OutputType(typeof(VmCloneInfo))]
public sealed class NewVmCloneCommand : FleetCmdlet
{
    private const string NameSet = "Name";
    private const string InputSet = "InputObject";

    /// <summary>Names of the new clones: letters, digits, '.', '_' and '-', at most 64 characters.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = NameSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = InputSet)]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    /// <summary>A base from Get-VmBase: the clones are made from it, in its store.</summary>
    [Parameter(Mandatory = true, ParameterSetName = InputSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    public VmBaseInfo InputObject { get; set; } = null!;

    /// <summary>The base the clones are made from.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = NameSet)]
    [ArgumentCompleter(typeof(BaseNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Base { get; set; } = null!;

    private string _baseName = null!;

    protected override void ProcessRecord()
    {
        _baseName = ParameterSetName == InputSet ? InputObject.Name : Base;
        RunFleet(Name);
    }

    private protected override StorePlan Plan(VmStore store, string name) => store.PlanNewClone(name, _baseName);

    private protected override string Caption(string name) => $"Create clone '{name}'";

    private protected override string Activity => $"Creating clones of {_baseName}";

    private protected override string Describe(string name) => $"Create clone '{name}'";

    private protected override bool WriteResult => true;
}
