using System;
using System.IO;

namespace VmClone.Core.Store;

/// <summary>
/// A file's size and last write time: what tells a remembered reading of a read-only file
/// (a base volume) from a file written since.
/// </summary>
internal readonly struct FileStamp : IEquatable<FileStamp>
{
    private FileStamp(long length, DateTime lastWriteUtc)
    {
        Length = length;
        LastWriteUtc = lastWriteUtc;
    }

    public long Length { get; }

    public DateTime LastWriteUtc { get; }

    /// <summary>The file's stamp now, or null when it does not exist.</summary>
    public static FileStamp? Of(string path)
    {
        var file = new FileInfo(path);
        return file.Exists ? new FileStamp(file.Length, file.LastWriteTimeUtc) : null;
    }

    public bool Equals(FileStamp other) => Length == other.Length && LastWriteUtc == other.LastWriteUtc;

    public override bool Equals(object? obj) => obj is FileStamp other && Equals(other);

    public override int GetHashCode() => Length.GetHashCode() ^ LastWriteUtc.GetHashCode();
}
