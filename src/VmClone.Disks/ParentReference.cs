using System.Collections.Generic;

namespace VmClone.Disks;

/// <summary>What a differencing layer records about its parent: where to look and what identity to expect.</summary>
public sealed class ParentReference
{
    public ParentReference(IReadOnlyList<ParentPathCandidate> candidates, string expectedIdentity, string? alternateIdentity = null, DiskFormat? format = null)
    {
        Candidates = candidates;
        ExpectedIdentity = expectedIdentity;
        AlternateIdentity = alternateIdentity;
        Format = format;
    }

    /// <summary>The parent's format as the child records it (qcow2's backing-format extension); null: recognised by its content.</summary>
    public DiskFormat? Format { get; }

    /// <summary>Stored parent paths, in the order the format says to try them.</summary>
    public IReadOnlyList<ParentPathCandidate> Candidates { get; }

    /// <summary>
    /// The parent identity recorded at creation (VHDX: parent's DataWriteGuid; VMDK: parent's CID);
    /// empty for a format that records none (qcow2): then any parent found by path is accepted.
    /// </summary>
    public string ExpectedIdentity { get; }

    /// <summary>A second acceptable identity (VHDX parent_linkage2), or null.</summary>
    public string? AlternateIdentity { get; }

    /// <summary>True when <paramref name="identity"/> is one this child accepts.</summary>
    public bool Accepts(string identity) =>
        ExpectedIdentity.Length == 0 ||
        string.Equals(identity, ExpectedIdentity, System.StringComparison.OrdinalIgnoreCase) ||
        (AlternateIdentity is not null && string.Equals(identity, AlternateIdentity, System.StringComparison.OrdinalIgnoreCase));
}

/// <summary>How a stored parent path is to be interpreted.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum ParentPathKind
{
    /// <summary>Relative to the child's folder (VHDX relative_path, VMDK parentFileNameHint when relative).</summary>
    Relative,
    /// <summary>An absolute path (VHDX absolute_win32_path, VMDK absolute hint).</summary>
    Absolute,
    /// <summary>A Windows volume path (VHDX volume_path); only meaningful on the host that wrote it.</summary>
    Volume,
}

/// <summary>One stored parent path.</summary>
public readonly struct ParentPathCandidate
{
    public ParentPathCandidate(ParentPathKind kind, string storedPath)
    {
        Kind = kind;
        StoredPath = storedPath;
    }

    public ParentPathKind Kind { get; }

    /// <summary>The path exactly as stored in the file.</summary>
    public string StoredPath { get; }

    public override string ToString() => $"{Kind}: {StoredPath}";
}
