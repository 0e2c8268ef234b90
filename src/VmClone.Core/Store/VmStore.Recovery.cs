using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

// The journal: a staging folder's plan.json records how far an operation got. Recovery reads it
// and finishes or undoes the operation, never anything in between:
//   no plan.json, or Phase Preparing   new files were still being built beside the subject;
//                                     nothing of the subject was touched  -> undo (delete them)
//   Phase Reparenting                 every new file is complete; data volumes are being
//                                     re-parented in place (each step keeps the content and can
//                                     be repeated)                        -> finish
//   Phase Committing                  new volumes are being put in place: staged files moved
//                                     over, or files rewritten in place as new children (each
//                                     can be done again)                   -> finish
//   .removing-* folder                the subject was renamed away         -> finish the deletion
// A commit's last two steps (delete plan.json, delete the folder) cannot be one: cut off between
// them, or just before them, a finished operation leaves an empty folder or one holding only a
// plan.json whose manifest is already in place. Such a leftover is nothing to finish or undo:
// Test-VmStore does not call it a problem, and recovery (-Repair, the next command on the
// subject) simply deletes it.
// Recovery of a subject runs under that subject's exclusive lock: at the start of every changing
// command on it, and for the whole store in Test-VmStore -Repair.
public sealed partial class VmStore
{
    internal const string PhaseReparenting = "Reparenting";
    internal const string PhaseCommitting = "Committing";

    /// <summary>What recovery did with one work folder, or would do.</summary>
    internal sealed class Recovery
    {
        public string Description { get; set; } = "";

        public string Action { get; set; } = "";

        public bool Finished { get; set; }

        /// <summary>Only a work folder with nothing to finish or undo is left (see <see cref="IsFinishedLeftover"/>); deleting it changes nothing.</summary>
        public bool Leftover { get; set; }

        /// <summary>The journal would act outside where it may (see <see cref="StoreBoundary.JournalProblem"/>): nothing is done, the folder is left for the administrator.</summary>
        public bool Refused { get; set; }
    }

    /// <summary>The work folders (staging, removal) of one base or clone.</summary>
    internal IEnumerable<string> WorkFolders(string kind, string subject)
    {
        string folder = kind == "base" ? BaseFolder(subject) : CloneFolder(subject);
        return new[] { WorkFolder(folder, RemovingPrefix), WorkFolder(folder, StagingPrefix) }.Where(Directory.Exists).ToList();
    }

    /// <summary>
    /// Finishes or undoes every cut-off operation on one subject. The caller holds the subject's
    /// exclusive lock. Returns true when anything was done.
    /// </summary>
    internal bool RecoverSubject(string kind, string subject, CancellationToken cancellationToken)
    {
        bool any = false;
        // A manifest write cut off before its rename leaves only a temporary file beside it.
        AtomicFile.DeleteTemporaries(kind == "base" ? BaseFolder(subject) : CloneFolder(subject));
        foreach (string dir in WorkFolders(kind, subject))
        {
            cancellationToken.ThrowIfCancellationRequested();
            Recovery done = RecoverWorkFolder(dir, kind, subject, apply: true, cancellationToken);
            if (done.Refused)
                throw new StoreException(StoreErrorIds.ManifestInvalid, VmCloneErrorKind.InvalidData,
                    $"The {kind} '{subject}' was not changed: {done.Description}. Nothing it names was touched; look at it, then delete the folder '{dir}' if it is not yours.", subject);
            any = true;
        }
        return any;
    }

    /// <summary>Describes (and with <paramref name="apply"/> carries out) the recovery of one work folder.</summary>
    internal Recovery RecoverWorkFolder(string dir, string kind, string subject, bool apply, CancellationToken cancellationToken)
    {
        // Every way but rolling forward ends the same: the folder is deleted.
        Recovery DeleteWorkFolder(Recovery what)
        {
            if (apply)
                DeleteFolder(dir);
            return what;
        }

        string name = Path.GetFileName(dir);
        if (name.StartsWith(RemovingPrefix, StringComparison.Ordinal))
        {
            return DeleteWorkFolder(new Recovery
            {
                Description = $"removing {kind} '{subject}' was cut off; its files are left in '{dir}'",
                Action = "finished the removal",
                Finished = true,
            });
        }
        // A work folder that is a link is only a link: deleting it is the whole undo.
        if (FileNode.Of(dir) != FileNodeKind.Directory)
        {
            return DeleteWorkFolder(new Recovery
            {
                Description = $"the work folder '{dir}' of {kind} '{subject}' is a symbolic link, not a folder",
                Action = "deleted the link (nothing it leads to was touched)",
            });
        }
        StorePlan? plan = ReadPlan(dir);
        if (IsFinishedLeftover(dir, kind, subject, plan))
        {
            return DeleteWorkFolder(new Recovery
            {
                Description = $"the work folder '{dir}' of {kind} '{subject}' was left with nothing to finish or undo",
                Action = "deleted it",
                Finished = true,
                Leftover = true,
            });
        }
        string what = plan is null ? $"an operation on {kind} '{subject}'" : $"'{plan.Describe().Split('\n')[0].Trim()}'";
        bool forward = plan is { CloneManifest: not null } && plan.Phase is PhaseCommitting or PhaseReparenting
            && kind == "clone" && CloneExists(subject);
        if (!forward)
        {
            return DeleteWorkFolder(new Recovery
            {
                Description = $"{what} was cut off before it was committed; its unfinished files are in '{dir}'",
                Action = "undid the operation (deleted its unfinished files; nothing else had been changed)",
            });
        }
        // A journal is a record like any other: it is finished only when every step is one a
        // clone operation takes, inside this store.
        Relocate(plan!, subject);
        string? untrusted = Boundary.JournalProblem(plan!, subject, CloneFolder(subject), BasesFolder) ?? Boundary.StagedProblem(plan!, dir, OpenOptions);
        if (untrusted is not null)
        {
            return new Recovery
            {
                Description = $"the journal '{Path.Combine(dir, PlanFile)}' cannot be trusted: {untrusted}",
                Action = "not finished: nothing it names was touched; look at it, then delete the folder if it is not yours",
                Refused = true,
            };
        }
        var result = new Recovery
        {
            Description = plan!.Phase == PhaseReparenting
                ? $"{what} was cut off while re-parenting its data volumes in place"
                : $"{what} was cut off while putting its new volumes in place",
            Action = "finished the operation (completed every step recorded in its plan, wrote the manifest)",
            Finished = true,
        };
        if (apply)
        {
            if (plan.Phase == PhaseReparenting)
            {
                Reparent(plan, null, cancellationToken);
                plan.Phase = PhaseCommitting;
                Manifest.Write(Path.Combine(dir, PlanFile), plan);
            }
            Commit(plan, dir);
        }
        return result;
    }

    /// <summary>
    /// True for a work folder with nothing to finish or undo: an empty one (a finished operation
    /// cut off between deleting plan.json and the folder, or one cut off before it built
    /// anything), or one holding only a plan.json in phase Committing whose clone manifest is the one
    /// in place (every volume was put in place before the manifest was written, and its
    /// <see cref="CloneManifest.Revision"/> tells it from the one the operation started from;
    /// only the clean-up was left).
    /// </summary>
    private bool IsFinishedLeftover(string dir, string kind, string subject, StorePlan? plan)
    {
        string[] entries = Directory.GetFileSystemEntries(dir);
        if (entries.Length == 0)
            return true;
        if (entries.Length != 1 || !string.Equals(Path.GetFileName(entries[0]), PlanFile, StringComparison.Ordinal)
            || plan is not { Phase: PhaseCommitting, CloneManifest: not null } || kind != "clone")
            return false;
        try
        {
            CloneManifest inPlace = Manifest.Read<CloneManifest>(Path.Combine(CloneFolder(subject), CloneFile));
            return Manifest.Serialize(inPlace) == Manifest.Serialize(plan.CloneManifest);
        }
        catch (StoreException)
        {
            return false;
        }
    }

    private static StorePlan? ReadPlan(string dir)
    {
        string planPath = Path.Combine(dir, PlanFile);
        try
        {
            // Never a link or a FIFO, never a huge file: such a plan.json was never ours.
            return Manifest.Deserialize<StorePlan>(RecordFile.ReadAllText(planPath, Manifest.MaxManifestBytes));
        }
        catch (RecordFileRefusal)
        {
            return null;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (System.Text.Json.JsonException)
        {
            // plan.json is written atomically: a damaged one was never a committed intent.
            return null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Maps every path of a recorded plan into this store (it may have been moved since).</summary>
    private void Relocate(StorePlan plan, string subject)
    {
        string oldRoot = plan.Store;
        string Map(string p)
        {
            string prefix = oldRoot.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
            return p.StartsWith(prefix, StringComparison.Ordinal) ? Path.Combine(Root, p.Substring(prefix.Length)) : p;
        }
        plan.Store = Root;
        plan.Folder = CloneFolder(subject);
        foreach (PlannedVolume v in plan.Volumes)
        {
            v.Path = Path.Combine(plan.Folder, Path.GetFileName(v.Path));
            if (v.Supersedes is not null)
                v.Supersedes = Path.Combine(plan.Folder, Path.GetFileName(v.Supersedes));
            if (v.Source is not null)
                v.Source = Map(v.Source);
        }
    }

    /// <summary>
    /// Re-parents every data volume the plan re-parents. Each step copies what differs between
    /// the old and the new parent into the volume, then switches the link: the content is the same
    /// before, during and after, and a step that was cut off (or already done) can be repeated.
    /// </summary>
    private void Reparent(StorePlan plan, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        foreach (PlannedVolume step in plan.Volumes.Where(v => v.Action == VolumeAction.Reparent))
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new OperationProgress($"Clone {plan.Subject}", $"re-parenting {step.Volume}", 0, 1));
            FaultPoint.Hit("reparent");
            DiskOperations.SetParent(step.Path, step.Source!, preserveContent: true, ignoreIdMismatch: false, OpenOptions, progress, cancellationToken);
        }
    }

    /// <summary>True when some re-parented volume's link already points at its new parent.</summary>
    private bool AnyLinkSwitched(StorePlan plan)
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

    /// <summary>
    /// Refuses (VolumeInUse, naming the file) when another program has a file open: a running
    /// virtual machine's disk is never replaced, re-parented or deleted under it. The probe is an
    /// exclusive open (share modes on Windows, flock on Linux and macOS), released at once.
    /// </summary>
    internal static void RefuseInUse(IEnumerable<string> files, string subjectKind, string subject)
    {
        if (FindHolder(files) is (string file, string holder))
            throw new StoreException(StoreErrorIds.VolumeInUse, VmCloneErrorKind.InUse,
                $"The {subjectKind} '{subject}' was not changed: its file '{file}' is open in another program ({holder}). " +
                "Stop the virtual machine (or the program) that uses it, then run the command again.", subject);
    }

    /// <summary>The first of <paramref name="files"/> another program holds open, and a few words on who holds it; null when none is.</summary>
    private static (string File, string Holder)? FindHolder(IEnumerable<string> files)
    {
        foreach (string file in files.Distinct(StringComparer.Ordinal))
        {
            // Only a regular file can be a running machine's disk; opening a FIFO would block,
            // and a link is deleted as a link, never probed through.
            if (FileNode.Of(file) != FileNodeKind.RegularFile)
                continue;
            // Readers (another command planning, Get-VmClone, Test-VmStore) hold a file for
            // moments; a running machine holds it for hours. Only a holder that stays is refused.
            string? holder = FileInUse.Holder(file);
            for (DateTime until = DateTime.UtcNow.AddSeconds(3); holder is not null && DateTime.UtcNow < until;)
            {
                System.Threading.Thread.Sleep(100);
                holder = FileInUse.Holder(file);
            }
            if (holder is not null)
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
