using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// What Export-VmClone will write, decided before anything is: one standalone disk per volume
/// of the clone in a new folder outside the store, and a small manifest beside them. -WhatIf
/// prints <see cref="Describe"/>.
/// </summary>
public sealed class ExportPlan
{
    internal ExportPlan(string store, string clone, string baseName, string destination, IReadOnlyList<ExportStep> volumes, bool sourceMayBeInUse, string manifestDigest)
    {
        ManifestDigest = manifestDigest;
        Store = store;
        Clone = clone;
        Base = baseName;
        Destination = destination;
        Volumes = volumes;
        SourceMayBeInUse = sourceMayBeInUse;
    }

    /// <summary>Full path of the store the clone is in.</summary>
    public string Store { get; }

    /// <summary>The clone exported.</summary>
    public string Clone { get; }

    /// <summary>The base the clone is over (recorded in the export's manifest).</summary>
    public string Base { get; }

    /// <summary>The folder the export becomes; it does not exist until the export is complete.</summary>
    public string Destination { get; }

    /// <summary>One step per volume, in the clone's order.</summary>
    public IReadOnlyList<ExportStep> Volumes { get; }

    /// <summary>The clone's manifest as planned: the export refuses (CloneChanged) when another command changed the clone since.</summary>
    internal string ManifestDigest { get; }

    /// <summary>The clone's files are copied even while another program holds them open (-Force).</summary>
    public bool SourceMayBeInUse { get; }

    /// <summary>At most the bytes the steps write (what is checked against the destination's free space before anything is written, with <see cref="FreeSpace.Margin"/>).</summary>
    public long BytesToCopy => Volumes.Sum(v => v.BytesToCopy);

    /// <summary>The plan as -WhatIf prints it: a line for the export, then one per volume.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        text.Append($"Export clone '{Clone}' of base '{Base}' from {Store} to '{Destination}'");
        foreach (ExportStep step in Volumes)
            text.Append('\n').Append($"  {step.Volume} ({step.Type}): write {Path.GetFileName(step.File)} ({step.Format}, {Format.Bytes(step.VirtualSize)} virtual) from {step.Reason} ({PlannedVolume.Copies(step.BytesToCopy)})");
        text.Append('\n').Append($"  {ExportManifest.FileName}: the names and types of the volumes");
        text.Append('\n').Append($"  in all: {PlannedVolume.Copies(BytesToCopy)}");
        return text.ToString();
    }
}

/// <summary>One volume of an export: the chain read and the standalone file written.</summary>
public sealed class ExportStep
{
    /// <summary>The volume's name in the clone.</summary>
    public string Volume { get; internal set; } = "";

    public VolumeType Type { get; internal set; }

    /// <summary>The file whose chain is read (the clone's volume, or for a temporary volume the base's).</summary>
    public string Source { get; internal set; } = "";

    /// <summary>The file written, in <see cref="ExportPlan.Destination"/>.</summary>
    public string File { get; internal set; } = "";

    public DiskFormat Format { get; internal set; }

    public long VirtualSize { get; internal set; }

    /// <summary>At most the bytes the standalone file takes on the destination's file system: its length as its format lays out the chain's data runs (zero runs stay holes), from the maps alone.</summary>
    public long BytesToCopy { get; internal set; }

    /// <summary>Why this content: the clone's current content, or the initial state of a temporary volume.</summary>
    public string Reason { get; internal set; } = "";
}

/// <summary>The small manifest an export writes beside its disks, for whoever attaches them elsewhere.</summary>
public sealed class ExportManifest
{
    /// <summary>The manifest's file name in the export folder.</summary>
    public const string FileName = "vmclone-export.json";

    public int FormatVersion { get; set; } = Manifest.CurrentFormatVersion;

    /// <summary>The clone exported.</summary>
    public string Name { get; set; } = "";

    public string Base { get; set; } = "";

    public DateTimeOffset Exported { get; set; }

    public List<ExportManifestVolume> Volumes { get; set; } = new();
}

/// <summary>One disk of an export's manifest.</summary>
public sealed class ExportManifestVolume
{
    public string Name { get; set; } = "";

    public VolumeType Type { get; set; }

    /// <summary>File name in the export folder.</summary>
    public string File { get; set; } = "";

    public DiskFormat Format { get; set; }

    public long VirtualSize { get; set; }
}

/// <summary>What Export-VmClone wrote.</summary>
public sealed class VmCloneExport
{
    /// <summary>The clone exported (named Name, not Clone: on a list of exports PowerShell would take .Clone for the list's own Clone method).</summary>
    public string Name { get; set; } = "";

    /// <summary>The base it is over.</summary>
    public string Base { get; set; } = "";

    /// <summary>The export folder.</summary>
    public string Path { get; set; } = "";

    /// <summary>The manifest in it (<see cref="ExportManifest.FileName"/>).</summary>
    public string ManifestPath { get; set; } = "";

    public DateTimeOffset Exported { get; set; }

    /// <summary>The standalone disks written, one per volume, in the clone's order.</summary>
    public IReadOnlyList<VmExportedVolume> Volumes { get; set; } = Array.Empty<VmExportedVolume>();
}

/// <summary>One standalone disk an export wrote.</summary>
public sealed class VmExportedVolume
{
    /// <summary>The volume's name in the clone.</summary>
    public string Name { get; set; } = "";

    public VolumeType Type { get; set; }

    /// <summary>Full path of the disk written.</summary>
    public string Path { get; set; } = "";

    public DiskFormat Format { get; set; }

    public long VirtualSize { get; set; }

    /// <summary>Space the file takes on the file system (allocated bytes, not its length).</summary>
    public long SizeOnDisk { get; set; }
}
