using System;
using System.IO;

namespace VmClone.Disks;

/// <summary>
/// Base of every error the disk engine raises on purpose. The message always names the file;
/// <see cref="Path"/> carries it for callers that want to build their own.
/// </summary>
public class VirtualDiskException : IOException
{
    public VirtualDiskException(string path, string message, Exception? inner = null)
        : base(message, inner)
    {
        Path = path;
    }

    /// <summary>The disk file the error is about.</summary>
    public string Path { get; }
}

/// <summary>
/// A disk file is malformed, hostile or uses a feature VmClone does not support. Raised on open
/// (validation) and whenever a structure read later turns out to be inconsistent. Nothing is
/// written to a file that raised this.
/// </summary>
public sealed class DiskFormatException : VirtualDiskException
{
    public DiskFormatException(string path, string structure, string reason, long? offset = null, Exception? inner = null)
        : base(path, Compose(path, structure, reason, offset), inner)
    {
        Structure = structure;
        Reason = reason;
        Offset = offset;
    }

    /// <summary>
    /// A file that is no regular file where one was expected: <paramref name="reason"/> says what
    /// it is ("is a named pipe (FIFO), not a disk file"), <paramref name="message"/> says it with
    /// the file's name and its role.
    /// </summary>
    internal DiskFormatException(string path, FileKind kind, string reason, string message, Exception? inner = null)
        : base(path, message, inner)
    {
        Structure = "file type";
        Reason = reason;
        FileKind = kind;
    }

    /// <summary>The on-disk structure at fault, e.g. "header", "BAT", "grain table".</summary>
    public string Structure { get; }

    /// <summary>What is wrong with it, without the file name.</summary>
    public string Reason { get; }

    /// <summary>File offset of the structure, when known.</summary>
    public long? Offset { get; }

    /// <summary>
    /// What was found where a disk file was expected, when that is what is wrong (a named pipe,
    /// a device, a folder, a socket, a symbolic link where none may be); null for a problem
    /// inside a file.
    /// </summary>
    public FileKind? FileKind { get; internal set; }

    /// <summary>
    /// The format the file holds when what is wrong is that its extension names the other one
    /// (a VMDK named .vhdx, a VHDX named .vmdk); null otherwise.
    /// </summary>
    public DiskFormat? FormatFound { get; internal set; }

    private static string Compose(string path, string structure, string reason, long? offset) =>
        offset is long o
            ? $"'{path}' is not a valid disk: {structure} at offset {o}: {reason}"
            : $"'{path}' is not a valid disk: {structure}: {reason}";
}

/// <summary>What kind of file system object a path names.</summary>
public enum FileKind
{
    /// <summary>A regular file: the only kind VmClone opens as a disk, an extent or a parent.</summary>
    RegularFile,
    /// <summary>A folder (directory).</summary>
    Folder,
    /// <summary>A named pipe (FIFO): reading it waits for a writer, possibly forever.</summary>
    NamedPipe,
    /// <summary>A character device (/dev/zero, a terminal).</summary>
    CharacterDevice,
    /// <summary>A block device (a whole disk or partition).</summary>
    BlockDevice,
    /// <summary>A Unix domain socket.</summary>
    Socket,
    /// <summary>A symbolic link, where the file itself must be a regular file (a VMDK extent).</summary>
    SymbolicLink,
    /// <summary>Anything else the system reports.</summary>
    Other,
}

/// <summary>What is wrong with a parent chain.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum ChainProblem
{
    /// <summary>No stored parent path leads to an existing file.</summary>
    ParentMissing,
    /// <summary>The parent exists but its identity no longer matches the child's record: the parent was modified or replaced.</summary>
    ParentModified,
    /// <summary>The chain refers back to a file already in it.</summary>
    Loop,
    /// <summary>The chain is deeper than the allowed maximum.</summary>
    TooDeep,
    /// <summary>Parent and child disagree on geometry (sector size) or the combination of formats is not expressible.</summary>
    Incompatible,
    /// <summary>The parent path leads outside the folder parents are allowed in.</summary>
    OutsideAllowedRoot,
}

/// <summary>A differencing disk's parent cannot be used.</summary>
public sealed class DiskChainException : VirtualDiskException
{
    public DiskChainException(string childPath, ChainProblem problem, string message, string? parentPath = null, Exception? inner = null)
        : base(childPath, message, inner)
    {
        Problem = problem;
        ParentPath = parentPath;
    }

    public ChainProblem Problem { get; }

    /// <summary>The parent path that was tried (or the first stored one), when there is one.</summary>
    public string? ParentPath { get; }
}
