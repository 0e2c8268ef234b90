using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// Plans moving a clone onto another base of the same outline, or of a grown one (the same volume
/// names, types and order, each as large or larger): data volumes are kept byte for byte and grow
/// to the new base's sizes, the added range reading as zeros.
/// </summary>
internal sealed class RebasePlanner : Planner
{
    public RebasePlanner(StoreCatalogue catalogue, StorePreconditions preconditions) : base(catalogue, preconditions)
    {
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
        string digest = Catalogue.CloneDigest(cloneName);
        CloneManifest clone = LoadClone(cloneName);
        BaseManifest nb = LoadBase(newBaseName);
        RequireUnmodifiedBase(nb, clone.Name);
        string folder = CloneFolder(clone.Name);
        // Each data volume is read once: its outline, its health and its step come from that reading.
        VolumeReading?[] data = Preconditions.ReadDataVolumes(clone);
        CheckOutline(clone, nb, data);
        bool onNewBase = string.Equals(clone.Base, nb.Name, StringComparison.OrdinalIgnoreCase);
        if (!onNewBase && !convertFormat)
            RebaseFormats.RequireSame(clone, nb);
        RequireHealthyClone(clone, dataOnly: true, data);
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
                if (bv.VirtualSize > step.VirtualSize)
                    step.GrowTo = bv.VirtualSize;
            }
            else
            {
                step = PlanDataRebase(nb, bv, v, current, data[i]!);
            }
            plan.Volumes.Add(step);
            manifest.Volumes.Add(ManifestVolume(step));
        }
        plan.CloneManifest = manifest;
        // Only a re-parent reads the old base (its data volume is what the child depends on now).
        var oldBase = new Lazy<BaseManifest>(() => LoadBase(clone.Base));
        PlanSpace.Measure(plan, _ => OpenOptions, step => Path.Combine(BaseFolder(oldBase.Value.Name), BaseVolume(oldBase.Value, step.Volume).File));
        return plan;
    }

    /// <summary>
    /// The step of a data volume of the new base's format (another format is
    /// <see cref="RebaseFormats.ConvertData"/>'s), from the reading planning took of it (healthy,
    /// so its layer was read): the volume is not opened again.
    /// </summary>
    private PlannedVolume PlanDataRebase(BaseManifest nb, BaseVolumeManifest bv, CloneVolumeManifest v, string current, VolumeReading read)
    {
        string newParent = Path.Combine(BaseFolder(nb.Name), bv.File);
        var step = new PlannedVolume { Volume = v.Name, Type = v.Type, Format = v.Format, Path = current };
        step.Stamp(current, read.Stamp);
        step.VirtualSize = read.Info.VirtualSize;
        step.LogicalSectorSize = read.SectorSize;
        bool grows = bv.VirtualSize > read.Info.VirtualSize;
        if (grows)
            step.GrowTo = bv.VirtualSize;
        if (!read.HasParent)
        {
            step.Action = VolumeAction.Keep;
            step.Reason = "a standalone data volume depends on no base";
        }
        else if (bv.HoldsData && grows)
        {
            // Past its old end a re-parented child would show the larger base's data, not zeros:
            // the volume becomes standalone, then grows.
            step.Action = VolumeAction.Flatten;
            step.Source = current;
            step.Reason = "the new base's data volume is larger: the volume becomes a standalone file and grows, its content kept and the added range zeros";
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
}
