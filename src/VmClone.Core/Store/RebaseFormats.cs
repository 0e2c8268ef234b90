using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// A rebase onto a base of another format. A differencing disk cannot cross formats (a VHDX child
/// over a VMDK parent is not expressible), so the clone's system and temporary volumes would be
/// made anew in the new format under new names while its data volumes stayed as they were: a mix
/// no hypervisor opens, under names the virtual machine's configuration does not know. Such a
/// rebase is refused unless every volume is to be converted.
/// </summary>
internal static class RebaseFormats
{
    /// <summary>Refuses (RebaseFormatMismatch, before anything is touched) when a volume of <paramref name="clone"/> is of another format than the matching volume of <paramref name="newBase"/>.</summary>
    public static void RequireSame(CloneManifest clone, BaseManifest newBase)
    {
        var differences = new List<string>();
        for (int i = 0; i < Math.Min(clone.Volumes.Count, newBase.Volumes.Count); i++)
        {
            CloneVolumeManifest v = clone.Volumes[i];
            BaseVolumeManifest b = newBase.Volumes[i];
            if (v.Format != b.Format)
                differences.Add($"'{v.Name}' is {Name(v.Format)} in the clone, {Name(b.Format)} in the base");
        }
        if (differences.Count == 0)
            return;
        throw new StoreException(StoreErrorIds.RebaseFormatMismatch, VmCloneErrorKind.InvalidArgument,
            $"Clone '{clone.Name}' was not rebased onto base '{newBase.Name}': their formats differ ({string.Join("; ", differences)}). " +
            "A rebase across formats gives every volume a new file name (the virtual machine's configuration would point at files that are gone). " +
            "Add -ConvertFormat to convert every volume to the new base's format, data volumes included (their content is kept byte for byte), then point the virtual machine at the new files; " +
            "or rebase onto a base of the clone's format.", clone.Name);
    }

    /// <summary>
    /// The step of a converting rebase for a data volume of another format than the new base's: its
    /// whole content copied into a standalone file of the new format (<paramref name="newPath"/>),
    /// which supersedes <paramref name="current"/>. A standalone file depends on no base, so the old
    /// base can go.
    /// </summary>
    public static PlannedVolume ConvertData(CloneVolumeManifest v, BaseVolumeManifest bv, string current, string newPath)
    {
        var step = new PlannedVolume
        {
            Volume = v.Name,
            Type = v.Type,
            Format = bv.Format,
            Action = VolumeAction.Flatten,
            Path = newPath,
            Source = current,
            Supersedes = current,
            Qcow2 = bv.Qcow2,
            Reason = $"converted from {Name(v.Format)} to {Name(bv.Format)} into a standalone file, content kept byte for byte",
        };
        step.Stamp(current);
        using DiskLayer layer = VirtualDisk.OpenLayer(current, FileAccess.Read);
        step.VirtualSize = layer.VirtualSize;
        step.LogicalSectorSize = layer.LogicalSectorSize;
        return step;
    }

    private static string Name(DiskFormat format) => format.ToString().ToUpperInvariant();
}
