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

    /// <summary>The link from <paramref name="childPath"/> to <paramref name="parent"/>.</summary>
    public static ParentLink For(string childPath, DiskLayer parent)
    {
        string childDir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(childPath)) ?? ".";
        return new ParentLink(parent, parent.Path, PathUtil.GetRelativePath(childDir, parent.Path));
    }
}
