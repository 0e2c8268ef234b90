using System.Linq;
using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Checks every chain, manifest and link in the store; -Repair fixes what is safe to fix.</summary>
/// <remarks>
/// <para>Test-VmStore reports, as one object with IsHealthy and Problems, everything that is wrong: bases modified after they were made, base files no longer marked read-only, missing volume files, broken, missing or outside parents, damaged disk structures, manifests that disagree with what the disks say (the disks are the truth), clones whose base is gone, orphaned files, and operations that were cut off.</para>
/// <para>With -Repair it fixes what it can without risking data and says what it did in each problem's Repair: base files marked read-only again, cut-off operations finished (when every new file was complete) or undone, manifests rewritten from the disks' own links, a lost store.json recreated. A modified base or a missing data file cannot be repaired safely and is only reported. A modified base is reported for the base and for each clone that depends on it (BaseModified), with the way that recovers them: restore the base's files from a backup, or accept them as a new base (New-VmBase), rebase the clones onto it (Invoke-VmRebase) and remove the old base; Restore-VmClone cannot help, since it rebuilds a clone on the modified base.</para>
/// <para>Reports ManifestInvalid for a manifest naming files outside its folder, a base or clone folder that is a link, and a journal (plan.json) whose steps would write outside the clone's files or take a parent outside the store's bases; -Repair never acts on them (nor does the next command on that clone). VolumeNotContained: a volume file that is a link, lies in a linked folder, is not a regular file or is a VMDK descriptor; it is not opened.</para>
/// <para>A clone whose clone.json cannot be read is reported (ManifestInvalid, with the reason); -Repair rebuilds the manifest from the clone's own files: each disk file whose parent link (read inside the store only, never through a link) leads to a volume of a base takes that volume's name and type, and a standalone disk named after one of that base's data volumes is that data volume. When that is not unambiguous (a disk that is no volume, two files for one volume, children of two bases, a volume with no file, a manifest a newer VmClone wrote) it refuses and says why; it never deletes a file of the clone. CloneRenamed: a clone folder renamed by hand, whose manifest names another clone; -Repair makes the folder's name the clone's (its volumes and their links are unchanged), unless another clone folder has that name in another case.</para>
/// </remarks>
/// <example>
/// <summary>Is the store healthy?</summary>
/// <code>(Test-VmStore).IsHealthy</code>
/// <para>True when nothing is wrong.</para>
/// </example>
/// <example>
/// <summary>Repair and show what was done</summary>
/// <code>Test-VmStore -Repair | Select-Object -ExpandProperty Problems | Format-List Subject, Description, Repair</code>
/// <para>Each problem says whether and how it was repaired.</para>
/// </example>
[Cmdlet(VerbsDiagnostic.Test, "VmStore", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmStoreReport))]
public sealed class TestVmStoreCommand : VmStoreCmdlet
{
    /// <summary>Fix what can be fixed safely.</summary>
    [Parameter]
    public SwitchParameter Repair { get; set; }

    protected override void ProcessRecord()
    {
        VmStore store = null!;
        Try(Store ?? "(default store)", () =>
        {
            store = OpenStore();
            bool repair = Repair.IsPresent && ShouldProcess(store.Root, "Repair what can be fixed safely");
            VmStoreReport report = store.Check(repair, CancellationToken);
            foreach (VmStoreProblem p in report.Problems.Where(p => p.Repaired))
                WriteVerbose($"{p.Subject}: {p.Repair}");
            WriteObject(report);
        });
    }
}
