using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// The steps of an operation that are done again, not undone, once its journal says so: the
/// re-parenting of data volumes (content kept) and the commit (volumes put in place, the
/// manifest written). Every step may be repeated; the executor runs them, and recovery runs
/// them again for an operation that was cut off.
/// </summary>
internal sealed class RollForward : StorePart
{
    private readonly KeptChains _chains;

    public RollForward(StoreCatalogue catalogue, KeptChains chains) : base(catalogue) => _chains = chains;

    /// <summary>
    /// Re-parents every data volume the plan re-parents. Each step copies what differs between
    /// the old and the new parent into the volume, then switches the link: the content is the same
    /// before, during and after, and a step that was cut off (or already done) can be repeated.
    /// </summary>
    public void Reparent(StorePlan plan, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        foreach (PlannedVolume step in plan.Volumes.Where(v => v.Action == VolumeAction.Reparent))
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new OperationProgress($"Clone {plan.Subject}", $"re-parenting {step.Volume}", 0, 1));
            FaultPoint.Hit("reparent");
            DiskOperations.ReparentKeepingContent(step.Path, step.Source!, OpenOptions, progress, cancellationToken);
        }
    }

    /// <summary>True when some re-parented volume's link already points at its new parent.</summary>
    public bool AnyLinkSwitched(StorePlan plan)
    {
        foreach (PlannedVolume step in plan.Volumes.Where(v => v.Action == VolumeAction.Reparent))
        {
            try
            {
                using DiskLayer layer = VirtualDisk.OpenLayer(step.Path, FileAccess.Read);
                using DiskLayer parent = VirtualDisk.OpenLayer(step.Source!, FileAccess.Read);
                if (layer.ParentReference?.Accepts(parent.Identity) == true)
                    return true;
            }
            catch (VirtualDiskException)
            {
                return true; // unsure: finish rather than undo
            }
        }
        return false;
    }


    /// <summary>Makes every in-place volume a new child, moves every staged file over its volume, deletes superseded files, writes the manifest, drops the staging folder. Also finishes a cut-off commit; every step may be repeated.</summary>
    public void Commit(StorePlan plan, string staging)
    {
        foreach (PlannedVolume step in plan.Volumes.Where(v => v.InPlace))
        {
            RecreateInPlace(step, staging);
            FaultPoint.Hit("recreated " + step.Volume);
        }
        foreach (PlannedVolume step in plan.Volumes.Where(v => v.IsStaged))
        {
            string staged = Path.Combine(staging, Path.GetFileName(step.Path));
            if (File.Exists(staged))
            {
                AtomicFile.MoveOver(staged, step.Path);
                FaultPoint.Hit("moved " + step.Volume);
            }
        }
        // A kept data volume of a grown outline grows in place; repeated after a cut-off, a resize to the size it has does nothing.
        foreach (PlannedVolume step in plan.Volumes.Where(v => v.Action == VolumeAction.Keep && v.GrowTo is not null))
        {
            DiskResize.Resize(step.Path, step.GrowTo!.Value, OpenOptions);
            FaultPoint.Hit("grown " + step.Volume);
        }
        foreach (PlannedVolume step in plan.Volumes)
        {
            if (step.Supersedes is not null && File.Exists(step.Supersedes) && !string.Equals(step.Supersedes, step.Path, StringComparison.Ordinal))
            {
                File.Delete(step.Supersedes);
                FaultPoint.Hit("deleted superseded " + step.Volume);
            }
        }
        Manifest.Write(Path.Combine(plan.Folder, CloneFile), plan.CloneManifest!);
        FaultPoint.Hit("manifest written");
        // plan.json goes first: a folder left with files but no plan is an undo, and by now
        // everything the plan did is in place.
        StoreJournal.Delete(staging);
        FaultPoint.Hit("plan deleted");
        TryDeleteFolder(staging);
    }

    /// <summary>
    /// Makes the volume a new child of its base in its own file; where that file cannot be
    /// rewritten in place after all (it changed since the plan was carried out), a new file built
    /// beside it is moved over it. Either way the result is the same, and doing it again is too.
    /// </summary>
    private void RecreateInPlace(PlannedVolume step, string staging)
    {
        if (_chains.OverParent(step.Source!, parent => VirtualDisk.TryRecreateDifferencingFile(step.Path, parent, Qcow2Layout.CreateOptions(step.Format, step.Qcow2), OpenOptions)))
            return;
        string staged = Path.Combine(staging, Path.GetFileName(step.Path));
        if (File.Exists(staged))
            File.Delete(staged);
        _chains.CreateChild(staged, step.Source!, step.Format, step.Qcow2);
        AtomicFile.MoveOver(staged, step.Path);
    }
}
