using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Disks;

namespace VmClone.Core.Store;

public sealed partial class VmStore
{
    private readonly bool _rememberBases;
    private readonly ConcurrentDictionary<string, BaseVolumeFacts> _baseVolumes = new(StringComparer.Ordinal);

    // Base volume chains opened for creating children (see OpenParent), closed with the
    // instance; guarded by itself, as is _disposed.
    private readonly List<VirtualDisk> _openParents = new();
    private bool _disposed;

    /// <summary>Bases whose names match <paramref name="match"/> (all when null).</summary>
    public IReadOnlyList<VmBaseInfo> GetBases(Func<string, bool>? match = null)
    {
        IReadOnlyList<CloneRecord> clones = CloneRecord.ReadAll(this);
        Func<string, BaseManifest?> baseOf = UnreadableClone.TrustedBases(this);
        var result = new List<VmBaseInfo>();
        foreach (string name in BaseNames())
        {
            if (match is not null && !match(name))
                continue;
            BaseManifest manifest;
            try
            {
                manifest = LoadBase(name);
            }
            catch (StoreException)
            {
                continue; // Test-VmStore reports it
            }
            result.Add(DescribeBase(manifest, clones.Count(c => string.Equals(UnreadableClone.BaseOf(this, c, baseOf), name, StringComparison.OrdinalIgnoreCase))));
        }
        return result;
    }

    /// <summary>One base, described; BaseNotFound when it does not exist.</summary>
    public VmBaseInfo GetBase(string name)
    {
        BaseManifest manifest = LoadBase(name);
        Func<string, BaseManifest?> baseOf = UnreadableClone.TrustedBases(this);
        int count = CloneRecord.ReadAll(this).Count(c => string.Equals(UnreadableClone.BaseOf(this, c, baseOf), manifest.Name, StringComparison.OrdinalIgnoreCase));
        return DescribeBase(manifest, count);
    }

    /// <summary>Clones whose names match <paramref name="match"/> (all when null), optionally only those on <paramref name="baseName"/>.</summary>
    public IReadOnlyList<VmCloneInfo> GetClones(Func<string, bool>? match = null, string? baseName = null)
    {
        if (baseName is not null)
            LoadBase(baseName);
        var result = new List<VmCloneInfo>();
        Func<string, BaseManifest?> baseOf = UnreadableClone.TrustedBases(this);
        foreach (CloneRecord record in CloneRecord.ReadAll(this))
        {
            if (match is not null && !match(record.Name))
                continue;
            if (baseName is not null && !string.Equals(UnreadableClone.BaseOf(this, record, baseOf), baseName, StringComparison.OrdinalIgnoreCase))
                continue;
            result.Add(record.Manifest is null ? UnreadableClone.Describe(this, record, baseOf) : DescribeClone(record.Name, record.Manifest));
        }
        return result;
    }

    /// <summary>
    /// Names of the clones on <paramref name="baseName"/>, sorted, read from their manifests
    /// alone: no volume of a readable clone is opened (a fleet command plans each clone
    /// afterwards, which reads it again). A clone whose manifest cannot be read is named when its
    /// volumes' parent links lead to the base, so a fleet command over the base fails it loudly
    /// instead of passing it by. BaseNotFound when there is no such base.
    /// </summary>
    public IReadOnlyList<string> CloneNamesOf(string baseName)
    {
        LoadBase(baseName);
        Func<string, BaseManifest?> baseOf = UnreadableClone.TrustedBases(this);
        return CloneRecord.ReadAll(this)
            .Where(r => string.Equals(UnreadableClone.BaseOf(this, r, baseOf), baseName, StringComparison.OrdinalIgnoreCase))
            .Select(r => r.Name)
            .OrderBy(n => n, StringComparer.OrdinalIgnoreCase)
            .ToList();
    }

    /// <summary>One clone, described (<see cref="CloneState.Unreadable"/> when its manifest cannot be read); CloneNotFound when it does not exist.</summary>
    public VmCloneInfo GetClone(string name)
    {
        StoreNames.Validate(name, "clone");
        if (CloneExists(name) && Boundary.CheckFolder(CloneFolder(name)) == BoundaryProblem.None)
        {
            CloneRecord record = CloneRecord.Read(CloneFolder(name), name);
            return record.Manifest is null ? UnreadableClone.Describe(this, record, UnreadableClone.TrustedBases(this)) : DescribeClone(name, record.Manifest);
        }
        return DescribeClone(name, ReadClone(name)); // CloneNotFound, or ManifestInvalid for a linked folder
    }

    internal VmBaseInfo DescribeBase(BaseManifest manifest, int cloneCount)
    {
        string folder = BaseFolder(manifest.Name);
        var volumes = new List<VmVolumeInfo>();
        bool modified = false;
        foreach (BaseVolumeManifest v in manifest.Volumes)
        {
            VmVolumeInfo info = DescribeBaseVolume(manifest.Name, v, Path.Combine(folder, v.File), out string? identity);
            if (identity is not null && !string.Equals(identity, v.Identity, StringComparison.OrdinalIgnoreCase))
            {
                modified = true;
                info.Problem ??= $"modified after the base was made (identity {identity}, recorded {v.Identity})";
            }
            volumes.Add(info);
        }
        return new VmBaseInfo
        {
            Name = manifest.Name,
            Store = Root,
            Path = folder,
            Created = manifest.Created,
            Source = manifest.Source,
            Volumes = volumes,
            CloneCount = cloneCount,
            SizeOnDisk = volumes.Sum(v => v.SizeOnDisk),
            IsModified = modified,
        };
    }

    internal VmCloneInfo DescribeClone(string name, CloneManifest manifest)
    {
        string folder = CloneFolder(name);
        var volumes = new List<VmVolumeInfo>();
        CloneState state = CloneState.Ready;
        // A renamed folder's manifest is sound but for its name: its volumes are described as
        // usual, under the folder's name, and the state says what to mend.
        bool renamed = CloneRename.IsRenamed(manifest, name);
        if (!renamed && StoreBoundary.CloneManifestProblem(manifest, name) is string untrusted)
        {
            // Nothing an untrusted manifest names is opened: each volume only says why.
            foreach (CloneVolumeManifest? v in manifest.Volumes ?? new List<CloneVolumeManifest>())
            {
                volumes.Add(new VmVolumeInfo
                {
                    Owner = name, OwnerKind = "Clone", Name = v?.Name ?? "", Type = v?.Type ?? VolumeType.Data, Path = folder,
                    Problem = $"the clone's manifest cannot be trusted: {untrusted}", Boundary = BoundaryProblem.OutsideFolder,
                });
            }
            return new VmCloneInfo { Name = name, Base = manifest.Base, Store = Root, Path = folder, State = CloneState.ManifestInvalid, Created = manifest.Created, Volumes = volumes };
        }
        foreach (CloneVolumeManifest v in manifest.Volumes)
        {
            VmVolumeInfo info = DescribeCloneVolume(renamed ? name : manifest.Name, v, folder);
            if (info.Problem is not null)
            {
                CloneState s = info.ChainProblem == ChainProblem.ParentModified ? CloneState.BaseModified : CloneState.Broken;
                if (state == CloneState.Ready || s == CloneState.Broken)
                    state = s;
            }
            volumes.Add(info);
        }
        if (state == CloneState.Ready && BaseExists(manifest.Base))
        {
            // A child accepts its parent by identity; a base modified with a tool that keeps the
            // identity is still caught by the identity the base recorded when it was made.
            BaseManifest? baseManifest = null;
            try { baseManifest = LoadBase(manifest.Base); } catch (StoreException) { state = CloneState.Broken; }
            if (baseManifest is not null && DescribeBase(baseManifest, 0).IsModified && manifest.Volumes.Any(v => v.Parent is not null))
                state = CloneState.BaseModified;
        }
        // An operation running or cut off explains a volume that does not open (one being
        // rewritten in place is neither disk until it is done): the clone is Interrupted, which
        // the next command on it or Test-VmStore -Repair finishes, not Broken.
        if (state is CloneState.Ready or CloneState.Broken && WorkFolders("clone", manifest.Name).Any())
            state = CloneState.Interrupted;
        return new VmCloneInfo
        {
            Name = renamed ? name : manifest.Name,
            Base = manifest.Base,
            Store = Root,
            Path = folder,
            State = renamed ? CloneState.Renamed : state,
            Problem = renamed ? CloneRename.Describe(folder, manifest) : null,
            Created = manifest.Created,
            LastRestored = manifest.LastRestored,
            LastRebased = manifest.LastRebased,
            Volumes = volumes,
            SizeOnDisk = volumes.Sum(v => v.SizeOnDisk),
            OwnedBytes = volumes.Sum(v => v.OwnedBytes),
            DivergedBytes = volumes.Where(v => v.Type != VolumeType.Data).Sum(v => v.DivergedBytes),
        };
    }

    /// <summary>
    /// One base volume, described. With <see cref="At"/>'s rememberBases, a file described before
    /// whose size and last write time are unchanged is not opened again: a fleet command checks
    /// its base once, not once per clone.
    /// </summary>
    private VmVolumeInfo DescribeBaseVolume(string baseName, BaseVolumeManifest v, string path, out string? identity)
    {
        // The cached reading stands only for the file as it was: a link or a FIFO put in its place
        // since is described (and refused) afresh.
        FileStamp? stamp = _rememberBases && Boundary.CheckPath(path) == BoundaryProblem.None ? FileStamp.Of(path) : null;
        if (stamp is not null && _baseVolumes.TryGetValue(path, out BaseVolumeFacts? known) && known.Stamp.Equals(stamp.Value)
            && known.Info.Owner == baseName && known.Info.Name == v.Name && known.Info.Type == v.Type)
        {
            identity = known.Identity;
            return known.Info.Copy();
        }
        VmVolumeInfo info = DescribeVolume(baseName, "Base", v.Name, v.Type, path, out identity, out int sectorSize, knownParent: null);
        if (stamp is not null)
            _baseVolumes[path] = new BaseVolumeFacts(stamp.Value, info.Copy(), identity, PathUtil.IsReallyUnder(path, Root), sectorSize, OpenOptions);
        return info;
    }

    /// <summary>
    /// One clone volume, described. A child of a base volume this instance remembers (see
    /// <see cref="DescribeBaseVolume"/>) is checked against what is remembered of its parent: its
    /// link must lead to the parent its manifest names, whose identity it must accept, as opening
    /// the chain would check. Anything else (another parent, an unknown or damaged one) is judged
    /// by opening the whole chain, which also words the problem.
    /// </summary>
    private VmVolumeInfo DescribeCloneVolume(string cloneName, CloneVolumeManifest v, string folder)
    {
        string path = Path.Combine(folder, v.File);
        string? parent = v.Parent is null ? null : FromStoreRelative(v.Parent);
        BaseVolumeFacts? known = null;
        if (parent is not null && _rememberBases && FileStamp.Of(parent) is FileStamp stamp
            && _baseVolumes.TryGetValue(parent, out BaseVolumeFacts? facts) && facts.Stamp.Equals(stamp)
            && facts.Info.Problem is null && facts.Identity is not null && facts.ReallyInStore)
            known = facts;
        return DescribeVolume(cloneName, "Clone", v.Name, v.Type, path, out _, out _, known);
    }

    /// <summary>Sizes, divergence and chain state of one volume file; never throws for a damaged file (the problem is reported).</summary>
    internal VmVolumeInfo DescribeVolume(string owner, string ownerKind, string name, VolumeType type, string path, out string? identity)
        => DescribeVolume(owner, ownerKind, name, type, path, out identity, out _, knownParent: null);

    private VmVolumeInfo DescribeVolume(string owner, string ownerKind, string name, VolumeType type, string path, out string? identity, out int sectorSize, BaseVolumeFacts? knownParent)
    {
        identity = null;
        sectorSize = 0;
        var info = new VmVolumeInfo { Owner = owner, OwnerKind = ownerKind, Name = name, Type = type, Path = path };
        // The file itself first: a link, a FIFO or anything outside its folder is never opened.
        BoundaryProblem boundary = Boundary.CheckPath(path);
        if (boundary != BoundaryProblem.None)
        {
            info.Problem = StoreBoundary.Describe(boundary, path);
            info.Boundary = boundary;
            return info;
        }
        try
        {
            using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
            if (!StoreBoundary.IsSingleFile(layer))
            {
                info.Problem = StoreBoundary.Describe(BoundaryProblem.NotSingleFile, path);
                info.Boundary = BoundaryProblem.NotSingleFile;
                return info;
            }
            identity = layer.Identity;
            sectorSize = layer.LogicalSectorSize;
            info.Format = layer.Format;
            info.VirtualSize = layer.VirtualSize;
            info.SizeOnDisk = layer.SizeOnDisk;
            info.OwnedBytes = layer.AllocatedBytes;
            info.DivergedBytes = DivergedBytes(layer);
            if (layer.ParentReference is null)
                return info;
            if (knownParent is not null && ParentResolver.WouldTake(layer, knownParent.Info.Path, knownParent.Identity!, knownParent.SectorSize))
            {
                info.ParentPath = knownParent.Info.Path;
                return info;
            }
        }
        catch (VirtualDiskException ex)
        {
            info.Problem = ex.Message;
            info.ChainProblem = (ex as DiskChainException)?.Problem;
            return info;
        }
        try
        {
            using VirtualDisk chain = VirtualDisk.Open(path, FileAccess.Read, OpenOptions);
            info.ParentPath = chain.Layers.Count > 1 ? chain.Layers[1].Path : null;
        }
        catch (VirtualDiskException ex)
        {
            info.ParentPath = (ex as DiskChainException)?.ParentPath;
            info.ChainProblem = (ex as DiskChainException)?.Problem;
            info.Problem = ex.Message;
        }
        return info;
    }

    /// <summary>Creates a differencing volume at <paramref name="path"/> over <paramref name="parentPath"/> (see <see cref="OverParent"/>).</summary>
    private void CreateChild(string path, string parentPath, DiskFormat format) =>
        OverParent(parentPath, parent =>
        {
            VirtualDisk.CreateDifferencingFile(path, parent, new DiskCreateOptions { Format = format }, OpenOptions);
            return true;
        });

    /// <summary>
    /// Runs <paramref name="action"/> over the open chain of <paramref name="parentPath"/>, a base
    /// volume. With rememberBases it is opened once for the instance (planning has just described
    /// it) and every new child is written over that open chain; otherwise it is opened for this
    /// call only.
    /// </summary>
    private T OverParent<T>(string parentPath, Func<VirtualDisk, T> action)
    {
        if (OpenParent(parentPath) is VirtualDisk remembered)
            return action(remembered);
        using VirtualDisk parent = VirtualDisk.Open(parentPath, FileAccess.Read, OpenOptions);
        return action(parent);
    }

    /// <summary>
    /// The open chain of a base volume as this instance remembers it (see
    /// <see cref="DescribeBaseVolume"/>): opened on first use and kept with what was remembered.
    /// Null without rememberBases, for a file not remembered or changed since it was described
    /// (its next description remembers it afresh), and once the instance is disposed: the
    /// parent is then opened for each child.
    /// </summary>
    private VirtualDisk? OpenParent(string parentPath)
    {
        if (!_rememberBases || FileStamp.Of(parentPath) is not FileStamp stamp
            || !_baseVolumes.TryGetValue(parentPath, out BaseVolumeFacts? facts) || !facts.Stamp.Equals(stamp))
            return null;
        lock (_openParents)
        {
            if (_disposed)
                return null;
            bool opened = facts.Chain.IsValueCreated;
            VirtualDisk chain = facts.Chain.Value;
            if (!opened)
                _openParents.Add(chain);
            return chain;
        }
    }

    /// <summary>Closes the base volumes kept open for creating children (see <see cref="At"/>'s rememberBases). The instance can still be used; it then opens them for each new volume.</summary>
    public void Dispose()
    {
        lock (_openParents)
        {
            if (_disposed)
                return;
            _disposed = true;
            foreach (VirtualDisk disk in _openParents)
                disk.Dispose();
            _openParents.Clear();
        }
    }

    /// <summary>What a base volume file showed, and its stamp then.</summary>
    /// <param name="Stamp">The file's size and last write time when it was described.</param>
    /// <param name="Info">The description.</param>
    /// <param name="Identity">The file's identity (VHDX DataWriteGuid, VMDK CID), null when it could not be read.</param>
    /// <param name="ReallyInStore">The file's real path (symbolic links followed) is inside the store, as parents must be.</param>
    /// <param name="SectorSize">The logical sector size its children must have.</param>
    /// <param name="Options">How the store opens chains (parents only inside it).</param>
    private sealed record BaseVolumeFacts(FileStamp Stamp, VmVolumeInfo Info, string? Identity, bool ReallyInStore, int SectorSize, DiskOpenOptions Options)
    {
        /// <summary>The file's chain, opened (once) when a child is first created over it; see <see cref="OpenParent"/>.</summary>
        public Lazy<VirtualDisk> Chain { get; } = new(() => VirtualDisk.Open(Info.Path, FileAccess.Read, Options));
    }

    /// <summary>
    /// Bytes of the virtual disk this layer answers itself instead of its parent (sector-exact
    /// for VHDX children); for a standalone layer, the bytes it stores.
    /// </summary>
    internal static long DivergedBytes(DiskLayer layer)
    {
        bool child = layer.ParentReference is not null;
        long total = 0;
        long position = 0;
        long size = layer.VirtualSize;
        while (position < size)
        {
            LayerExtent extent = layer.GetExtent(position, size - position);
            long length = Math.Max(1, Math.Min(extent.Length, size - position));
            if (child ? extent.Kind != ExtentKind.Parent : extent.Kind == ExtentKind.Data)
                total += length;
            position += length;
        }
        return total;
    }
}
