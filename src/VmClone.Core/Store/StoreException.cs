using System;

namespace VmClone.Core.Store;

/// <summary>What kind of refusal a <see cref="StoreException"/> is; the cmdlets map it to an error category.</summary>
public enum StoreErrorKind
{
    /// <summary>The input itself is wrong (a name, a volume specification).</summary>
    InvalidArgument,
    /// <summary>The named base, clone or volume does not exist.</summary>
    NotFound,
    /// <summary>Something of that name exists already.</summary>
    AlreadyExists,
    /// <summary>Other things depend on it.</summary>
    InUse,
    /// <summary>The store's files disagree with what they should be (modified base, broken chain, bad manifest).</summary>
    InvalidData,
    /// <summary>The request cannot be carried out as asked (different storage outlines, ...).</summary>
    InvalidOperation,
    /// <summary>Another command holds the store.</summary>
    Busy,
}

/// <summary>
/// A store operation refused with a stable <see cref="ErrorId"/> (public API: scripts and tests
/// match on it) and a message that says what to do. Refusals happen before any file is touched.
/// </summary>
public sealed class StoreException : InvalidOperationException
{
    public StoreException(string errorId, StoreErrorKind kind, string message, string? subject = null, Exception? inner = null)
        : base(message, inner)
    {
        ErrorId = errorId;
        Kind = kind;
        Subject = subject;
    }

    /// <summary>Stable PascalCase id, e.g. "BaseNotFound", "OutlineMismatch".</summary>
    public string ErrorId { get; }

    public StoreErrorKind Kind { get; }

    /// <summary>The base, clone or file the refusal is about.</summary>
    public string? Subject { get; }
}
