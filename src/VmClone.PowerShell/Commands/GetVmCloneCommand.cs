using System.Linq;
using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Lists clones, their state and how far they have drifted from their base.</summary>
/// <remarks>
/// <para>Each clone shows its base, its state (Ready; BaseModified when a base file it depends on was changed; Broken when a file or parent is missing; Interrupted when an operation on it was cut off or is still running, which the next command on it or Test-VmStore -Repair finishes; a volume may not open until then), when it was created, restored and rebased, and its size on disk.</para>
/// <para>Drift at a glance: SizeOnDisk and OwnedBytes are what the clone's own files hold; DivergedBytes is how much of its system and temporary volumes no longer reads as the base — what a restore would discard. Sort by them to find candidates for a restore.</para>
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
[Cmdlet(VerbsCommon.Get, "VmClone")]
[OutputType(typeof(VmCloneInfo))]
public sealed class GetVmCloneCommand : VmStoreCmdlet
{
    /// <summary>Clone names; wildcards allowed. All clones when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    /// <summary>Only the clones of this base.</summary>
    [Parameter]
    [ArgumentCompleter(typeof(BaseNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Base { get; set; } = null!;

    protected override void ProcessRecord()
    {
        Try(IsBound(nameof(Base)) ? Base : Name is null ? "*" : string.Join(",", Name), () =>
        {
            VmStore store = OpenStore();
            var wanted = Match(Name, store.CloneNames(), "clone", store.Root).ToList();
            foreach (VmCloneInfo c in store.GetClones(n => wanted.Contains(n), IsBound(nameof(Base)) ? Base : null))
                WriteObject(c);
        });
    }
}
