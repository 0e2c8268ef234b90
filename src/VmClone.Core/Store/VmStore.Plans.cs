using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

// Planning: every check that can refuse an operation happens here, before any file is touched,
// and nothing here writes.
public sealed partial class VmStore
{
    /// <summary>Plans a new base from disk files and sizes.</summary>
    public StorePlan PlanNewBase(string name, IReadOnlyList<VolumeSpec> volumes, DiskFormat format = DiskFormat.Vhdx)
    {
        StoreNames.Validate(name, "base");
        CheckBaseFormat(format);
        RefuseExistingBase(name);
        if (volumes is null || volumes.Count == 0)
            throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument, $"Base '{name}' needs at least one volume (-Volume @{{ Name = 'system'; Type = 'System'; Path = './disk.vhdx' }}).", name);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        string folder = BaseFolder(name);
        var plan = NewPlan(StoreOperation.NewBase, name, "base", folder);
        plan.BaseManifest = new BaseManifest { Name = name, Source = "files" };
        foreach (VolumeSpec spec in volumes)
        {
            if (spec is null)
                throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument, "A volume specification is empty.", name);
            StoreNames.Validate(spec.Name, "volume");
            if (!seen.Add(spec.Name))
                throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument, $"Volume name '{spec.Name}' is given twice; each volume of a base needs its own name.", spec.Name);
            if ((spec.Path is null) == (spec.SizeBytes is null))
                throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument,
                    $"Volume '{spec.Name}' needs either Path (an existing VHDX, VMDK or raw file to copy) or SizeBytes (a new empty volume), not {(spec.Path is null ? "neither" : "both")}.", spec.Name);
            var step = new PlannedVolume
            {
                Volume = spec.Name,
                Type = spec.Type,
                Format = format,
                Path = Path.Combine(folder, spec.Name + Extension(format)),
            };
            if (spec.Path is not null)
            {
                string source = Path.GetFullPath(spec.Path);
                if (!File.Exists(source))
                    throw new StoreException(StoreErrorIds.VolumeSourceNotFound, VmCloneErrorKind.NotFound, $"Volume '{spec.Name}': the file '{source}' does not exist.", spec.Path);
                // A source inside the store is held to its boundary, as importing it is (BuildStaged).
                using (VirtualDisk disk = VirtualDisk.Open(source, FileAccess.Read, IsUnder(source, Root) ? OpenOptions : null))
                {
                    step.VirtualSize = disk.Capacity;
                    step.LogicalSectorSize = disk.LogicalSectorSize;
                }
                step.Action = VolumeAction.Import;
                step.Source = source;
            }
            else
            {
                long size = spec.SizeBytes!.Value;
                if (size <= 0 || size % 512 != 0)
                    throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument, $"Volume '{spec.Name}': size {size} must be a positive multiple of 512 bytes.", spec.Name);
                step.Action = VolumeAction.CreateEmpty;
                step.VirtualSize = size;
            }
            plan.Volumes.Add(step);
        }
        return plan;
    }

    /// <summary>Plans a new base holding a clone's current content, each volume flattened into a standalone file.</summary>
    /// <remarks>
    /// Temporary volumes take the clone's initial state (its base's temporary content): scratch
    /// data is never baked into a base. The clone's files are probed when the base is made: one
    /// another program holds open (a running machine) is refused as VolumeInUse, unless
    /// <paramref name="sourceMayBeInUse"/>.
    /// </remarks>
    public StorePlan PlanNewBaseFromClone(string name, string cloneName, DiskFormat? format = null, bool sourceMayBeInUse = false)
    {
        StoreNames.Validate(name, "base");
        if (format is DiskFormat f)
            CheckBaseFormat(f);
        CloneManifest clone = LoadClone(cloneName);
        RefuseExistingBase(name);
        RequireHealthyClone(clone, dataOnly: false);
        BaseManifest oldBase = LoadBase(clone.Base);
        string folder = BaseFolder(name);
        var plan = NewPlan(StoreOperation.NewBase, name, "base", folder);
        plan.ToBase = clone.Name;
        plan.SourceMayBeInUse = sourceMayBeInUse;
        plan.BaseManifest = new BaseManifest { Name = name, Source = $"clone {clone.Name}" };
        foreach (CloneVolumeManifest v in clone.Volumes)
        {
            DiskFormat target = format ?? v.Format;
            string source = Path.Combine(CloneFolder(clone.Name), v.File);
            string reason = "the clone's current content";
            if (v.Type == VolumeType.Temporary)
            {
                BaseVolumeManifest bv = BaseVolume(oldBase, v.Name);
                source = Path.Combine(BaseFolder(oldBase.Name), bv.File);
                reason = $"the initial state (base '{oldBase.Name}'), not the clone's scratch content";
            }
            using DiskLayer layer = VirtualDisk.OpenLayer(source, FileAccess.Read);
            var step = new PlannedVolume
            {
                Volume = v.Name,
                Type = v.Type,
                Format = target,
                Action = VolumeAction.Import,
                Source = source,
                Path = Path.Combine(folder, v.Name + Extension(target)),
                VirtualSize = layer.VirtualSize,
                LogicalSectorSize = layer.LogicalSectorSize,
                Reason = reason,
            };
            step.Stamp(source);
            plan.Volumes.Add(step);
        }
        return plan;
    }

    /// <summary>Plans a new clone of a base: every volume a child of the base's, or an empty standalone data volume where the base's holds nothing.</summary>
    public StorePlan PlanNewClone(string name, string baseName)
    {
        StoreNames.Validate(name, "clone");
        BaseManifest b = LoadBase(baseName);
        if (CloneExists(name) || Directory.Exists(CloneFolder(name)))
            throw new StoreException(StoreErrorIds.CloneExists, VmCloneErrorKind.AlreadyExists,
                $"A clone named '{name}' already exists in store '{Root}'; choose another name, or remove it first (Remove-VmClone {name}).", name);
        RequireUnmodifiedBase(b, name);
        string folder = CloneFolder(name);
        var plan = NewPlan(StoreOperation.NewClone, name, "clone", folder);
        plan.ToBase = b.Name;
        var manifest = new CloneManifest { Name = name, Base = b.Name };
        foreach (BaseVolumeManifest bv in b.Volumes)
        {
            PlannedVolume step = ChildOrEmpty(b, bv, folder, VolumeAction.CreateChild);
            plan.Volumes.Add(step);
            manifest.Volumes.Add(ManifestVolume(step));
        }
        plan.CloneManifest = manifest;
        return plan;
    }

    /// <summary>Plans a restore: system and temporary volumes become fresh children of the base; data volumes are kept.</summary>
    public StorePlan PlanRestore(string cloneName) => PlanReset(cloneName, StoreOperation.Restore);

    /// <summary>Plans what a shutdown does: temporary volumes back to their initial state, nothing else touched.</summary>
    public StorePlan PlanClearTemporary(string cloneName) => PlanReset(cloneName, StoreOperation.ClearTemporary);

    private StorePlan PlanReset(string cloneName, StoreOperation operation)
    {
        // The digest before the manifest it stands for: a change between the two reads then
        // fails the check at execution (CloneChanged) instead of passing it with a stale plan.
        StoreNames.Validate(cloneName, "clone");
        string digest = CloneExists(cloneName) ? ManifestDigest(Path.Combine(CloneFolder(cloneName), CloneFile)) : "";
        CloneManifest clone = LoadClone(cloneName);
        BaseManifest b = LoadBase(clone.Base);
        RequireUnmodifiedBase(b, clone.Name);
        string folder = CloneFolder(clone.Name);
        var plan = NewPlan(operation, clone.Name, "clone", folder);
        plan.FromBase = plan.ToBase = b.Name;
        plan.ManifestDigest = digest;
        var manifest = CopyOf(clone);
        if (operation == StoreOperation.Restore)
            manifest.LastRestored = DateTimeOffset.UtcNow;
        manifest.Volumes.Clear();
        foreach (CloneVolumeManifest v in clone.Volumes)
        {
            bool reset = v.Type == VolumeType.Temporary || (v.Type == VolumeType.System && operation == StoreOperation.Restore);
            if (!reset)
            {
                plan.Volumes.Add(Keep(folder, v, v.Type == VolumeType.Data ? "data is never touched" : "only temporary volumes are cleared"));
                manifest.Volumes.Add(v);
                continue;
            }
            // The file a reset replaces or rewrites in place must be the clone's own regular file.
            Boundary.RequireVolume(folder, v.File, "clone", clone.Name, v.Name, missingAllowed: true);
            BaseVolumeManifest bv = BaseVolume(b, v.Name);
            PlannedVolume step = ChildOrEmpty(b, bv, folder, v.Type == VolumeType.System ? VolumeAction.Replace : VolumeAction.Reset);
            if (!string.Equals(step.Path, Path.Combine(folder, v.File), StringComparison.Ordinal))
                step.Supersedes = Path.Combine(folder, v.File);
            plan.Volumes.Add(step);
            manifest.Volumes.Add(ManifestVolume(step));
        }
        plan.CloneManifest = manifest;
        return plan;
    }

    /// <summary>
    /// Plans moving a clone onto <paramref name="newBaseName"/>: refused when the storage outlines
    /// differ. System volumes become children of the new base's, temporary volumes its initial
    /// state; data volumes keep their content byte for byte and stop depending on the old base.
    /// </summary>
    /// <remarks>
    /// A new base of another format than the clone's volumes is refused (RebaseFormatMismatch)
    /// unless <paramref name="convertFormat"/>: every volume then becomes the new base's format,
    /// data volumes converted into standalone files of it, and each step whose file changes name
    /// says which file it supersedes.
    /// </remarks>
    public StorePlan PlanRebase(string cloneName, string newBaseName, bool convertFormat = false)
    {
        // The digest before the manifest it stands for: a change between the two reads then
        // fails the check at execution (CloneChanged) instead of passing it with a stale plan.
        StoreNames.Validate(cloneName, "clone");
        string digest = CloneExists(cloneName) ? ManifestDigest(Path.Combine(CloneFolder(cloneName), CloneFile)) : "";
        CloneManifest clone = LoadClone(cloneName);
        BaseManifest nb = LoadBase(newBaseName);
        RequireUnmodifiedBase(nb, clone.Name);
        string folder = CloneFolder(clone.Name);
        CheckOutline(clone, nb);
        bool onNewBase = string.Equals(clone.Base, nb.Name, StringComparison.OrdinalIgnoreCase);
        if (!onNewBase && !convertFormat)
            RebaseFormats.RequireSame(clone, nb);
        RequireHealthyClone(clone, dataOnly: true);
        var plan = NewPlan(StoreOperation.Rebase, clone.Name, "clone", folder);
        plan.FromBase = clone.Base;
        plan.ToBase = nb.Name;
        plan.ManifestDigest = digest;
        plan.ConvertFormat = convertFormat;
        if (onNewBase)
        {
            // Already there (an earlier run finished this clone): running a rebase again redoes
            // nothing that is done. Restore-VmClone is what starts a clone afresh.
            foreach (CloneVolumeManifest v in clone.Volumes)
                plan.Volumes.Add(Keep(folder, v, $"already on base '{nb.Name}'"));
            plan.CloneManifest = clone;
            return plan;
        }
        var manifest = CopyOf(clone);
        manifest.Base = nb.Name;
        manifest.LastRebased = DateTimeOffset.UtcNow;
        manifest.Volumes.Clear();
        for (int i = 0; i < clone.Volumes.Count; i++)
        {
            CloneVolumeManifest v = clone.Volumes[i];
            BaseVolumeManifest bv = nb.Volumes[i];
            string current = Path.Combine(folder, v.File);
            PlannedVolume step;
            if (v.Type != VolumeType.Data)
            {
                Boundary.RequireVolume(folder, v.File, "clone", clone.Name, v.Name, missingAllowed: true);
                step = ChildOrEmpty(nb, bv, folder, v.Type == VolumeType.System ? VolumeAction.Replace : VolumeAction.Reset);
                if (!string.Equals(step.Path, current, StringComparison.Ordinal))
                    step.Supersedes = current;
            }
            else if (v.Format != bv.Format)
            {
                step = RebaseFormats.ConvertData(v, bv, current, Path.Combine(folder, v.Name + Extension(bv.Format)));
            }
            else
            {
                step = PlanDataRebase(nb, bv, v, current);
            }
            plan.Volumes.Add(step);
            manifest.Volumes.Add(ManifestVolume(step));
        }
        plan.CloneManifest = manifest;
        return plan;
    }

    /// <summary>The step of a data volume of the new base's format (another format is <see cref="RebaseFormats.ConvertData"/>'s).</summary>
    private PlannedVolume PlanDataRebase(BaseManifest nb, BaseVolumeManifest bv, CloneVolumeManifest v, string current)
    {
        string newParent = Path.Combine(BaseFolder(nb.Name), bv.File);
        var step = new PlannedVolume { Volume = v.Name, Type = v.Type, Format = v.Format, Path = current };
        step.Stamp(current);
        using DiskLayer layer = VirtualDisk.OpenLayer(current, FileAccess.Read);
        step.VirtualSize = layer.VirtualSize;
        step.LogicalSectorSize = layer.LogicalSectorSize;
        if (layer.ParentReference is null)
        {
            step.Action = VolumeAction.Keep;
            step.Reason = "a standalone data volume depends on no base";
        }
        else if (bv.HoldsData)
        {
            step.Action = VolumeAction.Reparent;
            step.Source = newParent;
            step.Reason = "what differs from the new base's data is copied in first";
        }
        else
        {
            step.Action = VolumeAction.Flatten;
            step.Source = current;
            step.Reason = "the new base's data volume is empty: nothing to depend on";
        }
        return step;
    }

    /// <summary>Plans removing a clone: its volumes, its manifest and its folder.</summary>
    public StorePlan PlanRemoveClone(string cloneName)
    {
        StoreNames.Validate(cloneName, "clone");
        string folder = CloneFolder(cloneName);
        CloneManifest? clone = null;
        if (CloneExists(cloneName))
        {
            // A damaged manifest must not make a clone impossible to remove.
            try { clone = LoadClone(cloneName); } catch (StoreException) { }
        }
        else if (!Directory.Exists(folder) && !Directory.Exists(WorkFolder(folder, RemovingPrefix)))
        {
            LoadClone(cloneName); // throws CloneNotFound
        }
        // With only a .removing- folder left, running the removal again finishes it.
        var plan = NewPlan(StoreOperation.RemoveClone, cloneName, "clone", folder);
        plan.FromBase = clone?.Base;
        if (clone is not null)
        {
            foreach (CloneVolumeManifest v in clone.Volumes)
                plan.Volumes.Add(new PlannedVolume { Volume = v.Name, Type = v.Type, Format = v.Format, Action = VolumeAction.Delete, Path = Path.Combine(folder, v.File) });
        }
        plan.OtherFiles.AddRange(OtherEntries(folder, CloneFile, plan.Volumes.Select(v => Path.GetFileName(v.Path))));
        return plan;
    }

    /// <summary>
    /// Names of what a subject's folder holds besides its manifest and volumes (sorted; none for
    /// a folder that is a link, which is removed as a link without being entered).
    /// </summary>
    private static IEnumerable<string> OtherEntries(string folder, string manifestFile, IEnumerable<string?> volumeFiles)
    {
        if (FileNode.Of(folder) != FileNodeKind.Directory)
            return Array.Empty<string>();
        var known = new HashSet<string>(volumeFiles.OfType<string>(), StringComparer.Ordinal) { manifestFile };
        return Directory.EnumerateFileSystemEntries(folder)
            .Select(Path.GetFileName)
            .OfType<string>()
            .Where(n => !known.Contains(n))
            .OrderBy(n => n, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Plans removing a base; refused (BaseInUse, naming them) while any clone or other file depends on it.</summary>
    public StorePlan PlanRemoveBase(string baseName)
    {
        StoreNames.Validate(baseName, "base");
        if (!BaseExists(baseName) && Directory.Exists(WorkFolder(BaseFolder(baseName), RemovingPrefix)))
        {
            // A removal cut off after the rename: running it again finishes the deletion.
            return NewPlan(StoreOperation.RemoveBase, baseName, "base", BaseFolder(baseName));
        }
        BaseManifest b = LoadBase(baseName);
        IReadOnlyList<string> dependents = FindDependents(b.Name);
        if (dependents.Count > 0)
            throw new StoreException(StoreErrorIds.BaseInUse, VmCloneErrorKind.InUse,
                $"Base '{b.Name}' cannot be removed: {string.Join("; ", dependents)} depend(s) on it. " +
                $"Rebase them onto another base (Invoke-VmRebase -Base {b.Name} -NewBase ...) or remove them first.", b.Name);
        string folder = BaseFolder(b.Name);
        var plan = NewPlan(StoreOperation.RemoveBase, b.Name, "base", folder);
        foreach (BaseVolumeManifest v in b.Volumes)
            plan.Volumes.Add(new PlannedVolume { Volume = v.Name, Type = v.Type, Format = v.Format, Action = VolumeAction.Delete, Path = Path.Combine(folder, v.File) });
        plan.OtherFiles.AddRange(OtherEntries(folder, BaseFile, plan.Volumes.Select(v => Path.GetFileName(v.Path))));
        return plan;
    }

    /// <summary>
    /// Everything that depends on a base: clones whose manifest names it, and any disk file in
    /// the store outside the base's folder whose chain (as the disks say) leads into it.
    /// </summary>
    public IReadOnlyList<string> FindDependents(string baseName)
    {
        string baseFolder = BaseFolder(baseName);
        var result = new List<string>();
        var named = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (KeyValuePair<string, CloneManifest> c in ReadableClones())
        {
            if (string.Equals(c.Value.Base, baseName, StringComparison.OrdinalIgnoreCase))
            {
                result.Add($"clone '{c.Key}'");
                named.Add(c.Key);
            }
        }
        var options = new DiskOpenOptions { AllowedParentRoot = Root, IgnoreParentIdentityMismatch = true };
        foreach (string file in DiskFilesInStore())
        {
            if (IsUnder(file, baseFolder))
                continue;
            using var walk = ChainWalk.Start(file, options);
            bool depends = walk.Layers.Skip(1).Any(l => IsUnder(l.Path, baseFolder))
                || (walk.Problem is DiskChainException { ParentPath: string p } && IsUnder(p, baseFolder));
            if (!depends)
                continue;
            string? owner = OwnerClone(file);
            if (owner is not null && named.Contains(owner))
                continue;
            result.Add(owner is not null && CloneExists(owner) ? $"clone '{owner}' (file '{file}')" : $"file '{file}'");
        }
        return result;
    }

    private string? OwnerClone(string file)
    {
        string? dir = Path.GetDirectoryName(file);
        return dir is not null && string.Equals(Path.GetDirectoryName(dir), ClonesFolder, StringComparison.Ordinal) ? Path.GetFileName(dir) : null;
    }

    /// <summary>Every disk file in bases/ and clones/ (one level of folders, work folders included).</summary>
    internal IEnumerable<string> DiskFilesInStore()
    {
        foreach (string top in new[] { BasesFolder, ClonesFolder })
        {
            if (!Directory.Exists(top))
                continue;
            foreach (string dir in Directory.EnumerateDirectories(top))
            {
                // Links are neither entered nor opened: what they lead to is not the store's.
                if (FileNode.Of(dir) != FileNodeKind.Directory)
                    continue;
                foreach (string file in Directory.EnumerateFiles(dir))
                {
                    if (IsDiskFile(file) && FileNode.Of(file) == FileNodeKind.RegularFile)
                        yield return file;
                }
            }
        }
    }

    internal static bool IsUnder(string path, string folder)
    {
        string f = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        return Path.GetFullPath(path).StartsWith(f, StringComparison.Ordinal);
    }

    /// <summary>The storage outline check of a rebase: same volume names, types, order, sizes and sector sizes.</summary>
    private void CheckOutline(CloneManifest clone, BaseManifest nb)
    {
        var differences = new List<string>();
        if (clone.Volumes.Count != nb.Volumes.Count)
            differences.Add($"the clone has {clone.Volumes.Count} volume(s), base '{nb.Name}' has {nb.Volumes.Count}");
        for (int i = 0; i < Math.Min(clone.Volumes.Count, nb.Volumes.Count); i++)
        {
            CloneVolumeManifest v = clone.Volumes[i];
            BaseVolumeManifest b = nb.Volumes[i];
            if (!string.Equals(v.Name, b.Name, StringComparison.OrdinalIgnoreCase))
                differences.Add($"volume {i + 1} is '{v.Name}' in the clone but '{b.Name}' in the base");
            if (v.Type != b.Type)
                differences.Add($"volume '{v.Name}' is {v.Type} in the clone but {b.Type} in the base");
            string path = Path.Combine(CloneFolder(clone.Name), v.File);
            if (Boundary.CheckFile(CloneFolder(clone.Name), v.File) == BoundaryProblem.None)
            {
                using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
                if (layer.VirtualSize != b.VirtualSize)
                    differences.Add($"volume '{v.Name}' is {layer.VirtualSize} bytes in the clone but {b.VirtualSize} in the base");
                if (layer.LogicalSectorSize != b.LogicalSectorSize)
                    differences.Add($"volume '{v.Name}' has {layer.LogicalSectorSize}-byte sectors in the clone but {b.LogicalSectorSize} in the base");
            }
        }
        if (differences.Count > 0)
            throw new StoreException(StoreErrorIds.OutlineMismatch, VmCloneErrorKind.InvalidOperation,
                $"Clone '{clone.Name}' cannot move onto base '{nb.Name}': their storage outlines differ ({string.Join("; ", differences)}). " +
                "A new base must have the same volumes, types, order and sizes; make it from a clone of the old base (New-VmBase -FromClone).", clone.Name);
    }

    /// <summary>
    /// Refuses a base whose volume files are missing or were modified after it was made. The
    /// refusal is about <paramref name="clone"/> (the clone the operation was for, a new clone's
    /// name) when there is one: a fleet command's log then tells which clones failed.
    /// </summary>
    private void RequireUnmodifiedBase(BaseManifest b, string? clone = null)
    {
        VmBaseInfo info = DescribeBase(b, 0);
        VmVolumeInfo? bad = info.Volumes.FirstOrDefault(v => v.Problem is not null);
        if (bad is null)
            return;
        string who = clone is null ? $"Base '{b.Name}' cannot be used" : $"Clone '{clone}' was not changed: its base '{b.Name}' cannot be used";
        if (info.IsModified)
            throw new StoreException(StoreErrorIds.BaseModified, VmCloneErrorKind.InvalidData,
                $"{who}: volume '{bad.Name}' was {bad.Problem}, so clones of it may show corrupted content. {BaseModifiedAdvice.For(b.Name, bad.Format)}.", clone ?? b.Name);
        throw new StoreException(StoreErrorIds.BaseBroken, VmCloneErrorKind.InvalidData,
            $"{who}: volume '{bad.Name}': {bad.Problem}. Its clones may show corrupted content; run Test-VmStore.", clone ?? b.Name);
    }

    /// <summary>Refuses a clone whose volumes (or only its data volumes) do not open cleanly: their content must not be trusted.</summary>
    private void RequireHealthyClone(CloneManifest clone, bool dataOnly)
    {
        string folder = CloneFolder(clone.Name);
        foreach (CloneVolumeManifest v in clone.Volumes)
        {
            if (dataOnly && v.Type != VolumeType.Data)
                continue;
            VmVolumeInfo info = DescribeCloneVolume(clone.Name, v, folder);
            if (info.Problem is null)
                continue;
            if (info.Boundary is not (BoundaryProblem.None or BoundaryProblem.Missing))
                throw new StoreException(StoreBoundary.ErrorId(info.Boundary), VmCloneErrorKind.InvalidData,
                    $"Clone '{clone.Name}': volume '{v.Name}' cannot be used: {info.Problem}. Nothing was changed; run Test-VmStore.", clone.Name);
            if (info.ChainProblem == ChainProblem.ParentModified)
                throw new StoreException(StoreErrorIds.BaseModified, VmCloneErrorKind.InvalidData,
                    $"Clone '{clone.Name}': volume '{v.Name}' cannot be read safely: {info.Problem} Nothing was changed. {BaseModifiedAdvice.For(clone.Base, v.Format)}.", clone.Name);
            throw new StoreException(StoreErrorIds.CloneBroken, VmCloneErrorKind.InvalidData,
                $"Clone '{clone.Name}': volume '{v.Name}' cannot be read safely: {info.Problem} Nothing was changed; run Test-VmStore.", clone.Name);
        }
    }

    private void RefuseExistingBase(string name)
    {
        if (BaseExists(name) || Directory.Exists(BaseFolder(name)))
            throw new StoreException(StoreErrorIds.BaseExists, VmCloneErrorKind.AlreadyExists,
                $"A base named '{name}' already exists in store '{Root}'; choose another name.", name);
    }

    private static void CheckBaseFormat(DiskFormat format)
    {
        if (DiskFormats.Find(format) is not { CanHoldBase: true })
            throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument,
                $"Base volumes are stored as {string.Join(" or ", DiskFormats.BaseFormats.Select(f => f.Name.ToUpperInvariant()))} (clones are differencing disks over them), not {format}.");
    }

    private static BaseVolumeManifest BaseVolume(BaseManifest b, string volume) =>
        b.Volumes.FirstOrDefault(v => string.Equals(v.Name, volume, StringComparison.OrdinalIgnoreCase))
        ?? throw new StoreException(StoreErrorIds.OutlineMismatch, VmCloneErrorKind.InvalidData, $"Base '{b.Name}' has no volume '{volume}'.", b.Name);

    /// <summary>A clone volume over base volume <paramref name="bv"/>: a child, or (data the base does not hold) an empty standalone disk.</summary>
    private PlannedVolume ChildOrEmpty(BaseManifest b, BaseVolumeManifest bv, string folder, VolumeAction childAction)
    {
        var step = new PlannedVolume
        {
            Volume = bv.Name,
            Type = bv.Type,
            Format = bv.Format,
            Path = Path.Combine(folder, bv.Name + Extension(bv.Format)),
            VirtualSize = bv.VirtualSize,
            LogicalSectorSize = bv.LogicalSectorSize,
        };
        if (bv.Type == VolumeType.Data && !bv.HoldsData)
        {
            step.Action = VolumeAction.CreateEmpty;
            step.Reason = "the base's data volume is empty: a standalone disk depends on nothing";
        }
        else
        {
            step.Action = childAction;
            step.Source = Path.Combine(BaseFolder(b.Name), bv.File);
        }
        return step;
    }

    private CloneVolumeManifest ManifestVolume(PlannedVolume step) => new()
    {
        Name = step.Volume,
        Type = step.Type,
        Format = step.Format,
        File = Path.GetFileName(step.Path),
        Parent = step.Action switch
        {
            VolumeAction.CreateChild or VolumeAction.Replace or VolumeAction.Reset or VolumeAction.Reparent => ToStoreRelative(step.Source!),
            VolumeAction.Flatten or VolumeAction.CreateEmpty => null,
            _ => null,
        },
    };

    private static PlannedVolume Keep(string folder, CloneVolumeManifest v, string reason) => new()
    {
        Volume = v.Name,
        Type = v.Type,
        Format = v.Format,
        Action = VolumeAction.Keep,
        Path = Path.Combine(folder, v.File),
        Reason = reason,
    };

    private static CloneManifest CopyOf(CloneManifest c) => Manifest.Deserialize<CloneManifest>(Manifest.Serialize(c));

    private StorePlan NewPlan(StoreOperation operation, string subject, string kind, string folder) => new()
    {
        Operation = operation,
        Store = Root,
        Subject = subject,
        SubjectKind = kind,
        Folder = folder,
    };
}
