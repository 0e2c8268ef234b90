namespace VmClone.Disks;

/// <summary>Where the content of a run of virtual bytes comes from, as one layer sees it.</summary>
public enum ExtentKind
{
    /// <summary>The layer stores these bytes itself.</summary>
    Data,
    /// <summary>The layer states these bytes are zero; the parent is hidden.</summary>
    Zero,
    /// <summary>The layer does not store these bytes: they come from the parent (zeros at the bottom of a chain).</summary>
    Parent,
}

/// <summary>A run of virtual bytes, starting at the queried position, that has one <see cref="ExtentKind"/> in a layer.</summary>
public readonly struct LayerExtent
{
    public LayerExtent(ExtentKind kind, long length)
    {
        Kind = kind;
        Length = length;
    }

    public ExtentKind Kind { get; }

    /// <summary>Number of bytes in the run; always at least 1.</summary>
    public long Length { get; }

    public override string ToString() => $"{Kind} x {Length}";
}
