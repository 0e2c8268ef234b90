using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// Finishes or undoes an operation that was cut off, as its work folder and journal say (see
/// <see cref="StoreJournal"/>): at the start of every changing command on a subject, under its
/// exclusive lock, and for the whole store in Test-VmStore -Repair.
/// </summary>
internal sealed class StoreRecovery : StorePart
{
    private readonly RollForward _rollForward;
    private readonly RenameSteps _rename;
    private readonly ImportSteps? _import;

    public StoreRecovery(StoreCatalogue catalogue, RollForward rollForward, RenameSteps rename, ImportSteps? import = null) : base(catalogue)
    {
        _rollForward = rollForward;
        _rename = rename;
        _import = import;
    }

    /// <summary>
    /// Finishes or undoes every cut-off operation on one subject. The caller holds the subject's
    /// exclusive lock. Returns true when anything was done.
    /// </summary>
    public bool RecoverSubject(string kind, string subject, CancellationToken cancellationToken)
    {
        bool any = false;
        // A manifest write cut off before its rename leaves only a temporary file beside it.
        AtomicFile.DeleteTemporaries(Layout.FolderOf(kind, subject));
        foreach (string dir in Layout.WorkFolders(kind, subject))
        {
            cancellationToken.ThrowIfCancellationRequested();
            Recovery done = RecoverWorkFolder(dir, kind, subject, apply: true, cancellationToken);
            if (done.Refused)
                throw new StoreException(StoreErrorIds.ManifestInvalid, VmCloneErrorKind.InvalidData,
                    $"The {kind} '{subject}' was not changed: {done.Description}. Nothing it names was touched; look at it, then delete the folder '{dir}' if it is not yours.", subject);
            any = true;
        }
        if (kind == "clone")
            _import?.DeleteLeftoverJournal(subject);
        return any;
    }

    /// <summary>True when the clone's folder holds only the journal of an import that was finished but for deleting it (see <see cref="ImportSteps.DeleteLeftoverJournal"/>).</summary>
    public bool IsImportLeftover(string clone) => _import?.IsLeftoverJournal(clone) == true;

    /// <summary>Deletes such a journal.</summary>
    public void DeleteImportLeftover(string clone) => _import?.DeleteLeftoverJournal(clone);

    /// <summary>Describes (and with <paramref name="apply"/> carries out) the recovery of one work folder.</summary>
    public Recovery RecoverWorkFolder(string dir, string kind, string subject, bool apply, CancellationToken cancellationToken)
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
        StorePlan? plan = StoreJournal.Read(dir);
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
        if (plan is { Operation: StoreOperation.RenameClone or StoreOperation.RenameBase })
            return _rename.Recover(dir, plan, kind, subject, apply);
        if (plan is { Operation: StoreOperation.ImportClone } && kind == "clone" && _import is not null)
            return _import.Recover(dir, plan, subject, apply, cancellationToken);
        string what = plan is null ? $"an operation on {kind} '{subject}'" : $"'{plan.Describe().Split('\n')[0].Trim()}'";
        bool forward = plan is { CloneManifest: not null } && plan.Phase is JournalPhase.Committing or JournalPhase.Reparenting
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
            Description = plan!.Phase == JournalPhase.Reparenting
                ? $"{what} was cut off while re-parenting its data volumes in place"
                : $"{what} was cut off while putting its new volumes in place",
            Action = "finished the operation (completed every step recorded in its plan, wrote the manifest)",
            Finished = true,
        };
        if (apply)
        {
            if (plan.Phase == JournalPhase.Reparenting)
            {
                _rollForward.Reparent(plan, null, cancellationToken);
                StoreJournal.Write(dir, plan, JournalPhase.Committing);
            }
            _rollForward.Commit(plan, dir);
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
    internal bool IsFinishedLeftover(string dir, string kind, string subject, StorePlan? plan)
    {
        string[] entries = Directory.GetFileSystemEntries(dir);
        if (entries.Length == 0)
            return true;
        if (entries.Length != 1 || !string.Equals(Path.GetFileName(entries[0]), PlanFile, StringComparison.Ordinal)
            || plan is not { Phase: JournalPhase.Committing, CloneManifest: not null } || kind != "clone")
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
}

/// <summary>What recovery did with one work folder, or would do.</summary>
internal sealed class Recovery
{
    public string Description { get; set; } = "";

    public string Action { get; set; } = "";

    public bool Finished { get; set; }

    /// <summary>Only a work folder with nothing to finish or undo is left (see <see cref="StoreRecovery.IsFinishedLeftover"/>); deleting it changes nothing.</summary>
    public bool Leftover { get; set; }

    /// <summary>The journal would act outside where it may (see <see cref="StoreBoundary.JournalProblem"/>): nothing is done, the folder is left for the administrator.</summary>
    public bool Refused { get; set; }
}
