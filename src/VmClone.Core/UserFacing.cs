using System;
using System.IO;
using VmClone.Disks;

namespace VmClone.Core;

/// <summary>
/// Messages as a user reads them: of the files the user named and in the user's words, without
/// the code's parameter names or the staging files an operation writes before moving them into place.
/// </summary>
public static class UserFacing
{
    /// <summary>
    /// The message of <paramref name="ex"/> without what .NET appends to an argument error
    /// (" (Parameter 'spec')", "Actual value was ..."), which names the code's parameters, not the user's.
    /// </summary>
    public static string Message(Exception ex)
    {
        string message = ex.Message;
        if (ex is ArgumentException a && a.ParamName is not null)
        {
            int at = message.IndexOf(" (Parameter '", StringComparison.Ordinal);
            if (at >= 0)
                message = message.Substring(0, at);
        }
        return message;
    }

    /// <summary>
    /// An exception like <paramref name="ex"/> whose message names <paramref name="destination"/>
    /// where it named the staged file <paramref name="staged"/> (and without parameter names), or
    /// null when its message does not name the staged file or its kind cannot be remade.
    /// </summary>
    internal static Exception? Renamed(Exception ex, string staged, string destination)
    {
        string message = Message(ex);
        if (message.IndexOf(staged, StringComparison.Ordinal) < 0)
            return null;
        message = message.Replace(staged, destination);
        Type type = ex.GetType();
        if (type == typeof(ArgumentException) || type == typeof(ArgumentOutOfRangeException))
            return new ArgumentException(message, ex);
        if (type == typeof(VirtualDiskException))
            return new VirtualDiskException(destination, message, ex.InnerException);
        if (type == typeof(IOException))
            return new IOException(message, ex);
        return null;
    }
}
