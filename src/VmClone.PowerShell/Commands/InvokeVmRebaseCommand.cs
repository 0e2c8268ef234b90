using System.Collections.Generic;
using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Moves clones onto a new base: system replaced, temporary reset, data kept byte for byte.</summary>
/// <remarks>
/// <para>The new base must have the clone's storage outline: the same volume names, types and order, each volume as large as the clone's or larger. A clone whose outline differs, or a base with a smaller volume, is refused with an OutlineMismatch error that names the differences; the other clones go on.</para>
/// <para>A base with larger volumes is a grown outline: system and temporary volumes become children of its larger volumes, and each data volume grows to the new size with its content kept byte for byte, the added range reading as zeros (-WhatIf says "grow from X to Y"). A data volume that was a child of the old base's data volume becomes a standalone file first. See about_VmClone_Rebase.</para>
/// <para>For each clone: every system volume becomes a fresh child of the new base's, every temporary volume the new base's initial state, and every data volume keeps exactly its content while it stops depending on the old base — re-parented onto the new base's data volume after copying in whatever differs, or, when the new base's data volume is empty, flattened into a standalone disk. New files are built beside the clone and moved into place together; the manifest is written last.</para>
/// <para>Rebase one clone, several, the clones piped from Get-VmClone, or with -Base every clone of a base. Once every clone has left the old base, Remove-VmBase can delete it. Progress is shown overall (the clones done of all of them when they are named or given by -Base, a count when they are piped), and for each clone that takes longer than a moment (one whose data is copied), in a bar named by the command and the clone; the rebased clones are written out, in input order. -ThrottleLimit clones are rebased at the same time. The command asks for confirmation; -Force skips it, and -WhatIf shows the plan of every clone and volume. about_VmClone_Rebase explains how to plan and order a fleet rebase and how to go back.</para>
/// <para>The new base must also be of the clone's format. A rebase of a VHDX clone onto a VMDK base (or the other way round) gives every volume file a new name, which the virtual machine's configuration does not know, so it is refused with RebaseFormatMismatch naming both formats, unless -ConvertFormat asks to convert every volume: system and temporary volumes then become children of the new base's in its format, and each data volume is converted into a standalone file of that format with its content kept byte for byte. -WhatIf names every file that changes (old name -> new name); point the virtual machine at the new files afterwards.</para>
/// <para>A clone whose base was modified behind VmClone's back (BaseModified) is moved off it this way: accept the base's changed files as a new base (New-VmBase -Volume (Get-VmVolume -Base OLD | Select-Object Name, Type, Path)), rebase the clones onto it, then remove the old base; or restore the base's files from a backup. Restore-VmClone cannot help, since it rebuilds the clone on the modified base. Every per-clone error names the clone as its target.</para>
/// <para>A clone whose manifest names a file outside the clone's folder (an absolute path, '..', a base's volume) is refused with ManifestInvalid and nothing it names is touched; a volume file that is a symbolic link, lies in a linked folder or is a VMDK descriptor is refused with VolumeOutsideStore, one that is a FIFO, device or socket with VolumeNotRegularFile. Everything the plan checked is checked again once the clone's locks are held (CloneChanged when a volume was replaced or written since planning). A data volume is only ever re-parented inside the store: its chain is opened with the store as the only place parents may be.</para>
/// <para>-WhatIf shows, per clone and volume, what each step copies at most (re-parenting and flattening data volumes copy; system and temporary volumes copy nothing) and the total. Each clone is checked as it starts: what it copies must fit in the store's free space less what the clones running beside it hold, or it is refused at once with DiskFull (the folder, the bytes needed and free), untouched, and the other clones go on.</para>
/// </remarks>
/// <example>
/// <summary>Every clone of last month's base onto this month's</summary>
/// <code>Get-VmClone lab-01 | New-VmBase -Name win11-v2 | Out-Null
/// Get-VmClone -Base win11 | Invoke-VmRebase -NewBase win11-v2 -Confirm:$false</code>
/// <para>The usual monthly update: lab-01 was updated and made the new base; every clone follows, keeping its data.</para>
/// </example>
/// <example>
/// <summary>Preview, then rebase all clones of a base</summary>
/// <code>Get-VmClone lab-02 | New-VmBase -Name win11-v3 | Out-Null
/// Invoke-VmRebase -Base win11 -NewBase win11-v3 -WhatIf
/// Invoke-VmRebase -Base win11 -NewBase win11-v3 -Force</code>
/// <para>-WhatIf lists, per clone and volume, what would be replaced, reset, re-parented or kept.</para>
/// </example>
/// <example>
/// <summary>Unattended, four clones at a time, keeping the failures</summary>
/// <code>Get-VmClone lab-01 | New-VmBase -Name win11-v4 | Out-Null
/// Get-VmClone -Base win11 | Invoke-VmRebase -NewBase win11-v4 -Force -ThrottleLimit 4 -ErrorVariable failed -ErrorAction SilentlyContinue
/// $failed | ForEach-Object { '{0}: {1}' -f $_.TargetObject, $_.Exception.Message }</code>
/// <para>No prompt (-Force), each failure collected for its clone while the others go on. A scheduled script ends with exit 1 when $failed is not empty; the module ships a complete one as Samples/Invoke-ScheduledRebase.ps1 (see about_VmClone_Scheduling).</para>
/// </example>
/// <example>
/// <summary>Move VHDX clones onto a VMDK base, converting every volume</summary>
/// <code>Get-VmClone lab-01 | New-VmBase -Name win11-vmware -Format Vmdk | Out-Null
/// Invoke-VmRebase -Base win11 -NewBase win11-vmware -ConvertFormat -WhatIf
/// Invoke-VmRebase -Base win11 -NewBase win11-vmware -ConvertFormat -Force</code>
/// <para>Without -ConvertFormat the rebase is refused (RebaseFormatMismatch). With it, -WhatIf lists each file that is renamed, such as 'system.vhdx -> system.vmdk'; the data volumes are converted with their content unchanged.</para>
/// </example>
[Cmdlet(VerbsLifecycle.Invoke, "VmRebase", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = NameSet)]
[OutputType(typeof(VmCloneInfo))]
public sealed class InvokeVmRebaseCommand : FleetCmdlet
{
    private const string NameSet = "Name";
    private const string BaseSet = "Base";

    /// <summary>Names of the clones to rebase.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = NameSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    /// <summary>Rebase every clone of this base.</summary>
    [Parameter(Mandatory = true, ParameterSetName = BaseSet)]
    [ArgumentCompleter(typeof(BaseNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Base { get; set; } = null!;

    /// <summary>The base the clones are to depend on from now on.</summary>
    [Parameter(Mandatory = true)]
    [ArgumentCompleter(typeof(BaseNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string NewBase { get; set; } = null!;

    /// <summary>Rebase onto a base of another format (VHDX and VMDK): every volume of the clone is converted to the new base's format, data volumes included (content kept byte for byte), under new file names. Without it such a rebase is refused with RebaseFormatMismatch.</summary>
    [Parameter]
    public SwitchParameter ConvertFormat { get; set; }

    /// <summary>Do not ask for confirmation.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == NameSet)
        {
            RunFleet(Name);
            return;
        }
        // The clones of the base by their names alone: each is read again when it is planned.
        VmStore? store = null;
        IReadOnlyList<string>? names = null;
        Try(Base, () =>
        {
            store = OpenStore();
            names = store.CloneNamesOf(Base);
        });
        if (store is not null && names is not null)
            RunFleet(store, names);
    }

    private protected override StorePlan Plan(VmStore store, string name) => store.PlanRebase(name, NewBase, ConvertFormat);

    private protected override string Caption(string name) => $"Rebase clone '{name}' onto '{NewBase}' (system replaced, temporary reset, data kept)";

    private protected override string Activity => $"Rebasing onto {NewBase}";

    private protected override string Describe(string name) => $"Rebase clone '{name}' onto '{NewBase}'";

    private protected override bool SkipConfirmation => Force;

    private protected override bool WriteResult => true;
}
