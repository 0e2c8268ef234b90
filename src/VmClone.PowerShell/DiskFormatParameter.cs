using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using VmClone.Disks;

namespace VmClone.PowerShell;

/// <summary>Which formats a -Format parameter accepts, as the format registry (<see cref="DiskFormats"/>) says.</summary>
public enum DiskFormatUse
{
    /// <summary>Any registered format (opening a file).</summary>
    Read,
    /// <summary>A format VmClone writes (a new file).</summary>
    Write,
    /// <summary>A format the store keeps bases in.</summary>
    Base,
}

/// <summary>
/// Validates a -Format value (the DiskFormat enum, or a format's name) against the format
/// registry, so that a format is accepted by the cmdlets exactly when it has a registration.
/// <see cref="ValidValues"/> is what the help lists.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class ValidateDiskFormatAttribute : ValidateArgumentsAttribute
{
    /// <summary>Accepts the formats fit for <paramref name="use"/>.</summary>
    public ValidateDiskFormatAttribute(DiskFormatUse use) => Use = use;

    /// <summary>Accepts the formats fit for the use named <paramref name="use"/> ("Base"): for PowerShell classes, whose attribute arguments must be literals.</summary>
    public ValidateDiskFormatAttribute(string use) => Use = (DiskFormatUse)Enum.Parse(typeof(DiskFormatUse), use, ignoreCase: true);

    /// <summary>What the parameter's format is used for.</summary>
    public DiskFormatUse Use { get; }

    /// <summary>The names accepted, in the registry's order.</summary>
    public IList<string> ValidValues => Formats(Use).Select(f => f.Name).ToList();

    internal static IEnumerable<DiskFormatInfo> Formats(DiskFormatUse use) => use switch
    {
        DiskFormatUse.Base => DiskFormats.BaseFormats,
        DiskFormatUse.Write => DiskFormats.All.Where(f => f.CanWrite),
        _ => DiskFormats.All,
    };

    /// <summary>The format named <paramref name="name"/> (case-insensitive), once validated.</summary>
    internal static DiskFormat Parse(string name) => (DiskFormat)Enum.Parse(typeof(DiskFormat), name, ignoreCase: true);

    protected override void Validate(object arguments, EngineIntrinsics engineIntrinsics)
    {
        object value = arguments is PSObject ps ? ps.BaseObject : arguments;
        // A [string] property (the DSC resource) is validated by name, as the enum parameters are by value.
        if (value is string name && Formats(Use).Any(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase)))
            return;
        if (value is DiskFormat format && Formats(Use).Any(f => f.Format == format))
            return;
        throw new ValidationMetadataException(
            $"The format '{value}' is not one of {string.Join(", ", ValidValues)}; supply one of those.");
    }
}

/// <summary>
/// Completes a [string] -Format with the formats the store keeps bases in. (An enum-typed
/// -Format is completed by PowerShell with every enum value, before any completer is asked.)
/// </summary>
public sealed class BaseFormatCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        string word = (wordToComplete ?? "").Trim('\'', '"');
        return ValidateDiskFormatAttribute.Formats(DiskFormatUse.Base)
            .Where(f => f.Name.StartsWith(word, StringComparison.OrdinalIgnoreCase))
            .Select(f => new CompletionResult(f.Name, f.Name, CompletionResultType.ParameterValue, f.Name));
    }
}
