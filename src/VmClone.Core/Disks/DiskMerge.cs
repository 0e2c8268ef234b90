using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Disks;
using VmClone.Core.Store;

namespace VmClone.Core.Disks;

public static partial class DiskOperations
{
    private const string MergeMarkerSuffix = ".vmclone-merging";

    /// <summary>
    /// Commits a child's content into its parent (or a further ancestor), like Hyper-V's
    /// Merge-VHD: afterwards the ancestor reads exactly what the child showed, and the child and
    /// any layers between are deleted. Refused when the ancestor has other children (they would
    /// be corrupted) unless <paramref name="force"/>.
    /// </summary>
    /// <remarks>
    /// While the merge runs, every range written into the ancestor is still hidden by the layers
    /// above it, so what the child shows never changes: a merge cut off at any point is finished
    /// by running it again. A marker file next to the child records the merge in progress, so the
    /// rerun accepts the ancestor's changed identity.
    /// </remarks>
    public static VmDiskInfo Merge(string childPath, string? destinationPath, bool force, IProgress<OperationProgress>? progress, CancellationToken cancellationToken) =>
        Merge(childPath, destinationPath, force, null, progress, cancellationToken);

    /// <summary>
    /// <see cref="Merge(string, string?, bool, IProgress{OperationProgress}?, CancellationToken)"/> with
    /// the caller's open options: with <see cref="DiskOpenOptions.AllowedParentRoot"/> the chain
    /// (and so the ancestor written to) is followed only inside that folder.
    /// </summary>
    public static VmDiskInfo Merge(string childPath, string? destinationPath, bool force, DiskOpenOptions? options, IProgress<OperationProgress>? progress, CancellationToken cancellationToken) =>
        Merge(childPath, destinationPath, force, keepChild: false, options, progress, cancellationToken);

    /// <summary>
    /// <see cref="Merge(string, string?, bool, DiskOpenOptions?, IProgress{OperationProgress}?, CancellationToken)"/>;
    /// with <paramref name="keepChild"/> the child is not deleted but made a new, empty child of
    /// the ancestor it was merged into (what qemu-img commit does unless told -d), in its own
    /// format and under its own name, so a VM attached to it keeps its disk; the layers between
    /// are deleted as always. Cut off before that, the merge is finished by running it again.
    /// </summary>
    public static VmDiskInfo Merge(string childPath, string? destinationPath, bool force, bool keepChild, DiskOpenOptions? options, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        string child = Path.GetFullPath(childPath);
        string marker = child + MergeMarkerSuffix;
        string? resumedTarget = MergeMarker.Read(marker, child);
        options ??= new DiskOpenOptions();
        var chainOptions = new DiskOpenOptions
        {
            AllowedParentRoot = options.AllowedParentRoot,
            MaxChainDepth = options.MaxChainDepth,
            IgnoreParentIdentityMismatch = resumedTarget is not null,
        };

        List<string> chain;
        DiskFormat childFormat;
        using (VirtualDisk view = VirtualDisk.Open(child, FileAccess.Read, chainOptions))
        {
            chain = view.Layers.Select(l => l.Path).ToList();
            childFormat = view.Top.Format;
        }
        if (chain.Count < 2)
            throw new VmCloneException(StoreErrorIds.DiskHasNoParent, VmCloneErrorKind.InvalidArgument, $"'{child}' has no parent to merge into.", child);

        int t = 1;
        if (destinationPath is not null)
        {
            string destination = Path.GetFullPath(destinationPath);
            t = chain.FindIndex(p => PathUtil.SamePath(p, destination));
            if (t <= 0)
                throw new VmCloneException(StoreErrorIds.NotAnAncestor, VmCloneErrorKind.InvalidArgument,
                    $"'{destination}' is not an ancestor of '{child}'. Its chain is: {string.Join(" -> ", chain)}.", destination);
        }
        string targetPath = chain[t];
        if (resumedTarget is not null && !PathUtil.SamePath(resumedTarget, targetPath))
            throw new VmCloneException(StoreErrorIds.MergeInProgress, VmCloneErrorKind.InvalidOperation,
                $"A merge of '{child}' into '{resumedTarget}' was cut off; finish it first (Merge-VmDisk -Path '{child}' -DestinationPath '{resumedTarget}').", child);

        if (!force)
        {
            var others = FindChildren(targetPath, chain.Take(t + 1).Select(p => Path.GetDirectoryName(p)!).Distinct(), exclude: chain.Take(t));
            if (others.Count > 0)
                throw new VmCloneException(StoreErrorIds.MergeTargetHasChildren, VmCloneErrorKind.InUse,
                    $"'{targetPath}' has other children that merging would corrupt: {string.Join(", ", others.Select(o => $"'{o}'"))}. " +
                    "Merge into a disk nothing else depends on, or use -Force if those children are to be discarded.", targetPath);
        }

        // Before the marker (the first thing written): what the layers above add to the target must fit.
        using IDisposable room = ReserveFor(targetPath, MergeBound(child, t, chainOptions, cancellationToken), $"merging '{child}' into '{targetPath}'");
        File.WriteAllText(marker, targetPath);
        // Until the first range is copied the target is as it was: a merge refused before that
        // (the target read-only, in use, swapped) takes its new marker away again, or the marker
        // would claim a merge in progress that never started.
        bool copying = false;
        try
        {
            using VirtualDisk target = VirtualDisk.Open(targetPath, FileAccess.ReadWrite, chainOptions);
            var upper = new List<DiskLayer>();
            try
            {
                for (int i = 0; i < t; i++)
                    upper.Add(VirtualDisk.OpenLayer(chain[i], FileAccess.Read));
                CheckReopened(upper, target, options, chainOptions.IgnoreParentIdentityMismatch);
                for (int i = 0; i < t; i++)
                    upper[i].Parent = i + 1 < t ? upper[i + 1] : target.Top;
                // The view shares the target's open layers, so it reads what is being written.
                VirtualDisk view = VirtualDisk.FromLayers(upper.Concat(target.Layers).ToList());
                copying = true;
                CopyAllocated(view, target.Content, writeZeros: true, $"Merging {Path.GetFileName(child)} into {Path.GetFileName(targetPath)}",
                    progress, cancellationToken, include: e => e.Level >= 0 && e.Level < t);
                target.Flush();
            }
            finally
            {
                foreach (DiskLayer layer in upper)
                    layer.Dispose();
            }
        }
        catch when (!copying && resumedTarget is null)
        {
            TryDelete(marker);
            throw;
        }
        if (keepChild)
            KeepAsEmptyChild(child, targetPath, childFormat, options);
        for (int i = keepChild ? 1 : 0; i < t; i++)
            File.Delete(chain[i]);
        File.Delete(marker);

        using VirtualDisk merged = VirtualDisk.Open(targetPath, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = options.AllowedParentRoot, MaxChainDepth = options.MaxChainDepth });
        return Describe(merged.Top, 0, merged.Layers.Count, null);
    }

    /// <summary>
    /// Makes <paramref name="child"/> a new, empty child of the merged <paramref name="targetPath"/>
    /// (which now holds everything it showed): rewritten in place where the system allows, else
    /// written beside it and moved over it, so the name never stands for a half-written file.
    /// It records the target's new identity, as any child made over it now would.
    /// </summary>
    private static void KeepAsEmptyChild(string child, string targetPath, DiskFormat format, DiskOpenOptions options)
    {
        using VirtualDisk target = VirtualDisk.Open(targetPath, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = options.AllowedParentRoot, MaxChainDepth = options.MaxChainDepth });
        var create = new DiskCreateOptions { Format = format };
        if (VirtualDisk.TryRecreateDifferencingFile(child, target, create, options))
            return;
        string fresh = Path.Combine(Path.GetDirectoryName(child) ?? ".", ".vmclone-kept-" + Guid.NewGuid().ToString("N").Substring(0, 12) + Path.GetExtension(child));
        try
        {
            VirtualDisk.CreateDifferencingFile(fresh, target, create, options);
            // One rename: cut off, the name holds the old child or the new one, never neither.
            File.Replace(fresh, child, null);
        }
        finally
        {
            TryDelete(fresh);
        }
    }

    /// <summary>
    /// The layers above the target and the target itself were opened again by the paths the
    /// chain was first followed along: each must still lie inside the caller's root (a layer
    /// swapped for a link leading out since is refused before anything is written) and, unless
    /// a cut-off merge is being finished, still be the parent its child names.
    /// </summary>
    private static void CheckReopened(List<DiskLayer> upper, VirtualDisk target, DiskOpenOptions options, bool acceptMismatch)
    {
        for (int i = 1; i < upper.Count; i++)
            ParentResolver.RefuseOutsideRoot(upper[i - 1].Path, upper[i].Path, options);
        ParentResolver.RefuseOutsideRoot(upper[upper.Count - 1].Path, target.Top, options);
        if (acceptMismatch)
            return;
        for (int i = 0; i < upper.Count; i++)
        {
            DiskLayer parent = i + 1 < upper.Count ? upper[i + 1] : target.Top;
            if (upper[i].ParentReference is not ParentReference reference || !reference.Accepts(parent.Identity))
                throw ParentResolver.ModifiedParent(upper[i], parent.Path, parent.Identity);
        }
    }

    /// <summary>
    /// Disk files in <paramref name="folders"/> whose stored parent path leads to
    /// <paramref name="parentPath"/>. Files that cannot be read are ignored.
    /// </summary>
    public static IReadOnlyList<string> FindChildren(string parentPath, IEnumerable<string> folders, IEnumerable<string>? exclude = null)
    {
        string parent = Path.GetFullPath(parentPath);
        var excluded = (exclude ?? Enumerable.Empty<string>()).Select(Path.GetFullPath).ToList();
        var found = new List<string>();
        foreach (string folder in folders.Distinct())
        {
            if (!Directory.Exists(folder))
                continue;
            foreach (string file in Directory.EnumerateFiles(folder))
            {
                if (DiskFormats.FromExtension(file) is not { CanHaveParent: true })
                    continue;
                if (PathUtil.SamePath(file, parent) || excluded.Any(e => PathUtil.SamePath(e, file)))
                    continue;
                try
                {
                    using DiskLayer layer = VirtualDisk.OpenLayer(file, FileAccess.Read);
                    ParentReference? reference = layer.ParentReference;
                    if (reference is null)
                        continue;
                    string dir = Path.GetDirectoryName(layer.Path) ?? ".";
                    if (reference.Candidates.Any(c => PathUtil.Localize(c, dir) is string local && PathUtil.SamePath(local, parent)))
                        found.Add(layer.Path);
                }
                catch (VirtualDiskException)
                {
                }
            }
        }
        return found;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
