using System;
using System.IO;
using System.Runtime.InteropServices;

namespace VmClone.Core.Store;

/// <summary>
/// Makes the store's lock files (0600) and their folder (0700) accessible to their owner only.
/// A shared lock needs nothing but a read open, so a lock file anyone can read lets anyone hold
/// an operation after it was planned; only the administrator running VmClone may take them.
/// Nothing to do on Windows, where the folder's ACL (inherited from the store) decides.
/// </summary>
internal static class OwnerOnly
{
    private static readonly bool IsWindows = RuntimeInformation.IsOSPlatform(OSPlatform.Windows);

    private const int FileMode = 0x180;   // 0600
    private const int FolderMode = 0x1C0; // 0700

    // The runtime's native shim, as File.SetUnixFileMode (not in netstandard2.0) uses it.
    [DllImport("libSystem.Native", EntryPoint = "SystemNative_FChMod", SetLastError = true)]
    private static extern int FChMod(IntPtr fd, int mode);

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_ChMod", SetLastError = true)]
    private static extern int ChMod(string path, int mode);

    private static bool _unavailable;

    /// <summary>Restricts the open lock file to its owner (through its handle: no path to swap).</summary>
    public static void Restrict(FileStream file)
    {
        if (IsWindows || _unavailable)
            return;
        try
        {
            FChMod(file.SafeFileHandle.DangerousGetHandle(), FileMode);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            _unavailable = true;
        }
    }

    /// <summary>Restricts the lock folder to its owner.</summary>
    public static void RestrictFolder(string folder)
    {
        if (IsWindows || _unavailable)
            return;
        try
        {
            ChMod(folder, FolderMode);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            _unavailable = true;
        }
    }
}
