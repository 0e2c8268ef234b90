using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace VmClone.Core.Store;

/// <summary>
/// Plans renaming a clone (its folder and manifest) or a base (its folder and manifest, and for
/// every clone on it the manifest and each volume's parent link, metadata only). Refused when the
/// new name is invalid or taken, or (for a base) when a file the store's manifests do not account
/// for depends on it.
/// </summary>
internal sealed class RenamePlanner : Planner
{
    private readonly RemovalPlanner _removal;

    public RenamePlanner(StoreCatalogue catalogue, StorePreconditions preconditions, RemovalPlanner removal) : base(catalogue, preconditions) => _removal = removal;

    /// <summary>Plans renaming clone <paramref name="name"/> to <paramref name="newName"/>.</summary>
    public StorePlan PlanRenameClone(string name, string newName)
    {
        StoreNames.Validate(name, "clone");
        StoreNames.Validate(newName, "clone");
        if (PendingRename(CloneFolder(name), StoreOperation.RenameClone, newName) is StorePlan pending)
            return pending;
        string digest = Catalogue.CloneDigest(name);
        CloneManifest clone = LoadClone(name);
        RefuseTaken(newName, "clone", clone.Name);
        string folder = CloneFolder(clone.Name);
        string newFolder = CloneFolder(newName);
        var plan = NewPlan(StoreOperation.RenameClone, clone.Name, "clone", folder);
        plan.NewName = newName;
        plan.FromBase = clone.Base;
        plan.ManifestDigest = digest;
        foreach (CloneVolumeManifest v in clone.Volumes)
            plan.Volumes.Add(Moved(v.Name, v.Type, v.Format, folder, newFolder, v.File));
        return plan;
    }

    /// <summary>Plans renaming base <paramref name="name"/> to <paramref name="newName"/>, re-pointing every clone on it.</summary>
    public StorePlan PlanRenameBase(string name, string newName)
    {
        StoreNames.Validate(name, "base");
        StoreNames.Validate(newName, "base");
        if (PendingRename(BaseFolder(name), StoreOperation.RenameBase, newName) is StorePlan pending)
            return pending;
        BaseManifest b = LoadBase(name);
        RefuseTaken(newName, "base", b.Name);
        string folder = BaseFolder(b.Name);
        string newFolder = BaseFolder(newName);
        var plan = NewPlan(StoreOperation.RenameBase, b.Name, "base", folder);
        plan.NewName = newName;
        foreach (BaseVolumeManifest v in b.Volumes)
            plan.Volumes.Add(Moved(v.Name, v.Type, v.Format, folder, newFolder, v.File));
        var children = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (KeyValuePair<string, CloneManifest> c in ReadableClones().OrderBy(c => c.Key, StringComparer.OrdinalIgnoreCase))
        {
            if (!string.Equals(c.Value.Base, b.Name, StringComparison.OrdinalIgnoreCase))
                continue;
            CloneManifest clone = LoadClone(c.Key);
            children.Add(clone.Name);
            plan.Children.Add(new RenamedClone { Clone = clone.Name, ManifestDigest = Catalogue.CloneDigest(clone.Name) });
            foreach (CloneVolumeManifest v in clone.Volumes)
            {
                if (v.Parent is null)
                    continue;
                string parent = Layout.FromStoreRelative(v.Parent);
                if (!string.Equals(Path.GetDirectoryName(parent), folder, StringComparison.Ordinal))
                    continue;
                plan.Volumes.Add(new PlannedVolume
                {
                    Clone = clone.Name,
                    Volume = v.Name,
                    Type = v.Type,
                    Format = v.Format,
                    Action = VolumeAction.Repoint,
                    Path = Path.Combine(CloneFolder(clone.Name), v.File),
                    Source = Path.Combine(newFolder, Path.GetFileName(parent)),
                });
            }
        }
        // A file whose chain leads into the base but that no clone manifest accounts for would be
        // left with a broken link: the rename is refused, naming it.
        List<string> strays = _removal.FindDependents(b.Name).Where(d => !children.Any(c => d == $"clone '{c}'")).ToList();
        if (strays.Count > 0)
            throw new StoreException(StoreErrorIds.BaseInUse, VmCloneErrorKind.InUse,
                $"Base '{b.Name}' was not renamed: {string.Join("; ", strays)} depend(s) on it without a clone manifest that names it, so its link could not be re-pointed. " +
                "Run Test-VmStore -Repair (it rebuilds unreadable clone manifests), or remove those files, then rename again.", b.Name);
        return plan;
    }

    /// <summary>
    /// A rename of <paramref name="folder"/>'s subject to <paramref name="newName"/> that was cut
    /// off after its folder was renamed: its journal, which the executor's recovery finishes.
    /// </summary>
    private StorePlan? PendingRename(string folder, StoreOperation operation, string newName)
    {
        if (Directory.Exists(folder))
            return null;
        string staging = WorkFolder(folder, StagingPrefix);
        if (!Directory.Exists(staging))
            return null;
        StorePlan? journal = StoreJournal.Read(staging);
        if (journal is null || journal.Operation != operation || !string.Equals(journal.NewName, newName, StringComparison.OrdinalIgnoreCase)
            || !string.Equals(journal.Subject, Path.GetFileName(folder), StringComparison.OrdinalIgnoreCase))
            return null;
        journal.Store = Root;
        journal.Folder = folder;
        return journal;
    }

    private void RefuseTaken(string newName, string kind, string name)
    {
        string folder = Layout.FolderOf(kind, newName);
        bool taken = (kind == "clone" ? Catalogue.CloneNames() : Catalogue.BaseNames()).Contains(newName, StringComparer.OrdinalIgnoreCase);
        // Only a change of case of the same name would find itself here; a folder is one name whatever its case.
        if (string.Equals(newName, name, StringComparison.OrdinalIgnoreCase) || taken || Directory.Exists(folder) || Directory.Exists(WorkFolder(folder, StagingPrefix)))
            throw new StoreException(kind == "clone" ? StoreErrorIds.CloneExists : StoreErrorIds.BaseExists, VmCloneErrorKind.AlreadyExists,
                $"The {kind} '{name}' was not renamed: the name '{newName}' is already taken in store '{Root}' (names are one whatever their case). Choose another name.", newName);
    }

    private static PlannedVolume Moved(string volume, VolumeType type, VmClone.Disks.DiskFormat format, string folder, string newFolder, string file) => new()
    {
        Volume = volume,
        Type = type,
        Format = format,
        Action = VolumeAction.Move,
        Path = Path.Combine(newFolder, file),
        Supersedes = Path.Combine(folder, file),
    };
}
