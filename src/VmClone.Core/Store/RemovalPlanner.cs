using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>Plans removing a clone or a base, and finds what depends on a base.</summary>
internal sealed class RemovalPlanner : Planner
{
    public RemovalPlanner(StoreCatalogue catalogue, StorePreconditions preconditions) : base(catalogue, preconditions)
    {
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
        foreach (string file in Layout.DiskFilesInStore())
        {
            if (IsUnder(file, baseFolder))
                continue;
            using var walk = ChainWalk.Start(file, options);
            bool depends = walk.Layers.Skip(1).Any(l => IsUnder(l.Path, baseFolder))
                || (walk.Problem is DiskChainException { ParentPath: string p } && IsUnder(p, baseFolder));
            if (!depends)
                continue;
            string? owner = Layout.OwnerClone(file);
            if (owner is not null && named.Contains(owner))
                continue;
            result.Add(owner is not null && CloneExists(owner) ? $"clone '{owner}' (file '{file}')" : $"file '{file}'");
        }
        return result;
    }
}
