using System;
using System.IO;
using System.Runtime.InteropServices;

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

    // The runtime's own native shim (every .NET on Linux and macOS loads it): its FileStatus is
    // the same on every platform, unlike libc's struct stat. Mode is the second int32.
    [DllImport("libSystem.Native", EntryPoint = "SystemNative_LStat", SetLastError = true)]
    private static extern int LStat(string path, byte[] status);

    private const int ModeOffset = 4;
    private const int TypeMask = 0xF000;
    private const int TypeRegular = 0x8000;
    private const int TypeDirectory = 0x4000;
    private const int TypeLink = 0xA000;

    private static bool _noShim;

    /// <summary>What <paramref name="path"/> is; a link is reported as a link, never as what it leads to.</summary>
    public static FileNodeKind Of(string path)
    {
        if (!IsWindows && !_noShim)
        {
            try
            {
                byte[] status = new byte[256];
                if (LStat(path, status) != 0)
                    return FileNodeKind.Missing;
                return (BitConverter.ToInt32(status, ModeOffset) & TypeMask) switch
                {
                    TypeRegular => FileNodeKind.RegularFile,
                    TypeDirectory => FileNodeKind.Directory,
                    TypeLink => FileNodeKind.Link,
                    _ => FileNodeKind.Special,
                };
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                _noShim = true;
            }
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
