using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

// Execution: exactly what a plan says, under the subject's lock (see StoreLocks). New files are built in a staging
// folder beside the subject's (same depth, so relative parent paths are already right) and only
// moved into place when all of them are complete; the manifest is written last.
public sealed partial class VmStore
{
    /// <summary>
    /// Carries out a plan. Returns the new or changed base (<see cref="VmBaseInfo"/>) or clone
    /// (<see cref="VmCloneInfo"/>), or null for a removal, or without
    /// <paramref name="describeResult"/> (a caller that shows nothing saves reading the result back).
    /// </summary>
    /// <remarks>
    /// Takes the store's lock shared (Test-VmStore -Repair takes it exclusive) and the subject's
    /// lock exclusive, with shared locks on the bases and clones it reads: operations on
    /// different clones run in parallel, operations on one clone or base one after the other.
    /// Under those locks it first finishes or undoes whatever an earlier, cut-off operation left
    /// of the subject; if that changed the clone, the plan is made again for what is there now.
    /// </remarks>
    public object? Execute(StorePlan plan, IProgress<OperationProgress>? progress = null, CancellationToken cancellationToken = default, bool describeResult = true)
    {
        if (!string.Equals(Path.GetFullPath(plan.Store), Root, StringComparison.Ordinal))
            throw new ArgumentException($"The plan is for store '{plan.Store}', not '{Root}'.", nameof(plan));
        using (StoreLock(exclusive: false, cancellationToken))
        using (StoreLocks.Acquire(Root, LocksFor(plan), plan.Describe().Split('\n')[0].Trim(), cancellationToken))
        {
            bool recovered = RecoverSubject(plan.SubjectKind, plan.Subject, cancellationToken);
            if (recovered && plan.Operation is StoreOperation.Restore or StoreOperation.ClearTemporary or StoreOperation.Rebase
                && File.Exists(Path.Combine(plan.Folder, CloneFile)) && ManifestDigest(Path.Combine(plan.Folder, CloneFile)) != plan.ManifestDigest)
                plan = Replan(plan);
            // Decided under the locks: whatever the plan checked must still hold.
            if (plan.Operation is not (StoreOperation.RemoveClone or StoreOperation.RemoveBase))
                PlanVerification.Verify(Boundary, plan);
            try
            {
                switch (plan.Operation)
                {
                    case StoreOperation.NewBase:
                        ExecuteNewBase(plan, progress, cancellationToken);
                        return describeResult ? GetBase(plan.Subject) : null;
                    case StoreOperation.NewClone:
                        ExecuteNewClone(plan, progress, cancellationToken);
                        return describeResult ? GetClone(plan.Subject) : null;
                    case StoreOperation.Restore:
                    case StoreOperation.ClearTemporary:
                    case StoreOperation.Rebase:
                        ExecuteCloneChange(plan, progress, cancellationToken);
                        return describeResult ? GetClone(plan.Subject) : null;
                    case StoreOperation.RemoveClone:
                    case StoreOperation.RemoveBase:
                        ExecuteRemove(plan, recovered);
                        return null;
                    default:
                        throw new ArgumentException($"Unknown operation {plan.Operation}.", nameof(plan));
                }
            }
            catch (IOException ex) when (IsDiskFull(ex))
            {
                throw new StoreException(StoreErrorIds.DiskFull, VmCloneErrorKind.InvalidOperation,
                    $"There is not enough free space in '{Root}' for: {plan.Describe().Split('\n')[0].Trim()}. " +
                    "Nothing of it was kept (its unfinished files were deleted, the originals are untouched); free some space and run the command again.", plan.Subject, ex);
            }
            catch (Exception ex) when (plan.Operation is StoreOperation.NewBase or StoreOperation.NewClone
                && UserFacing.Renamed(ex, StagingFolderOf(plan), FinalFolderOf(plan)) is Exception renamed)
            {
                // A new base or clone is made in a staging folder of ours; the user knows only its name.
                throw renamed;
            }
        }
    }

    private string FinalFolderOf(StorePlan plan) => plan.Operation == StoreOperation.NewBase ? BaseFolder(plan.Subject) : CloneFolder(plan.Subject);

    private string StagingFolderOf(StorePlan plan) => WorkFolder(FinalFolderOf(plan), StagingPrefix);

    /// <summary>The same operation planned again, for what the subject is now.</summary>
    private StorePlan Replan(StorePlan plan) => plan.Operation switch
    {
        StoreOperation.Restore => PlanRestore(plan.Subject),
        StoreOperation.ClearTemporary => PlanClearTemporary(plan.Subject),
        StoreOperation.Rebase => PlanRebase(plan.Subject, plan.ToBase!, plan.ConvertFormat),
        _ => plan,
    };

    /// <summary>The subject exclusive; what the operation reads shared.</summary>
    private IEnumerable<LockRequest> LocksFor(StorePlan plan)
    {
        yield return new LockRequest(plan.SubjectKind, plan.Subject, exclusive: true);
        if (plan.FromBase is not null)
            yield return new LockRequest("base", plan.FromBase, exclusive: false);
        if (plan.Operation == StoreOperation.NewBase && plan.ToBase is string sourceClone)
        {
            yield return new LockRequest("clone", sourceClone, exclusive: false);
            string? itsBase = null;
            try { itsBase = LoadClone(sourceClone).Base; } catch (StoreException) { }
            if (itsBase is not null)
                yield return new LockRequest("base", itsBase, exclusive: false);
        }
        else if (plan.ToBase is not null)
        {
            yield return new LockRequest("base", plan.ToBase, exclusive: false);
        }
    }

    /// <summary>ENOSPC (Unix), ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL (Windows).</summary>
    internal static bool IsDiskFull(Exception ex)
    {
        for (Exception? e = ex; e is not null; e = e.InnerException)
        {
            int code = e.HResult & 0xFFFF;
            if (e is IOException && (e.HResult == 28 || code == 0x70 || code == 0x27 || e.Message.IndexOf("No space left", StringComparison.OrdinalIgnoreCase) >= 0))
                return true;
        }
        return false;
    }

    private void ExecuteNewBase(StorePlan plan, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        RefuseExistingBase(plan.Subject);
        if (plan.ToBase is string sourceClone && !plan.SourceMayBeInUse)
        {
            // A running machine's disks are copied in the middle of being written: the base would
            // hold a file system no clean shutdown left. The same probe that guards restore and rebase.
            string cloneFolder = CloneFolder(sourceClone);
            if (FindHolder(plan.Volumes.Select(v => v.Source).OfType<string>().Where(s => IsUnder(s, cloneFolder))) is (string file, string holder))
                throw new StoreException(StoreErrorIds.VolumeInUse, VmCloneErrorKind.InUse,
                    $"Base '{plan.Subject}' was not made: the file '{file}' of clone '{sourceClone}' is open in another program ({holder}), so its content may be half-written. " +
                    "Shut the virtual machine down and run the command again, or add -Force if you know its disks are quiescent.", sourceClone);
        }
        CreateSubject(plan, BaseFile, staging =>
        {
            var manifest = new BaseManifest
            {
                Name = plan.Subject,
                Source = plan.BaseManifest?.Source,
                Created = DateTimeOffset.UtcNow,
            };
            foreach (PlannedVolume step in plan.Volumes)
            {
                string staged = Path.Combine(staging, Path.GetFileName(step.Path));
                using (DiskLayer layer = VirtualDisk.OpenLayer(staged, FileAccess.Read))
                {
                    manifest.Volumes.Add(new BaseVolumeManifest
                    {
                        Name = step.Volume,
                        Type = step.Type,
                        Format = layer.Format,
                        File = Path.GetFileName(step.Path),
                        VirtualSize = layer.VirtualSize,
                        LogicalSectorSize = layer.LogicalSectorSize,
                        Identity = layer.Identity,
                        HoldsData = layer.AllocatedBytes > 0,
                    });
                }
                ReadOnlyFile.Mark(staged, readOnly: true);
            }
            return manifest;
        }, progress, cancellationToken);
    }

    private void ExecuteNewClone(StorePlan plan, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        if (CloneExists(plan.Subject) || Directory.Exists(plan.Folder))
            throw new StoreException(StoreErrorIds.CloneExists, VmCloneErrorKind.AlreadyExists, $"A clone named '{plan.Subject}' already exists in store '{Root}'.", plan.Subject);
        CreateSubject(plan, CloneFile, _ =>
        {
            CloneManifest manifest = plan.CloneManifest!;
            manifest.Created = DateTimeOffset.UtcNow;
            return manifest;
        }, progress, cancellationToken);
    }

    /// <summary>
    /// A new base or clone: every volume built in a staging folder, then the manifest
    /// <paramref name="manifest"/> makes of them, then one folder rename makes the subject appear.
    /// No plan.json: until the rename the subject does not exist, and a staging folder without a
    /// plan is undone by recovery, which is all a cut-off creation needs.
    /// </summary>
    private void CreateSubject<T>(StorePlan plan, string manifestFile, Func<string, T> manifest,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        string staging = NewStagingFolder(plan.Folder);
        try
        {
            FaultPoint.Hit("staging created");
            foreach (PlannedVolume step in plan.Volumes)
                BuildStaged(step, Path.Combine(staging, Path.GetFileName(step.Path)), progress, cancellationToken);
            Manifest.Write(Path.Combine(staging, manifestFile), manifest(staging));
            FaultPoint.Hit("manifest written");
            Directory.Move(staging, plan.Folder);
            FaultPoint.Hit("moved into place");
        }
        catch (Exception ex) when (!FaultPoint.IsCrash(ex))
        {
            TryDeleteFolder(staging);
            throw;
        }
    }

    private void ExecuteCloneChange(StorePlan plan, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        string manifestPath = Path.Combine(plan.Folder, CloneFile);
        if (!File.Exists(manifestPath) || (plan.ManifestDigest is not null && ManifestDigest(manifestPath) != plan.ManifestDigest))
            throw new StoreException(StoreErrorIds.CloneChanged, VmCloneErrorKind.InUse,
                $"Clone '{plan.Subject}' was changed or removed since this operation was planned; nothing was done. Run the command again.", plan.Subject);
        if (!plan.Changes.Any())
            return;
        RefuseInUse(TouchedFiles(plan), "clone", plan.Subject);
        // While new files are built the staging folder has no plan.json: recovery undoes such a
        // folder (the subject was not touched yet), as it would a plan in phase Preparing.
        string staging = NewStagingFolder(plan.Folder);
        try
        {
            FaultPoint.Hit("staging created");
            // A volume going back to its base whose file can be rewritten where it is becomes a
            // new child in that file at the commit, not in a new file now: creating a file and
            // freeing the old one costs several times more than rewriting a few KiB, and the
            // journal makes the rewrite repeatable.
            foreach (PlannedVolume step in plan.Volumes)
            {
                step.InPlace = step.Action is VolumeAction.Replace or VolumeAction.Reset && step.Supersedes is null
                    && VirtualDisk.CanRecreateInPlace(step.Path);
            }
            foreach (PlannedVolume step in plan.Volumes.Where(v => v.IsStaged))
            {
                cancellationToken.ThrowIfCancellationRequested();
                // Flattening reads the volume in place and writes the standalone copy beside it.
                BuildStaged(step, Path.Combine(staging, Path.GetFileName(step.Path)), progress, cancellationToken);
            }
        }
        catch (Exception ex) when (!FaultPoint.IsCrash(ex))
        {
            TryDeleteFolder(staging);
            throw;
        }
        plan.CloneManifest!.Revision = Guid.NewGuid().ToString("N");
        if (plan.Volumes.Any(v => v.Action == VolumeAction.Reparent))
        {
            // From here on the journal rolls forward: the new files are complete, and each
            // re-parenting step keeps the data volume's content and can be repeated.
            plan.Phase = PhaseReparenting;
            Manifest.Write(Path.Combine(staging, PlanFile), plan);
            FaultPoint.Hit("reparenting");
            try
            {
                Reparent(plan, progress, cancellationToken);
            }
            catch (Exception ex) when (!FaultPoint.IsCrash(ex) && !AnyLinkSwitched(plan))
            {
                // No link was switched yet: the clone still reads exactly as before, so the
                // operation can be undone instead (what was copied in shows what it showed).
                TryDeleteFolder(staging);
                throw;
            }
        }
        plan.Phase = PhaseCommitting;
        Manifest.Write(Path.Combine(staging, PlanFile), plan);
        FaultPoint.Hit("committing");
        Commit(plan, staging);
    }

    /// <summary>Makes every in-place volume a new child, moves every staged file over its volume, deletes superseded files, writes the manifest, drops the staging folder. Also finishes a cut-off commit; every step may be repeated.</summary>
    internal void Commit(StorePlan plan, string staging)
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
        File.Delete(Path.Combine(staging, PlanFile));
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
        if (OverParent(step.Source!, parent => VirtualDisk.TryRecreateDifferencingFile(step.Path, parent, new DiskCreateOptions { Format = step.Format }, OpenOptions)))
            return;
        string staged = Path.Combine(staging, Path.GetFileName(step.Path));
        if (File.Exists(staged))
            File.Delete(staged);
        CreateChild(staged, step.Source!, step.Format);
        AtomicFile.MoveOver(staged, step.Path);
    }

    private void ExecuteRemove(StorePlan plan, bool recovered)
    {
        // Recovery may just have finished a cut-off removal of this very subject.
        if (FileNode.Of(plan.Folder) == FileNodeKind.Missing && recovered && plan.Volumes.Count == 0)
            return;
        if (FileNode.Of(plan.Folder) == FileNodeKind.Missing)
            throw new StoreException(plan.SubjectKind == "base" ? StoreErrorIds.BaseNotFound : StoreErrorIds.CloneNotFound, VmCloneErrorKind.NotFound,
                $"There is no {plan.SubjectKind} '{plan.Subject}' in store '{Root}'.", plan.Subject);
        if (plan.Operation == StoreOperation.RemoveBase)
        {
            // Checked again under the lock: a clone may have been made since the plan.
            IReadOnlyList<string> dependents = FindDependents(plan.Subject);
            if (dependents.Count > 0)
                throw new StoreException(StoreErrorIds.BaseInUse, VmCloneErrorKind.InUse,
                    $"Base '{plan.Subject}' cannot be removed: {string.Join("; ", dependents)} depend(s) on it.", plan.Subject);
        }
        // A folder that is a link is removed as a link: nothing it leads to is probed or deleted.
        if (FileNode.Of(plan.Folder) == FileNodeKind.Directory)
            RefuseInUse(Directory.EnumerateFiles(plan.Folder).Where(IsDiskFile), plan.SubjectKind, plan.Subject);
        // The subject disappears in one step (a rename); deleting the renamed folder may then take
        // its time, and a cut-off deletion is finished by the next command on that name or by
        // Test-VmStore -Repair.
        string removing = WorkFolder(plan.Folder, RemovingPrefix);
        DeleteFolder(removing);
        Directory.Move(plan.Folder, removing);
        FaultPoint.Hit("renamed away");
        DeleteFolder(removing);
    }

    /// <summary>Builds one new volume file at <paramref name="staged"/> as the step says.</summary>
    private void BuildStaged(PlannedVolume step, string staged, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        switch (step.Action)
        {
            case VolumeAction.Import:
                DiskOperations.Convert(step.Source!, staged, step.Format, null,
                    IsUnder(step.Source!, Root) ? OpenOptions : null, progress, cancellationToken);
                break;
            case VolumeAction.Flatten:
                DiskOperations.Convert(step.Source!, staged, step.Format, null, OpenOptions, progress, cancellationToken);
                break;
            case VolumeAction.CreateEmpty:
                VirtualDisk.CreateDynamic(staged, step.VirtualSize, new DiskCreateOptions
                {
                    Format = step.Format,
                    LogicalSectorSizeBytes = step.LogicalSectorSize,
                }).Dispose();
                break;
            case VolumeAction.CreateChild:
            case VolumeAction.Replace:
            case VolumeAction.Reset:
                CreateChild(staged, step.Source!, step.Format);
                break;
            default:
                throw new InvalidOperationException($"{step.Action} does not build a file.");
        }
        progress?.Report(new OperationProgress($"{step.Volume}", $"{step.Action} done", 1, 1));
    }

    private static void TryDeleteFolder(string folder)
    {
        try
        {
            DeleteFolder(folder);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
