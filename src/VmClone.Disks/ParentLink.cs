namespace VmClone.Disks;

/// <summary>What a child is to record about a (new) parent: where it is and what it must be.</summary>
public sealed class ParentLink
{
    internal ParentLink(DiskLayer parent, string absolutePath, string? relativePath)
    {
        Parent = parent;
        AbsolutePath = absolutePath;
        RelativePath = relativePath;
    }

    /// <summary>The parent's top layer, open; its <see cref="DiskLayer.Identity"/> is what the child records.</summary>
    public DiskLayer Parent { get; }

    /// <summary>Full path of the parent.</summary>
    public string AbsolutePath { get; }

    /// <summary>Path from the child's folder to the parent with '/' separators, or null when there is none (another drive).</summary>
    public string? RelativePath { get; }

    /// <summary>
    /// The link from <paramref name="childPath"/> to <paramref name="parent"/>. With
    /// <paramref name="options"/>' <see cref="DiskOpenOptions.AllowedParentRoot"/>, the parent
    /// (and every layer linked below it) must really lie inside that folder, links resolved;
    /// else <see cref="DiskChainException"/> (<see cref="ChainProblem.OutsideAllowedRoot"/>).
    /// </summary>
    public static ParentLink For(string childPath, DiskLayer parent, DiskOpenOptions? options = null)
    {
        string childFull = System.IO.Path.GetFullPath(childPath);
        ParentResolver.RefuseOutsideRoot(childFull, parent, options);
        string childDir = System.IO.Path.GetDirectoryName(childFull) ?? ".";
        return new ParentLink(parent, parent.Path, PathUtil.GetRelativePath(childDir, parent.Path));
    }
}
