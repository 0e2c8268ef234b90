using System.IO;
using System.Runtime.InteropServices;

namespace VmClone.Core.Store;

/// <summary>
/// Deletes a folder of the store and everything in it without ever following a link: a link
/// (to a file or to a folder, inside the folder or the folder itself) is deleted as a link, its
/// target is neither entered, nor changed, nor deleted. Someone who can write a clone folder can
/// put links in it; removing the clone must not reach through them.
/// </summary>
internal static class FolderRemoval
{
    private static readonly bool IsWindows = RuntimeInformation.IsOSPlatform(OSPlatform.Windows);

    /// <summary>Deletes <paramref name="path"/> (a folder, a file or a link) and, for a real folder, everything in it. Nothing there: nothing done.</summary>
    public static void Delete(string path)
    {
        switch (FileNode.Of(path))
        {
            case FileNodeKind.Missing:
                return;
            case FileNodeKind.Directory:
                foreach (string entry in Directory.EnumerateFileSystemEntries(path))
                    Delete(entry);
                Directory.Delete(path, recursive: false);
                return;
            case FileNodeKind.Link:
                DeleteLink(path);
                return;
            default:
                // On Unix a read-only file is deleted without changing its mode (only the folder
                // must be writable); Windows refuses to delete it until the mark is cleared, and
                // there the entry is known not to be a link.
                if (IsWindows)
                    File.SetAttributes(path, FileAttributes.Normal);
                File.Delete(path);
                return;
        }
    }

    private static void DeleteLink(string path)
    {
        // A Windows link to a folder (or a junction) is removed as a folder; RemoveDirectory
        // removes the link, not what it leads to. Everywhere else unlink removes any link.
        if (IsWindows && (File.GetAttributes(path) & FileAttributes.Directory) != 0)
            Directory.Delete(path, recursive: false);
        else
            File.Delete(path);
    }
}
