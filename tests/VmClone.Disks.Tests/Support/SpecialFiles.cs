using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using Xunit;

namespace VmClone.Disks.Tests.Support;

/// <summary>Named pipes, devices and the guard that an open of one ends, for the tests of what the engine refuses to open.</summary>
public static class SpecialFiles
{
    /// <summary>Long enough for any honest open on a loaded machine; an open that blocks on a pipe never ends.</summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(20);

    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MkFifo(string path, uint mode);

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int OpenFile(string path, int flags, int mode);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int CloseFile(int fd);

    [DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int Link(string existing, string newPath);

    /// <summary>Gives the file at <paramref name="existing"/> a second name (a hard link).</summary>
    public static void HardLink(string existing, string newPath)
    {
        if (Link(existing, newPath) != 0)
            throw new IOException($"link '{existing}' '{newPath}' failed: errno {Marshal.GetLastWin32Error()}");
    }

    [DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int RenameFile(string from, string to);

    /// <summary>rename(2): replaces <paramref name="to"/> at once, whatever it is; false when <paramref name="from"/> is gone.</summary>
    public static bool Rename(string from, string to) => RenameFile(from, to) == 0;

    /// <summary>Makes a named pipe (FIFO) at <paramref name="path"/>: opening it for reading waits for a writer.</summary>
    public static void MakeFifo(string path)
    {
        if (MkFifo(path, 0x1B6) != 0)
            throw new IOException($"mkfifo '{path}' failed: errno {Marshal.GetLastWin32Error()}");
    }

    /// <summary>
    /// Runs <paramref name="action"/> and returns the exception it throws, failing the test when it
    /// does not end within <see cref="HangGuard"/>. A reader stuck on one of <paramref name="fifos"/>
    /// is let go (a writer opens and closes the pipe) so that a failed test leaves no thread blocked.
    /// </summary>
    public static TException ThrowsWithin<TException>(Action action, params string[] fifos)
        where TException : Exception
    {
        Exception? thrown = RunWithin(action, fifos);
        Assert.NotNull(thrown);
        return Assert.IsAssignableFrom<TException>(thrown);
    }

    /// <summary>Runs <paramref name="action"/>, which must end within <see cref="HangGuard"/> (see <see cref="ThrowsWithin"/>); what it throws is thrown on.</summary>
    public static void EndsWithin(Action action, params string[] fifos)
    {
        if (RunWithin(action, fifos) is Exception thrown)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(thrown).Throw();
    }

    private static Exception? RunWithin(Action action, string[] fifos)
    {
        Task<Exception?> run = Task.Run(() =>
        {
            try
            {
                action();
                return null;
            }
            catch (Exception ex)
            {
                return (Exception?)ex;
            }
        });
        if (!run.Wait(HangGuard))
        {
            foreach (string fifo in fifos)
                Release(fifo);
            run.Wait(HangGuard);
            Assert.Fail($"The open did not end within {HangGuard.TotalSeconds} s: it blocked on a named pipe.");
        }
        return run.Result;
    }

    /// <summary>Lets a reader blocked in open() on the pipe go: a writer opens it without waiting and closes it (the reader then sees its end).</summary>
    private static void Release(string fifo)
    {
        int writeOnlyNonBlocking = 0x1 | (OperatingSystem.IsMacOS() ? 0x4 : 0x800); // O_WRONLY | O_NONBLOCK
        int fd = OpenFile(fifo, writeOnlyNonBlocking, 0);
        if (fd >= 0)
            CloseFile(fd);
    }
}

/// <summary>A fact for what only Linux guarantees (an open that cannot block, whatever happens to the path meanwhile); skipped elsewhere.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
            Skip = "only Linux opens without blocking and judges the open descriptor; elsewhere the path is checked before the open";
    }
}

/// <summary>A fact for what only Unix has (named pipes, /dev); skipped on Windows.</summary>
public sealed class UnixFactAttribute : FactAttribute
{
    public UnixFactAttribute()
    {
        if (OperatingSystem.IsWindows())
            Skip = "Windows has no named pipes in the file system nor /dev";
    }
}

/// <summary>A theory for what only Unix has (named pipes, /dev); skipped on Windows.</summary>
public sealed class UnixTheoryAttribute : TheoryAttribute
{
    public UnixTheoryAttribute()
    {
        if (OperatingSystem.IsWindows())
            Skip = "Windows has no named pipes in the file system nor /dev";
    }
}
