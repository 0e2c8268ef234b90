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
    public StorePlan PlanRestore(string cloneName) => PlanReset(cloneName, StoreOperation.Restore);

    /// <summary>Plans what a shutdown does: temporary volumes back to their initial state, nothing else touched.</summary>
    public StorePlan PlanClearTemporary(string cloneName) => PlanReset(cloneName, StoreOperation.ClearTemporary);

    private StorePlan PlanReset(string cloneName, StoreOperation operation)
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
}
