using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;

namespace VmClone.Core.Store;

/// <summary>One lock an operation needs: a base or a clone, shared (read) or exclusive (change).</summary>
internal readonly struct LockRequest
{
    public LockRequest(string kind, string name, bool exclusive)
    {
        Kind = kind;
        Name = name;
        Exclusive = exclusive;
    }

    /// <summary>"base" or "clone".</summary>
    public string Kind { get; }

    public string Name { get; }

    public bool Exclusive { get; }
}

/// <summary>
/// Operating-system file locks on a store's bases and clones, held for the length of an
/// operation. One lock file per name under &lt;store&gt;/.locks (never deleted: deleting a lock file
/// someone waits on splits the lock). Exclusive means FileShare.None (Windows share modes;
/// flock(LOCK_EX) on Linux and macOS), shared means a read open that shares reading
/// (flock(LOCK_SH)). Both kinds of lock die with the process that holds them, so a killed
/// command never blocks the next one. Because every open file description takes its own lock,
/// two runspaces of one process exclude each other just as two processes do.
/// Beside the locks an operation holds, one owner file (&lt;pid&gt;-&lt;id&gt;.owner, listing the locks) says
/// who holds them, so that a refusal can name the process and host; owner files of dead processes
/// are ignored and removed. One file per operation, not per lock: a fleet command takes thousands.
/// </summary>
internal sealed class StoreLocks : IDisposable
{
    internal const string FolderName = ".locks";

    /// <summary>Largest owner file read: it holds a process, a host and a line on what it does.</summary>
    private const int MaxOwnerBytes = 64 * 1024;

    /// <summary>Environment variable: seconds a command waits for a lock before it is refused (default 30).</summary>
    internal const string TimeoutVariable = "VMCLONE_LOCK_TIMEOUT_SECONDS";

    private readonly List<FileStream> _held = new();
    private string? _owner;

    private StoreLocks()
    {
    }

    internal static TimeSpan DefaultTimeout
    {
        get
        {
            string? s = Environment.GetEnvironmentVariable(TimeoutVariable);
            return double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double seconds) && seconds >= 0
                ? TimeSpan.FromSeconds(seconds)
                : TimeSpan.FromSeconds(30);
        }
    }

    /// <summary>
    /// Takes every lock in a fixed order (clones before bases, by name; a name asked for both
    /// shared and exclusive is taken exclusive), so two commands never wait on each other in a
    /// cycle. Waits up to <paramref name="timeout"/> for each, then refuses with CloneBusy or
    /// BaseBusy naming the holder; locks already taken are released.
    /// </summary>
    public static StoreLocks Acquire(string storeRoot, IEnumerable<LockRequest> requests, string purpose, CancellationToken cancellationToken, TimeSpan? timeout = null)
    {
        var wanted = requests
            .GroupBy(r => (r.Kind, Key: r.Name.ToLowerInvariant()))
            .Select(g => new LockRequest(g.Key.Kind, g.First().Name, g.Any(r => r.Exclusive)))
            .OrderBy(r => r.Kind == "clone" ? 0 : 1)
            .ThenBy(r => r.Name.ToLowerInvariant(), StringComparer.Ordinal)
            .ToList();
        string folder = Path.Combine(storeRoot, FolderName);
        try
        {
            Directory.CreateDirectory(folder);
            // Before any lock file is opened: nobody else may even reach them (older versions left 0755).
            OwnerOnly.RestrictFolder(folder);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw NotWritable(storeRoot, folder, ex);
        }
        var locks = new StoreLocks();
        try
        {
            foreach (LockRequest r in wanted)
            {
                string stem = $"{r.Kind}-{r.Name.ToLowerInvariant()}";
                FileStream? held = Take(Path.Combine(folder, stem + ".lock"), r.Exclusive, timeout ?? DefaultTimeout, cancellationToken);
                if (held is null)
                {
                    string holders = DescribeHolders(folder, stem);
                    string kind = r.Kind == "base" ? "Base" : "Clone";
                    throw new StoreException(kind == "Base" ? StoreErrorIds.BaseBusy : StoreErrorIds.CloneBusy, VmCloneErrorKind.InUse,
                        $"{kind} '{r.Name}' is in use by {holders}; nothing was changed. Try again when that command has finished.", r.Name);
                }
                locks._held.Add(held);
            }
            locks._owner = WriteOwner(folder, wanted.Select(r => $"{r.Kind}-{r.Name.ToLowerInvariant()}"), purpose);
            return locks;
        }
        catch
        {
            locks.Dispose();
            throw;
        }
    }

    /// <summary>True when nobody holds the lock of this base or clone (a cut-off operation on it is not running any more).</summary>
    public static bool IsFree(string storeRoot, string kind, string name)
    {
        string path = Path.Combine(storeRoot, FolderName, $"{kind}-{name.ToLowerInvariant()}.lock");
        if (!File.Exists(path))
            return true;
        using FileStream? probe = Take(path, exclusive: true, TimeSpan.Zero, CancellationToken.None);
        return probe is not null;
    }

    /// <summary>Opens the lock file with the sharing that makes it a lock; null when it is still held by someone else after <paramref name="timeout"/>.</summary>
    internal static FileStream? Take(string path, bool exclusive, TimeSpan timeout, CancellationToken cancellationToken)
    {
        DateTime until = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                FileStream held = exclusive
                    ? new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None)
                    : new FileStream(path, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
                // Every time, not only on creation: a file an older version left 0644 is mended too.
                OwnerOnly.Restrict(held);
                return held;
            }
            catch (IOException ex) when (IsHeld(ex))
            {
                if (DateTime.UtcNow >= until)
                    return null;
                cancellationToken.ThrowIfCancellationRequested();
                Thread.Sleep(50);
            }
            catch (Exception ex) when (ex is UnauthorizedAccessException or IOException && ex is not (DirectoryNotFoundException or FileNotFoundException or PathTooLongException))
            {
                // Nobody holds it: the file cannot be made or opened at all (a read-only file
                // system, a folder this user may not write). Waiting would not help, and calling
                // the store busy would send the admin looking for a command that is not there.
                throw NotWritable(StoreRootOf(path), path, ex);
            }
        }
    }

    /// <summary>
    /// True when the open failed only because another holds the lock: EWOULDBLOCK from flock
    /// (Linux 11, macOS 35), ERROR_SHARING_VIOLATION or ERROR_LOCK_VIOLATION (Windows).
    /// </summary>
    private static bool IsHeld(IOException ex) =>
        ex is not (DirectoryNotFoundException or FileNotFoundException or PathTooLongException)
        && (RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? (ex.HResult & 0xFFFF) is 32 or 33 : ex.HResult is 11 or 35);

    /// <summary>The store of a lock file: store/.lock, or store/.locks/NAME.lock.</summary>
    private static string StoreRootOf(string lockPath)
    {
        string folder = Path.GetDirectoryName(lockPath) ?? lockPath;
        return Path.GetFileName(folder) == FolderName ? Path.GetDirectoryName(folder) ?? folder : folder;
    }

    /// <summary>The refusal of a store whose lock file or folder <paramref name="path"/> cannot be written, with the system's reason.</summary>
    private static StoreException NotWritable(string storeRoot, string path, Exception ex)
    {
        bool readOnly = ex.HResult == 30 || (ex.HResult & 0xFFFF) == 19; // EROFS; ERROR_WRITE_PROTECT
        string why = readOnly
            ? "its file system is read-only"
            : ex is UnauthorizedAccessException ? "this user may not write there" : $"the system says: {ex.Message}";
        return new StoreException(StoreErrorIds.StoreNotWritable, VmCloneErrorKind.NotWritable,
            $"Store '{storeRoot}' cannot be written: '{path}' cannot be created or opened for writing, because {why}. Nothing was changed. " +
            (readOnly ? "Reading commands (Get-VmClone, Test-VmStore without -Repair) still work; mount it read-write to change it." : "Run the command as a user who may write the store, or give that user the store's folders."),
            storeRoot, ex);
    }

    /// <summary>
    /// Owner files this process has emptied, by lock folder, for the next operation to write
    /// again: rewriting a file keeps its inode, while creating and deleting one per operation makes
    /// file systems that avoid reusing recently freed inodes (ext4 without a journal) search ever
    /// longer for a free one. Deleted when the process exits; a killed process's are removed by
    /// the next refusal that reads them.
    /// </summary>
    private static readonly ConcurrentDictionary<string, ConcurrentBag<string>> FreeOwnerFiles = NewOwnerFilePool();

    private static ConcurrentDictionary<string, ConcurrentBag<string>> NewOwnerFilePool()
    {
        var pool = new ConcurrentDictionary<string, ConcurrentBag<string>>(StringComparer.Ordinal);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (string file in pool.Values.SelectMany(bag => bag))
                TryDelete(file);
        };
        return pool;
    }

    private static ConcurrentBag<string> FreeOwners(string folder) => FreeOwnerFiles.GetOrAdd(folder, _ => new ConcurrentBag<string>());

    private static string WriteOwner(string folder, IEnumerable<string> stems, string purpose)
    {
        if (!FreeOwners(folder).TryTake(out string? path))
            path = Path.Combine(folder, $"{Self.Value.Id}-{Guid.NewGuid().ToString("N").Substring(0, 8)}.owner");
        try
        {
            string text = string.Join("\n", Self.Value.Id, Environment.MachineName, Self.Value.Name, DateTimeOffset.Now.ToString("yyyy-MM-dd HH:mm:ss zzz"), purpose.Replace('\n', ' '), string.Join(" ", stems));
            File.WriteAllText(path, text + "\n");
        }
        catch (IOException)
        {
            // Who holds a lock is a courtesy for error messages; the lock itself is what counts.
        }
        catch (UnauthorizedAccessException)
        {
        }
        return path;
    }

    /// <summary>The holders named by owner files, e.g. "process 1234 (pwsh) on host lab: Rebase clone 'lab-01' …, since …".</summary>
    internal static string DescribeHolders(string folder, string stem)
    {
        var parts = new List<string>();
        foreach (string file in Directory.EnumerateFiles(folder, "*.owner"))
        {
            string[] lines;
            try
            {
                lines = RecordFile.ReadAllText(file, MaxOwnerBytes).Replace("\r", "").Split('\n');
            }
            catch (Exception ex) when (ex is IOException or RecordFileRefusal or UnauthorizedAccessException)
            {
                continue;
            }
            if (lines.Length < 6 || !int.TryParse(lines[0], out int pid) || Array.IndexOf(lines[5].Split(' '), stem) < 0)
                continue;
            bool sameHost = string.Equals(lines[1], Environment.MachineName, StringComparison.OrdinalIgnoreCase);
            if (sameHost && !IsAlive(pid))
            {
                TryDelete(file);
                continue;
            }
            parts.Add($"process {pid} ({lines[2]}) on host {lines[1]}: {lines[4]}, since {lines[3]}");
        }
        return parts.Count == 0 ? "another VmClone command" : "another VmClone command — " + string.Join("; ", parts);
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using Process p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>This process's id and name, read once: asking the system for them costs more than taking a lock.</summary>
    private static readonly Lazy<(int Id, string Name)> Self = new(() =>
    {
        using Process self = Process.GetCurrentProcess();
        string name;
        try
        {
            name = self.ProcessName;
        }
        catch (InvalidOperationException)
        {
            name = "?";
        }
        return (self.Id, name);
    });

    /// <summary>Empties an owner file (it then names no lock) and keeps it for reuse; deletes it when it cannot be emptied.</summary>
    private static void ReleaseOwner(string file)
    {
        try
        {
            using (new FileStream(file, FileMode.Truncate, FileAccess.Write, FileShare.ReadWrite))
            {
            }
            FreeOwners(Path.GetDirectoryName(file)!).Add(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(file);
        }
    }

    private static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    public void Dispose()
    {
        if (_owner is not null)
            ReleaseOwner(_owner);
        _owner = null;
        for (int i = _held.Count - 1; i >= 0; i--)
            _held[i].Dispose();
        _held.Clear();
    }
}
