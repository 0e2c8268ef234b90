using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// Whether another program has a file open in a way that forbids replacing it. Two probes:
/// an exclusive open (Windows share modes; on Linux and macOS flock, which .NET and the flock
/// command use) that never waits on a FIFO or a device in the file's place, and on Linux a
/// POSIX/OFD record-lock query (fcntl F_GETLK), which is how QEMU locks the images of a
/// running machine.
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

    /// <summary>
    /// The file opened with an exclusive flock, as FileStream with FileShare.None opens it, but
    /// so that it cannot block: on Linux without waiting (a FIFO swapped in after any check of the
    /// path would make a plain open wait for a writer forever), elsewhere after checking the kind.
    /// A FIFO, a device or a folder is refused (<see cref="DiskFormatException"/>).
    /// </summary>
    private static FileStream OpenExclusive(string full)
    {
        if (RegularFile.OpenOnLinux(full, FileAccess.Read, FileShare.None, refuseLink: false, out _) is FileStream opened)
            return opened;
        RegularFile.CheckBeforeOpen(full, refuseLink: false);
        return new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.None, 1, FileOptions.None);
    }

    /// <summary>
    /// The holder of <paramref name="path"/> that stays, or null. Readers (another command
    /// planning, Get-VmClone, Test-VmStore) hold a file for moments, and so does a process this
    /// one has just started (until it runs its program it holds a copy of every descriptor open
    /// here, locks included); a running machine holds its disks for hours. So a holder is asked
    /// about again every 0.1 s for up to 3 s, and only one still there is reported.
    /// </summary>
    public static string? LastingHolder(string path)
    {
        string? holder = Holder(path);
        for (DateTime until = DateTime.UtcNow.AddSeconds(3); holder is not null && DateTime.UtcNow < until;)
        {
            Thread.Sleep(100);
            holder = Holder(path);
        }
        return holder;
    }

    /// <summary>Null when nobody else holds the file; else a few words on who does.</summary>
    public static string? Holder(string path)
    {
        FileStream probe;
        try
        {
            probe = OpenExclusive(Path.GetFullPath(path));
        }
        catch (DiskFormatException)
        {
            // Not a regular file (a FIFO, a device, a folder): no disk is open on it, and opening
            // it for the probe must not wait on it; what it is, is for the caller's checks to say.
            return null;
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
            return $"a program that holds it locked ({ex.Message.TrimEnd('.', ' ')})";
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
