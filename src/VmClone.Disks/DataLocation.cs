namespace VmClone.Disks;

/// <summary>
/// Where stored virtual bytes lie in a layer's files: the file, the offset of the first byte in
/// it, and how many bytes from there follow each other in that file (what qemu-img map shows as
/// a run's "offset").
/// </summary>
public readonly struct DataLocation
{
    public DataLocation(string file, long offset, long length)
    {
        File = file;
        Offset = offset;
        Length = length;
    }

    /// <summary>Full path of the file holding the bytes (for a VMDK, the extent file).</summary>
    public string File { get; }

    /// <summary>Offset of the first byte in <see cref="File"/>.</summary>
    public long Offset { get; }

    /// <summary>Bytes stored contiguously from <see cref="Offset"/>; always at least 1.</summary>
    public long Length { get; }

    public override string ToString() => $"{File}@{Offset}+{Length}";
}
