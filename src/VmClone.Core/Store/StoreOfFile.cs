using System.IO;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// The store a disk file lies in, for the disk-level commands: a file inside a store is opened
/// with the store's boundary (parents only inside the store, the file itself a regular file that
/// really lies there), whichever command opens it.
/// </summary>
public static class StoreOfFile
{
    /// <summary>The root of the store <paramref name="path"/> lies in (the nearest folder above it holding store.json), or null.</summary>
    public static string? FindRoot(string path)
    {
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        while (!string.IsNullOrEmpty(folder))
        {
            if (File.Exists(Path.Combine(folder, StoreLayout.StoreFile)))
                return folder;
            folder = Path.GetDirectoryName(folder);
        }
        return null;
    }

    /// <summary>
    /// Applies the boundary of the store <paramref name="path"/> lies in to <paramref name="options"/>
    /// (and returns them): outside a store nothing changes; inside one, parents are only followed
    /// inside the store (<see cref="DiskOpenOptions.AllowedParentRoot"/>, unless the caller set a
    /// narrower one), and a file that is a link leading out of the store, or a FIFO, device or
    /// socket, is refused (VolumeOutsideStore, VolumeNotRegularFile) before it is opened.
    /// </summary>
    public static DiskOpenOptions Apply(string path, DiskOpenOptions options)
    {
        string? root = FindRoot(path);
        if (root is null)
            return options;
        RequireInside(path, root);
        options.AllowedParentRoot ??= root;
        return options;
    }

    /// <summary>Refuses <paramref name="path"/> (in the store at <paramref name="root"/>) when it is not a regular file whose real path is inside the store.</summary>
    internal static void RequireInside(string path, string root)
    {
        string full = Path.GetFullPath(path);
        FileNodeKind kind = FileNode.Of(full);
        if (kind is FileNodeKind.Special or FileNodeKind.Directory)
            throw new StoreException(StoreErrorIds.VolumeNotRegularFile, VmCloneErrorKind.InvalidData,
                $"'{full}' in store '{root}' is not a regular file (a FIFO, device, socket or folder); it was not opened.", full);
        if (kind != FileNodeKind.Missing && !PathUtil.IsReallyUnder(full, root))
            throw new StoreException(StoreErrorIds.VolumeOutsideStore, VmCloneErrorKind.InvalidData,
                $"'{full}' lies in store '{root}' but is a symbolic link (or lies in a linked folder) leading to '{PathUtil.RealPath(full) ?? "a link loop"}', outside the store; it was not opened.", full);
    }
}
