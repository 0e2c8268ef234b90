using System;
using System.IO;
using System.Reflection;
using System.Runtime.InteropServices;

namespace VmClone.Disks;

/// <summary>
/// The read-only mark of a disk file, honoured by the engine itself. The operating system does
/// not stop root (or an administrator with backup rights) from opening a read-only file for
/// writing; a base's files must never be written, so the engine refuses them whoever asks.
/// </summary>
public static class ReadOnlyFile
{
    // S_IWUSR | S_IWGRP | S_IWOTH
    private const int AnyWriteBit = 0x80 | 0x10 | 0x02;

    private static readonly MethodInfo? GetUnixFileMode =
        RuntimeInformation.IsOSPlatform(OSPlatform.Windows)
            ? null
            : typeof(File).GetMethod("GetUnixFileMode", new[] { typeof(string) });

    /// <summary>
    /// True when the file is marked read-only: the ReadOnly attribute on Windows; on Unix no
    /// write bit for owner, group or other (what File.SetAttributes(ReadOnly) leaves). A missing
    /// file is not read-only (opening it reports that it is missing).
    /// </summary>
    public static bool IsMarked(string path)
    {
        try
        {
            if (GetUnixFileMode is not null)
            {
                // FileAttributes.ReadOnly on Unix depends on who asks (root's view differs);
                // the mode bits do not.
                int mode = Convert.ToInt32(GetUnixFileMode.Invoke(null, new object[] { path }));
                return (mode & AnyWriteBit) == 0;
            }
            return (File.GetAttributes(path) & FileAttributes.ReadOnly) != 0;
        }
        catch (TargetInvocationException ex) when (ex.InnerException is FileNotFoundException or DirectoryNotFoundException)
        {
            return false;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return false;
        }
    }

    /// <summary>Marks a file read-only (Unix: clears every write bit) or clears the mark (Unix: gives the owner write).</summary>
    public static void Mark(string path, bool readOnly)
    {
        FileAttributes attributes = File.GetAttributes(path);
        File.SetAttributes(path, readOnly ? attributes | FileAttributes.ReadOnly : attributes & ~FileAttributes.ReadOnly);
    }

    /// <summary>Throws when <paramref name="path"/> is marked read-only and is about to be opened for writing.</summary>
    internal static void RefuseWrite(string path)
    {
        if (IsMarked(path))
            throw new VirtualDiskException(path,
                $"Disk file '{path}' is marked read-only; VmClone never opens it for writing (a base's volumes are read only because clones depend on them). " +
                "Open it read-only, or clear the mark first if you are sure nothing depends on it.");
    }
}
