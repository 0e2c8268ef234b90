using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;

namespace VmClone.Core;

/// <summary>
/// The free space of the file system that holds a folder, and what commands running in this
/// process have set aside of it: a command that copies checks, before it writes anything, that
/// what it will write fits (<see cref="Reserve"/>), and holds that much until it ends, so two
/// commands started side by side (a fleet rebase in parallel) never both count on the same bytes.
/// </summary>
public static class FreeSpace
{
    /// <summary>What a command needs besides the bytes its steps copy: manifests, journals, staging folders, new metadata.</summary>
    public const long Margin = 2L << 20;

    private static readonly object Gate = new();
    private static readonly Dictionary<string, long> Reserved = new(StringComparer.Ordinal);
    private static readonly AsyncLocal<Pretence?> Pretended = new();

    /// <summary>A pretended file system: how much is free, and what is set aside of it (apart from the real ones, so that tests running side by side do not see each other's).</summary>
    private sealed class Pretence
    {
        public Pretence(Func<string, long> available) => Available = available;

        public Func<string, long> Available { get; }

        public Dictionary<string, long> Reserved { get; } = new(StringComparer.Ordinal);
    }

    /// <summary>
    /// Tests: until the result is disposed, <see cref="Available"/> answers what
    /// <paramref name="available"/> says for a folder (for this flow of execution and the
    /// parallel work it starts), so a nearly full disk is shown without filling one. What is set
    /// aside meanwhile is counted on the pretended disk alone.
    /// </summary>
    internal static IDisposable Pretend(Func<string, long> available)
    {
        Pretence? before = Pretended.Value;
        Pretended.Value = new Pretence(available);
        return new Release(() => Pretended.Value = before);
    }

    /// <summary>Bytes an unprivileged writer may still write on the file system holding <paramref name="folder"/> (which need not exist yet: its nearest existing ancestor is asked).</summary>
    public static long Available(string folder)
    {
        string existing = ExistingAncestor(folder);
        if (Pretended.Value is Pretence pretend)
            return pretend.Available(existing);
        // On Linux and macOS DriveInfo takes any path and asks statvfs of it, which answers for
        // the mount that holds it; on Windows it takes the path's drive.
        string name = Environment.OSVersion.Platform == PlatformID.Win32NT ? Path.GetPathRoot(existing)! : existing;
        return new DriveInfo(name).AvailableFreeSpace;
    }

    /// <summary>
    /// Sets <paramref name="bytes"/> aside on the file system holding <paramref name="folder"/>
    /// until the result is disposed, after checking that they fit in what is free less what other
    /// commands of this process set aside there. When they do not, throws what
    /// <paramref name="refuse"/> makes of (the folder, bytes needed, bytes free), having set nothing aside.
    /// </summary>
    public static IDisposable Reserve(string folder, long bytes, Func<SpaceShortage, Exception> refuse)
    {
        string full = Path.GetFullPath(folder);
        string key = FileSystemOf(ExistingAncestor(full));
        Dictionary<string, long> reserved = Pretended.Value?.Reserved ?? Reserved;
        lock (Gate)
        {
            long free = Available(full);
            reserved.TryGetValue(key, out long others);
            long left = Math.Max(0, free - others);
            if (bytes > left)
                throw refuse(new SpaceShortage(full, bytes, left, others));
            reserved[key] = others + bytes;
        }
        return new Release(() =>
        {
            lock (Gate)
            {
                long now = reserved[key] - bytes;
                if (now <= 0)
                    reserved.Remove(key);
                else
                    reserved[key] = now;
            }
        });
    }

    /// <summary>The folder itself when it exists, else its nearest existing ancestor.</summary>
    internal static string ExistingAncestor(string folder)
    {
        string? at = Path.GetFullPath(folder);
        while (at is not null && !Directory.Exists(at))
            at = Path.GetDirectoryName(at);
        return at ?? Path.GetPathRoot(Path.GetFullPath(folder))!;
    }

    /// <summary>True when <paramref name="a"/> and <paramref name="b"/> (or their nearest existing folders) lie on one mounted file system.</summary>
    public static bool SameFileSystem(string a, string b) =>
        string.Equals(FileSystemOf(ExistingAncestor(Path.GetFullPath(a))), FileSystemOf(ExistingAncestor(Path.GetFullPath(b))), StringComparison.Ordinal);

    /// <summary>The mount point (Windows: the drive) holding <paramref name="existing"/>: what reservations are counted by.</summary>
    private static string FileSystemOf(string existing)
    {
        try
        {
            StringComparison cmp = Environment.OSVersion.Platform == PlatformID.Win32NT ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
            string? best = DriveInfo.GetDrives().Select(d => d.RootDirectory.FullName)
                .Where(root => IsUnderOrSame(existing, root, cmp))
                .OrderByDescending(root => root.Length).FirstOrDefault();
            return best ?? Path.GetPathRoot(existing)!;
        }
        catch (IOException)
        {
            return Path.GetPathRoot(existing)!;
        }
        catch (UnauthorizedAccessException)
        {
            return Path.GetPathRoot(existing)!;
        }
    }

    private static bool IsUnderOrSame(string path, string root, StringComparison cmp)
    {
        string r = root.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
        return r.Length == 0 || string.Equals(path, r, cmp) || path.StartsWith(r + Path.DirectorySeparatorChar, cmp);
    }

    private sealed class Release : IDisposable
    {
        private Action? _release;

        public Release(Action release) => _release = release;

        public void Dispose() => Interlocked.Exchange(ref _release, null)?.Invoke();
    }
}

/// <summary>Why a command did not start: the bytes it needed on a file system and the bytes it found free there.</summary>
public sealed class SpaceShortage
{
    public SpaceShortage(string folder, long needed, long free, long reservedByOthers)
    {
        Folder = folder;
        BytesNeeded = needed;
        BytesFree = free;
        BytesReservedByOthers = reservedByOthers;
    }

    /// <summary>The folder the command writes in.</summary>
    public string Folder { get; }

    /// <summary>What the command would write at most, its margin included.</summary>
    public long BytesNeeded { get; }

    /// <summary>What is free there, less what other running commands of this process set aside.</summary>
    public long BytesFree { get; }

    /// <summary>What other running commands of this process set aside on that file system.</summary>
    public long BytesReservedByOthers { get; }

    /// <summary>"needs at most N bytes (1.2 GiB), only M bytes (...) are free" with the other commands' share when there is one.</summary>
    public string Numbers =>
        $"it needs at most {BytesNeeded} bytes ({Format.Bytes(BytesNeeded)}) in '{Folder}', and only {BytesFree} bytes ({Format.Bytes(BytesFree)}) are free there" +
        (BytesReservedByOthers > 0 ? $" (besides {Format.Bytes(BytesReservedByOthers)} set aside for other commands running)" : "");

    /// <summary>Puts the numbers in <paramref name="ex"/>'s Data (Folder, BytesNeeded, BytesFree), for callers that read them, and returns it.</summary>
    public T Into<T>(T ex) where T : Exception
    {
        ex.Data["Folder"] = Folder;
        ex.Data["BytesNeeded"] = BytesNeeded;
        ex.Data["BytesFree"] = BytesFree;
        return ex;
    }
}
