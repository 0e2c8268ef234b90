using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// The base layers a fleet command remembers (VmStore.At's rememberBases): what each base volume
/// file showed when it was described, by its stamp (size and last write time), so the next
/// clone's check does not open it again; and each base volume's open chain, opened once and kept
/// for creating every new child over it until disposed. Without rememberBases it remembers
/// nothing and opens a parent for each child.
/// </summary>
internal sealed class KeptChains : IDisposable
{
    private readonly bool _rememberBases;
    private readonly StoreLayout _layout;
    private readonly ConcurrentDictionary<string, BaseVolumeFacts> _baseVolumes = new(StringComparer.Ordinal);

    // Base volume chains opened for creating children (see OpenParent), closed with the
    // instance; guarded by itself, as is _disposed.
    private readonly List<VirtualDisk> _openParents = new();
    private bool _disposed;

    public KeptChains(bool rememberBases, StoreLayout layout)
    {
        _rememberBases = rememberBases;
        _layout = layout;
    }

    private DiskOpenOptions OpenOptions => _layout.OpenOptions;

    /// <summary>True when base volumes are remembered at all.</summary>
    public bool Remembering => _rememberBases;

    /// <summary>What <paramref name="path"/> showed when last described, if its stamp is still <paramref name="stamp"/>.</summary>
    public BaseVolumeFacts? Recall(string path, FileStamp stamp) =>
        _rememberBases && _baseVolumes.TryGetValue(path, out BaseVolumeFacts? known) && known.Stamp.Equals(stamp) ? known : null;

    /// <summary>Remembers what a base volume file showed (with rememberBases; otherwise nothing).</summary>
    public void Remember(string path, BaseVolumeFacts facts)
    {
        if (_rememberBases)
            _baseVolumes[path] = facts;
    }

    /// <summary>Creates a differencing volume at <paramref name="path"/> over <paramref name="parentPath"/> (see <see cref="OverParent"/>), a qcow2 one laid out as <paramref name="layout"/> says.</summary>
    public void CreateChild(string path, string parentPath, DiskFormat format, Qcow2Layout? layout = null) =>
        OverParent(parentPath, parent =>
        {
            VirtualDisk.CreateDifferencingFile(path, parent, Qcow2Layout.CreateOptions(format, layout), OpenOptions);
            return true;
        });

    /// <summary>
    /// Runs <paramref name="action"/> over the open chain of <paramref name="parentPath"/>, a base
    /// volume. With rememberBases it is opened once for the instance (planning has just described
    /// it) and every new child is written over that open chain; otherwise it is opened for this
    /// call only.
    /// </summary>
    public T OverParent<T>(string parentPath, Func<VirtualDisk, T> action)
    {
        if (OpenParent(parentPath) is VirtualDisk remembered)
            return action(remembered);
        using VirtualDisk parent = VirtualDisk.Open(parentPath, FileAccess.Read, OpenOptions);
        return action(parent);
    }

    /// <summary>
    /// The open chain of a base volume as this instance remembers it (see
    /// <see cref="StoreInspector"/>): opened on first use and kept with what was remembered.
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

    /// <summary>Closes the base volumes kept open for creating children (see <see cref="VmStore.At"/>'s rememberBases). The chains can still be used; they then open them for each new volume.</summary>
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
}

/// <summary>What a base volume file showed, and its stamp then.</summary>
/// <param name="Stamp">The file's size and last write time when it was described.</param>
/// <param name="Info">The description.</param>
/// <param name="Identity">The file's identity (VHDX DataWriteGuid, VMDK CID), null when it could not be read.</param>
/// <param name="ReallyInStore">The file's real path (symbolic links followed) is inside the store, as parents must be.</param>
/// <param name="SectorSize">The logical sector size its children must have.</param>
/// <param name="Options">How the store opens chains (parents only inside it).</param>
internal sealed record BaseVolumeFacts(FileStamp Stamp, VmVolumeInfo Info, string? Identity, bool ReallyInStore, int SectorSize, DiskOpenOptions Options)
{
    /// <summary>The file's chain, opened (once) when a child is first created over it; see <see cref="KeptChains.OpenParent"/>.</summary>
    public Lazy<VirtualDisk> Chain { get; } = new(() => VirtualDisk.Open(Info.Path, FileAccess.Read, Options));
}
