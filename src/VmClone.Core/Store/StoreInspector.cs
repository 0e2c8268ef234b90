using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// Describes bases, clones and their volumes as Get-VmBase, Get-VmClone and the preconditions
/// of every plan see them: sizes, divergence, the chain's state, and a problem as a type
/// (<see cref="VmVolumeInfo.ChainProblem"/>, <see cref="VmVolumeInfo.Boundary"/>) beside its
/// message. Never throws for a damaged file; writes nothing.
/// </summary>
internal sealed class StoreInspector
{
    private readonly StoreLayout _layout;
    private readonly StoreCatalogue _catalogue;
    private readonly KeptChains _chains;

    public StoreInspector(StoreLayout layout, StoreCatalogue catalogue, KeptChains chains)
    {
        _layout = layout;
        _catalogue = catalogue;
        _chains = chains;
    }

    private string Root => _layout.Root;

    private StoreBoundary Boundary => _layout.Boundary;

    private StoreCatalogue Catalogue => _catalogue;

    private DiskOpenOptions OpenOptions => _layout.OpenOptions;

    private string BaseFolder(string name) => _layout.BaseFolder(name);

    private string CloneFolder(string name) => _layout.CloneFolder(name);

    private IReadOnlyList<string> BaseNames() => _catalogue.BaseNames();

    private bool BaseExists(string name) => _catalogue.BaseExists(name);

    private bool CloneExists(string name) => _catalogue.CloneExists(name);

    private BaseManifest LoadBase(string name) => _catalogue.LoadBase(name);

    /// <summary>Bases whose names match <paramref name="match"/> (all when null).</summary>
    public IReadOnlyList<VmBaseInfo> GetBases(Func<string, bool>? match = null)
    {
        IReadOnlyList<CloneRecord> clones = CloneRecord.ReadAll(Catalogue);
        Func<string, BaseManifest?> baseOf = UnreadableClone.TrustedBases(Catalogue);
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
            result.Add(DescribeBase(manifest, clones.Count(c => string.Equals(UnreadableClone.BaseOf(Catalogue, c, baseOf), name, StringComparison.OrdinalIgnoreCase))));
        }
        return result;
    }

    /// <summary>One base, described; BaseNotFound when it does not exist.</summary>
    public VmBaseInfo GetBase(string name, StandaloneCounting counting = StandaloneCounting.None, CancellationToken cancellationToken = default)
    {
        BaseManifest manifest = LoadBase(name);
        Func<string, BaseManifest?> baseOf = UnreadableClone.TrustedBases(Catalogue);
        int count = CloneRecord.ReadAll(Catalogue).Count(c => string.Equals(UnreadableClone.BaseOf(Catalogue, c, baseOf), manifest.Name, StringComparison.OrdinalIgnoreCase));
        return DescribeBase(manifest, count, counting, cancellationToken);
    }

    /// <summary>Clones whose names match <paramref name="match"/> (all when null), optionally only those on <paramref name="baseName"/>.</summary>
    public IReadOnlyList<VmCloneInfo> GetClones(Func<string, bool>? match = null, string? baseName = null)
    {
        if (baseName is not null)
            LoadBase(baseName);
        var result = new List<VmCloneInfo>();
        Func<string, BaseManifest?> baseOf = UnreadableClone.TrustedBases(Catalogue);
        foreach (CloneRecord record in CloneRecord.ReadAll(Catalogue))
        {
            if (match is not null && !match(record.Name))
                continue;
            if (baseName is not null && !string.Equals(UnreadableClone.BaseOf(Catalogue, record, baseOf), baseName, StringComparison.OrdinalIgnoreCase))
                continue;
            result.Add(record.Manifest is null ? UnreadableClone.Describe(Catalogue, record, baseOf) : DescribeClone(record.Name, record.Manifest, StandaloneCounting.CloneTotal));
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
        Func<string, BaseManifest?> baseOf = UnreadableClone.TrustedBases(Catalogue);
        return CloneRecord.ReadAll(Catalogue)
            .Where(r => string.Equals(UnreadableClone.BaseOf(Catalogue, r, baseOf), baseName, StringComparison.OrdinalIgnoreCase))
            .Select(r => r.Name)
            .OrderBy(n => n, StringComparer.OrdinalIgnoreCase)
            .ToList();
    }

    /// <summary>One clone, described (<see cref="CloneState.Unreadable"/> when its manifest cannot be read); CloneNotFound when it does not exist.</summary>
    public VmCloneInfo GetClone(string name, StandaloneCounting counting = StandaloneCounting.CloneTotal, CancellationToken cancellationToken = default)
    {
        StoreNames.Validate(name, "clone");
        if (CloneExists(name) && Boundary.CheckFolder(CloneFolder(name)) == BoundaryProblem.None)
        {
            CloneRecord record = CloneRecord.Read(CloneFolder(name), name);
            return record.Manifest is null ? UnreadableClone.Describe(Catalogue, record, UnreadableClone.TrustedBases(Catalogue)) : DescribeClone(name, record.Manifest, counting, cancellationToken);
        }
        return DescribeClone(name, _catalogue.ReadClone(name), counting, cancellationToken); // CloneNotFound, or ManifestInvalid for a linked folder
    }

    internal VmBaseInfo DescribeBase(BaseManifest manifest, int cloneCount, StandaloneCounting counting = StandaloneCounting.None, CancellationToken cancellationToken = default)
    {
        string folder = BaseFolder(manifest.Name);
        var volumes = new List<VmVolumeInfo>();
        bool modified = false;
        foreach (BaseVolumeManifest v in manifest.Volumes)
        {
            VmVolumeInfo info = DescribeBaseVolume(manifest.Name, v, Path.Combine(folder, v.File), out string? identity, counting, cancellationToken);
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

    /// <summary>One clone, described; <paramref name="counting"/> says which of its standalone volumes are read to count their non-zero sectors.</summary>
    internal VmCloneInfo DescribeClone(string name, CloneManifest manifest, StandaloneCounting counting, CancellationToken cancellationToken = default)
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
            VmVolumeInfo info = ReadCloneVolume(renamed ? name : manifest.Name, v, folder, counting, cancellationToken).Info;
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
        if (state is CloneState.Ready or CloneState.Broken && _layout.WorkFolders("clone", manifest.Name).Any())
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
    /// One base volume, described. With <see cref="VmStore.At"/>'s rememberBases, a file described before
    /// whose size and last write time are unchanged is not opened again: a fleet command checks
    /// its base once, not once per clone. A volume <paramref name="counting"/> counts is read
    /// afresh and not remembered: what is remembered is the figure read without its content.
    /// </summary>
    internal VmVolumeInfo DescribeBaseVolume(string baseName, BaseVolumeManifest v, string path, out string? identity,
        StandaloneCounting counting = StandaloneCounting.None, CancellationToken cancellationToken = default)
    {
        // The cached reading stands only for the file as it was: a link or a FIFO put in its place
        // since is described (and refused) afresh.
        bool counted = counting.Counts(v.Type);
        FileStamp? stamp = !counted && _chains.Remembering && Boundary.CheckPath(path) == BoundaryProblem.None ? FileStamp.Of(path) : null;
        if (stamp is not null && _chains.Recall(path, stamp.Value) is BaseVolumeFacts known
            && known.Info.Owner == baseName && known.Info.Name == v.Name && known.Info.Type == v.Type)
        {
            identity = known.Identity;
            return known.Info.Copy();
        }
        VmVolumeInfo info = DescribeVolume(baseName, "Base", v.Name, v.Type, path, out identity, out int sectorSize, knownParent: null, out _, counted, cancellationToken);
        if (stamp is not null)
            _chains.Remember(path, new BaseVolumeFacts(stamp.Value, info.Copy(), identity, PathUtil.IsReallyUnder(path, Root), sectorSize, OpenOptions));
        return info;
    }

    /// <summary>
    /// One clone volume, described. A child of a base volume this instance remembers (see
    /// <see cref="DescribeBaseVolume"/>) is checked against what is remembered of its parent: its
    /// link must lead to the parent its manifest names, whose identity it must accept, as opening
    /// the chain would check. Anything else (another parent, an unknown or damaged one) is judged
    /// by opening the whole chain, which also words the problem.
    /// </summary>
    internal VmVolumeInfo DescribeCloneVolume(string cloneName, CloneVolumeManifest v, string folder) => ReadCloneVolume(cloneName, v, folder).Info;

    /// <summary>
    /// <see cref="DescribeCloneVolume"/>, with the facts a plan takes from that same open (its
    /// sector size, whether it has a parent), so the plan need not open the volume again.
    /// </summary>
    internal VolumeReading ReadCloneVolume(string cloneName, CloneVolumeManifest v, string folder,
        StandaloneCounting counting = StandaloneCounting.None, CancellationToken cancellationToken = default)
    {
        string path = Path.Combine(folder, v.File);
        string? parent = v.Parent is null ? null : _layout.FromStoreRelative(v.Parent);
        BaseVolumeFacts? known = null;
        if (parent is not null && _chains.Remembering && FileStamp.Of(parent) is FileStamp stamp
            && _chains.Recall(parent, stamp) is BaseVolumeFacts facts
            && facts.Info.Problem is null && facts.Identity is not null && facts.ReallyInStore)
            known = facts;
        // Stamped before it is read: a plan that takes its facts from this reading checks under
        // the locks that the file is still the one read.
        FileStamp? before = FileStamp.Of(path);
        VmVolumeInfo info = DescribeVolume(cloneName, "Clone", v.Name, v.Type, path, out _, out int sectorSize, known, out bool hasParent, counting.Counts(v.Type), cancellationToken);
        return new VolumeReading(info, sectorSize, hasParent, before);
    }

    /// <summary>Sizes, divergence and chain state of one volume file, reading none of its content; never throws for a damaged file (the problem is reported).</summary>
    internal VmVolumeInfo DescribeVolume(string owner, string ownerKind, string name, VolumeType type, string path, out string? identity)
        => DescribeVolume(owner, ownerKind, name, type, path, out identity, out _, knownParent: null, out _, countStandalone: false, CancellationToken.None);

    // With countStandalone, a layer without a parent is read to count its non-zero sectors
    // (NonZeroSectors) instead of showing the bytes its file stores.
    private VmVolumeInfo DescribeVolume(string owner, string ownerKind, string name, VolumeType type, string path, out string? identity, out int sectorSize, BaseVolumeFacts? knownParent, out bool hasParent,
        bool countStandalone, CancellationToken cancellationToken)
    {
        identity = null;
        sectorSize = 0;
        hasParent = false;
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
            info.DivergedBytes = countStandalone && layer.ParentReference is null ? NonZeroSectors.Count(layer, cancellationToken) : DivergedBytes(layer);
            hasParent = layer.ParentReference is not null;
            if (!hasParent)
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

    /// <summary>
    /// Bytes of the virtual disk this layer answers itself instead of its parent, read from its
    /// own tables (as finely as its format records them: to the sector for VHDX, per grain or
    /// cluster for VMDK and qcow2); for a standalone layer, the bytes its file stores, unread
    /// (an upper bound of <see cref="NonZeroSectors.Count"/>).
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

/// <summary>What describing a clone volume read, beyond its description: what a plan needs of the same open.</summary>
/// <param name="Info">The description (its problem, as words and as a type).</param>
/// <param name="SectorSize">The logical sector size; 0 when the volume's own file could not be read as a single-file layer.</param>
/// <param name="HasParent">The layer links to a parent (it is a differencing volume).</param>
/// <param name="Stamp">The file's size and last write time just before it was read (null when missing).</param>
internal sealed record VolumeReading(VmVolumeInfo Info, int SectorSize, bool HasParent, FileStamp? Stamp)
{
    /// <summary>True when the volume's own layer was opened and read (its sizes and parent link are known).</summary>
    public bool LayerRead => SectorSize > 0;
}
