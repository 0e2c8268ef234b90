using System;

namespace VmClone.Core;

/// <summary>What kind of refusal a <see cref="VmCloneException"/> is; the cmdlets turn it into an error category.</summary>
public enum VmCloneErrorKind
{
    /// <summary>A named base, clone, volume or file does not exist.</summary>
    NotFound,
    /// <summary>The request itself is invalid (bad name, mismatched outline, ...).</summary>
    InvalidArgument,
    /// <summary>The thing exists already.</summary>
    AlreadyExists,
    /// <summary>Something depends on it, or another process is using it.</summary>
    InUse,
    /// <summary>Stored data is inconsistent (modified base, broken link, damaged manifest).</summary>
    InvalidData,
    /// <summary>The operation cannot be done in the current state.</summary>
    InvalidOperation,
    /// <summary>What is to be changed cannot be written (a read-only file system, a folder this user may not write).</summary>
    NotWritable,
}

/// <summary>
/// A refusal by a VmClone operation, with a stable <see cref="ErrorId"/> that scripts and tests
/// can rely on (it becomes the error record's FullyQualifiedErrorId) and the thing it is about.
/// </summary>
public class VmCloneException : InvalidOperationException
{
    public VmCloneException(string errorId, VmCloneErrorKind kind, string message, object? target = null, Exception? inner = null)
        : base(message, inner)
    {
        ErrorId = errorId;
        Kind = kind;
        Target = target;
    }

    /// <summary>Stable PascalCase identifier, one of <see cref="Store.StoreErrorIds"/> (e.g. MergeTargetHasChildren).</summary>
    public string ErrorId { get; }

    public VmCloneErrorKind Kind { get; }

    /// <summary>The name or path the error is about, when it differs from the command's input.</summary>
    public object? Target { get; }
}
