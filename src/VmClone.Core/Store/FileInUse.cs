using System;
using System.IO;
using System.Runtime.InteropServices;

namespace VmClone.Core.Store;

/// <summary>
/// Whether another program has a file open in a way that forbids replacing it. Two probes:
/// an exclusive open (Windows share modes; on Linux and macOS flock, which .NET and the flock
/// command use), and on Linux a POSIX/OFD record-lock query (fcntl F_GETLK), which is how QEMU
/// locks the images of a running machine.
/// </summary>
internal static class FileInUse
{
    private const int FGetLk = 5;     // F_GETLK (Linux, every 64-bit ABI)
    private const short FWrLck = 1;   // F_WRLCK
    private const short FUnLck = 2;   // F_UNLCK

    private static readonly bool RecordLocks = RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && IntPtr.Size == 8;

    [StructLayout(LayoutKind.Sequential)]
    private struct Flock
    {
        public short Type;
        public short Whence;
        public long Start;
        public long Length;
        public int Pid;
    }

    [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static extern int Fcntl(IntPtr fd, int command, ref Flock lk);

    /// <summary>Null when nobody else holds the file; else a few words on who does.</summary>
    public static string? Holder(string path)
    {
        FileStream probe;
        try
        {
            probe = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None, 1, FileOptions.None);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
        catch (IOException ex)
        {
            return $"it is locked for exclusive use: {ex.Message}";
        }
        using (probe)
        {
            if (!RecordLocks)
                return null;
            var lk = new Flock { Type = FWrLck, Whence = 0, Start = 0, Length = 0 };
            try
            {
                if (Fcntl(probe.SafeFileHandle.DangerousGetHandle(), FGetLk, ref lk) != 0 || lk.Type == FUnLck)
                    return null;
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                return null;
            }
            return lk.Pid > 0 ? $"process {lk.Pid} holds a record lock on it" : "another process holds a record lock on it, as a running QEMU does";
        }
    }
}
