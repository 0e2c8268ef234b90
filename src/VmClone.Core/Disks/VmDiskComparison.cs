namespace VmClone.Core.Disks;

/// <summary>Why two disks compared as different (or <see cref="None"/> when they are identical).</summary>
// ConvertTo-Json (Newtonsoft in PowerShell) writes the name, not the number, without -EnumsAsStrings.
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VmDiskDifference
{
    /// <summary>Identical: every byte reads the same (and, strictly compared, every run has the same allocation).</summary>
    None,
    /// <summary>A byte reads differently (in the common range, or a non-zero byte in the larger disk's extra range).</summary>
    Content,
    /// <summary>Strict only: the same offset is stored data in one disk and stated zero or unallocated in the other.</summary>
    Allocation,
    /// <summary>Strict only: the virtual sizes differ.</summary>
    Size,
}

/// <summary>What Compare-VmDisk found: whether two disks read the same, and where they first differ.</summary>
public sealed class VmDiskComparison
{
    /// <summary>Full path of the first disk (-Path).</summary>
    public string Path { get; set; } = "";

    /// <summary>Full path of the second disk (-DifferencePath).</summary>
    public string DifferencePath { get; set; } = "";

    /// <summary>True when the two disks are identical under the rule used (<see cref="Strict"/>).</summary>
    public bool Identical { get; set; }

    /// <summary>Why they differ; <see cref="VmDiskDifference.None"/> when identical.</summary>
    public VmDiskDifference Difference { get; set; }

    /// <summary>
    /// Virtual offset of the first byte that differs (or, strictly compared, where allocation first
    /// differs); null when identical or when only the sizes differ. qemu-img compare names the
    /// 512-byte sector holding it.
    /// </summary>
    public long? FirstDifferenceOffset { get; set; }

    /// <summary>Virtual size of the first disk in bytes.</summary>
    public long Size { get; set; }

    /// <summary>Virtual size of the second disk in bytes.</summary>
    public long DifferenceSize { get; set; }

    /// <summary>True when allocation was compared too and differing sizes count as a difference (qemu-img compare -s).</summary>
    public bool Strict { get; set; }

    /// <summary>Virtual bytes read from the files to decide (runs both sides know to be zero or shared are not read).</summary>
    public long BytesRead { get; set; }

    public override string ToString() => Identical ? $"Identical: '{Path}' and '{DifferencePath}'" : $"{Difference} differs at {FirstDifferenceOffset?.ToString() ?? "size"}: '{Path}' and '{DifferencePath}'";
}
