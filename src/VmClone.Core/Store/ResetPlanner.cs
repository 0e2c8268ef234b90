using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>Plans what takes a clone's volumes back to its base: a restore (system and temporary) and clearing its temporary volumes.</summary>
internal sealed class ResetPlanner : Planner
{
    public ResetPlanner(StoreCatalogue catalogue, StorePreconditions preconditions) : base(catalogue, preconditions)
    {
    }

    /// <summary>Plans a restore: system and temporary volumes become fresh children of the base; data volumes are kept.</summary>
    public StorePlan PlanRestore(string cloneName) => PlanReset(cloneName, StoreOperation.Restore, null);

    /// <summary>
    /// Plans a restore of only the volumes named in <paramref name="volumes"/> and those of
    /// <paramref name="types"/> (System, Temporary); every other volume is kept. A data volume goes
    /// back to the base only when it is named, and its content is then discarded (the plan says
    /// so). A name the clone does not have is refused (VolumeNotFound, naming the clone's volumes).
    /// </summary>
    public StorePlan PlanRestore(string cloneName, IEnumerable<string>? volumes, IEnumerable<VolumeType>? types)
    {
        if (volumes is null && types is null)
            return PlanRestore(cloneName);
        var typeList = (types ?? Array.Empty<VolumeType>()).ToList();
        if (typeList.Contains(VolumeType.Data))
            throw new StoreException(StoreErrorIds.InvalidArgument, VmCloneErrorKind.InvalidArgument,
                $"Clone '{cloneName}' was not restored: data volumes are restored only when named (-Volume NAME), never by their type, because their content is discarded.", cloneName);
        StoreNames.Validate(cloneName, "clone");
        CloneManifest clone = LoadClone(cloneName);
        var selected = new List<string>();
        foreach (string name in volumes ?? Array.Empty<string>())
        {
            CloneVolumeManifest? v = clone.Volumes.FirstOrDefault(x => string.Equals(x.Name, name, StringComparison.OrdinalIgnoreCase));
            if (v is null)
                throw new StoreException(StoreErrorIds.VolumeNotFound, VmCloneErrorKind.NotFound,
                    $"Clone '{clone.Name}' has no volume '{name}'; nothing was restored. Its volumes are: " +
                    string.Join(", ", clone.Volumes.Select(x => $"{x.Name} ({x.Type})")) + ".", name);
            selected.Add(v.Name);
        }
        selected.AddRange(clone.Volumes.Where(v => typeList.Contains(v.Type)).Select(v => v.Name));
        return PlanReset(cloneName, StoreOperation.Restore, selected.Distinct(StringComparer.OrdinalIgnoreCase).ToList());
    }

    /// <summary>Plans what a shutdown does: temporary volumes back to their initial state, nothing else touched.</summary>
    public StorePlan PlanClearTemporary(string cloneName) => PlanReset(cloneName, StoreOperation.ClearTemporary, null);

    /// <param name="cloneName">The clone.</param>
    /// <param name="operation">Restore or ClearTemporary.</param>
    /// <param name="selected">For a restore of some volumes only: their names as the clone's manifest spells them; null for every system and temporary volume.</param>
    private StorePlan PlanReset(string cloneName, StoreOperation operation, IReadOnlyList<string>? selected)
    {
        // The digest before the manifest it stands for: a change between the two reads then
        // fails the check at execution (CloneChanged) instead of passing it with a stale plan.
        StoreNames.Validate(cloneName, "clone");
        string digest = Catalogue.CloneDigest(cloneName);
        CloneManifest clone = LoadClone(cloneName);
        BaseManifest b = LoadBase(clone.Base);
        RequireUnmodifiedBase(b, clone.Name);
        string folder = CloneFolder(clone.Name);
        var plan = NewPlan(operation, clone.Name, "clone", folder);
        plan.FromBase = plan.ToBase = b.Name;
        plan.ManifestDigest = digest;
        plan.RestoreVolumes = selected?.ToList();
        var manifest = CopyOf(clone);
        if (operation == StoreOperation.Restore)
            manifest.LastRestored = DateTimeOffset.UtcNow;
        manifest.Volumes.Clear();
        foreach (CloneVolumeManifest v in clone.Volumes)
        {
            bool reset = selected is not null
                ? selected.Contains(v.Name, StringComparer.OrdinalIgnoreCase)
                : v.Type == VolumeType.Temporary || (v.Type == VolumeType.System && operation == StoreOperation.Restore);
            if (!reset)
            {
                plan.Volumes.Add(Keep(folder, v, selected is not null ? "not among the volumes to restore"
                    : v.Type == VolumeType.Data ? "data is never touched" : "only temporary volumes are cleared"));
                manifest.Volumes.Add(v);
                continue;
            }
            // The file a reset replaces or rewrites in place must be the clone's own regular file.
            Boundary.RequireVolume(folder, v.File, "clone", clone.Name, v.Name, missingAllowed: true);
            BaseVolumeManifest bv = BaseVolume(b, v.Name);
            PlannedVolume step = ChildOrEmpty(b, bv, folder, v.Type == VolumeType.System ? VolumeAction.Replace : VolumeAction.Reset);
            if (!string.Equals(step.Path, Path.Combine(folder, v.File), StringComparison.Ordinal))
                step.Supersedes = Path.Combine(folder, v.File);
            if (v.Type == VolumeType.Data)
            {
                // Only ever when named: what the guest wrote there is gone afterwards.
                step.Action = step.Action == VolumeAction.CreateEmpty ? VolumeAction.CreateEmpty : VolumeAction.Replace;
                step.DiscardsData = true;
                step.Reason = "its content is discarded" + (step.Reason.Length > 0 ? "; " + step.Reason : "");
            }
            plan.Volumes.Add(step);
            manifest.Volumes.Add(ManifestVolume(step));
        }
        plan.CloneManifest = manifest;
        return plan;
    }
}
