using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// A clone manifest rebuilt from what the clone's own files say, for a clone whose clone.json
/// cannot be read. Every disk file in the folder must be accounted for: a child of a volume of a
/// base of the store (its parent link read through the engine, only inside the store) takes that
/// volume's name and type; a standalone disk named after one of that base's data volumes is that
/// data volume. Anything else (a link, a disk of no volume, two files for one volume, children of
/// two bases, a base volume with no file) makes the rebuild refuse with the reason: nothing is
/// guessed, and nothing is ever deleted.
/// </summary>
internal sealed class ManifestRebuild
{
    private ManifestRebuild(CloneManifest? manifest, string? baseName, string? refusal)
    {
        Manifest = manifest;
        Base = baseName;
        Refusal = refusal;
    }

    /// <summary>The rebuilt manifest, or null when it cannot be rebuilt unambiguously.</summary>
    public CloneManifest? Manifest { get; }

    /// <summary>The one base the folder's children depend on, when there is one (also when the rebuild is refused for another reason).</summary>
    public string? Base { get; }

    /// <summary>Why the manifest cannot be rebuilt, or null.</summary>
    public string? Refusal { get; }

    /// <summary>
    /// Reads the clone folder <paramref name="folder"/> of <paramref name="store"/>; the base
    /// manifests come from <paramref name="baseOf"/> (null for a base that does not exist or cannot
    /// be trusted). Opens each disk file's header and its parent's, nothing else.
    /// </summary>
    public static ManifestRebuild Of(VmStore store, string folder, Func<string, BaseManifest?> baseOf)
    {
        var children = new List<(string File, DiskFormat Format, string Base, BaseVolumeManifest Volume, string Parent)>();
        var standalone = new List<(string File, DiskFormat Format)>();
        var options = new DiskOpenOptions { AllowedParentRoot = store.Root, IgnoreParentIdentityMismatch = true };
        string? refusal = null;
        foreach (string entry in Directory.EnumerateFileSystemEntries(folder).OrderBy(e => e, StringComparer.Ordinal))
        {
            string file = Path.GetFileName(entry);
            if (!VmStore.IsDiskFile(entry))
                continue; // the manifest, a hypervisor's files, an admin's notes: not volumes
            if (StoreBoundary.VolumeFileNameProblem(file) is string nameProblem)
            {
                refusal ??= $"'{entry}' is not a volume file VmClone would name ({nameProblem})";
                continue;
            }
            BoundaryProblem boundary = store.Boundary.CheckFile(folder, file);
            if (boundary != BoundaryProblem.None)
            {
                refusal ??= StoreBoundary.Describe(boundary, entry);
                continue;
            }
            using ChainWalk walk = ChainWalk.Start(entry, options);
            if (walk.Layers.Count == 0)
            {
                refusal ??= $"'{entry}' does not open as a disk: {walk.Problem?.Message}";
                continue;
            }
            DiskLayer top = walk.Layers[0];
            if (!StoreBoundary.IsSingleFile(top))
            {
                refusal ??= StoreBoundary.Describe(BoundaryProblem.NotSingleFile, entry);
                continue;
            }
            if (top.ParentReference is null)
            {
                standalone.Add((file, top.Format));
                continue;
            }
            string? parent = walk.Layers.Count > 1 ? walk.Layers[1].Path : (walk.Problem as DiskChainException)?.ParentPath;
            if (parent is null || BaseVolumeOf(store, parent, baseOf) is not (string baseName, BaseVolumeManifest volume))
            {
                refusal ??= $"'{entry}' is a differencing disk whose parent {(parent is null ? $"cannot be found in the store ({walk.Problem?.Message})" : $"'{parent}' is not a volume of a base of the store")}";
                continue;
            }
            children.Add((file, top.Format, baseName, volume, Path.GetFullPath(parent)));
        }
        var bases = children.Select(c => c.Base).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        string? itsBase = bases.Count == 1 ? bases[0] : null;
        if (refusal is not null)
            return new ManifestRebuild(null, itsBase, refusal);
        if (bases.Count == 0)
            return new ManifestRebuild(null, null, "no disk file in the folder is a child of a base's volume, so its base cannot be told");
        if (bases.Count > 1)
            return new ManifestRebuild(null, null, $"its disk files are children of several bases ({string.Join(", ", bases.Select(b => $"'{b}'"))})");
        BaseManifest baseManifest = baseOf(itsBase!)!;
        var manifest = new CloneManifest { Name = Path.GetFileName(folder), Base = baseManifest.Name, Created = new DateTimeOffset(Directory.GetCreationTimeUtc(folder), TimeSpan.Zero) };
        foreach (BaseVolumeManifest bv in baseManifest.Volumes)
        {
            var mine = children.Where(c => ReferenceEquals(c.Volume, bv)).ToList();
            if (mine.Count > 1)
                return Refused(itsBase, $"the files {string.Join(", ", mine.Select(c => $"'{c.File}'"))} are all children of the base's volume '{bv.Name}'");
            if (mine.Count == 1)
            {
                manifest.Volumes.Add(new CloneVolumeManifest { Name = bv.Name, Type = bv.Type, Format = mine[0].Format, File = mine[0].File, Parent = store.ToStoreRelative(mine[0].Parent) });
                continue;
            }
            var own = standalone.Where(s => bv.Type == VolumeType.Data && string.Equals(Path.GetFileNameWithoutExtension(s.File), bv.Name, StringComparison.OrdinalIgnoreCase)).ToList();
            if (own.Count > 1)
                return Refused(itsBase, $"the files {string.Join(", ", own.Select(s => $"'{s.File}'"))} are all standalone disks named after the data volume '{bv.Name}'");
            if (own.Count == 0)
                return Refused(itsBase, $"no file in the folder is the clone's volume '{bv.Name}' ({bv.Type}) of base '{baseManifest.Name}'");
            standalone.Remove(own[0]);
            manifest.Volumes.Add(new CloneVolumeManifest { Name = bv.Name, Type = VolumeType.Data, Format = own[0].Format, File = own[0].File, Parent = null });
        }
        if (standalone.Count > 0)
            return Refused(itsBase, $"the standalone disk{(standalone.Count > 1 ? "s" : "")} {string.Join(", ", standalone.Select(s => $"'{Path.Combine(folder, s.File)}'"))} {(standalone.Count > 1 ? "are" : "is")} no volume of base '{baseManifest.Name}' (a data volume's file is named after it)");
        if (StoreBoundary.CloneManifestProblem(manifest, manifest.Name) is string problem)
            return Refused(itsBase, problem);
        return new ManifestRebuild(manifest, itsBase, null);
    }

    private static ManifestRebuild Refused(string? baseName, string why) => new(null, baseName, why);

    /// <summary>The base and volume whose file <paramref name="parent"/> is (bases/NAME/FILE of this store, named by that base's manifest), or null.</summary>
    private static (string, BaseVolumeManifest)? BaseVolumeOf(VmStore store, string parent, Func<string, BaseManifest?> baseOf)
    {
        string full = Path.GetFullPath(parent);
        string? folder = Path.GetDirectoryName(full);
        if (folder is null || !string.Equals(Path.GetDirectoryName(folder), store.BasesFolder, StringComparison.Ordinal))
            return null;
        string baseName = Path.GetFileName(folder);
        if (StoreNames.Problem(baseName) is not null || store.Boundary.CheckFile(folder, Path.GetFileName(full)) != BoundaryProblem.None)
            return null;
        BaseManifest? manifest = baseOf(baseName);
        BaseVolumeManifest? volume = manifest?.Volumes.FirstOrDefault(v => string.Equals(v.File, Path.GetFileName(full), StringComparison.Ordinal));
        return volume is null ? null : (baseName, volume);
    }
}
