using System;
using System.IO;
using System.Runtime.InteropServices;

namespace VmClone.Disks;

/// <summary>Path helpers netstandard2.0 lacks, and the translation of paths stored by other hosts.</summary>
internal static class PathUtil
{
    private static readonly bool IsWindows = RuntimeInformation.IsOSPlatform(OSPlatform.Windows);

    private static StringComparison Comparison => IsWindows ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    public static bool SamePath(string a, string b) =>
        string.Equals(Path.GetFullPath(a).TrimEnd(Path.DirectorySeparatorChar), Path.GetFullPath(b).TrimEnd(Path.DirectorySeparatorChar), Comparison);

    /// <summary>True when <paramref name="path"/> is <paramref name="root"/> or inside it.</summary>
    public static bool IsUnder(string path, string root)
    {
        string full = Path.GetFullPath(path);
        string r = Path.GetFullPath(root).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        return full.StartsWith(r, Comparison) || SamePath(full, root);
    }

    private static readonly System.Reflection.PropertyInfo? LinkTargetProperty = typeof(FileSystemInfo).GetProperty("LinkTarget");

    /// <summary>The target a symbolic link at <paramref name="path"/> stores, as stored; null when it is no link (or the runtime cannot tell).</summary>
    public static string? LinkTarget(string path) =>
        LinkTargetProperty?.GetValue(new FileInfo(path)) as string is { Length: > 0 } target ? target : null;

    /// <summary>Most symbolic links followed while resolving one path (Linux's own limit is 40).</summary>
    private const int MaxLinkHops = 40;

    /// <summary>
    /// The full path with every symbolic link (or junction) along it resolved, as far as the path
    /// exists; null when the links loop. Where the runtime cannot tell links (before .NET 6) the
    /// path is returned as given.
    /// </summary>
    /// <remarks>netstandard2.0 has no FileSystemInfo.LinkTarget; every PowerShell 7 runtime has it, so it is read by reflection.</remarks>
    public static string? RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        if (LinkTargetProperty is null)
            return full;
        char[] separators = { Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar };
        string current = Path.GetPathRoot(full) ?? "";
        var rest = new System.Collections.Generic.List<string>(full.Substring(current.Length).Split(separators, StringSplitOptions.RemoveEmptyEntries));
        int hops = 0;
        while (rest.Count > 0)
        {
            string next = Path.Combine(current, rest[0]);
            rest.RemoveAt(0);
            string? target = LinkTargetProperty.GetValue(new FileInfo(next)) as string;
            if (string.IsNullOrEmpty(target))
            {
                current = next;
                continue;
            }
            if (++hops > MaxLinkHops)
                return null;
            string resolved = Path.GetFullPath(Path.IsPathRooted(target) ? target! : Path.Combine(current, target!));
            current = Path.GetPathRoot(resolved) ?? "";
            rest.InsertRange(0, resolved.Substring(current.Length).Split(separators, StringSplitOptions.RemoveEmptyEntries));
        }
        return current;
    }

    /// <summary>
    /// True when <paramref name="path"/> really lies under <paramref name="root"/>: symbolic links
    /// in either are resolved first, so a link inside the root that points outside it is outside.
    /// </summary>
    public static bool IsReallyUnder(string path, string root) => new Containment(root).Judge(path, out _) == ContainmentVerdict.Inside;

    /// <summary>Compares paths as this system's file names compare (ignoring case on Windows).</summary>
    public static StringComparer Comparer => IsWindows ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;

    /// <summary>Relative path from folder <paramref name="fromDirectory"/> to <paramref name="toPath"/>, or null when they share no root.</summary>
    public static string? GetRelativePath(string fromDirectory, string toPath)
    {
        string from = Path.GetFullPath(fromDirectory).TrimEnd(Path.DirectorySeparatorChar);
        string to = Path.GetFullPath(toPath);
        if (!string.Equals(Path.GetPathRoot(from), Path.GetPathRoot(to), Comparison))
            return null;
        string[] f = from.Split(new[] { Path.DirectorySeparatorChar }, StringSplitOptions.RemoveEmptyEntries);
        string[] t = to.Split(new[] { Path.DirectorySeparatorChar }, StringSplitOptions.RemoveEmptyEntries);
        int common = 0;
        while (common < f.Length && common < t.Length - 1 && string.Equals(f[common], t[common], Comparison))
            common++;
        var parts = new System.Collections.Generic.List<string>();
        for (int i = common; i < f.Length; i++)
            parts.Add("..");
        for (int i = common; i < t.Length; i++)
            parts.Add(t[i]);
        return string.Join("/", parts);
    }

    /// <summary>
    /// Turns a stored parent path into a local path to try, or null when it cannot mean
    /// anything on this host (a Windows volume path or drive path seen from Linux/macOS).
    /// </summary>
    public static string? Localize(ParentPathCandidate candidate, string childDirectory)
    {
        string stored = candidate.StoredPath;
        if (string.IsNullOrEmpty(stored) || stored.IndexOf('\0') >= 0)
            return null;
        switch (candidate.Kind)
        {
            case ParentPathKind.Relative:
                string rel = IsWindows ? stored.Replace('/', '\\') : stored.Replace('\\', '/');
                return Path.GetFullPath(Path.Combine(childDirectory, rel));
            case ParentPathKind.Volume:
                return IsWindows ? stored : null;
            default:
                bool windowsStyle = stored.Length >= 2 && stored[1] == ':' || stored.StartsWith("\\\\", StringComparison.Ordinal);
                if (windowsStyle && !IsWindows)
                    return null;
                return Path.IsPathRooted(stored) ? Path.GetFullPath(stored) : Path.GetFullPath(Path.Combine(childDirectory, stored));
        }
    }

    /// <summary>Windows form of a path, as VHDX's absolute_win32_path and relative_path keys expect.</summary>
    public static string ToWindowsSeparators(string path) => path.Replace('/', '\\');
}

/// <summary>How a path stands to the folder it must stay in.</summary>
internal enum ContainmentVerdict
{
    /// <summary>Its real path (every link resolved) lies inside the folder's real path.</summary>
    Inside,
    /// <summary>Spelled outside the folder, and really outside too.</summary>
    Outside,
    /// <summary>Spelled inside the folder, but a symbolic link along it (or the file itself) leads out.</summary>
    LeadsOutside,
    /// <summary>The links along it, or along the folder, loop: it leads nowhere that can be judged.</summary>
    LinkLoop,
}

/// <summary>
/// The one place where a path taken from a file's contents is held to a folder: a VMDK extent to
/// its descriptor's folder, a parent to <see cref="DiskOpenOptions.AllowedParentRoot"/>. Both
/// are judged by their real paths, links resolved, so that a link inside the folder (or a
/// linked folder) that leads out is outside, and a path spelled through another name of the
/// folder that really lies in it is inside. The folder's own real path is resolved once.
/// </summary>
internal sealed class Containment
{
    public Containment(string root)
    {
        Root = Path.GetFullPath(root);
        RealRoot = PathUtil.RealPath(Root);
    }

    /// <summary>The folder, as given (full path).</summary>
    public string Root { get; }

    /// <summary>The folder with its links resolved; null when they loop.</summary>
    public string? RealRoot { get; }

    /// <summary>Judges <paramref name="path"/>; <paramref name="realPath"/> is where it really leads (null when its links loop).</summary>
    public ContainmentVerdict Judge(string path, out string? realPath)
    {
        realPath = PathUtil.RealPath(path);
        if (realPath is null || RealRoot is null)
            return ContainmentVerdict.LinkLoop;
        if (PathUtil.IsUnder(realPath, RealRoot))
            return ContainmentVerdict.Inside;
        return PathUtil.IsUnder(path, Root) ? ContainmentVerdict.LeadsOutside : ContainmentVerdict.Outside;
    }
}
