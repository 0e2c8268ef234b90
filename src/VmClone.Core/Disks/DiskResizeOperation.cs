using System.Collections.Generic;
using System.IO;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.Core.Disks;

public static partial class DiskOperations
{
    /// <summary>
    /// What a resize of <paramref name="path"/> would start from, without writing: the disk's
    /// size now and the smallest it can take. Refused as the resize would be
    /// for a store volume (DiskInStore).
    /// </summary>
    public static (long CurrentSize, long MinimumSize) PlanResize(string path, DiskOpenOptions? options = null)
    {
        string full = Path.GetFullPath(path);
        RefuseStoreVolume(full);
        using DiskLayer layer = VirtualDisk.OpenLayer(full, FileAccess.Read, options?.Format);
        return (layer.VirtualSize, DiskResize.MinimumSize(full, options));
    }

    /// <summary>
    /// Grows a disk file to <paramref name="sizeBytes"/>, or shrinks it when nothing is stored past
    /// the new end (ShrinkBelowData otherwise, naming the smallest size), in place; with
    /// <paramref name="toMinimum"/> the size is the smallest the disk can take. A differencing
    /// disk grows only up to its parent's size (ChildPastParent: grow the parent first). Refused,
    /// nothing written: a store volume (DiskInStore: a larger base and Invoke-VmRebase grow those),
    /// a file another process holds open (DiskInUse). Returns the disk's description after.
    /// </summary>
    public static VmDiskInfo Resize(string path, long? sizeBytes, bool toMinimum, DiskOpenOptions? options = null)
    {
        string full = Path.GetFullPath(path);
        RefuseStoreVolume(full);
        if (FileNode.Of(full) == FileNodeKind.RegularFile && FileInUse.LastingHolder(full) is string holder)
            throw new VmCloneException(StoreErrorIds.DiskInUse, VmCloneErrorKind.InUse,
                $"'{full}' is in use by {holder}; it was not resized. Stop the machine using it first.", full);
        long size = toMinimum ? DiskResize.MinimumSize(full, options) : sizeBytes ?? throw new System.ArgumentNullException(nameof(sizeBytes));
        using System.IDisposable? room = GrowthRoom(full, size, options);
        try
        {
            DiskResize.Resize(full, size, options);
        }
        catch (DiskResizeException ex)
        {
            (string id, VmCloneErrorKind kind) = ex.Problem switch
            {
                ResizeProblem.DataPastEnd => (StoreErrorIds.ShrinkBelowData, VmCloneErrorKind.InvalidOperation),
                ResizeProblem.PastParent => (StoreErrorIds.ChildPastParent, VmCloneErrorKind.InvalidOperation),
                ResizeProblem.Unsupported => (StoreErrorIds.ResizeNotSupported, VmCloneErrorKind.InvalidOperation),
                _ => (StoreErrorIds.InvalidArgument, VmCloneErrorKind.InvalidArgument),
            };
            throw new VmCloneException(id, kind, ex.Message, full, ex);
        }
        IReadOnlyList<VmDiskInfo> info = Inspect(full, wholeChain: false, options);
        return info[0];
    }

    /// <summary>A fixed or raw disk that grows may write its added range: that much must fit where it lies (DiskFull, nothing written). A sparse one grows its tables only.</summary>
    private static System.IDisposable? GrowthRoom(string full, long size, DiskOpenOptions? options)
    {
        long added;
        using (DiskLayer layer = VirtualDisk.OpenLayer(full, FileAccess.Read, options?.Format))
        {
            if (!(layer.Format == DiskFormat.Raw || layer.Type == DiskType.Fixed) || size <= layer.VirtualSize)
                return null;
            added = size - layer.VirtualSize;
        }
        return ReserveFor(full, added, $"growing '{full}' to {Format.Bytes(size)}");
    }

    private static void RefuseStoreVolume(string full)
    {
        if (StoreOfFile.FindRoot(full) is string root)
            throw new VmCloneException(StoreErrorIds.DiskInStore, VmCloneErrorKind.InvalidOperation,
                $"'{full}' lies in store '{root}'; its volumes are changed by the store's commands. To give clones a larger volume, " +
                "make a new base whose volumes are as large (New-VmBase) and move the clones onto it (Invoke-VmRebase): data volumes grow with their content kept.", full);
    }
}
