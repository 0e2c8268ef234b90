using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

// Execution: exactly what a plan says, under the store's lock (or an open batch's, see VmStore.Batch.cs). New files are built in a staging
// folder beside the subject's (same depth, so relative parent paths are already right) and only
// moved into place when all of them are complete; the manifest is written last.
public sealed partial class VmStore
{
    /// <summary>
    /// Carries out a plan. Returns the new or changed base (<see cref="VmBaseInfo"/>) or clone
    /// (<see cref="VmCloneInfo"/>), or null for a removal.
    /// </summary>
    public object? Execute(StorePlan plan, IProgress<OperationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (!string.Equals(Path.GetFullPath(plan.Store), Root, StringComparison.Ordinal))
            throw new ArgumentException($"The plan is for store '{plan.Store}', not '{Root}'.", nameof(plan));
        using (EnterExecution(plan, cancellationToken))
        {
            switch (plan.Operation)
            {
                case StoreOperation.NewBase:
                    ExecuteNewBase(plan, progress, cancellationToken);
                    return GetBase(plan.Subject);
                case StoreOperation.NewClone:
                    ExecuteNewClone(plan, progress, cancellationToken);
                    return GetClone(plan.Subject);
                case StoreOperation.Restore:
                case StoreOperation.ClearTemporary:
                case StoreOperation.Rebase:
                    ExecuteCloneChange(plan, progress, cancellationToken);
                    return GetClone(plan.Subject);
                case StoreOperation.RemoveClone:
                case StoreOperation.RemoveBase:
                    ExecuteRemove(plan);
                    return null;
                default:
                    throw new ArgumentException($"Unknown operation {plan.Operation}.", nameof(plan));
            }
        }
    }

    private void ExecuteNewBase(StorePlan plan, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        RefuseExistingBase(plan.Subject);
        string staging = NewStagingFolder(plan.Folder);
        try
        {
            Manifest.Write(Path.Combine(staging, PlanFile), plan);
            var manifest = new BaseManifest
            {
                Name = plan.Subject,
                Source = plan.BaseManifest?.Source,
                Created = DateTimeOffset.UtcNow,
            };
            foreach (PlannedVolume step in plan.Volumes)
            {
                string staged = Path.Combine(staging, Path.GetFileName(step.Path));
                BuildStaged(step, staged, progress, cancellationToken);
                using DiskLayer layer = VirtualDisk.OpenLayer(staged, FileAccess.Read);
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
            foreach (PlannedVolume step in plan.Volumes)
                ReadOnlyFile.Mark(Path.Combine(staging, Path.GetFileName(step.Path)), readOnly: true);
            Manifest.Write(Path.Combine(staging, BaseFile), manifest);
            File.Delete(Path.Combine(staging, PlanFile));
            // The base appears in one step: a folder rename.
            Directory.Move(staging, plan.Folder);
        }
        catch
        {
            TryDeleteFolder(staging);
            throw;
        }
    }

    private void ExecuteNewClone(StorePlan plan, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        if (CloneExists(plan.Subject) || Directory.Exists(plan.Folder))
            throw new StoreException("CloneExists", VmCloneErrorKind.AlreadyExists, $"A clone named '{plan.Subject}' already exists in store '{Root}'.", plan.Subject);
        string staging = NewStagingFolder(plan.Folder);
        try
        {
            Manifest.Write(Path.Combine(staging, PlanFile), plan);
            foreach (PlannedVolume step in plan.Volumes)
                BuildStaged(step, Path.Combine(staging, Path.GetFileName(step.Path)), progress, cancellationToken);
            CloneManifest manifest = plan.CloneManifest!;
            manifest.Created = DateTimeOffset.UtcNow;
            Manifest.Write(Path.Combine(staging, CloneFile), manifest);
            File.Delete(Path.Combine(staging, PlanFile));
            Directory.Move(staging, plan.Folder);
        }
        catch
        {
            TryDeleteFolder(staging);
            throw;
        }
    }

    private void ExecuteCloneChange(StorePlan plan, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        string manifestPath = Path.Combine(plan.Folder, CloneFile);
        if (!File.Exists(manifestPath) || (plan.ManifestDigest is not null && ManifestDigest(manifestPath) != plan.ManifestDigest))
            throw new StoreException("CloneChanged", VmCloneErrorKind.InUse,
                $"Clone '{plan.Subject}' was changed or removed since this operation was planned; nothing was done. Run the command again.", plan.Subject);
        if (!plan.Changes.Any())
            return;
        string staging = NewStagingFolder(plan.Folder);
        try
        {
            Manifest.Write(Path.Combine(staging, PlanFile), plan);
            foreach (PlannedVolume step in plan.Volumes.Where(v => v.IsStaged))
            {
                cancellationToken.ThrowIfCancellationRequested();
                // Flattening reads the volume in place and writes the standalone copy beside it.
                BuildStaged(step, Path.Combine(staging, Path.GetFileName(step.Path)), progress, cancellationToken);
            }
            foreach (PlannedVolume step in plan.Volumes.Where(v => v.Action == VolumeAction.Reparent))
            {
                // In place and safe at any point: every range copied in shows what it showed
                // already, and the link switch is one crash-safe header update.
                progress?.Report(new OperationProgress($"Clone {plan.Subject}", $"re-parenting {step.Volume}", 0, 1));
                DiskOperations.SetParent(step.Path, step.Source!, preserveContent: true, ignoreIdMismatch: false, progress, cancellationToken);
            }
        }
        catch
        {
            TryDeleteFolder(staging);
            throw;
        }
        plan.Phase = "Committing";
        Manifest.Write(Path.Combine(staging, PlanFile), plan);
        Commit(plan, staging);
    }

    /// <summary>Moves every staged file over its volume, deletes superseded files, writes the manifest, drops the staging folder. Also finishes a cut-off commit.</summary>
    internal void Commit(StorePlan plan, string staging)
    {
        foreach (PlannedVolume step in plan.Volumes.Where(v => v.IsStaged))
        {
            string staged = Path.Combine(staging, Path.GetFileName(step.Path));
            if (File.Exists(staged))
                AtomicFile.MoveOver(staged, step.Path);
        }
        foreach (PlannedVolume step in plan.Volumes)
        {
            if (step.Supersedes is not null && File.Exists(step.Supersedes) && !string.Equals(step.Supersedes, step.Path, StringComparison.Ordinal))
                File.Delete(step.Supersedes);
        }
        Manifest.Write(Path.Combine(plan.Folder, CloneFile), plan.CloneManifest!);
        TryDeleteFolder(staging);
    }

    private void ExecuteRemove(StorePlan plan)
    {
        if (!Directory.Exists(plan.Folder))
            throw new StoreException(plan.SubjectKind == "base" ? "BaseNotFound" : "CloneNotFound", VmCloneErrorKind.NotFound,
                $"There is no {plan.SubjectKind} '{plan.Subject}' in store '{Root}'.", plan.Subject);
        if (plan.Operation == StoreOperation.RemoveBase)
        {
            // Checked again under the lock: a clone may have been made since the plan.
            IReadOnlyList<string> dependents = FindDependents(plan.Subject);
            if (dependents.Count > 0)
                throw new StoreException("BaseInUse", VmCloneErrorKind.InUse,
                    $"Base '{plan.Subject}' cannot be removed: {string.Join("; ", dependents)} depend(s) on it.", plan.Subject);
        }
        // The subject disappears in one step (a rename); deleting the renamed folder may then take
        // its time, and a cut-off deletion is finished by Test-VmStore -Repair.
        string parent = Path.GetDirectoryName(plan.Folder)!;
        string removing = Path.Combine(parent, RemovingPrefix + plan.Subject + "-" + Guid.NewGuid().ToString("N").Substring(0, 8));
        Directory.Move(plan.Folder, removing);
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
                VirtualDisk.CreateDifferencing(staged, step.Source!, new DiskCreateOptions { Format = step.Format }).Dispose();
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
