using VmClone.Disks;

namespace VmClone.Core.Disks;

/// <summary>Where a run of a disk's virtual content comes from.</summary>
// ConvertTo-Json (Newtonsoft in PowerShell) writes the name, not the number, without -EnumsAsStrings.
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VmDiskMapKind
{
    /// <summary>Stored as data by the layer at <see cref="VmDiskMapEntry.Depth"/>.</summary>
    Data,
    /// <summary>Stated zero by the layer at <see cref="VmDiskMapEntry.Depth"/> (a zero block or cluster), hiding what lies below.</summary>
    Zero,
    /// <summary>Stored by no layer down to the base: reads as zeros.</summary>
    Unallocated,
}

/// <summary>One run of Get-VmDisk -Map: a range of virtual bytes, what it is, which file holds it and where (as qemu-img map --output=json shows it).</summary>
public sealed class VmDiskMapEntry
{
    /// <summary>Virtual offset of the run's first byte.</summary>
    public long Start { get; set; }

    /// <summary>Length of the run in bytes.</summary>
    public long Length { get; set; }

    /// <summary>Data, Zero (stated by a layer) or Unallocated.</summary>
    public VmDiskMapKind Kind { get; set; }

    /// <summary>Level in the chain of the layer that answers for the run: 0 for the disk itself, 1 for its parent ...; null for an unallocated run.</summary>
    public int? Depth { get; set; }

    /// <summary>True when the run comes from a parent (depth 1 or more) rather than the disk's own file.</summary>
    public bool FromParent => Depth is int depth && depth > 0;

    /// <summary>Full path of the file holding the run; null for an unallocated run.</summary>
    public string? File { get; set; }

    /// <summary>Offset in <see cref="File"/> where a data run's bytes lie, contiguous for the whole run (qemu-img map's "offset"); null for zero and unallocated runs and for data not stored plainly (compressed).</summary>
    public long? Offset { get; set; }

    /// <summary>Format of <see cref="File"/>; null for an unallocated run.</summary>
    public DiskFormat? Format { get; set; }

    /// <summary>Virtual offset just past the run.</summary>
    public long End => Start + Length;

    public override string ToString() => $"{Start}+{Length} {Kind}{(Depth is int d ? $" depth {d}" : "")}";
}
