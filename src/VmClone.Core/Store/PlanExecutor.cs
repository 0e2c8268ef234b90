using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// Carries out exactly what a plan says, under the subject's lock (see StoreLocks), after
/// recovery has finished or undone whatever an earlier operation left. New files are built in a
/// staging folder beside the subject's (same depth, so relative parent paths are already right)
/// and only moved into place when all of them are complete; the manifest is written last.
/// </summary>
internal sealed class PlanExecutor : StorePart
{
    private readonly StoreInspector _inspector;
    private readonly KeptChains _chains;
    private readonly StorePreconditions _preconditions;
    private readonly ResetPlanner _reset;
    private readonly RebasePlanner _rebase;
    private readonly RemovalPlanner _removal;
    private readonly StoreRecovery _recovery;
    private readonly RollForward _rollForward;
    private readonly RenamePlanner _rename;
    private readonly RenameSteps _renameSteps;

    public PlanExecutor(StoreCatalogue catalogue, StoreInspector inspector, KeptChains chains, StorePreconditions preconditions,
        ResetPlanner reset, RebasePlanner rebase, RemovalPlanner removal, StoreRecovery recovery, RollForward rollForward,
        RenamePlanner rename, RenameSteps renameSteps) : base(catalogue)
    {
        _rename = rename;
        _renameSteps = renameSteps;
        _inspector = inspector;
        _chains = chains;
        _preconditions = preconditions;
        _reset = reset;
        _rebase = rebase;
        _removal = removal;
        _recovery = recovery;
        _rollForward = rollForward;
    }

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
        using (Catalogue.StoreLock(exclusive: false, cancellationToken))
        using (StoreLocks.Acquire(Root, LocksFor(plan), plan.Describe().Split('\n')[0].Trim(), cancellationToken))
        {
            bool recovered = _recovery.RecoverSubject(plan.SubjectKind, plan.Subject, cancellationToken);
            if (recovered && plan.Operation is StoreOperation.Restore or StoreOperation.ClearTemporary or StoreOperation.Rebase
                && File.Exists(Path.Combine(plan.Folder, CloneFile)) && ManifestDigest(Path.Combine(plan.Folder, CloneFile)) != plan.ManifestDigest)
                plan = Replan(plan);
            if (plan.Operation is StoreOperation.RenameClone or StoreOperation.RenameBase)
                return ExecuteRename(plan, recovered, describeResult, cancellationToken);
            // Decided under the locks: whatever the plan checked must still hold.
            if (plan.Operation is not (StoreOperation.RemoveClone or StoreOperation.RemoveBase))
                PlanVerification.Verify(Boundary, plan);
            using IDisposable? room = ReserveSpace(plan);
            try
            {
                switch (plan.Operation)
                {
                    case StoreOperation.NewBase:
                        ExecuteNewBase(plan, progress, cancellationToken);
                        return describeResult ? _inspector.GetBase(plan.Subject) : null;
                    case StoreOperation.NewClone:
                        ExecuteNewClone(plan, progress, cancellationToken);
                        return describeResult ? _inspector.GetClone(plan.Subject) : null;
                    case StoreOperation.Restore:
                    case StoreOperation.ClearTemporary:
                    case StoreOperation.Rebase:
                        ExecuteCloneChange(plan, progress, cancellationToken);
                        return describeResult ? _inspector.GetClone(plan.Subject) : null;
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

    /// <summary>
    /// A rename, under the locks of both names (and a base's clones): whatever an earlier rename
    /// left of them is finished or undone first; a rename that recovery finished is done.
    /// </summary>
    private object? ExecuteRename(StorePlan plan, bool recovered, bool describeResult, CancellationToken cancellationToken)
    {
        bool clone = plan.Operation == StoreOperation.RenameClone;
        string kind = plan.SubjectKind;
        recovered |= _recovery.RecoverSubject(kind, plan.NewName!, cancellationToken);
        foreach (RenamedClone child in plan.Children)
            recovered |= _recovery.RecoverSubject("clone", child.Clone, cancellationToken);
        bool done = clone ? !CloneExists(plan.Subject) && CloneExists(plan.NewName!) : !BaseExists(plan.Subject) && BaseExists(plan.NewName!);
        if (!(recovered && done))
        {
            if (recovered)
                plan = clone ? _rename.PlanRenameClone(plan.Subject, plan.NewName!) : _rename.PlanRenameBase(plan.Subject, plan.NewName!);
            _renameSteps.Execute(plan, cancellationToken);
        }
        if (!describeResult)
            return null;
        return clone ? _inspector.GetClone(plan.NewName!) : _inspector.GetBase(plan.NewName!);
    }

    private string FinalFolderOf(StorePlan plan) => plan.Operation == StoreOperation.NewBase ? BaseFolder(plan.Subject) : CloneFolder(plan.Subject);

    private string StagingFolderOf(StorePlan plan) => WorkFolder(FinalFolderOf(plan), StagingPrefix);

    /// <summary>The same operation planned again, for what the subject is now.</summary>
    private StorePlan Replan(StorePlan plan) => plan.Operation switch
    {
        StoreOperation.Restore => plan.RestoreVolumes is null ? _reset.PlanRestore(plan.Subject) : _reset.PlanRestore(plan.Subject, plan.RestoreVolumes, null),
        StoreOperation.ClearTemporary => _reset.PlanClearTemporary(plan.Subject),
        StoreOperation.Rebase => _rebase.PlanRebase(plan.Subject, plan.ToBase!, plan.ConvertFormat),
        _ => plan,
    };

    /// <summary>The subject exclusive; what the operation reads shared.</summary>
    private IEnumerable<LockRequest> LocksFor(StorePlan plan)
    {
        yield return new LockRequest(plan.SubjectKind, plan.Subject, exclusive: true);
        // A rename holds the new name too (nothing may be made under it meanwhile), and a base's clones, whose files it re-points.
        if (plan.NewName is string newName && plan.Operation is StoreOperation.RenameClone or StoreOperation.RenameBase)
            yield return new LockRequest(plan.SubjectKind, newName, exclusive: true);
        foreach (RenamedClone child in plan.Children)
            yield return new LockRequest("clone", child.Clone, exclusive: true);
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

    /// <summary>
    /// Before anything is written: what the plan copies (with <see cref="FreeSpace.Margin"/>) must
    /// fit in the free space of the subject's file system less what other operations running in
    /// this process set aside there (a fleet command runs clones side by side); it is then set
    /// aside until the operation ends. Refused as DiskFull, with the folder and the numbers. A plan
    /// that copies nothing (children, resets, keeps) asks nothing of the file system.
    /// </summary>
    private IDisposable? ReserveSpace(StorePlan plan)
    {
        long bytes = plan.BytesToCopy;
        if (bytes <= 0)
            return null;
        string folder = Directory.Exists(plan.Folder) ? plan.Folder : Path.GetDirectoryName(plan.Folder)!;
        return FreeSpace.Reserve(folder, bytes + FreeSpace.Margin, s => s.Into(new StoreException(StoreErrorIds.DiskFull, VmCloneErrorKind.InvalidOperation,
            $"There is not enough free space in '{Root}' for: {plan.Describe().Split('\n')[0].Trim()}: {s.Numbers}. " +
            "Nothing was written; free some space and run the command again.", plan.Subject)));
    }

    /// <summary>
    /// ENOSPC (Linux and macOS: .NET gives the errno itself as the HResult), or ERROR_DISK_FULL /
    /// ERROR_HANDLE_DISK_FULL (Windows: a Win32 HResult, 0x8007xxxx), anywhere in the chain of
    /// inner exceptions. Told by the code alone: a message is words for a person (and another
    /// errno can share the low bits of a Windows code: 39 is ENOTEMPTY).
    /// </summary>
    internal static bool IsDiskFull(Exception ex)
    {
        const int Enospc = 28;
        const int Win32Facility = unchecked((int)0x80070000);
        for (Exception? e = ex; e is not null; e = e.InnerException)
        {
            if (e is not IOException)
                continue;
            int hresult = e.HResult;
            if (hresult == Enospc)
                return true;
            if ((hresult & unchecked((int)0xFFFF0000)) == Win32Facility && (hresult & 0xFFFF) is 0x70 or 0x27)
                return true;
        }
        return false;
    }


    private void ExecuteNewBase(StorePlan plan, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        _preconditions.RefuseExistingBase(plan.Subject);
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
                        Qcow2 = layer.Format == DiskFormat.Qcow2 ? step.Qcow2 : null,
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
            StoreJournal.Write(staging, plan, JournalPhase.Reparenting);
            FaultPoint.Hit("reparenting");
            try
            {
                _rollForward.Reparent(plan, progress, cancellationToken);
            }
            catch (Exception ex) when (!FaultPoint.IsCrash(ex) && !_rollForward.AnyLinkSwitched(plan))
            {
                // No link was switched yet: the clone still reads exactly as before, so the
                // operation can be undone instead (what was copied in shows what it showed).
                TryDeleteFolder(staging);
                throw;
            }
        }
        StoreJournal.Write(staging, plan, JournalPhase.Committing);
        FaultPoint.Hit("committing");
        _rollForward.Commit(plan, staging);
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
            IReadOnlyList<string> dependents = _removal.FindDependents(plan.Subject);
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
                DiskOperations.ConvertInStore(step.Source!, staged, step.Format, Qcow2Layout.CreateOptions(step.Format, step.Qcow2),
                    IsUnder(step.Source!, Root) ? OpenOptions : null, progress, cancellationToken);
                break;
            case VolumeAction.Flatten:
                DiskOperations.ConvertInStore(step.Source!, staged, step.Format, Qcow2Layout.CreateOptions(step.Format, step.Qcow2), OpenOptions, progress, cancellationToken);
                break;
            case VolumeAction.CreateEmpty:
                VirtualDisk.CreateDynamic(staged, step.VirtualSize, Qcow2Layout.CreateOptions(step.Format, step.Qcow2, step.LogicalSectorSize)).Dispose();
                break;
            case VolumeAction.CreateChild:
            case VolumeAction.Replace:
            case VolumeAction.Reset:
                _chains.CreateChild(staged, step.Source!, step.Format, step.Qcow2);
                break;
            default:
                throw new InvalidOperationException($"{step.Action} does not build a file.");
        }
        // A grown outline: the new file takes the new base's size before it is moved in.
        if (step.GrowTo is long grow)
            DiskResize.Resize(staged, grow, OpenOptions);
        progress?.Report(new OperationProgress($"{step.Volume}", $"{step.Action} done", 1, 1));
    }

    /// <summary>
    /// Refuses (VolumeInUse, naming the file) when another program has a file open: a running
    /// virtual machine's disk is never replaced, re-parented or deleted under it. The probe is an
    /// exclusive open (share modes on Windows, flock on Linux and macOS), released at once.
    /// </summary>
    public static void RefuseInUse(IEnumerable<string> files, string subjectKind, string subject)
    {
        if (FindHolder(files) is (string file, string holder))
            throw new StoreException(StoreErrorIds.VolumeInUse, VmCloneErrorKind.InUse,
                $"The {subjectKind} '{subject}' was not changed: its file '{file}' is open in another program ({holder}). " +
                "Stop the virtual machine (or the program) that uses it, then run the command again.", subject);
    }

    /// <summary>The first of <paramref name="files"/> another program holds open, and a few words on who holds it; null when none is.</summary>
    internal static (string File, string Holder)? FindHolder(IEnumerable<string> files)
    {
        foreach (string file in files.Distinct(StringComparer.Ordinal))
        {
            // Only a regular file can be a running machine's disk; opening a FIFO would block,
            // and a link is deleted as a link, never probed through.
            if (FileNode.Of(file) != FileNodeKind.RegularFile)
                continue;
            // Only a holder that stays is refused (a running machine, not a reader of a moment).
            if (FileInUse.LastingHolder(file) is string holder)
                return (file, holder);
        }
        return null;
    }

    /// <summary>The files of a clone that an operation changes in place, replaces or deletes.</summary>
    private static IEnumerable<string> TouchedFiles(StorePlan plan)
    {
        foreach (PlannedVolume step in plan.Changes)
        {
            yield return step.Path;
            if (step.Supersedes is not null)
                yield return step.Supersedes;
        }
    }
}
