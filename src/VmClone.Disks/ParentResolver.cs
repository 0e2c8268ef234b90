using System;
using System.Collections.Generic;
using System.IO;

namespace VmClone.Disks;

/// <summary>
/// Finds and opens a differencing layer's parent: stored paths in the format's order, the
/// first existing file whose identity the child accepts wins. Parents are untrusted input:
/// loops, escapes from an allowed root (judged by real paths, links resolved: see
/// <see cref="Containment"/>), anything but a regular file and geometry mismatches are refused.
/// </summary>
internal static class ParentResolver
{
    /// <summary>The child's stored parent paths as this host spells them, in the order they are tried, without repeats.</summary>
    public static List<string> CandidatePaths(DiskLayer child)
    {
        string childDir = Path.GetDirectoryName(child.Path) ?? ".";
        List<string> candidates = new();
        foreach (ParentPathCandidate c in child.ParentReference!.Candidates)
        {
            string? local = PathUtil.Localize(c, childDir);
            if (local is not null && !candidates.Exists(p => PathUtil.SamePath(p, local)))
                candidates.Add(local);
        }
        return candidates;
    }

    /// <summary>
    /// True when <see cref="OpenParent"/> would take the file at <paramref name="parentPath"/>,
    /// whose identity and sector size are given, as the child's parent: it is the first stored
    /// path that exists, the child accepts its identity, and the sector sizes agree. Lets a caller
    /// that already knows the parent judge a link without opening the parent again.
    /// </summary>
    public static bool WouldTake(DiskLayer child, string parentPath, string parentIdentity, int parentSectorSize) =>
        CandidatePaths(child).Find(File.Exists) is string first
        && PathUtil.SamePath(first, parentPath)
        && child.ParentReference!.Accepts(parentIdentity)
        && child.LogicalSectorSize == parentSectorSize;

    public static DiskLayer OpenParent(DiskLayer child, IReadOnlyList<DiskLayer> chainSoFar, DiskOpenOptions options, string? overridePath)
    {
        ParentReference reference = child.ParentReference!;
        List<string> tried = new();
        List<string> candidates = overridePath is not null ? new List<string> { Path.GetFullPath(overridePath) } : CandidatePaths(child);

        Containment? allowed = options.AllowedParentRoot is string root ? new Containment(root) : null;
        string? mismatchPath = null;
        string? mismatchIdentity = null;
        foreach (string candidate in candidates)
        {
            tried.Add(candidate);
            if (!File.Exists(candidate))
                continue;
            if (allowed is not null)
                RefuseOutside(child.Path, candidate, allowed);
            foreach (DiskLayer layer in chainSoFar)
            {
                if (PathUtil.SamePath(layer.Path, candidate))
                    throw new DiskChainException(child.Path, ChainProblem.Loop,
                        $"The parent chain of '{child.Path}' loops back to '{candidate}'.", candidate);
            }

            DiskLayer parent = OpenCandidate(child, candidate, options);
            try
            {
                if (reference.Accepts(parent.Identity))
                {
                    CheckCompatible(child, parent);
                    return parent;
                }
                if (mismatchPath is null)
                {
                    mismatchPath = candidate;
                    mismatchIdentity = parent.Identity;
                }
                if (options.IgnoreParentIdentityMismatch)
                {
                    CheckCompatible(child, parent);
                    return parent;
                }
            }
            catch
            {
                parent.Dispose();
                throw;
            }
            parent.Dispose();
        }

        if (mismatchPath is not null)
            throw ModifiedParent(child, mismatchPath, mismatchIdentity!);

        string stored = string.Join(", ", reference.Candidates.ConvertAll(c => $"'{c.StoredPath}'"));
        string looked = tried.Count == 0 ? "no usable path on this host" : string.Join(", ", tried.ConvertAll(p => $"'{p}'"));
        throw new DiskChainException(child.Path, ChainProblem.ParentMissing,
            $"The parent of '{child.Path}' was not found: it records {stored}; looked at {looked}. " +
            "Move the parent back, or re-point the child at it with Set-VmDisk -ParentPath.",
            tried.Count > 0 ? tried[0] : (reference.Candidates.Count > 0 ? reference.Candidates[0].StoredPath : null));
    }

    /// <summary>Opens a parent read-only; one that is no regular file is refused naming the child that points at it.</summary>
    private static DiskLayer OpenCandidate(DiskLayer child, string candidate, DiskOpenOptions options)
    {
        try
        {
            return VirtualDisk.OpenLayerWith(candidate, FileAccess.Read, child.ParentReference?.Format, options);
        }
        catch (DiskFormatException ex) when (ex.FileKind is FileKind kind && PathUtil.SamePath(ex.Path, candidate))
        {
            throw new DiskFormatException(candidate, kind, ex.Reason,
                $"'{candidate}', the parent of '{child.Path}', {ex.Reason}; only regular files are opened as disks.", ex);
        }
    }

    /// <summary>
    /// Throws <see cref="DiskChainException"/> (<see cref="ChainProblem.OutsideAllowedRoot"/>)
    /// when <paramref name="parentPath"/>, about to become or be opened as the parent of
    /// <paramref name="childPath"/>, does not really lie inside the caller's
    /// <see cref="DiskOpenOptions.AllowedParentRoot"/>; nothing without a root.
    /// </summary>
    public static void RefuseOutsideRoot(string childPath, string parentPath, DiskOpenOptions? options)
    {
        if (options?.AllowedParentRoot is string root)
            RefuseOutside(childPath, parentPath, new Containment(root));
    }

    /// <summary>As <see cref="RefuseOutsideRoot(string, string, DiskOpenOptions?)"/> for a parent already open: it and every layer below it.</summary>
    public static void RefuseOutsideRoot(string childPath, DiskLayer parent, DiskOpenOptions? options)
    {
        if (options?.AllowedParentRoot is not string root)
            return;
        var allowed = new Containment(root);
        string child = childPath;
        for (DiskLayer? layer = parent; layer is not null; layer = layer.Parent)
        {
            RefuseOutside(child, layer.Path, allowed);
            child = layer.Path;
        }
    }

    private static void RefuseOutside(string childPath, string parentPath, Containment allowed)
    {
        switch (allowed.Judge(parentPath, out string? real))
        {
            case ContainmentVerdict.Inside:
                return;
            case ContainmentVerdict.Outside:
                throw new DiskChainException(childPath, ChainProblem.OutsideAllowedRoot,
                    $"The parent of '{childPath}' is '{parentPath}', outside '{allowed.Root}' where parents may be; it was not opened.", parentPath);
            default:
                throw new DiskChainException(childPath, ChainProblem.OutsideAllowedRoot,
                    $"The parent of '{childPath}' is '{parentPath}', which is a symbolic link (or lies in a linked folder) leading to '{real ?? "a link loop"}', outside '{allowed.Root}' where parents may be; it was not opened.", parentPath);
        }
    }

    /// <summary>
    /// Links a child to a parent layer already open (the one it was just created over), with the
    /// checks <see cref="OpenParent"/> makes once it has found the file: the child must name the
    /// parent's identity, and their sectors must agree.
    /// </summary>
    public static void Adopt(DiskLayer child, DiskLayer parent)
    {
        ParentReference? reference = child.ParentReference;
        if (reference is null)
            throw new DiskChainException(child.Path, ChainProblem.Incompatible,
                $"'{child.Path}' was created as a child of '{parent.Path}' but records no parent.", parent.Path);
        if (!reference.Accepts(parent.Identity))
            throw ModifiedParent(child, parent.Path, parent.Identity);
        CheckCompatible(child, parent);
        child.Parent = parent;
    }

    /// <summary>The error for a parent whose identity no longer matches what the child recorded.</summary>
    public static DiskChainException ModifiedParent(DiskLayer child, string parentPath, string parentIdentity) =>
        new(child.Path, ChainProblem.ParentModified,
            $"The parent '{parentPath}' of '{child.Path}' has changed since the child was created " +
            $"(child expects {child.ParentReference?.ExpectedIdentity}, parent is {parentIdentity}): the base was modified or replaced. " +
            "Reading the child would show corrupted content; restore the original parent, or override the check only to recover data.",
            parentPath);

    private static void CheckCompatible(DiskLayer child, DiskLayer parent)
    {
        if (parent.LogicalSectorSize != child.LogicalSectorSize)
            throw new DiskChainException(child.Path, ChainProblem.Incompatible,
                $"'{child.Path}' has {child.LogicalSectorSize}-byte sectors but its parent '{parent.Path}' has {parent.LogicalSectorSize}-byte sectors.", parent.Path);
    }
}

internal static class ListExtensions
{
    public static List<TOut> ConvertAll<TIn, TOut>(this IReadOnlyList<TIn> list, Func<TIn, TOut> map)
    {
        var result = new List<TOut>(list.Count);
        foreach (TIn item in list)
            result.Add(map(item));
        return result;
    }
}
