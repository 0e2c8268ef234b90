using System;

namespace VmClone.Core.Store;

/// <summary>
/// Names of bases, clones and volumes. They become folder and file names, so only a portable,
/// harmless set is accepted — and checked before any file is touched.
/// </summary>
public static class StoreNames
{
    /// <summary>Longest accepted name.</summary>
    public const int MaxLength = 64;

    // Windows refuses these as file names whatever the extension; refusing them everywhere keeps a
    // store movable between systems.
    private static readonly string[] Reserved =
    {
        "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
        "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
        "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    };

    /// <summary>Why <paramref name="name"/> is not acceptable, or null when it is.</summary>
    public static string? Problem(string? name)
    {
        if (string.IsNullOrEmpty(name))
            return "a name cannot be empty";
        if (name!.Length > MaxLength)
            return $"it is {name.Length} characters long; at most {MaxLength} are allowed";
        foreach (char c in name)
        {
            bool ok = c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '.' or '_' or '-';
            if (!ok)
                return c is '/' or '\\' ? "it contains a path separator" : $"it contains '{c}'";
        }
        if (name[0] == '.')
            return "it starts with '.' (such names are hidden, and the store keeps its own work there)";
        if (name.EndsWith(".", StringComparison.Ordinal))
            return "it ends with '.' (Windows drops a trailing dot from file names)";
        string stem = name.Split('.')[0];
        foreach (string reserved in Reserved)
        {
            if (string.Equals(stem, reserved, StringComparison.OrdinalIgnoreCase))
                return $"'{reserved}' is a reserved device name on Windows";
        }
        return null;
    }

    /// <summary>Throws an InvalidName refusal when <paramref name="name"/> is not acceptable.</summary>
    public static void Validate(string? name, string what)
    {
        string? problem = Problem(name);
        if (problem is not null)
            throw new StoreException(StoreErrorIds.InvalidName, VmCloneErrorKind.InvalidArgument,
                $"'{name}' is not a valid {what} name: {problem}. Use letters, digits, '.', '_' and '-' (at most {MaxLength} characters).", name);
    }
}
