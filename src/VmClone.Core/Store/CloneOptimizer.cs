using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>What an optimize of a clone's volumes will do: the volume files it rewrites, nothing else.</summary>
public sealed class OptimizePlan
{
    internal OptimizePlan(string store, string clone, string baseName, string manifestDigest, IReadOnlyList<OptimizeStep> volumes)
    {
        Store = store;
        Clone = clone;
        Base = baseName;
        ManifestDigest = manifestDigest;
        Volumes = volumes;
    }

    public string Store { get; }

    public string Clone { get; }

    public string Base { get; }

    internal string ManifestDigest { get; }

    public IReadOnlyList<OptimizeStep> Volumes { get; }

    /// <summary>The plan as -WhatIf shows it.</summary>
    public string Describe() =>
        $"Optimize clone '{Clone}' in store '{Store}': " +
        string.Join("; ", Volumes.Select(v => $"volume '{v.Volume}' ({v.Type}, {v.Format}): drop the runs of '{v.File}' that read as its base reads them or as zeros"));
}

/// <summary>One volume file an optimize rewrites.</summary>
public sealed class OptimizeStep
{
    public string Volume { get; set; } = "";

    public VolumeType Type { get; set; }

    public DiskFormat Format { get; set; }

    /// <summary>Full path of the clone's volume file.</summary>
    public string File { get; set; } = "";
}

/// <summary>
/// Optimizes a clone's volume files under the clone's exclusive lock and its base's shared one:
/// each is rewritten compacted (<see cref="DiskOperations.Optimize"/>) and renamed over itself
/// in one step, keeping its parent link and identity, so the store's records stay true and no
/// journal is needed; a cut-off optimize leaves the old file whole and a hidden staging folder
/// beside it, which the next optimize of the clone or Test-VmStore -Repair deletes. A volume
/// another program holds open is refused (VolumeInUse) before anything is written.
/// </summary>
internal sealed class CloneOptimizer : Planner
{
    public CloneOptimizer(StoreCatalogue catalogue, StorePreconditions preconditions) : base(catalogue, preconditions) { }

    public OptimizePlan Plan(string cloneName, IEnumerable<string>? volumes)
    {
        StoreNames.Validate(cloneName, "clone");
        string manifestPath = Path.Combine(CloneFolder(cloneName), CloneFile);
        CloneManifest clone = LoadClone(cloneName);
        RequireHealthyClone(clone, dataOnly: false);
        string[]? asked = volumes?.ToArray();
        if (asked is not null)
        {
            foreach (string name in asked)
            {
                if (!clone.Volumes.Any(v => string.Equals(v.Name, name, StringComparison.OrdinalIgnoreCase)))
                    throw new StoreException(StoreErrorIds.VolumeNotFound, VmCloneErrorKind.NotFound,
                        $"Clone '{cloneName}' has no volume '{name}'; its volumes are {string.Join(", ", clone.Volumes.Select(v => v.Name))}.", cloneName);
            }
        }
        var steps = new List<OptimizeStep>();
        foreach (CloneVolumeManifest v in clone.Volumes)
        {
            if (asked is not null && !asked.Any(a => string.Equals(a, v.Name, StringComparison.OrdinalIgnoreCase)))
                continue;
            string file = Path.Combine(CloneFolder(clone.Name), v.File);
            RefuseUnsafe(Boundary.CheckFile(CloneFolder(clone.Name), v.File), file, cloneName);
            steps.Add(new OptimizeStep { Volume = v.Name, Type = v.Type, Format = v.Format, File = file });
        }
        return new OptimizePlan(Root, clone.Name, clone.Base, ManifestDigest(manifestPath), steps);
    }

    public IReadOnlyList<VmDiskOptimization> Execute(OptimizePlan plan, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        if (!string.Equals(plan.Store, Root, StringComparison.Ordinal))
            throw new ArgumentException($"The plan is for store '{plan.Store}', not '{Root}'.", nameof(plan));
        var locks = new[] { new LockRequest("clone", plan.Clone, exclusive: true), new LockRequest("base", plan.Base, exclusive: false) };
        using (Catalogue.StoreLock(exclusive: false, cancellationToken))
        using (StoreLocks.Acquire(Root, locks, $"Optimize clone '{plan.Clone}'", cancellationToken))
        {
            string folder = CloneFolder(plan.Clone);
            string manifestPath = Path.Combine(folder, CloneFile);
            if (!File.Exists(manifestPath) || ManifestDigest(manifestPath) != plan.ManifestDigest)
                throw new StoreException(StoreErrorIds.CloneChanged, VmCloneErrorKind.InUse,
                    $"Clone '{plan.Clone}' was not optimized: another command changed it after the optimize was planned. Run the command again.", plan.Clone);
            RemoveStaging(folder);
            if (PlanExecutor.FindHolder(plan.Volumes.Select(v => v.File)) is (string file, string holder))
                throw new StoreException(StoreErrorIds.VolumeInUse, VmCloneErrorKind.InUse,
                    $"Clone '{plan.Clone}' was not optimized: its file '{file}' is open in another program ({holder}). Shut the virtual machine down and run the command again.", plan.Clone);
            var results = new List<VmDiskOptimization>();
            foreach (OptimizeStep step in plan.Volumes)
            {
                cancellationToken.ThrowIfCancellationRequested();
                RefuseUnsafe(Boundary.CheckPath(step.File), step.File, plan.Clone);
                results.Add(DiskOperations.OptimizeFile(step.File, OpenOptions, progress, cancellationToken));
            }
            return results;
        }
    }

    private static void RefuseUnsafe(BoundaryProblem problem, string file, string clone)
    {
        if (problem != BoundaryProblem.None)
            throw new StoreException(StoreBoundary.ErrorId(problem), VmCloneErrorKind.InvalidData,
                $"Clone '{clone}' was not optimized: {StoreBoundary.Describe(problem, file)}. Run Test-VmStore.", clone);
    }

    /// <summary>What cut-off optimizes of the clone's volumes left in its folder.</summary>
    private static void RemoveStaging(string folder)
    {
        foreach (string dir in Directory.EnumerateDirectories(folder, DiskOperations.OptimizeStagingPrefix + "*"))
            DeleteFolder(dir);
    }
}
