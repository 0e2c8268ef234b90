using System;
using System.IO;
using System.Runtime.InteropServices;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>What a directory entry is, without following it (lstat).</summary>
internal enum FileNodeKind
{
    Missing,
    RegularFile,
    Directory,
    /// <summary>A symbolic link (or, on Windows, any reparse point), whatever it leads to.</summary>
    Link,
    /// <summary>A FIFO, device or socket: opening one may block or read something that is not a file.</summary>
    Special,
}

/// <summary>
/// One lstat of a path: what the store checks before it opens, rewrites or deletes a file a
/// record names, so that a link or a FIFO put in a volume's place is never followed or opened.
/// </summary>
internal static class FileNode
{
    private static readonly bool IsWindows = RuntimeInformation.IsOSPlatform(OSPlatform.Windows);

    /// <summary>What <paramref name="path"/> is; a link is reported as a link, never as what it leads to.</summary>
    public static FileNodeKind Of(string path)
    {
        // The engine's own lstat (statx on Linux), which judges every disk file it opens.
        if (!IsWindows && RegularFile.KindOf(path, followLinks: false) is FileKind kind)
        {
            return kind switch
            {
                FileKind.RegularFile => FileNodeKind.RegularFile,
                FileKind.Folder => FileNodeKind.Directory,
                FileKind.SymbolicLink => FileNodeKind.Link,
                _ => FileNodeKind.Special,
            };
        }
        return FromAttributes(path);
    }

    /// <summary>From the attributes .NET reports (links carry ReparsePoint everywhere); a device on Windows says so.</summary>
    private static FileNodeKind FromAttributes(string path)
    {
        FileAttributes attributes;
        try
        {
            attributes = File.GetAttributes(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or IOException)
        {
            return FileNodeKind.Missing;
        }
        if ((attributes & FileAttributes.ReparsePoint) != 0)
            return FileNodeKind.Link;
        if ((attributes & FileAttributes.Directory) != 0)
            return FileNodeKind.Directory;
        if ((attributes & FileAttributes.Device) != 0)
            return FileNodeKind.Special;
        // Without lstat a FIFO or device looks like an empty file; no store file is empty.
        return !IsWindows && new FileInfo(path).Length == 0 ? FileNodeKind.Special : FileNodeKind.RegularFile;
    }
}
