using System;
using System.IO;

namespace VmClone.Core.Store;

/// <summary>
/// What a plan decided, checked again once the operation's locks are held and before anything
/// is written: between planning and the locks (however long a lock stalls) someone who can write
/// a clone folder may have swapped a file. Every file the plan reads from or writes to inside the
/// store must still be a regular file of its own folder (no link anywhere on the way), and every
/// file planning looked at must still have the size and write time it had then.
/// </summary>
internal static class PlanVerification
{
    /// <summary>Throws (naming the file: the boundary's error id, or CloneChanged) when the plan no longer holds; touches nothing.</summary>
    public static void Verify(StoreBoundary boundary, StorePlan plan)
    {
        foreach (PlannedVolume step in plan.Volumes)
        {
            if (step.Action == VolumeAction.Keep)
                continue;
            // The file written (or rewritten in place, or re-parented) and the one superseded. A
            // volume flattened into a file of another format reads the one it supersedes (its
            // source, checked below); the new name does not exist yet.
            Check(boundary, plan, step, step.Path, missingAllowed: step.Action is not (VolumeAction.Reparent or VolumeAction.Flatten) || step.Supersedes is not null);
            if (step.Supersedes is string old)
                Check(boundary, plan, step, old, missingAllowed: true);
            // What it reads: a base volume (a new child's parent) or a clone volume. A source
            // outside the store is the administrator's own file given to New-VmBase.
            if (step.Source is string source && VmStore.IsUnder(source, boundary.Root))
                Check(boundary, plan, step, source, missingAllowed: false);
            if (step.StampedFile is string stamped && !Nullable.Equals(FileStamp.Of(stamped), step.PlannedStamp))
                throw new StoreException(StoreErrorIds.CloneChanged, VmCloneErrorKind.InUse,
                    $"The {plan.SubjectKind} '{plan.Subject}' was not changed: '{stamped}' (volume '{step.Volume}') was replaced or written since this operation was planned. Run the command again.", plan.Subject);
        }
    }

    private static void Check(StoreBoundary boundary, StorePlan plan, PlannedVolume step, string path, bool missingAllowed)
    {
        BoundaryProblem problem = boundary.CheckPath(path);
        if (problem == BoundaryProblem.None || (problem == BoundaryProblem.Missing && missingAllowed))
            return;
        throw new StoreException(StoreBoundary.ErrorId(problem), problem == BoundaryProblem.Missing ? VmCloneErrorKind.InUse : VmCloneErrorKind.InvalidData,
            $"The {plan.SubjectKind} '{plan.Subject}' was not changed: volume '{step.Volume}': {StoreBoundary.Describe(problem, Path.GetFullPath(path))}" +
            (problem == BoundaryProblem.Missing ? " (it was there when the operation was planned). Run the command again." : ". Run Test-VmStore."), plan.Subject);
    }
}
