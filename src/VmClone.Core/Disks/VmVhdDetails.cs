using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Disks;
using VmClone.Disks.Vhd;

namespace VmClone.Core.Disks;

/// <summary>The kind of a VHD file, as its footer's disk type says.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VhdDiskKind
{
    /// <summary>Type 2: the data, then the footer (what Azure takes).</summary>
    Fixed,
    /// <summary>Type 3: blocks allocated as written, unwritten sectors read as zeros.</summary>
    Dynamic,
    /// <summary>Type 4: blocks allocated as written, unwritten sectors read from the parent.</summary>
    Differencing,
}

/// <summary>Where a VHD's virtual size comes from (qemu's rule: the creator application decides).</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VhdSizeSource
{
    /// <summary>The footer's current size field (Hyper-V, disk2vhd, XenServer, qemu with force_size).</summary>
    CurrentSize,
    /// <summary>Cylinders × heads × sectors per track × 512 (Virtual PC, qemu without force_size).</summary>
    Geometry,
}

/// <summary>One parent locator of a differencing VHD, as stored and as it resolves on this host.</summary>
public sealed class VmVhdLocator
{
    /// <summary>The platform code: W2ru (relative Windows path), W2ku (absolute Windows path), MacX (file:// URL), or a deprecated Wi2r, Wi2k, "Mac ".</summary>
    public string Code { get; set; } = "";

    /// <summary>The path exactly as the locator stores it (a MacX URL as its path); null for a code whose data is no path VmClone reads.</summary>
    public string? StoredPath { get; set; }

    /// <summary>Relative to the child's folder or absolute; null without a path.</summary>
    public ParentPathKind? Kind { get; set; }

    /// <summary>The full path it names on this host (a relative one from the child's folder), or null when it names none here (a drive letter seen from Linux).</summary>
    public string? ResolvedPath { get; set; }

    /// <summary>True when a file exists at <see cref="ResolvedPath"/>.</summary>
    public bool FileExists { get; set; }

    /// <summary>"W2ru ..\base.vhd".</summary>
    public override string ToString() => $"{Code} {StoredPath}";
}

/// <summary>What Get-VmDisk shows of a VHD file beyond what every format has.</summary>
public sealed class VmVhdDetails
{
    /// <summary>Fixed, dynamic or differencing.</summary>
    public VhdDiskKind DiskType { get; set; }

    /// <summary>Block size in bytes (2 MiB as Hyper-V and XenServer write them); null for a fixed disk, which has no blocks.</summary>
    public long? BlockSize { get; set; }

    /// <summary>The creator application, four characters trimmed: "win" (Hyper-V and VmClone), "vpc", "vs", "qemu", "qem2", "tap" (XenServer), "d2v", "CTXS".</summary>
    public string CreatorApplication { get; set; } = "";

    /// <summary>The creator version as major.minor ("10.0").</summary>
    public string CreatorVersion { get; set; } = "";

    /// <summary>The creator host OS: "Wi2k" or "Mac ".</summary>
    public string CreatorHostOs { get; set; } = "";

    /// <summary>CHS geometry: cylinders.</summary>
    public int Cylinders { get; set; }

    /// <summary>CHS geometry: heads.</summary>
    public int Heads { get; set; }

    /// <summary>CHS geometry: sectors per track.</summary>
    public int SectorsPerTrack { get; set; }

    /// <summary>The footer's current size field in bytes.</summary>
    public long CurrentSize { get; set; }

    /// <summary>Which field the virtual size is taken from.</summary>
    public VhdSizeSource SizeFrom { get; set; }

    /// <summary>The footer's unique id: what a child records as its parent id (renewed by VmClone at the first write).</summary>
    public Guid UniqueId { get; set; }

    /// <summary>blktap's hidden byte (footer offset 85): XenServer sets it on the inner nodes of a chain; kept as found.</summary>
    public byte Hidden { get; set; }

    /// <summary>A differencing disk's recorded parent unique id; null for others.</summary>
    public Guid? ParentUniqueId { get; set; }

    /// <summary>The parent name field (Hyper-V writes the parent's absolute path); null for a disk without a parent.</summary>
    public string? ParentName { get; set; }

    /// <summary>The parent timestamp field (UTC): reported, not trusted (Windows writes 0, blktap the parent's modification time); null for a disk without a parent.</summary>
    public DateTime? ParentTimestamp { get; set; }

    /// <summary>The parent locators with a path, in header order.</summary>
    public IReadOnlyList<VmVhdLocator> Locators { get; set; } = Array.Empty<VmVhdLocator>();

    /// <summary>One line for the list view: "Differencing, 2 MiB blocks, win 10.0, parent {…}".</summary>
    public override string ToString()
    {
        var parts = new List<string> { DiskType.ToString() };
        if (BlockSize is long bs)
            parts.Add(bs >= 1 << 20 ? $"{bs >> 20} MiB blocks" : $"{bs >> 10} KiB blocks");
        parts.Add($"{CreatorApplication} {CreatorVersion}");
        parts.Add($"CHS {Cylinders}/{Heads}/{SectorsPerTrack}");
        if (Hidden != 0)
            parts.Add("hidden");
        if (Locators.Count > 0)
            parts.Add(string.Join(", ", Locators));
        return string.Join(", ", parts);
    }

    /// <summary>The VHD facts of <paramref name="layer"/>, or null for another format.</summary>
    internal static VmVhdDetails? Of(DiskLayer layer)
    {
        if (layer is not VhdLayer vhd)
            return null;
        VhdFooter f = vhd.Footer;
        DynamicHeader? h = vhd.Header;
        var details = new VmVhdDetails
        {
            DiskType = f.DiskType switch
            {
                VhdDiskType.Fixed => VhdDiskKind.Fixed,
                VhdDiskType.Differencing => VhdDiskKind.Differencing,
                _ => VhdDiskKind.Dynamic,
            },
            BlockSize = h is null ? null : h.BlockSize,
            CreatorApplication = f.CreatorApplication,
            CreatorVersion = $"{f.CreatorVersion >> 16}.{f.CreatorVersion & 0xFFFF}",
            CreatorHostOs = f.CreatorHostOs,
            Cylinders = f.Geometry.Cylinders,
            Heads = f.Geometry.Heads,
            SectorsPerTrack = f.Geometry.SectorsPerTrack,
            CurrentSize = (long)Math.Min(f.CurrentSize, long.MaxValue),
            SizeFrom = vhd.SizeByGeometry ? VhdSizeSource.Geometry : VhdSizeSource.CurrentSize,
            UniqueId = f.UniqueId,
            Hidden = f.Hidden,
        };
        if (h is not null && f.DiskType == VhdDiskType.Differencing)
        {
            details.ParentUniqueId = h.ParentUniqueId;
            details.ParentName = h.ParentName;
            details.ParentTimestamp = new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds(h.ParentTimestamp);
            string folder = Path.GetDirectoryName(vhd.Path) ?? ".";
            details.Locators = vhd.Locators.Select(l =>
            {
                string? resolved = l.StoredPath is string stored && l.Kind is ParentPathKind kind
                    ? PathUtil.Localize(new ParentPathCandidate(kind, stored), folder)
                    : null;
                return new VmVhdLocator
                {
                    Code = l.Code,
                    StoredPath = l.StoredPath,
                    Kind = l.Kind,
                    ResolvedPath = resolved,
                    FileExists = resolved is not null && File.Exists(resolved),
                };
            }).ToArray();
        }
        return details;
    }
}

/// <summary>What a warning Get-VmDisk or Test-VmDisk gives is about.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VmDiskWarningKind
{
    /// <summary>A VHD chain of more than 30 files: sound, but XenServer and XCP-ng (MAX_CHAIN_SIZE) refuse it; merge layers (Merge-VmDisk) to bring it within.</summary>
    VhdChainTooDeepForXenServer,
}

/// <summary>A disk that is sound but that a hypervisor would refuse, naming the file.</summary>
public sealed class VmDiskWarning
{
    public VmDiskWarning(string path, VmDiskWarningKind kind, string description)
    {
        Path = path;
        Kind = kind;
        Description = description;
    }

    /// <summary>The file the warning is about (the top of the chain).</summary>
    public string Path { get; }

    public VmDiskWarningKind Kind { get; }

    public string Description { get; }

    public override string ToString() => $"{Path}: {Description}";

    /// <summary>
    /// The warnings about the chain from <paramref name="layers"/>[<paramref name="index"/>] down:
    /// a VHD chain (every layer VHD) of more than <see cref="VhdLayer.XenServerMaxChainDepth"/> files.
    /// </summary>
    internal static IReadOnlyList<VmDiskWarning> ForChain(IReadOnlyList<DiskLayer> layers, int index, bool chainComplete)
    {
        int depth = layers.Count - index;
        if (!chainComplete || depth <= VhdLayer.XenServerMaxChainDepth || layers.Skip(index).Any(l => l is not VhdLayer))
            return Array.Empty<VmDiskWarning>();
        string path = layers[index].Path;
        return new[]
        {
            new VmDiskWarning(path, VmDiskWarningKind.VhdChainTooDeepForXenServer,
                $"'{path}' heads a VHD chain of {depth} files; XenServer and XCP-ng refuse chains of more than {VhdLayer.XenServerMaxChainDepth} " +
                "(MAX_CHAIN_SIZE). Merge layers into their parents with Merge-VmDisk to bring it within."),
        };
    }
}
