using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// What the planners share: the preconditions, and the steps every family of operations makes
/// of a base's volumes. Planning checks everything that can refuse an operation before any file
/// is touched, and writes nothing; a plan says every step -WhatIf shows.
/// </summary>
internal abstract class Planner : StorePart
{
    protected Planner(StoreCatalogue catalogue, StorePreconditions preconditions) : base(catalogue) => Preconditions = preconditions;

    protected StorePreconditions Preconditions { get; }

    protected void RequireUnmodifiedBase(BaseManifest b, string? clone = null) => Preconditions.RequireUnmodifiedBase(b, clone);

    protected void RequireHealthyClone(CloneManifest clone, bool dataOnly, VolumeReading?[]? readings = null) => Preconditions.RequireHealthyClone(clone, dataOnly, readings);

    protected void CheckOutline(CloneManifest clone, BaseManifest nb, VolumeReading?[]? readings = null) => Preconditions.CheckOutline(clone, nb, readings);

    protected void RefuseExistingBase(string name) => Preconditions.RefuseExistingBase(name);

    protected static void CheckBaseFormat(DiskFormat format) => StorePreconditions.CheckBaseFormat(format);

    protected static BaseVolumeManifest BaseVolume(BaseManifest b, string volume) => StorePreconditions.BaseVolume(b, volume);

    /// <summary>
    /// Names of what a subject's folder holds besides its manifest and volumes (sorted; none for
    /// a folder that is a link, which is removed as a link without being entered).
    /// </summary>
    protected static IEnumerable<string> OtherEntries(string folder, string manifestFile, IEnumerable<string?> volumeFiles)
    {
        if (FileNode.Of(folder) != FileNodeKind.Directory)
            return Array.Empty<string>();
        var known = new HashSet<string>(volumeFiles.OfType<string>(), StringComparer.Ordinal) { manifestFile };
        return Directory.EnumerateFileSystemEntries(folder)
            .Select(Path.GetFileName)
            .OfType<string>()
            .Where(n => !known.Contains(n))
            .OrderBy(n => n, StringComparer.Ordinal)
            .ToList();
    }


    /// <summary>A clone volume over base volume <paramref name="bv"/>: a child, or (data the base does not hold) an empty standalone disk.</summary>
    protected PlannedVolume ChildOrEmpty(BaseManifest b, BaseVolumeManifest bv, string folder, VolumeAction childAction)
    {
        var step = new PlannedVolume
        {
            Volume = bv.Name,
            Type = bv.Type,
            Format = bv.Format,
            Path = Path.Combine(folder, bv.Name + Extension(bv.Format)),
            VirtualSize = bv.VirtualSize,
            LogicalSectorSize = bv.LogicalSectorSize,
            Qcow2 = bv.Qcow2,
        };
        if (bv.Type == VolumeType.Data && !bv.HoldsData)
        {
            step.Action = VolumeAction.CreateEmpty;
            step.Reason = "the base's data volume is empty: a standalone disk depends on nothing";
        }
        else
        {
            step.Action = childAction;
            step.Source = Path.Combine(BaseFolder(b.Name), bv.File);
        }
        return step;
    }

    protected CloneVolumeManifest ManifestVolume(PlannedVolume step) => new()
    {
        Name = step.Volume,
        Type = step.Type,
        Format = step.Format,
        File = Path.GetFileName(step.Path),
        Parent = step.Action switch
        {
            VolumeAction.CreateChild or VolumeAction.Replace or VolumeAction.Reset or VolumeAction.Reparent => ToStoreRelative(step.Source!),
            VolumeAction.Flatten or VolumeAction.CreateEmpty => null,
            _ => null,
        },
    };

    protected static PlannedVolume Keep(string folder, CloneVolumeManifest v, string reason) => new()
    {
        Volume = v.Name,
        Type = v.Type,
        Format = v.Format,
        Action = VolumeAction.Keep,
        Path = Path.Combine(folder, v.File),
        Reason = reason,
    };

    protected static CloneManifest CopyOf(CloneManifest c) => Manifest.Deserialize<CloneManifest>(Manifest.Serialize(c));

    protected StorePlan NewPlan(StoreOperation operation, string subject, string kind, string folder) => new()
    {
        Operation = operation,
        Store = Root,
        Subject = subject,
        SubjectKind = kind,
        Folder = folder,
    };
}
