using System.Linq;
using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Restores clones to their base: system and temporary content discarded, data kept.</summary>
/// <remarks>
/// <para>Each system volume is replaced by a fresh child of the base's, so the base's content shows again; each temporary volume goes back to its initial state; data volumes are not touched. The clone stays listed (unlike Remove-VmClone). New files are built beside the clone and moved into place only when all are complete; the manifest is written last.</para>
/// <para>A base modified behind VmClone's back is refused (BaseModified): restoring onto it would build on corrupted content. What recovers such a clone is restoring the base's files from a backup, or accepting the changed files as a new base and rebasing onto it (about_VmClone, A MODIFIED BASE); the error says how, and names the clone as its target. The command asks for confirmation; -Force skips it.</para>
/// <para>A clone whose manifest names a file outside the clone's folder (an absolute path, '..', a base's volume) is refused with ManifestInvalid and nothing it names is touched; a volume file that is a symbolic link, lies in a linked folder or is a VMDK descriptor is refused with VolumeOutsideStore, one that is a FIFO, device or socket with VolumeNotRegularFile. Everything the plan checked is checked again once the clone's locks are held (CloneChanged when a volume was replaced or written since planning).</para>
/// <para>-Volume and -Type restore only some volumes: each named volume and every volume of the given types (System, Temporary) goes back to the base, the others are kept. A data volume is never restored by its type; named with -Volume, it goes back to the base's data and everything written to it is discarded: the confirmation and -WhatIf say so, and -Force skips the question as for any restore. A name the clone does not have is refused with VolumeNotFound, listing the clone's volumes.</para>
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
/// <example>
/// <summary>Put only the system volume back, keeping the page file and the data</summary>
/// <code>Restore-VmClone lab-01 -Volume system -Force</code>
/// <para>-Type System does the same for every system volume of the clone.</para>
/// </example>
/// <example>
/// <summary>Preview discarding a data volume</summary>
/// <code>Restore-VmClone lab-01 -Volume data -WhatIf</code>
/// <para>The plan says that the content of data volume 'data' is discarded; nothing is changed.</para>
/// </example>
[Cmdlet(VerbsData.Restore, "VmClone", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(VmCloneInfo))]
public sealed class RestoreVmCloneCommand : CloneFleetCmdlet
{
    /// <summary>Do not ask for confirmation.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Write each restored clone.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Restore only these volumes (by name); the others are kept. A data volume named here loses its content: it goes back to the base's data.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? Volume { get; set; }

    /// <summary>Restore only the volumes of these types: System, Temporary (data volumes only by name, with -Volume).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ValidateSet(nameof(VolumeType.System), nameof(VolumeType.Temporary))]
    public VolumeType[]? Type { get; set; }

    private readonly System.Collections.Generic.Dictionary<string, string> _discarded = new(System.StringComparer.OrdinalIgnoreCase);

    private protected override StorePlan Plan(VmStore store, string name)
    {
        StorePlan plan = Volume is null && Type is null ? store.PlanRestore(name) : store.PlanRestore(name, Volume, Type);
        string[] lost = plan.Volumes.Where(v => v.DiscardsData).Select(v => v.Volume).ToArray();
        if (lost.Length > 0)
            _discarded[name] = string.Join("', '", lost);
        else
            _discarded.Remove(name);
        return plan;
    }

    private protected override string Caption(string name) =>
        _discarded.TryGetValue(name, out string? lost)
            ? $"Restore clone '{name}' (the content of data volume(s) '{lost}' is discarded)"
            : Volume is null && Type is null
                ? $"Restore clone '{name}' (its system and temporary content is discarded)"
                : $"Restore clone '{name}' (the content of the volumes it restores is discarded)";

    private protected override string Activity => "Restoring clones";

    private protected override string Describe(string name) => $"Restore clone '{name}'";

    private protected override bool SkipConfirmation => Force;

    private protected override bool WriteResult => PassThru;
}
