using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// Test-VmStore: every manifest, chain and link, and what -Repair can fix without risking data
/// (cut-off operations through <see cref="StoreRecovery"/>).
/// </summary>
internal sealed class StoreChecker : StorePart
{
    private readonly StoreRecovery _recovery;

    public StoreChecker(StoreCatalogue catalogue, StoreRecovery recovery) : base(catalogue) => _recovery = recovery;

    /// <summary>
    /// Checks the whole store. With <paramref name="repair"/>, fixes what is safe to fix and says
    /// what it did: re-marks base files read-only, finishes or undoes cut-off operations, rewrites
    /// a clone manifest from what its disks say, recreates a lost store.json. Modified bases,
    /// missing files and damaged disks are reported, never "repaired".
    /// </summary>
    public VmStoreReport Check(bool repair, CancellationToken cancellationToken = default)
    {
        var problems = new List<VmStoreProblem>();
        var report = new VmStoreReport { Store = Root };
        if (!Directory.Exists(Root))
        {
            report.IsHealthy = true;
            return report;
        }
        IDisposable? held = repair ? Catalogue.StoreLock(exclusive: true, cancellationToken) : null;
        try
        {
            CheckStoreManifest(problems, repair);
            CheckWorkFolders(problems, repair);
            var bases = CheckBases(problems, repair, cancellationToken);
            var clones = CheckClones(problems, repair, bases, cancellationToken);
            CheckOrphans(problems);
            report.BaseCount = bases.Count;
            report.CloneCount = clones;
        }
        finally
        {
            held?.Dispose();
        }
        report.Problems = problems;
        report.IsHealthy = problems.All(p => p.Repaired);
        return report;
    }

    private static VmStoreProblem Add(List<VmStoreProblem> problems, StoreProblemKind kind, string subject, string path, string description, string? cannotRepair = null)
    {
        var p = new VmStoreProblem { Kind = kind, Subject = subject, Path = path, Description = description, Repair = cannotRepair };
        problems.Add(p);
        return p;
    }

    private static void Repaired(VmStoreProblem p, string what)
    {
        p.Repaired = true;
        p.Repair = what;
    }

    private void CheckStoreManifest(List<VmStoreProblem> problems, bool repair)
    {
        string path = Path.Combine(Root, StoreFile);
        try
        {
            Manifest.Read<StoreManifest>(path);
        }
        catch (StoreException ex)
        {
            VmStoreProblem p = Add(problems, StoreProblemKind.ManifestInvalid, "store", path, ex.Message,
                ex.ErrorId == StoreErrorIds.StoreFormatUnsupported ? "not repaired: the store was written by a newer VmClone" : null);
            if (repair && ex.ErrorId != StoreErrorIds.StoreFormatUnsupported)
            {
                Manifest.Write(path, new StoreManifest { Created = DateTimeOffset.UtcNow });
                Repaired(p, $"wrote a new {StoreFile}");
            }
        }
    }

    /// <summary>Staging and removal folders: operations that were cut off.</summary>
    private void CheckWorkFolders(List<VmStoreProblem> problems, bool repair)
    {
        foreach (string top in new[] { BasesFolder, ClonesFolder })
        {
            if (!Directory.Exists(top))
                continue;
            foreach (string dir in Directory.EnumerateDirectories(top, ".*"))
            {
                string name = Path.GetFileName(dir);
                string? subject = StoreLayout.SubjectOfWorkFolder(name);
                if (subject is null)
                    continue;
                string kind = top == BasesFolder ? "base" : "clone";
                // An operation still running in another process or runspace holds the subject's
                // lock: its work folder is not a problem. (A repair holds the store exclusive, so
                // nothing can be running then.)
                if (!repair && !StoreLocks.IsFree(Root, kind, subject))
                    continue;
                Recovery r = _recovery.RecoverWorkFolder(dir, kind, subject, apply: false, CancellationToken.None);
                if (r.Refused)
                {
                    Add(problems, StoreProblemKind.ManifestInvalid, $"{kind} {subject}", Path.Combine(dir, PlanFile), r.Description, r.Action);
                    continue;
                }
                if (r.Leftover)
                {
                    // Not a problem: the operation finished; only its folder was left.
                    if (repair)
                        _recovery.RecoverWorkFolder(dir, kind, subject, apply: true, CancellationToken.None);
                    continue;
                }
                VmStoreProblem p = Add(problems, StoreProblemKind.InterruptedOperation, $"{kind} {subject}", dir, r.Description);
                if (!repair)
                    continue;
                _recovery.RecoverWorkFolder(dir, kind, subject, apply: true, CancellationToken.None);
                Repaired(p, r.Action);
            }
        }
    }

    /// <summary>
    /// Every base or clone folder under <paramref name="top"/> with its manifest; a folder whose
    /// manifest is missing or unreadable is reported (with <paramref name="notRepaired"/>) and skipped.
    /// </summary>
    private IEnumerable<(string Dir, string Name, string Subject, string ManifestPath, T Manifest)> ReadManifests<T>(
        string top, string manifestFile, string kind, string notRepaired, List<VmStoreProblem> problems, CancellationToken cancellationToken,
        bool repair = false, Dictionary<string, BaseManifest>? bases = null)
        where T : class
    {
        if (!Directory.Exists(top))
            yield break;
        foreach (string dir in Directory.EnumerateDirectories(top))
        {
            cancellationToken.ThrowIfCancellationRequested();
            string name = Path.GetFileName(dir);
            if (name.StartsWith(".", StringComparison.Ordinal))
                continue;
            string subject = $"{kind} {name}";
            string manifestPath = Path.Combine(dir, manifestFile);
            BoundaryProblem folderProblem = Boundary.CheckFolder(dir);
            if (folderProblem != BoundaryProblem.None)
            {
                Add(problems, StoreProblemKind.ManifestInvalid, subject, dir, $"the folder '{dir}' is a symbolic link (or not a folder): nothing in it is read or opened",
                    $"not repaired: remove the link (Remove-VmClone or Remove-VmBase deletes the link, never what it leads to)");
                continue;
            }
            T? read = null;
            if (bases is not null && File.Exists(manifestPath))
            {
                // A clone: one whose manifest cannot be read is rebuilt from its volumes, not dropped.
                CloneRecord record = CloneRecord.Read(dir, name);
                if (record.Manifest is null)
                {
                    if (MendUnreadable(record, problems, repair, bases) is CloneManifest rebuilt)
                        yield return (dir, name, subject, manifestPath, (T)(object)rebuilt);
                    continue;
                }
                if (CloneRename.IsRenamed(record.Manifest, name))
                {
                    MendRenamed(record.Folder, record.Manifest, problems, repair);
                    yield return (dir, name, subject, manifestPath, (T)(object)record.Manifest);
                    continue;
                }
                read = (T)(object)record.Manifest;
            }
            T manifest;
            try
            {
                manifest = read ?? Manifest.Read<T>(manifestPath);
            }
            catch (StoreException ex)
            {
                bool exists = File.Exists(manifestPath);
                Add(problems, exists ? StoreProblemKind.ManifestInvalid : StoreProblemKind.OrphanedFile, subject, exists ? manifestPath : dir,
                    exists ? ex.Message : $"the folder '{dir}' has no {manifestFile}: it is not a {kind}", notRepaired);
                continue;
            }
            string? untrusted = manifest switch
            {
                CloneManifest c => StoreBoundary.CloneManifestProblem(c, name),
                BaseManifest b => StoreBoundary.BaseManifestProblem(b, name),
                _ => null,
            };
            if (untrusted is not null)
            {
                // Nothing an untrusted manifest names is opened, and no repair acts on it.
                Add(problems, StoreProblemKind.ManifestInvalid, subject, manifestPath, $"the manifest cannot be trusted: {untrusted}",
                    "not repaired: restore the manifest from a backup, or remove the " + kind);
                continue;
            }
            yield return (dir, name, subject, manifestPath, manifest);
        }
    }

    private Dictionary<string, BaseManifest> CheckBases(List<VmStoreProblem> problems, bool repair, CancellationToken cancellationToken)
    {
        var bases = new Dictionary<string, BaseManifest>(StringComparer.OrdinalIgnoreCase);
        foreach ((string dir, string name, string subject, string manifestPath, BaseManifest manifest) in ReadManifests<BaseManifest>(
            BasesFolder, BaseFile, "base", "not repaired: restore the manifest from a backup, or remove the folder if nothing depends on it", problems, cancellationToken))
        {
            bases[name] = manifest;
            var known = new HashSet<string>(StringComparer.Ordinal) { BaseFile };
            foreach (BaseVolumeManifest v in manifest.Volumes)
            {
                string path = Path.Combine(dir, v.File);
                known.Add(v.File);
                if (!File.Exists(path) && FileNode.Of(path) == FileNodeKind.Missing)
                {
                    Add(problems, StoreProblemKind.VolumeMissing, subject, path, $"volume '{v.Name}' ({path}) is missing", "not repaired: restore the file from a backup");
                    continue;
                }
                if (NotContained(problems, subject, dir, v.Name, v.File))
                    continue;
                try
                {
                    using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
                    if (!StoreBoundary.IsSingleFile(layer))
                    {
                        ReportNotContained(problems, subject, path, v.Name, BoundaryProblem.NotSingleFile);
                        continue;
                    }
                    if (!string.Equals(layer.Identity, v.Identity, StringComparison.OrdinalIgnoreCase))
                        Add(problems, StoreProblemKind.BaseModified, subject, path,
                            $"volume '{v.Name}' was modified after the base was made (identity {layer.Identity}, recorded {v.Identity}); clones that depend on it may show corrupted content",
                            "not repaired: " + BaseModifiedAdvice.For(manifest.Name, v.Format));
                    foreach (string issue in layer.Check())
                        Add(problems, StoreProblemKind.ChainBroken, subject, path, $"volume '{v.Name}': {issue}", "not repaired: the file is damaged");
                }
                catch (VirtualDiskException ex)
                {
                    Add(problems, StoreProblemKind.ChainBroken, subject, path, $"volume '{v.Name}': {ex.Message}", "not repaired: the file is damaged");
                    continue;
                }
                if (!ReadOnlyFile.IsMarked(path))
                {
                    VmStoreProblem p = Add(problems, StoreProblemKind.BaseNotReadOnly, subject, path, $"volume '{v.Name}' is not marked read-only");
                    if (repair)
                    {
                        ReadOnlyFile.Mark(path, readOnly: true);
                        Repaired(p, "marked it read-only");
                    }
                }
            }
            ReportUnknownFiles(problems, subject, dir, known, repair);
        }
        return bases;
    }

    private int CheckClones(List<VmStoreProblem> problems, bool repair, Dictionary<string, BaseManifest> bases, CancellationToken cancellationToken)
    {
        int count = 0;
        // Base volumes CheckBases found modified (their identity is not the one recorded): a
        // clone over one is BaseModified even when its child still accepts the parent.
        var modifiedBaseFiles = new HashSet<string>(problems.Where(p => p.Kind == StoreProblemKind.BaseModified).Select(p => p.Path), StringComparer.Ordinal);
        foreach ((string dir, string name, string subject, string manifestPath, CloneManifest manifest) in ReadManifests<CloneManifest>(
            ClonesFolder, CloneFile, "clone", "not repaired: remove the folder (Remove-VmClone works on it) if it is not needed", problems, cancellationToken, repair, bases))
        {
            count++;
            if (!bases.ContainsKey(manifest.Base))
                Add(problems, StoreProblemKind.BaseMissing, subject, manifestPath, $"its base '{manifest.Base}' does not exist", "not repaired");
            var known = new HashSet<string>(StringComparer.Ordinal) { CloneFile };
            bool changed = false;
            var parentBases = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (CloneVolumeManifest v in manifest.Volumes)
            {
                bool modifiedReported = false;
                string path = Path.Combine(dir, v.File);
                known.Add(v.File);
                if (FileNode.Of(path) == FileNodeKind.Missing)
                {
                    Add(problems, StoreProblemKind.VolumeMissing, subject, path, $"volume '{v.Name}' ({path}) is missing",
                        v.Type == VolumeType.Data ? "not repaired: the data volume's content is lost unless you have a backup"
                            : "not repaired: Restore-VmClone recreates system and temporary volumes");
                    continue;
                }
                if (NotContained(problems, subject, dir, v.Name, v.File))
                    continue;
                VmCheckedLink link = CheckLink(path);
                if (link.NotSingleFile)
                {
                    ReportNotContained(problems, subject, path, v.Name, BoundaryProblem.NotSingleFile);
                    continue;
                }
                if (link.Problem is not null)
                {
                    bool modified = link.ChainProblem == ChainProblem.ParentModified;
                    Add(problems, modified ? StoreProblemKind.BaseModified : StoreProblemKind.ChainBroken, subject, path, $"volume '{v.Name}': {link.Problem}",
                        modified ? "not repaired: the base it depends on was modified. " + BaseModifiedAdvice.For(manifest.Base, v.Format) : "not repaired");
                    modifiedReported |= modified;
                }
                foreach (string issue in link.FileIssues)
                    Add(problems, StoreProblemKind.ChainBroken, subject, path, $"volume '{v.Name}': {issue}", "not repaired: the file is damaged");
                if (!modifiedReported && link.ParentPath is not null && modifiedBaseFiles.Contains(Path.GetFullPath(link.ParentPath)))
                    Add(problems, StoreProblemKind.BaseModified, subject, path,
                        $"volume '{v.Name}' depends on '{link.ParentPath}', which was modified after its base was made (its identity is not the one the base recorded)",
                        "not repaired: the base it depends on was modified. " + BaseModifiedAdvice.For(manifest.Base, v.Format));
                if (link.ParentPath is not null && IsUnder(link.ParentPath, BasesFolder))
                    parentBases.Add(Path.GetFileName(Path.GetDirectoryName(link.ParentPath)!));
                string? actual = link.ParentPath is null ? null : ToStoreRelative(link.ParentPath);
                if (link.Problem is null && !string.Equals(actual, v.Parent, StringComparison.Ordinal))
                {
                    VmStoreProblem p = Add(problems, StoreProblemKind.ManifestMismatch, subject, path,
                        $"volume '{v.Name}': the manifest says its parent is {(v.Parent is null ? "none" : $"'{v.Parent}'")}, the disk says {(actual is null ? "none" : $"'{actual}'")}");
                    if (repair)
                    {
                        v.Parent = actual;
                        changed = true;
                        Repaired(p, "wrote what the disk says into the manifest");
                    }
                }
            }
            if (parentBases.Count == 1 && !parentBases.Contains(manifest.Base) && bases.ContainsKey(parentBases.First()))
            {
                string actualBase = parentBases.First();
                VmStoreProblem p = Add(problems, StoreProblemKind.ManifestMismatch, subject, manifestPath,
                    $"the manifest names base '{manifest.Base}' but its volumes depend on base '{actualBase}'");
                if (repair)
                {
                    manifest.Base = actualBase;
                    changed = true;
                    Repaired(p, $"set the manifest's base to '{actualBase}'");
                }
            }
            if (changed)
                Manifest.Write(manifestPath, manifest);
            ReportUnknownFiles(problems, subject, dir, known, repair);
        }
        return count;
    }

    /// <summary>
    /// Reports a clone whose manifest cannot be read; with <paramref name="repair"/>, rebuilds it
    /// from the volumes' parent links (see <see cref="ManifestRebuild"/>) under the clone's lock
    /// and returns it. A manifest that cannot be rebuilt unambiguously, or one a newer VmClone
    /// wrote, is left as it is, with the reason; nothing in the folder is deleted either way.
    /// </summary>
    private CloneManifest? MendUnreadable(CloneRecord record, List<VmStoreProblem> problems, bool repair, Dictionary<string, BaseManifest> bases)
    {
        string subject = $"clone {record.Name}";
        ManifestRebuild rebuild = ManifestRebuild.Of(Layout, record.Folder, n => bases.TryGetValue(n, out BaseManifest? b) ? b : null);
        string? refusal = record.TooNew ? "it was written by a newer VmClone, whose record a rebuild would lose; use that version" : rebuild.Refusal;
        VmStoreProblem p = Add(problems, StoreProblemKind.ManifestInvalid, subject, record.ManifestPath, record.Unreadable!,
            refusal is null ? null : $"not repaired: the manifest cannot be rebuilt from the volumes: {refusal}; nothing was deleted. Restore '{record.ManifestPath}' from a backup");
        if (!repair || refusal is not null)
            return null;
        CloneManifest rebuilt = rebuild.Manifest!;
        using (StoreLocks.Acquire(Root, new[] { new LockRequest("clone", record.Name, exclusive: true) }, $"Test-VmStore -Repair: rebuild the manifest of clone '{record.Name}'", CancellationToken.None))
            Manifest.Write(record.ManifestPath, rebuilt);
        Repaired(p, $"rebuilt the manifest from the volumes' parent links (base '{rebuilt.Base}'; volumes {string.Join(", ", rebuilt.Volumes.Select(v => $"'{v.Name}' ({v.Type}, {v.File})"))}); every file was kept");
        return rebuilt;
    }

    /// <summary>Reports a clone whose folder was renamed; with <paramref name="repair"/>, makes the folder's name the clone's when no other clone has it.</summary>
    private void MendRenamed(string folder, CloneManifest manifest, List<VmStoreProblem> problems, bool repair)
    {
        string name = Path.GetFileName(folder);
        string oldName = manifest.Name;
        string? clash = CloneRename.AdoptProblem(Layout, folder);
        VmStoreProblem p = Add(problems, StoreProblemKind.CloneRenamed, $"clone {name}", Path.Combine(folder, CloneFile),
            $"{CloneRename.Describe(folder, manifest)}; no command acts on it until it has one name",
            clash is null ? null : $"not repaired: {clash}");
        if (!repair || clash is not null)
            return;
        CloneRename.Adopt(Layout, folder, manifest);
        Repaired(p, $"made the folder's name '{name}' the clone's name in its manifest (it was '{oldName}'); its volumes and their parent links are unchanged");
    }

    /// <summary>Reports a volume file that is a link, a FIFO or a VMDK descriptor naming other files (it is not opened further); true when it was one.</summary>
    private bool NotContained(List<VmStoreProblem> problems, string subject, string dir, string volume, string file)
    {
        string path = Path.Combine(dir, file);
        BoundaryProblem problem = Boundary.CheckFile(dir, file);
        if (problem == BoundaryProblem.None)
            return false;
        ReportNotContained(problems, subject, path, volume, problem);
        return true;
    }

    private static void ReportNotContained(List<VmStoreProblem> problems, string subject, string path, string volume, BoundaryProblem problem) =>
        Add(problems, StoreProblemKind.VolumeNotContained, subject, path, $"volume '{volume}': {StoreBoundary.Describe(problem, path)}",
            "not repaired: replace the file by the volume it should be (from a backup), or remove it");

    private sealed class VmCheckedLink
    {
        public string? ParentPath;
        public string? Problem;
        /// <summary>The chain's problem as a type, beside <see cref="Problem"/>'s words.</summary>
        public ChainProblem? ChainProblem;
        public bool NotSingleFile;
        public List<string> FileIssues = new();
    }

    private VmCheckedLink CheckLink(string path)
    {
        var result = new VmCheckedLink();
        DiskOpenOptions options = OpenOptions;
        using ChainWalk walk = ChainWalk.Start(path, new DiskOpenOptions { AllowedParentRoot = Root, IgnoreParentIdentityMismatch = true }, reportMismatches: true);
        if (walk.Layers.Count == 0)
        {
            result.Problem = walk.Problem?.Message ?? "cannot be opened";
            result.ChainProblem = (walk.Problem as DiskChainException)?.Problem;
            return result;
        }
        if (!StoreBoundary.IsSingleFile(walk.Layers[0]))
        {
            result.NotSingleFile = true;
            return result;
        }
        if (walk.Layers.Count > 1)
            result.ParentPath = walk.Layers[1].Path;
        else if (walk.Problem is DiskChainException chain)
            result.ParentPath = chain.ParentPath;
        VirtualDiskException? problem = walk.Mismatches.Count > 0 ? walk.Mismatches[0] : walk.Problem;
        result.Problem = problem?.Message;
        result.ChainProblem = (problem as DiskChainException)?.Problem;
        try
        {
            result.FileIssues.AddRange(walk.Layers[0].Check());
        }
        catch (VirtualDiskException ex)
        {
            result.FileIssues.Add(ex.Message);
        }
        return result;
    }

    private void ReportUnknownFiles(List<VmStoreProblem> problems, string subject, string dir, HashSet<string> known, bool repair)
    {
        foreach (string file in Directory.EnumerateFileSystemEntries(dir))
        {
            string name = Path.GetFileName(file);
            if (known.Contains(name))
                continue;
            if (AtomicFile.IsTemporary(file))
            {
                // A manifest write cut off before its rename: the manifest itself is whole (old or new).
                string[] parts = subject.Split(' ');
                if (!repair && !StoreLocks.IsFree(Root, parts[0], parts[1]))
                    continue;
                VmStoreProblem t = Add(problems, StoreProblemKind.InterruptedOperation, subject, file,
                    $"a manifest write was cut off before it was complete; its temporary file '{file}' is left (the manifest itself is whole)");
                if (repair)
                {
                    File.Delete(file);
                    Repaired(t, "deleted the temporary file");
                }
                continue;
            }
            if (name.StartsWith(DiskOperations.OptimizeStagingPrefix, StringComparison.Ordinal)
                && known.Contains(name.Substring(DiskOperations.OptimizeStagingPrefix.Length)) && FileNode.Of(file) == FileNodeKind.Directory)
            {
                // An optimize cut off before its rename: the volume itself is the old file, whole.
                string[] parts = subject.Split(' ');
                if (!repair && !StoreLocks.IsFree(Root, parts[0], parts[1]))
                    continue;
                VmStoreProblem o = Add(problems, StoreProblemKind.InterruptedOperation, subject, file,
                    $"an optimize was cut off before it was complete; its staging folder '{file}' is left (the volume itself is whole)");
                if (repair)
                {
                    DeleteFolder(file);
                    Repaired(o, "deleted the staging folder");
                }
                continue;
            }
            // An import's journal, left in the clone's folder when the import was cut off just after
            // the folder took its name: the clone is whole, and only the clean-up was left.
            if (name == PlanFile && subject.StartsWith("clone ", StringComparison.Ordinal) && _recovery.IsImportLeftover(subject.Substring(6)))
            {
                if (repair)
                    _recovery.DeleteImportLeftover(subject.Substring(6));
                continue;
            }
            Add(problems, StoreProblemKind.OrphanedFile, subject, file, $"'{file}' is not part of the {subject.Split(' ')[0]}",
                "not repaired: delete it if you do not need it");
        }
    }

    private void CheckOrphans(List<VmStoreProblem> problems)
    {
        foreach (string entry in Directory.EnumerateFileSystemEntries(Root))
        {
            string name = Path.GetFileName(entry);
            if (name is StoreFile or LockFile or StoreLocks.FolderName or "bases" or "clones")
                continue;
            Add(problems, StoreProblemKind.OrphanedFile, "store", entry, $"'{entry}' is not part of the store", "not repaired: delete it if you do not need it");
        }
    }
}
