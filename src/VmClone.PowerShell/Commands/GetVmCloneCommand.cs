using System.Linq;
using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Lists clones, their state and how far they have drifted from their base.</summary>
/// <remarks>
/// <para>Each clone shows its base, its state (Ready; BaseModified when a base file it depends on was changed; Broken when a file or parent is missing; Interrupted when an operation on it was cut off or is still running, which the next command on it or Test-VmStore -Repair finishes; a volume may not open until then), when it was created, restored and rebased, and its size on disk.</para>
/// <para>Drift at a glance: SizeOnDisk is the space the clone's files take on the file system (allocated bytes, not file length) and OwnedBytes the virtual content they store; DivergedBytes is how much of its system and temporary volumes no longer reads as the base, in 512-byte sectors (what each volume's own file answers instead of the base) — what a restore would discard. Sort by them to find candidates for a restore. No data volume's content is read, so listing a thousand clones stays quick; in the Volumes list a standalone data volume shows the bytes its file stores, and Get-VmVolume counts its sectors that no longer read as zeros.</para>
/// <para>State Renamed: the clone's folder was renamed (or copied) by hand, so its manifest names another clone; every command refuses it with CloneRenamed until Test-VmStore -Repair makes the folder's name its name (or the folder is renamed back). State Unreadable: its clone.json cannot be read (damaged, empty, not a regular file, or written by a newer VmClone); the clone is still listed, with the reason in Problem and a warning, and counted for the base its volumes depend on; Test-VmStore -Repair rebuilds the manifest from the volumes' own parent links, keeping every file.</para>
/// <para>State ManifestInvalid: the clone's manifest names a file outside its folder; nothing it names was opened. A volume that is a symbolic link, a FIFO or a VMDK descriptor naming other files makes the clone Broken, with the reason in the volume's Problem; it is not opened.</para>
/// </remarks>
/// <example>
/// <summary>Clones that have drifted most</summary>
/// <code>Get-VmClone | Sort-Object SizeOnDisk -Descending | Select-Object -First 5</code>
/// <para>The five clones whose own files are largest.</para>
/// </example>
/// <example>
/// <summary>Every clone of one base</summary>
/// <code>Get-VmClone -Base win11 | Format-List Name, State, LastRestored, DivergedBytes</code>
/// <para>-Base narrows the list to the clones whose manifest names that base.</para>
/// </example>
/// <example>
/// <summary>The clones of bases piped in</summary>
/// <code>Get-VmBase win11* | Get-VmClone</code>
/// <para>A base from Get-VmBase lists that base's clones (its name is not taken for a clone's name).</para>
/// </example>
[Cmdlet(VerbsCommon.Get, "VmClone", DefaultParameterSetName = NameSet)]
[OutputType(typeof(VmCloneInfo))]
public sealed class GetVmCloneCommand : VmStoreCmdlet
{
    private const string NameSet = "Name";
    private const string BaseObjectSet = "BaseObject";

    /// <summary>Clone names; wildcards allowed. All clones when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = NameSet)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    /// <summary>Only the clones of this base.</summary>
    [Parameter(ParameterSetName = NameSet)]
    [ArgumentCompleter(typeof(BaseNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Base { get; set; } = null!;

    /// <summary>A base from Get-VmBase, piped: its clones are listed.</summary>
    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = BaseObjectSet)]
    [ValidateNotNull]
    public VmBaseInfo InputObject { get; set; } = null!;

    protected override void ProcessRecord()
    {
        string? baseName = ParameterSetName == BaseObjectSet ? InputObject.Name : IsBound(nameof(Base)) ? Base : null;
        string[]? names = ParameterSetName == BaseObjectSet ? null : Name;
        Try(baseName ?? (names is null ? "*" : string.Join(",", names)), () =>
        {
            VmStore store = ParameterSetName == BaseObjectSet ? StoreAt(InputObject.Store) : OpenStore();
            var wanted = Match(names, store.CloneNames(), "clone", store.Root).ToList();
            foreach (VmCloneInfo c in store.GetClones(n => wanted.Contains(n), baseName))
            {
                if (c.State is CloneState.Unreadable or CloneState.Renamed)
                    WriteWarning($"Clone '{c.Name}' is {c.State}: {c.Problem}");
                WriteObject(c);
            }
        });
    }
}
