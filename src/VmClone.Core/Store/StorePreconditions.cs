using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// The checks every planner shares, each refusing with a stable error id before anything is
/// touched: a base unmodified since it was made, a clone whose volumes open cleanly, the storage
/// outline a rebase needs, a base format the registry can hold, a name not yet taken.
/// </summary>
internal sealed class StorePreconditions : StorePart
{
    private readonly StoreInspector _inspector;

    public StorePreconditions(StoreCatalogue catalogue, StoreInspector inspector) : base(catalogue) => _inspector = inspector;

    /// <summary>
    /// Describes the clone's data volumes (one open each, and its chain where the parent is not
    /// remembered), by position in the manifest (null for other volumes): what
    /// <see cref="CheckOutline"/>, <see cref="RequireHealthyClone"/> and a rebase's steps then
    /// take from, instead of opening each data volume again.
    /// </summary>
    public VolumeReading?[] ReadDataVolumes(CloneManifest clone)
    {
        string folder = CloneFolder(clone.Name);
        var readings = new VolumeReading?[clone.Volumes.Count];
        for (int i = 0; i < clone.Volumes.Count; i++)
        {
            if (clone.Volumes[i].Type == VolumeType.Data)
                readings[i] = _inspector.ReadCloneVolume(clone.Name, clone.Volumes[i], folder);
        }
        return readings;
    }

    /// <summary>
    /// The storage outline check of a rebase: same volume names, types, order, sizes and sector
    /// sizes. A volume <paramref name="readings"/> holds a readable layer for is judged by it;
    /// any other is opened here.
    /// </summary>
    public void CheckOutline(CloneManifest clone, BaseManifest nb, VolumeReading?[]? readings = null)
    {
        var differences = new List<string>();
        if (clone.Volumes.Count != nb.Volumes.Count)
            differences.Add($"the clone has {clone.Volumes.Count} volume(s), base '{nb.Name}' has {nb.Volumes.Count}");
        for (int i = 0; i < Math.Min(clone.Volumes.Count, nb.Volumes.Count); i++)
        {
            CloneVolumeManifest v = clone.Volumes[i];
            BaseVolumeManifest b = nb.Volumes[i];
            if (!string.Equals(v.Name, b.Name, StringComparison.OrdinalIgnoreCase))
                differences.Add($"volume {i + 1} is '{v.Name}' in the clone but '{b.Name}' in the base");
            if (v.Type != b.Type)
                differences.Add($"volume '{v.Name}' is {v.Type} in the clone but {b.Type} in the base");
            string path = Path.Combine(CloneFolder(clone.Name), v.File);
            if (Boundary.CheckFile(CloneFolder(clone.Name), v.File) == BoundaryProblem.None)
            {
                long size;
                int sectorSize;
                if (readings?[i] is { LayerRead: true } read)
                {
                    size = read.Info.VirtualSize;
                    sectorSize = read.SectorSize;
                }
                else
                {
                    using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
                    size = layer.VirtualSize;
                    sectorSize = layer.LogicalSectorSize;
                }
                // A larger volume in the base is a grown outline: the clone's volume grows with it.
                if (size > b.VirtualSize)
                    differences.Add($"volume '{v.Name}' is {size} bytes in the clone but only {b.VirtualSize} in the base, and a volume never shrinks");
                if (sectorSize != b.LogicalSectorSize)
                    differences.Add($"volume '{v.Name}' has {sectorSize}-byte sectors in the clone but {b.LogicalSectorSize} in the base");
            }
        }
        if (differences.Count > 0)
            throw new StoreException(StoreErrorIds.OutlineMismatch, VmCloneErrorKind.InvalidOperation,
                $"Clone '{clone.Name}' cannot move onto base '{nb.Name}': their storage outlines differ ({string.Join("; ", differences)}). " +
                "A new base must have the same volumes, types and order, each as large as the clone's or larger; make it from a clone of the old base (New-VmBase -FromClone), " +
                "or from disks at least as large (New-VmBase -Volume; Resize-VmDisk grows a copy of a disk first).", clone.Name);
    }

    /// <summary>
    /// Refuses a base whose volume files are missing or were modified after it was made. The
    /// refusal is about <paramref name="clone"/> (the clone the operation was for, a new clone's
    /// name) when there is one: a fleet command's log then tells which clones failed.
    /// </summary>
    public void RequireUnmodifiedBase(BaseManifest b, string? clone = null)
    {
        VmBaseInfo info = _inspector.DescribeBase(b, 0);
        VmVolumeInfo? bad = info.Volumes.FirstOrDefault(v => v.Problem is not null);
        if (bad is null)
            return;
        string who = clone is null ? $"Base '{b.Name}' cannot be used" : $"Clone '{clone}' was not changed: its base '{b.Name}' cannot be used";
        if (info.IsModified)
            throw new StoreException(StoreErrorIds.BaseModified, VmCloneErrorKind.InvalidData,
                $"{who}: volume '{bad.Name}' was {bad.Problem}, so clones of it may show corrupted content. {BaseModifiedAdvice.For(b.Name, bad.Format)}.", clone ?? b.Name);
        throw new StoreException(StoreErrorIds.BaseBroken, VmCloneErrorKind.InvalidData,
            $"{who}: volume '{bad.Name}': {bad.Problem}. Its clones may show corrupted content; run Test-VmStore.", clone ?? b.Name);
    }

    /// <summary>
    /// Refuses a clone whose volumes (or only its data volumes) do not open cleanly: their content
    /// must not be trusted. A volume <paramref name="readings"/> holds is judged by that reading.
    /// </summary>
    public void RequireHealthyClone(CloneManifest clone, bool dataOnly, VolumeReading?[]? readings = null)
    {
        string folder = CloneFolder(clone.Name);
        for (int i = 0; i < clone.Volumes.Count; i++)
        {
            CloneVolumeManifest v = clone.Volumes[i];
            if (dataOnly && v.Type != VolumeType.Data)
                continue;
            VmVolumeInfo info = readings?[i]?.Info ?? _inspector.DescribeCloneVolume(clone.Name, v, folder);
            if (info.Problem is null)
                continue;
            if (info.Boundary is not (BoundaryProblem.None or BoundaryProblem.Missing))
                throw new StoreException(StoreBoundary.ErrorId(info.Boundary), VmCloneErrorKind.InvalidData,
                    $"Clone '{clone.Name}': volume '{v.Name}' cannot be used: {info.Problem}. Nothing was changed; run Test-VmStore.", clone.Name);
            if (info.ChainProblem == ChainProblem.ParentModified)
                throw new StoreException(StoreErrorIds.BaseModified, VmCloneErrorKind.InvalidData,
                    $"Clone '{clone.Name}': volume '{v.Name}' cannot be read safely: {info.Problem} Nothing was changed. {BaseModifiedAdvice.For(clone.Base, v.Format)}.", clone.Name);
            throw new StoreException(StoreErrorIds.CloneBroken, VmCloneErrorKind.InvalidData,
                $"Clone '{clone.Name}': volume '{v.Name}' cannot be read safely: {info.Problem} Nothing was changed; run Test-VmStore.", clone.Name);
        }
    }

    public void RefuseExistingBase(string name)
    {
        if (BaseExists(name) || Directory.Exists(BaseFolder(name)))
            throw new StoreException(StoreErrorIds.BaseExists, VmCloneErrorKind.AlreadyExists,
                $"A base named '{name}' already exists in store '{Root}'; choose another name.", name);
    }

    public static void CheckBaseFormat(DiskFormat format)
    {
        if (DiskFormats.Find(format) is not { CanHoldBase: true })
            throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument,
                $"Base volumes are stored as {string.Join(" or ", DiskFormats.BaseFormats.Select(f => f.Name.ToUpperInvariant()))} (clones are differencing disks over them), not {format}.");
    }

    public static BaseVolumeManifest BaseVolume(BaseManifest b, string volume) =>
        b.Volumes.FirstOrDefault(v => string.Equals(v.Name, volume, StringComparison.OrdinalIgnoreCase))
        ?? throw new StoreException(StoreErrorIds.OutlineMismatch, VmCloneErrorKind.InvalidData, $"Base '{b.Name}' has no volume '{volume}'.", b.Name);
}
