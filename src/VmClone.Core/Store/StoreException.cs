using System;

namespace VmClone.Core.Store;

/// <summary>
/// A store operation refused with a stable <see cref="VmCloneException.ErrorId"/> (public API:
/// scripts and tests match on it) and a message that says what to do. Refusals happen before any
/// file is touched.
/// </summary>
public sealed class StoreException : VmCloneException
{
    public StoreException(string errorId, VmCloneErrorKind kind, string message, string? subject = null, Exception? inner = null)
        : base(errorId, kind, message, subject, inner)
    {
    }
}
