using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>One file to import as a clone's volume: the base volume it is a child of, and where it is.</summary>
public sealed class ImportVolumeSpec
{
    /// <summary>The base volume's name.</summary>
    public string Name { get; set; } = "";

    /// <summary>The differencing disk made elsewhere (Hyper-V, VMware, qemu).</summary>
    public string Path { get; set; } = "";
}

/// <summary>
/// Plans adopting differencing disks made elsewhere as a new clone of a base: every named file
/// is a child of that base volume (by identity, or with preserveContent a child of an equal copy,
/// re-parented keeping its content); every other base volume is made as a new clone's would be.
/// Everything that can refuse is checked here, before any file is touched.
/// </summary>
internal sealed class ImportPlanner : Planner
{
    public ImportPlanner(StoreCatalogue catalogue, StorePreconditions preconditions) : base(catalogue, preconditions)
    {
    }

    public StorePlan PlanImport(string name, string baseName, IReadOnlyList<ImportVolumeSpec> volumes, bool copy, bool preserveContent)
    {
        StoreNames.Validate(name, "clone");
        BaseManifest b = LoadBase(baseName);
        var given = new Dictionary<string, ImportVolumeSpec>(StringComparer.OrdinalIgnoreCase);
        foreach (ImportVolumeSpec spec in volumes ?? Array.Empty<ImportVolumeSpec>())
        {
            if (spec is null || string.IsNullOrEmpty(spec.Name) || string.IsNullOrEmpty(spec.Path))
                throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument,
                    $"Clone '{name}': each volume to import needs Name (a volume of base '{b.Name}') and Path (the file), as in -Volume @{{ Name = 'system'; Path = './child.vhdx' }}.", name);
            if (!b.Volumes.Any(v => string.Equals(v.Name, spec.Name, StringComparison.OrdinalIgnoreCase)))
                throw new StoreException(StoreErrorIds.VolumeNotFound, VmCloneErrorKind.NotFound,
                    $"Clone '{name}' was not imported: base '{b.Name}' has no volume '{spec.Name}'; its volumes are {string.Join(", ", b.Volumes.Select(v => v.Name))}.", spec.Name);
            if (given.ContainsKey(spec.Name))
                throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument,
                    $"Clone '{name}' was not imported: volume '{spec.Name}' is given twice.", spec.Name);
            given[spec.Name] = spec;
        }
        if (given.Count == 0)
            throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument,
                $"Clone '{name}': name at least one file to import (-Volume @{{ Name = 'system'; Path = './child.vhdx' }}); New-VmClone makes a clone with none.", name);
        string folder = CloneFolder(name);
        // A rerun of an import cut off after its files moved finds them gone from where they were.
        if (PendingImport(name, b.Name, given.Values.Select(s => RealPathOf(s.Path)).ToList()) is StorePlan pending)
            return pending;
        var sources = given.ToDictionary(g => g.Key, g => Resolve(name, g.Value), StringComparer.OrdinalIgnoreCase);
        RefuseTaken(name);
        RequireUnmodifiedBase(b, name);
        var plan = NewPlan(StoreOperation.ImportClone, name, "clone", folder);
        plan.ToBase = b.Name;
        var manifest = new CloneManifest { Name = name, Base = b.Name };
        foreach (BaseVolumeManifest bv in b.Volumes)
        {
            PlannedVolume step;
            if (given.ContainsKey(bv.Name))
                step = Adopt(name, b, bv, folder, sources[bv.Name], copy, preserveContent);
            else
                step = ChildOrEmpty(b, bv, folder, VolumeAction.CreateChild);
            plan.Volumes.Add(step);
            CloneVolumeManifest mv = ManifestVolume(step);
            if (step.Action == VolumeAction.Adopt)
                mv.Parent = ToStoreRelative(step.Source!);
            manifest.Volumes.Add(mv);
        }
        plan.CloneManifest = manifest;
        return plan;
    }

    /// <summary>The file the caller named, its folder's links resolved; refused when it is missing, a link or no regular file, or inside the store.</summary>
    private string Resolve(string clone, ImportVolumeSpec spec)
    {
        string full = Path.GetFullPath(spec.Path);
        switch (FileNode.Of(full))
        {
            case FileNodeKind.Missing:
                throw new StoreException(StoreErrorIds.VolumeSourceNotFound, VmCloneErrorKind.NotFound,
                    $"Clone '{clone}' was not imported: volume '{spec.Name}': the file '{full}' does not exist.", spec.Path);
            case FileNodeKind.RegularFile:
                break;
            default:
                throw new StoreException(StoreErrorIds.ImportSourceNotRegularFile, VmCloneErrorKind.InvalidArgument,
                    $"Clone '{clone}' was not imported: volume '{spec.Name}': '{full}' is {(FileNode.Of(full) == FileNodeKind.Link ? "a symbolic link" : "not a regular file (a FIFO, device, socket or folder)")}; give the disk file itself. Nothing was opened.", spec.Path);
        }
        string real = RealPathOf(full);
        if (IsUnder(real, Root) || IsUnder(full, Root) || PathUtil.IsReallyUnder(real, Root))
            throw new StoreException(StoreErrorIds.ImportSourceInStore, VmCloneErrorKind.InvalidArgument,
                $"Clone '{clone}' was not imported: volume '{spec.Name}': '{full}' lies inside store '{Root}'; only disks made elsewhere are imported.", spec.Path);
        return real;
    }

    /// <summary>The file is moved from where it really lies: a linked folder on the way is resolved (the file itself is never a link).</summary>
    private static string RealPathOf(string path)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        return Path.Combine(PathUtil.RealPath(dir) ?? dir, Path.GetFileName(full));
    }

    private PlannedVolume Adopt(string clone, BaseManifest b, BaseVolumeManifest bv, string folder, string source, bool copy, bool preserveContent)
    {
        string baseFile = Path.Combine(BaseFolder(b.Name), bv.File);
        var step = new PlannedVolume
        {
            Volume = bv.Name,
            Type = bv.Type,
            Format = bv.Format,
            Action = VolumeAction.Adopt,
            Path = Path.Combine(folder, bv.Name + Extension(bv.Format)),
            Source = baseFile,
            AdoptedFrom = source,
            KeepOriginal = copy,
            VirtualSize = bv.VirtualSize,
            LogicalSectorSize = bv.LogicalSectorSize,
            Qcow2 = bv.Qcow2,
        };
        FileStamp? stamp = FileStamp.Of(source);
        string Refused(string what) => $"Clone '{clone}' was not imported: volume '{bv.Name}': '{source}' {what}. Nothing was changed.";
        ParentReference? parent;
        using (DiskLayer layer = VirtualDisk.OpenLayer(source, FileAccess.Read))
        {
            if (layer.Format != bv.Format || !StoreBoundary.IsSingleFile(layer))
                throw new StoreException(StoreErrorIds.ImportFormatMismatch, VmCloneErrorKind.InvalidArgument,
                    Refused(layer.Format != bv.Format ? $"is a {layer.Format} disk, but the base volume is {bv.Format}" : "keeps its content in other files (a VMDK of several extents, a qcow2 image with an external data file); the store keeps every volume in one file"), source);
            if (layer.VirtualSize != bv.VirtualSize || layer.LogicalSectorSize != bv.LogicalSectorSize)
                throw new StoreException(StoreErrorIds.ImportSizeMismatch, VmCloneErrorKind.InvalidArgument,
                    Refused($"is {layer.VirtualSize} bytes with {layer.LogicalSectorSize}-byte sectors, but the base volume is {bv.VirtualSize} bytes with {bv.LogicalSectorSize}-byte sectors"), source);
            parent = layer.ParentReference;
        }
        if (parent is null)
            throw new StoreException(StoreErrorIds.ImportParentMismatch, VmCloneErrorKind.InvalidArgument,
                Refused("is not a differencing disk (it has no parent); a standalone disk becomes a base with New-VmBase"), source);
        // A format that records its parent's identity is judged by it; qcow2 records none, so its
        // parent is the base volume only when its link leads to that very file.
        bool byIdentity = parent.ExpectedIdentity.Length > 0 && bv.Identity is string id && parent.Accepts(id);
        string? resolved = null;
        string? openProblem = null;
        if (!byIdentity)
        {
            // Its parent link is followed only now, read only (a FIFO, device or folder is refused unopened).
            try
            {
                using VirtualDisk chain = VirtualDisk.Open(source, FileAccess.Read);
                resolved = chain.Layers[1].Path;
            }
            catch (VirtualDiskException ex)
            {
                openProblem = ex.Message;
            }
            byIdentity = parent.ExpectedIdentity.Length == 0 && resolved is not null
                && PathUtil.SamePath(PathUtil.RealPath(resolved) ?? resolved, PathUtil.RealPath(baseFile) ?? baseFile);
        }
        if (!byIdentity)
        {
            if (!preserveContent)
                throw new StoreException(StoreErrorIds.ImportParentMismatch, VmCloneErrorKind.InvalidArgument,
                    Refused($"is not a child of the base volume '{baseFile}' by identity (it expects {(parent.ExpectedIdentity.Length > 0 ? parent.ExpectedIdentity : $"the parent '{resolved ?? string.Join("', '", parent.Candidates.Select(c => c.StoredPath))}'")}, the base volume is {bv.Identity}). " +
                    "If it was made over an equal copy of the base volume, add -PreserveContent: what differs is copied into it"), source);
            if (resolved is null)
                throw new StoreException(StoreErrorIds.ImportParentNotFound, VmCloneErrorKind.NotFound,
                    Refused($"names a parent that cannot be opened ({string.Join("; ", parent.Candidates.Select(c => $"'{c.StoredPath}'"))}): {openProblem}"), source);
            step.AdoptedParent = Path.GetFullPath(resolved);
        }
        step.BytesToCopy = CopyBound(source, copy, step.AdoptedParent, baseFile, bv.Format);
        step.Stamp(source, stamp);
        return step;
    }

    /// <summary>
    /// What adopting <paramref name="source"/> writes into the store at most: the bytes its file
    /// holds when it is copied (-Copy, or a move to another file system, which copies), nothing
    /// for a rename; and for a child re-parented keeping its content, what its old and new parents
    /// store (only where they differ is copied, counted from their extent maps).
    /// </summary>
    private long CopyBound(string source, bool copy, string? adoptedParent, string baseFile, DiskFormat format)
    {
        long bytes = copy || !FreeSpace.SameFileSystem(source, Root) ? DiskLayer.SizeOnDiskOf(source) : 0;
        if (adoptedParent is not null)
            bytes += DiskOperations.ReparentBound(adoptedParent, baseFile, format, null, System.Threading.CancellationToken.None);
        return bytes;
    }

    /// <summary>An import of <paramref name="name"/> from the same files that was cut off after they moved: its journal, which the import finishes.</summary>
    private StorePlan? PendingImport(string name, string baseName, IReadOnlyList<string> sources)
    {
        string folder = CloneFolder(name);
        string staging = WorkFolder(folder, StagingPrefix);
        if (Directory.Exists(folder) || !Directory.Exists(staging))
            return null;
        StorePlan? journal = StoreJournal.Read(staging);
        if (journal is not { Operation: StoreOperation.ImportClone } || !string.Equals(journal.Subject, name, StringComparison.OrdinalIgnoreCase)
            || !string.Equals(journal.ToBase, baseName, StringComparison.OrdinalIgnoreCase))
            return null;
        var recorded = journal.Volumes.Where(v => v.Action == VolumeAction.Adopt).Select(v => v.AdoptedFrom).OfType<string>();
        if (!recorded.OrderBy(p => p, StringComparer.Ordinal).SequenceEqual(sources.OrderBy(p => p, StringComparer.Ordinal)))
            return null;
        journal.Store = Root;
        journal.Folder = folder;
        return journal;
    }

    private void RefuseTaken(string name)
    {
        string folder = CloneFolder(name);
        if (CloneExists(name) || Catalogue.CloneNames().Contains(name, StringComparer.OrdinalIgnoreCase) || Directory.Exists(folder)
            || StoreJournal.Read(WorkFolder(folder, StagingPrefix)) is { Operation: StoreOperation.ImportClone })
            throw new StoreException(StoreErrorIds.CloneExists, VmCloneErrorKind.AlreadyExists,
                $"Clone '{name}' was not imported: the name is already taken in store '{Root}' (names are one whatever their case). Choose another name.", name);
    }
}
