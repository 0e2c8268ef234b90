namespace VmClone.Core.Store;

/// <summary>What a volume is for, which decides what restore, shutdown and rebase do to it.</summary>
// ConvertTo-Json (Newtonsoft in PowerShell) writes the name, not the number, without -EnumsAsStrings.
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VolumeType
{
    /// <summary>The operating system: restore removes the clone's changes, rebase replaces it with the new base's.</summary>
    System,
    /// <summary>Swap, pagefile, scratch: cleaned to its initial state on restore, on shutdown and on rebase.</summary>
    Temporary,
    /// <summary>User files: kept byte for byte by restore, shutdown and rebase.</summary>
    Data,
}

/// <summary>One volume to put in a new base: a name, a type, and either a file to copy or a size for an empty volume.</summary>
public sealed class VolumeSpec
{
    /// <summary>Volume name (also its file name in the store).</summary>
    public string Name { get; set; } = "";

    public VolumeType Type { get; set; }

    /// <summary>An existing VHDX, VMDK or raw file (or chain) whose content is copied, sparse, into the store.</summary>
    public string? Path { get; set; }

    /// <summary>Size of a new, empty volume in bytes.</summary>
    public long? SizeBytes { get; set; }

    public override string ToString() => Path is not null ? $"{Name} ({Type}) from '{Path}'" : $"{Name} ({Type}, {SizeBytes} bytes)";
}
