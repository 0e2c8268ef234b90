using System;
using System.Collections.Concurrent;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// What a plan's steps copy (<see cref="PlannedVolume.BytesToCopy"/>), measured when the plan is
/// made, from extent maps alone, and only for steps that copy content (import, flatten,
/// re-parent): a plan of children, resets and keeps opens no file for it.
/// </summary>
internal static class PlanSpace
{
    /// <summary>
    /// Sets <see cref="PlannedVolume.BytesToCopy"/> of every import, flatten and re-parent of
    /// <paramref name="plan"/>. <paramref name="openOptions"/> gives how a source is opened (as
    /// the step will open it); <paramref name="oldParentOf"/> the file a re-parented volume
    /// depends on now (the old base's volume).
    /// </summary>
    public static void Measure(StorePlan plan, Func<string, DiskOpenOptions?> openOptions, Func<PlannedVolume, string>? oldParentOf = null)
    {
        foreach (PlannedVolume step in plan.Volumes)
        {
            switch (step.Action)
            {
                case VolumeAction.Import:
                case VolumeAction.Flatten:
                    step.BytesToCopy = DiskOperations.CopyBound(step.Source!, step.Format, Qcow2Layout.CreateOptions(step.Format, step.Qcow2)?.BlockSizeBytes,
                        openOptions(step.Source!), CancellationToken.None) + GrowthBound(step);
                    break;
                case VolumeAction.Reparent when oldParentOf is not null:
                    step.BytesToCopy = ReparentBound(oldParentOf(step), step.Source!, step.Format, openOptions(step.Source!)) + GrowthBound(step);
                    break;
            }
        }
    }

    /// <summary>
    /// The re-parent bound depends on the two base volumes alone, not on the clone: a fleet
    /// rebase measures each pair of base files once (while neither changed: base files are read
    /// only), not once per clone.
    /// </summary>
    private static long ReparentBound(string oldParent, string newParent, DiskFormat format, DiskOpenOptions? options)
    {
        var key = (oldParent, FileStamp.Of(oldParent), newParent, FileStamp.Of(newParent), format);
        if (ReparentBounds.TryGetValue(key, out long known))
            return known;
        long bound = DiskOperations.ReparentBound(oldParent, newParent, format, options, CancellationToken.None);
        if (ReparentBounds.Count >= 256)
            ReparentBounds.Clear();
        ReparentBounds[key] = bound;
        return bound;
    }

    private static readonly ConcurrentDictionary<(string, FileStamp?, string, FileStamp?, DiskFormat), long> ReparentBounds = new();

    /// <summary>What a dynamic file's tables can take when it grows to <see cref="PlannedVolume.GrowTo"/>: one 4-byte entry per 4 KiB added is more than any format writes, and a MiB of round-up.</summary>
    private static long GrowthBound(PlannedVolume step) =>
        step.GrowTo is long grow && grow > step.VirtualSize ? (grow - step.VirtualSize) / 4096 + (1L << 20) : 0;
}
