using System;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

// An import under the journal. The clone's staging folder (.staging-NAME) holds plan.json before
// any file is touched; then:
//   1. each file to import comes in under its volume's name: renamed (moved), or copied sparse
//      to a temporary name, flushed, renamed, and (a move across file systems) the original
//      deleted once the copy is whole;
//   2. every other volume is made as a new clone's is (a child of the base volume, or empty);
//   3. each imported file's parent link is re-pointed at the base volume by the store's
//      relative path (metadata only), or, made over an equal copy, re-parented keeping its
//      content (what differs is copied into it first);
//   4. clone.json is written, the staging folder renamed to the clone's folder, and plan.json
//      (now in the clone's folder) deleted.
// Cut off while no file has come in yet: undone (the staging folder is deleted; every file to
// import is where it was). Cut off later: finished, never undone, since the user's disks are
// now in the staging folder; every step may be repeated.

/// <summary>Carries out an import, and finishes or undoes one that was cut off (see the comment above).</summary>
internal sealed class ImportSteps : StorePart
{
    private const string PartSuffix = ".importing";

    private readonly KeptChains _chains;

    public ImportSteps(StoreCatalogue catalogue, KeptChains chains) : base(catalogue) => _chains = chains;

    /// <summary>Imports as <paramref name="plan"/> says, under the clone's lock and the base's; a cut-off import of the clone is finished or undone first.</summary>
    public object? Execute(StorePlan plan, StoreRecovery recovery, StoreInspector inspector, IProgress<OperationProgress>? progress, CancellationToken cancellationToken, bool describeResult)
    {
        if (!string.Equals(Path.GetFullPath(plan.Store), Root, StringComparison.Ordinal))
            throw new ArgumentException($"The plan is for store '{plan.Store}', not '{Root}'.", nameof(plan));
        using (Catalogue.StoreLock(exclusive: false, cancellationToken))
        using (StoreLocks.Acquire(Root, new[] { new LockRequest("clone", plan.Subject, exclusive: true), new LockRequest("base", plan.ToBase!, exclusive: false) },
                   plan.Describe().Split('\n')[0].Trim(), cancellationToken))
        {
            bool recovered = recovery.RecoverSubject("clone", plan.Subject, cancellationToken);
            DeleteLeftoverJournal(plan.Subject);
            if (CloneExists(plan.Subject) || Directory.Exists(CloneFolder(plan.Subject)))
            {
                if (recovered && CloneExists(plan.Subject) && LoadClone(plan.Subject).Base is string on && string.Equals(on, plan.ToBase, StringComparison.OrdinalIgnoreCase))
                    return describeResult ? inspector.GetClone(plan.Subject) : null;
                throw new StoreException(StoreErrorIds.CloneExists, VmCloneErrorKind.AlreadyExists,
                    $"Clone '{plan.Subject}' was not imported: a clone of that name exists in store '{Root}'.", plan.Subject);
            }
            PlanVerification.Verify(Boundary, plan);
            foreach (PlannedVolume step in plan.Volumes.Where(v => v.Action == VolumeAction.Adopt))
            {
                if (FileNode.Of(step.AdoptedFrom!) != FileNodeKind.RegularFile)
                    throw new StoreException(StoreErrorIds.CloneChanged, VmCloneErrorKind.InUse,
                        $"Clone '{plan.Subject}' was not imported: '{step.AdoptedFrom}' (volume '{step.Volume}') is no longer a regular file there. Run the command again.", plan.Subject);
            }
            // A running machine holds its disks: they are neither moved nor copied half-written.
            PlanExecutor.RefuseInUse(plan.Volumes.Where(v => v.Action == VolumeAction.Adopt).Select(v => v.AdoptedFrom!), "clone", plan.Subject);
            cancellationToken.ThrowIfCancellationRequested();
            // What the copies (and a content-preserving re-parent) write, set aside up front.
            using IDisposable? room = plan.BytesToCopy <= 0 ? null : FreeSpace.Reserve(ClonesFolder, plan.BytesToCopy + FreeSpace.Margin,
                shortage => shortage.Into(new StoreException(StoreErrorIds.DiskFull, VmCloneErrorKind.InvalidOperation,
                    $"There is not enough free space in '{Root}' to import clone '{plan.Subject}': {shortage.Numbers}. Nothing was written; the files to import are where they were. Free some space and run the command again.", plan.Subject)));
            plan.CloneManifest!.Created = DateTimeOffset.UtcNow;
            string staging = NewStagingFolder(CloneFolder(plan.Subject));
            StoreJournal.Write(staging, plan, JournalPhase.Committing);
            FaultPoint.Hit("import journal written");
            try
            {
                Finish(plan, staging, progress, cancellationToken);
            }
            catch (Exception ex) when (!FaultPoint.IsCrash(ex) && !AnyCameIn(plan, staging))
            {
                TryDeleteFolder(staging);
                if (ex is IOException io && PlanExecutor.IsDiskFull(io))
                    throw new StoreException(StoreErrorIds.DiskFull, VmCloneErrorKind.InvalidOperation,
                        $"There is not enough free space in '{Root}' to import clone '{plan.Subject}'. Nothing was kept; the files to import are where they were. Free some space and run the command again.", plan.Subject, ex);
                throw;
            }
            return describeResult ? inspector.GetClone(plan.Subject) : null;
        }
    }

    /// <summary>What recovery does with a staging folder holding an import's journal: undo while no file came in, finish after.</summary>
    public Recovery Recover(string dir, StorePlan plan, string subject, bool apply, CancellationToken cancellationToken)
    {
        Relocate(plan, subject);
        string? untrusted = JournalProblem(plan, subject);
        if (untrusted is not null)
        {
            return new Recovery
            {
                Description = $"the journal '{Path.Combine(dir, PlanFile)}' cannot be trusted: {untrusted}",
                Action = "not finished: nothing it names was touched; look at it, then delete the folder if it is not yours",
                Refused = true,
            };
        }
        string what = $"importing clone '{subject}' on base '{plan.ToBase}'";
        if (!AnyCameIn(plan, dir))
        {
            if (apply)
                DeleteFolder(dir);
            return new Recovery
            {
                Description = $"{what} was cut off before any file to import was moved or copied in",
                Action = "undid the import (every file to import is where it was; nothing else had been changed)",
            };
        }
        PlannedVolume? lost = plan.Volumes.FirstOrDefault(v => v.Action == VolumeAction.Adopt
            && FileNode.Of(Staged(dir, v)) == FileNodeKind.Missing && FileNode.Of(v.AdoptedFrom!) != FileNodeKind.RegularFile);
        if (lost is not null)
        {
            return new Recovery
            {
                Description = $"{what} was cut off after its files came in, but '{lost.AdoptedFrom}' (volume '{lost.Volume}') is neither where it was nor in '{dir}'",
                Action = "not finished: the imported files are kept in the staging folder; put the missing file back and run the import again, or move them out by hand",
                Refused = true,
            };
        }
        if (apply)
            Finish(plan, dir, null, cancellationToken);
        return new Recovery
        {
            Description = $"{what} was cut off after its files were moved or copied into '{dir}'",
            Action = "finished the import (brought in the rest, re-pointed every imported volume at the base, wrote the manifest, put the clone in place)",
            Finished = true,
        };
    }

    /// <summary>
    /// A plan.json left in a clone's folder by an import cut off just after the folder was
    /// renamed (the clone was whole by then): deleted, as the import's last step would have.
    /// </summary>
    public void DeleteLeftoverJournal(string clone)
    {
        if (IsLeftoverJournal(clone))
            StoreJournal.Delete(CloneFolder(clone));
    }

    /// <summary>True when the clone's folder (a real folder, with its manifest) holds an import's journal for that clone.</summary>
    public bool IsLeftoverJournal(string clone)
    {
        string folder = CloneFolder(clone);
        return FileNode.Of(folder) == FileNodeKind.Directory && FileNode.Of(Path.Combine(folder, PlanFile)) == FileNodeKind.RegularFile
            && File.Exists(Path.Combine(folder, CloneFile))
            && StoreJournal.Read(folder) is { Operation: StoreOperation.ImportClone } journal && string.Equals(journal.Subject, clone, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Every step after the journal; each may be repeated.</summary>
    private void Finish(StorePlan plan, string staging, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        var adopted = plan.Volumes.Where(v => v.Action == VolumeAction.Adopt).ToList();
        foreach (PlannedVolume step in adopted)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new OperationProgress($"Importing clone {plan.Subject}", $"bringing in {step.Volume}", adopted.IndexOf(step), adopted.Count));
            BringIn(step, Staged(staging, step), cancellationToken);
        }
        foreach (PlannedVolume step in plan.Volumes.Where(v => v.Action is VolumeAction.CreateChild or VolumeAction.CreateEmpty))
        {
            // Metadata only: made again whole rather than trusted half-made.
            string staged = Staged(staging, step);
            if (File.Exists(staged))
                File.Delete(staged);
            if (step.Action == VolumeAction.CreateChild)
                _chains.CreateChild(staged, step.Source!, step.Format, step.Qcow2);
            else
                VirtualDisk.CreateDynamic(staged, step.VirtualSize, Qcow2Layout.CreateOptions(step.Format, step.Qcow2, step.LogicalSectorSize)).Dispose();
            FaultPoint.Hit("created " + step.Volume);
        }
        foreach (PlannedVolume step in adopted)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new OperationProgress($"Importing clone {plan.Subject}", $"re-pointing {step.Volume}", adopted.IndexOf(step), adopted.Count));
            Repoint(step, Staged(staging, step), progress, cancellationToken);
            FaultPoint.Hit("re-pointed " + step.Volume);
        }
        Manifest.Write(Path.Combine(staging, CloneFile), plan.CloneManifest!);
        FaultPoint.Hit("manifest written");
        string folder = CloneFolder(plan.Subject);
        Directory.Move(staging, folder);
        FaultPoint.Hit("moved into place");
        StoreJournal.Delete(folder);
        FaultPoint.Hit("plan deleted");
        progress?.Report(new OperationProgress($"Importing clone {plan.Subject}", "done", adopted.Count, adopted.Count));
    }

    /// <summary>Moves (or copies) the file to import to <paramref name="staged"/>; a file already there is whole (it only ever arrives by a rename).</summary>
    private static void BringIn(PlannedVolume step, string staged, CancellationToken cancellationToken)
    {
        string original = step.AdoptedFrom!;
        if (FileNode.Of(staged) == FileNodeKind.RegularFile)
        {
            // A move across file systems cut off between its copy and deleting the original: the
            // original goes only when it is still byte for byte what came in.
            if (!step.KeepOriginal && FileNode.Of(original) == FileNodeKind.RegularFile && SameBytes(original, staged))
            {
                File.Delete(original);
                FaultPoint.Hit("deleted original " + step.Volume);
            }
            return;
        }
        string part = staged + PartSuffix;
        if (File.Exists(part))
            File.Delete(part);
        if (!step.KeepOriginal && TryRename(original, staged))
        {
            FaultPoint.Hit("moved in " + step.Volume);
            return;
        }
        CopySparse(original, part, cancellationToken);
        File.Move(part, staged);
        FaultPoint.Hit("copied in " + step.Volume);
        if (!step.KeepOriginal)
        {
            File.Delete(original);
            FaultPoint.Hit("deleted original " + step.Volume);
        }
    }

    /// <summary>Points the imported file at its base volume: its link only, or (made over an equal copy) keeping its content.</summary>
    private void Repoint(PlannedVolume step, string staged, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        if (step.AdoptedParent is null)
        {
            // Its parent is the base volume by identity: only the link is rewritten.
            DiskOperations.SetParent(staged, step.Source!, preserveContent: false, ignoreIdMismatch: false, OpenOptions, null, cancellationToken);
            return;
        }
        if (LeadsTo(staged, step.Source!))
            return;
        if (FileNode.Of(step.AdoptedParent) != FileNodeKind.RegularFile)
            throw new StoreException(StoreErrorIds.ImportParentNotFound, VmCloneErrorKind.NotFound,
                $"Clone volume '{step.Volume}' cannot keep its content: its parent '{step.AdoptedParent}' is no longer a regular file there. Put it back, then run Test-VmStore -Repair or the import again.", step.AdoptedParent);
        // Moved, its own link may no longer reach its parent: it is linked to that same file
        // first (the identity it recorded is checked), then re-parented onto the base keeping
        // what it shows; cut off, both steps are repeated.
        var outside = new DiskOpenOptions();
        DiskOperations.SetParent(staged, step.AdoptedParent, preserveContent: false, ignoreIdMismatch: false, outside, null, cancellationToken);
        FaultPoint.Hit("linked to its own parent " + step.Volume);
        DiskOperations.SetParent(staged, step.Source!, preserveContent: true, ignoreIdMismatch: false, outside, progress, cancellationToken);
    }

    /// <summary>True when <paramref name="file"/>'s chain opens inside the store and its parent is <paramref name="parent"/>.</summary>
    private bool LeadsTo(string file, string parent)
    {
        try
        {
            using VirtualDisk disk = VirtualDisk.Open(file, FileAccess.Read, OpenOptions);
            return disk.Layers.Count > 1 && string.Equals(Path.GetFullPath(disk.Layers[1].Path), Path.GetFullPath(parent), StringComparison.Ordinal);
        }
        catch (VirtualDiskException)
        {
            return false;
        }
    }

    /// <summary>True when some file to import has come into the staging folder, or the folder was already renamed into place: from then on the import is finished, never undone.</summary>
    private static bool AnyCameIn(StorePlan plan, string staging) =>
        plan.Volumes.Any(v => v.Action == VolumeAction.Adopt && FileNode.Of(Staged(staging, v)) == FileNodeKind.RegularFile);

    private static string Staged(string staging, PlannedVolume step) => Path.Combine(staging, Path.GetFileName(step.Path));

    /// <summary>Why an import journal must not be acted on, or null: it writes only its clone's volume files over this store's base volumes, and takes in only files from outside the store.</summary>
    private string? JournalProblem(StorePlan plan, string subject)
    {
        if (plan.SubjectKind != "clone" || !string.Equals(plan.Subject, subject, StringComparison.OrdinalIgnoreCase))
            return $"it is a plan for {plan.SubjectKind} '{plan.Subject}', not for clone '{subject}'";
        if (plan.CloneManifest is null || StoreBoundary.CloneManifestProblem(plan.CloneManifest, subject) is string manifestProblem)
            return "the manifest it would write cannot be trusted" + (plan.CloneManifest is null ? "" : ": " + StoreBoundary.CloneManifestProblem(plan.CloneManifest, subject));
        if (StoreNames.Problem(plan.ToBase) is not null)
            return $"it names a base '{plan.ToBase}' that is not a valid base name";
        string baseFolder = BaseFolder(plan.ToBase!);
        foreach (PlannedVolume step in plan.Volumes)
        {
            if (step is null)
                return "a step is empty";
            string file = Path.GetFileName(step.Path);
            if (StoreBoundary.VolumeFileNameProblem(file) is not null
                || !plan.CloneManifest.Volumes.Any(v => string.Equals(v.Name, step.Volume, StringComparison.OrdinalIgnoreCase) && string.Equals(v.File, file, StringComparison.Ordinal)))
                return $"volume '{step.Volume}' would write '{step.Path}', which is not that volume's file in the clone's folder";
            if (step.Action is VolumeAction.CreateEmpty)
                continue;
            if (step.Action is not (VolumeAction.Adopt or VolumeAction.CreateChild))
                return $"{step.Action} is not a step of an import";
            if (step.Source is null || !string.Equals(Path.GetDirectoryName(Path.GetFullPath(step.Source)), baseFolder, StringComparison.Ordinal)
                || StoreBoundary.VolumeFileNameProblem(Path.GetFileName(step.Source)) is not null || Boundary.CheckPath(step.Source) != BoundaryProblem.None)
                return $"volume '{step.Volume}': its parent '{step.Source}' is not a volume of base '{plan.ToBase}' of this store";
            if (step.Action == VolumeAction.Adopt && (step.AdoptedFrom is null || !Path.IsPathRooted(step.AdoptedFrom)
                || IsUnder(Path.GetFullPath(step.AdoptedFrom), Root) || (step.AdoptedParent is string p && !Path.IsPathRooted(p))))
                return $"volume '{step.Volume}' would take in '{step.AdoptedFrom}', which is not a file outside the store";
        }
        return null;
    }

    /// <summary>Maps the store's own paths of a recorded plan into this store (it may have been moved since); the files taken in stay where the caller named them.</summary>
    private void Relocate(StorePlan plan, string subject)
    {
        string prefix = plan.Store.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        string Map(string p) => p.StartsWith(prefix, StringComparison.Ordinal) ? Path.Combine(Root, p.Substring(prefix.Length)) : p;
        plan.Store = Root;
        plan.Folder = CloneFolder(subject);
        foreach (PlannedVolume v in plan.Volumes.Where(v => v is not null))
        {
            v.Path = Path.Combine(plan.Folder, Path.GetFileName(v.Path));
            if (v.Source is not null)
                v.Source = Map(v.Source);
        }
    }

    /// <summary>For tests: when true every move is taken for one across file systems (copied, then the original deleted); for the setting flow only, as <see cref="FaultPoint.Hook"/> is.</summary>
    internal static bool MovesCrossFileSystems
    {
        get => CrossFileSystems.Value;
        set => CrossFileSystems.Value = value;
    }

    private static readonly AsyncLocal<bool> CrossFileSystems = new();

    /// <summary>Renames <paramref name="from"/> to <paramref name="to"/> when both lie on one file system; false (nothing done) when they do not.</summary>
    private static bool TryRename(string from, string to)
    {
        if (MovesCrossFileSystems)
            return false;
        if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
        {
            if (!string.Equals(Path.GetPathRoot(Path.GetFullPath(from)), Path.GetPathRoot(Path.GetFullPath(to)), StringComparison.OrdinalIgnoreCase))
                return false;
            File.Move(from, to);
            return true;
        }
        // File.Move copies silently across file systems: a half copy must never bear the final name.
        if (rename(from, to) == 0)
            return true;
        int errno = Marshal.GetLastWin32Error();
        if (errno == Exdev)
            return false;
        throw new IOException($"'{from}' could not be moved to '{to}' (errno {errno}).", errno);
    }

    private const int Exdev = 18;

    [DllImport("libc", SetLastError = true)]
    private static extern int rename(string oldpath, string newpath);

    /// <summary>Copies a file, its holes left holes, and flushes it to the device.</summary>
    private static void CopySparse(string from, string to, CancellationToken cancellationToken)
    {
        using FileAccessor source = FileAccessor.Open(from, FileAccess.Read, refuseLink: true);
        using FileAccessor target = FileAccessor.CreateNew(to);
        long length = source.Length;
        byte[] buffer = new byte[1 << 20];
        for (long position = 0; position < length;)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long data = source.NextData(position) ?? position;
            if (data >= length)
                break;
            long hole = source.NextHole(data) ?? length;
            for (long p = data; p < hole;)
            {
                int n = (int)Math.Min(buffer.Length, hole - p);
                source.ReadOrZero(p, buffer, 0, n);
                // Runs of zeros inside data are left holes too.
                if (!ZeroBytes.All(buffer.AsSpan(0, n)))
                    target.Write(p, buffer, 0, n);
                p += n;
            }
            position = hole;
        }
        target.SetLength(length);
        target.Flush();
    }

    private static bool SameBytes(string a, string b)
    {
        using FileStream x = new(a, FileMode.Open, FileAccess.Read, FileShare.Read);
        using FileStream y = new(b, FileMode.Open, FileAccess.Read, FileShare.Read);
        if (x.Length != y.Length)
            return false;
        byte[] bx = new byte[1 << 20], by = new byte[1 << 20];
        while (true)
        {
            int n = Fill(x, bx);
            int m = Fill(y, by);
            if (n != m)
                return false;
            if (n == 0)
                return true;
            if (!bx.AsSpan(0, n).SequenceEqual(by.AsSpan(0, n)))
                return false;
        }
    }

    private static int Fill(Stream s, byte[] buffer)
    {
        int done = 0;
        while (done < buffer.Length && s.Read(buffer, done, buffer.Length - done) is int n && n > 0)
            done += n;
        return done;
    }
}
