using System;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

// A rename under the journal. The work folder of the old name (.staging-OLD) holds plan.json in
// phase Committing before anything moves; then:
//   1. the folder is renamed (one rename: the whole subject moves at once);
//   2. its manifest takes the new name;
//   3. (a base) every clone volume on it gets its parent link re-pointed at the same parent file
//      at its new path (metadata only: the base's files are not written, so their identities
//      stay what the base's manifest recorded), then each clone's manifest names the new base;
//   4. plan.json goes, then the work folder.
// Cut off before 1 (the old folder still there, the new one not): undone, by deleting the work
// folder. Cut off after 1: finished; every later step is repeatable (a link already re-pointed is
// re-pointed again to the same file, a manifest already renamed is left).

/// <summary>Carries out a rename, and finishes or undoes one that was cut off (see the comment above).</summary>
internal sealed class RenameSteps : StorePart
{
    public RenameSteps(StoreCatalogue catalogue) : base(catalogue)
    {
    }

    /// <summary>Renames as <paramref name="plan"/> says; the caller holds the locks of both names (and of the base's clones) and recovery has run.</summary>
    public void Execute(StorePlan plan, CancellationToken cancellationToken)
    {
        bool clone = plan.Operation == StoreOperation.RenameClone;
        string kind = clone ? "clone" : "base";
        string newName = plan.NewName!;
        string folder = Layout.FolderOf(kind, plan.Subject);
        string newFolder = Layout.FolderOf(kind, newName);
        if (clone ? !CloneExists(plan.Subject) : !BaseExists(plan.Subject))
            throw new StoreException(clone ? StoreErrorIds.CloneNotFound : StoreErrorIds.BaseNotFound, VmCloneErrorKind.NotFound,
                $"There is no {kind} '{plan.Subject}' in store '{Root}'.", plan.Subject);
        if ((clone ? Catalogue.CloneNames() : Catalogue.BaseNames()).Contains(newName, StringComparer.OrdinalIgnoreCase) || Directory.Exists(newFolder))
            throw new StoreException(clone ? StoreErrorIds.CloneExists : StoreErrorIds.BaseExists, VmCloneErrorKind.AlreadyExists,
                $"The {kind} '{plan.Subject}' was not renamed: the name '{newName}' is already taken in store '{Root}'. Choose another name.", newName);
        if (clone && plan.ManifestDigest is not null && ManifestDigest(Layout.CloneManifestPath(plan.Subject)) != plan.ManifestDigest)
            throw Changed(kind, plan.Subject);
        if (!clone)
        {
            // Checked again under the locks: a clone may have been made on the base, or changed, since the plan.
            var now = ReadableClones().Where(c => string.Equals(c.Value.Base, plan.Subject, StringComparison.OrdinalIgnoreCase)).Select(c => c.Key)
                .OrderBy(n => n, StringComparer.OrdinalIgnoreCase).ToList();
            if (!now.SequenceEqual(plan.Children.Select(c => c.Clone), StringComparer.OrdinalIgnoreCase)
                || plan.Children.Any(c => c.ManifestDigest != Catalogue.CloneDigest(c.Clone)))
                throw Changed(kind, plan.Subject);
        }
        foreach (PlannedVolume step in plan.Volumes)
        {
            string file = step.Action == VolumeAction.Move ? step.Supersedes! : step.Path;
            BoundaryProblem problem = Boundary.CheckPath(file);
            if (problem != BoundaryProblem.None)
                throw new StoreException(StoreBoundary.ErrorId(problem), VmCloneErrorKind.InvalidData,
                    $"The {kind} '{plan.Subject}' was not renamed: {StoreBoundary.Describe(problem, file)}. Run Test-VmStore.", plan.Subject);
        }
        // A running machine holds its clone's files, and the base's under them: nothing moves under it.
        PlanExecutor.RefuseInUse(plan.Volumes.Select(v => v.Action == VolumeAction.Move ? v.Supersedes! : v.Path), kind, plan.Subject);
        cancellationToken.ThrowIfCancellationRequested();
        string staging = NewStagingFolder(folder);
        StoreJournal.Write(staging, plan, JournalPhase.Committing);
        FaultPoint.Hit("rename journal written");
        Directory.Move(folder, newFolder);
        FaultPoint.Hit("folder renamed");
        Finish(plan, staging);
    }

    /// <summary>What recovery does with a work folder holding a rename's journal: undo before the folder was renamed, finish after.</summary>
    public Recovery Recover(string dir, StorePlan plan, string kind, string subject, bool apply)
    {
        bool clone = plan.Operation == StoreOperation.RenameClone;
        string? untrusted = JournalProblem(plan, kind, subject);
        if (untrusted is not null)
        {
            return new Recovery
            {
                Description = $"the journal '{Path.Combine(dir, PlanFile)}' cannot be trusted: {untrusted}",
                Action = "not finished: nothing it names was touched; look at it, then delete the folder if it is not yours",
                Refused = true,
            };
        }
        string what = $"renaming {kind} '{subject}' to '{plan.NewName}'";
        bool moved = !Directory.Exists(Layout.FolderOf(kind, subject)) && Directory.Exists(Layout.FolderOf(kind, plan.NewName!));
        if (!moved)
        {
            if (apply)
                DeleteFolder(dir);
            return new Recovery
            {
                Description = $"{what} was cut off before its folder was renamed",
                Action = "undid the rename (nothing had been changed)",
            };
        }
        if (apply)
        {
            plan.Store = Root;
            plan.Folder = Layout.FolderOf(kind, subject);
            Finish(plan, dir);
        }
        return new Recovery
        {
            Description = $"{what} was cut off after its folder was renamed" + (clone ? "" : ", while its clones were being re-pointed"),
            Action = "finished the rename (renamed the manifest" + (clone ? "" : ", re-pointed every clone volume and renamed the base in every clone manifest") + ")",
            Finished = true,
        };
    }

    /// <summary>Every step after the folder's rename; each may be repeated.</summary>
    private void Finish(StorePlan plan, string staging)
    {
        bool clone = plan.Operation == StoreOperation.RenameClone;
        string newName = plan.NewName!;
        if (clone)
        {
            string path = Layout.CloneManifestPath(newName);
            CloneManifest m = Manifest.Read<CloneManifest>(path);
            if (!string.Equals(m.Name, newName, StringComparison.Ordinal))
            {
                m.Name = newName;
                Manifest.Write(path, m);
            }
            FaultPoint.Hit("manifest renamed");
        }
        else
        {
            string path = Layout.BaseManifestPath(newName);
            BaseManifest m = Manifest.Read<BaseManifest>(path);
            if (!string.Equals(m.Name, newName, StringComparison.Ordinal))
            {
                m.Name = newName;
                Manifest.Write(path, m);
            }
            FaultPoint.Hit("manifest renamed");
            string oldPrefix = $"bases/{plan.Subject}/";
            foreach (RenamedClone child in plan.Children)
            {
                foreach (PlannedVolume step in plan.Volumes.Where(v => v.Action == VolumeAction.Repoint && string.Equals(v.Clone, child.Clone, StringComparison.OrdinalIgnoreCase)))
                {
                    string file = Path.Combine(CloneFolder(child.Clone), Path.GetFileName(step.Path));
                    string parent = Path.Combine(BaseFolder(newName), Path.GetFileName(step.Source!));
                    // The parent is the same file as before, moved: its identity is what the child
                    // recorded, so only the link is rewritten and no byte of the base is.
                    DiskOperations.SetParent(file, parent, preserveContent: false, ignoreIdMismatch: false, OpenOptions, null, CancellationToken.None);
                    FaultPoint.Hit($"re-pointed {child.Clone}/{step.Volume}");
                }
                string manifestPath = Layout.CloneManifestPath(child.Clone);
                CloneManifest m2 = Manifest.Read<CloneManifest>(manifestPath);
                if (string.Equals(m2.Base, plan.Subject, StringComparison.OrdinalIgnoreCase))
                {
                    m2.Base = newName;
                    foreach (CloneVolumeManifest v in m2.Volumes)
                    {
                        if (v.Parent is string p && p.StartsWith(oldPrefix, StringComparison.OrdinalIgnoreCase))
                            v.Parent = $"bases/{newName}/" + p.Substring(oldPrefix.Length);
                    }
                    Manifest.Write(manifestPath, m2);
                }
                FaultPoint.Hit($"clone manifest {child.Clone} written");
            }
        }
        StoreJournal.Delete(staging);
        FaultPoint.Hit("plan deleted");
        TryDeleteFolder(staging);
    }

    /// <summary>Why a rename journal must not be acted on, or null: every name it gives is a valid name, every file a volume file name.</summary>
    private static string? JournalProblem(StorePlan plan, string kind, string subject)
    {
        if (plan.SubjectKind != kind || !string.Equals(plan.Subject, subject, StringComparison.OrdinalIgnoreCase))
            return $"it is a plan for {plan.SubjectKind} '{plan.Subject}', not for {kind} '{subject}'";
        if ((plan.Operation == StoreOperation.RenameClone) != (kind == "clone"))
            return $"a {plan.Operation} is not an operation on a {kind}";
        if (StoreNames.Problem(plan.NewName) is string nameProblem)
            return $"its new name '{plan.NewName}' is not valid: {nameProblem}";
        foreach (RenamedClone child in plan.Children)
        {
            if (child is null || StoreNames.Problem(child.Clone) is not null)
                return $"it names a clone '{child?.Clone}' that is not a valid clone name";
        }
        foreach (PlannedVolume step in plan.Volumes.Where(v => v.Action == VolumeAction.Repoint))
        {
            if (step.Clone is null || !plan.Children.Any(c => string.Equals(c.Clone, step.Clone, StringComparison.OrdinalIgnoreCase))
                || StoreBoundary.VolumeFileNameProblem(Path.GetFileName(step.Path)) is not null
                || StoreBoundary.VolumeFileNameProblem(Path.GetFileName(step.Source)) is not null)
                return $"a step re-points '{step.Path}' of clone '{step.Clone}', which is not a volume of a clone the rename names";
        }
        if (plan.Volumes.Any(v => v.Action is not (VolumeAction.Move or VolumeAction.Repoint)))
            return "it holds steps a rename never takes";
        return null;
    }

    private static StoreException Changed(string kind, string subject) =>
        new(StoreErrorIds.CloneChanged, VmCloneErrorKind.InUse,
            $"The {kind} '{subject}' was not renamed: it (or a clone on it) was changed, made or removed since the rename was planned. Run the command again.", subject);
}
