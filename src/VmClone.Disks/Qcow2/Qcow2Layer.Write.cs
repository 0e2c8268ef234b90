using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Text;

namespace VmClone.Disks.Qcow2;

public sealed partial class Qcow2Layer
{
    /// <summary>
    /// The refusals of a read-write open (qcow2.rst feature bits; qemu's own rules): an image
    /// marked corrupt, a dirty one (its refcounts may be stale), one with internal snapshots
    /// (their clusters are shared), persistent bitmaps (writing would make them stale), an
    /// external data file. Nothing is written to a refused file.
    /// </summary>
    private static void RefuseWriting(string path, Qcow2Header header, HeaderExtensions extensions, DiskOpenOptions options)
    {
        if (header.IsCorrupt)
            throw new VirtualDiskException(path, $"'{path}' is marked corrupt (incompatible feature bit 1, set by qemu when it found its metadata inconsistent); it is not opened for writing. Repair it with qemu-img check -r all.");
        if (header.IsDirty)
            throw new VirtualDiskException(path, $"'{path}' is marked dirty (incompatible feature bit 0: it was not closed cleanly, or uses lazy refcounts): its refcounts may be stale, so it is not opened for writing. Repair it with qemu-img check -r all.");
        if (header.SnapshotCount > 0)
            throw new VirtualDiskException(path, $"'{path}' holds {header.SnapshotCount} internal snapshot(s); their clusters are shared with the active layer, so VmClone does not write, merge or re-point it. Delete the snapshots (qemu-img snapshot -d) or convert the image first.");
        if (!options.AllowWritingOverBitmaps && (extensions.Find(HeaderExtensions.BitmapsType) is not null || (header.AutoclearFeatures & (1UL << Qcow2Header.BitmapsAutoclearBit)) != 0))
            throw new VirtualDiskException(path, $"'{path}' has persistent dirty bitmaps (libvirt checkpoints, incremental backups); writing would leave them stale, so it is not opened for writing. Remove them with qemu-img bitmap --remove, or allow writing over them (their consistency bit is then cleared and the next backup is a full one).");
        if (header.HasExternalData)
            throw new VirtualDiskException(path, $"'{path}' keeps its data in an external data file; VmClone does not write such images.");
    }

    private ClusterAllocator Allocator => _allocator ??= new ClusterAllocator(Path, _file, _header, _tables.ClaimMetadata);

    // Data clusters this layer allocated since it was opened: the only ones past the file's
    // length at open that an L2 entry may name for a write in place.
    private readonly HashSet<long> _allocatedData = new();

    /// <summary>
    /// A cluster the file names for a write in place must be this image's data alone: not
    /// metadata, inside the file as it was opened (or allocated since), with a refcount of one.
    /// A hostile table that aims a guest cluster at the L1 table or another cluster's data is
    /// refused before a byte is written.
    /// </summary>
    private void CheckWritableInPlace(long host, long guestStart, long entryAt)
    {
        if (_tables.IsMetadata(host))
            throw new DiskFormatException(Path, "L2 table", $"guest offset {guestStart} maps to {host}, a cluster of metadata; it is not written", entryAt);
        if (host >= _openLength && !_allocatedData.Contains(host))
            throw new DiskFormatException(Path, "L2 table", $"guest offset {guestStart} maps to {host}, past the end of the file as it was opened ({_openLength} bytes); it is not written", entryAt);
        ulong refcount = Allocator.Get(host >> _clusterBits);
        if (refcount != 1)
            throw new DiskFormatException(Path, "refcount block", $"the cluster at {host} that guest offset {guestStart} maps to has refcount {refcount}, not 1 (shared or miscounted; qemu-img check -r all repairs the count); it is not written", host);
    }

    private ClusterAllocator? _allocator;
    private bool _prepared;

    /// <summary>
    /// Before the first write: every autoclear feature bit this writer does not keep true is
    /// cleared, as qcow2.rst asks: bits it does not know, and the bitmaps' consistency bit
    /// (bitmaps are not updated by VmClone's writes; their images are written only when allowed).
    /// </summary>
    private void PrepareForWrite()
    {
        if (_prepared)
            return;
        _tables.ClaimDataClusters(_header.HasExternalData);
        _prepared = true;
        ulong kept = 1UL << Qcow2Header.RawDataAutoclearBit;
        if (_header.Version >= 3 && (_header.AutoclearFeatures & ~kept) != 0)
        {
            byte[] field = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(field, _header.AutoclearFeatures & kept);
            _file.Write(88, field, 0, 8);
            _file.Flush();
            BitmapsInvalidated = (_header.AutoclearFeatures & (1UL << Qcow2Header.BitmapsAutoclearBit)) != 0;
        }
    }

    /// <summary>True once a write cleared the persistent bitmaps' consistency bit: qemu now treats them as stale.</summary>
    public bool BitmapsInvalidated { get; private set; }

    /// <summary>An L2 entry a write changes, applied once the data it names is durable.</summary>
    private readonly struct PendingEntry
    {
        public PendingEntry(long guestCluster, L2Entry entry, L2Entry replaced, bool releaseReplaced)
        {
            GuestCluster = guestCluster;
            Entry = entry;
            Replaced = replaced;
            ReleaseReplaced = releaseReplaced;
        }

        public long GuestCluster { get; }

        public L2Entry Entry { get; }

        public L2Entry Replaced { get; }

        /// <summary>The replaced entry was compressed: its host clusters lose a reference once nothing names them.</summary>
        public bool ReleaseReplaced { get; }
    }

    private readonly List<PendingEntry> _pending = new();

    // L2 tables allocated by the write in progress, by L1 index: their clusters counted, their
    // content built here, written once the data is durable and before the L1 entry names them.
    private readonly Dictionary<long, long> _newTables = new();

    /// <summary>
    /// Writes guest bytes. New clusters are allocated from the end of the file; one write
    /// commits in qcow2's order, however many clusters it spans: the new clusters' refcounts
    /// and data made durable together, then the L2 entries and new L2 tables (these flushed),
    /// then the L1 entries naming new tables, then the references a rewritten compressed
    /// cluster drops. Cut off anywhere, the image has at worst leaked clusters.
    /// </summary>
    public override void Write(long position, byte[] buffer, int offset, int count)
    {
        EnsureWritable();
        CheckRange(position, count);
        PrepareForWrite();
        try
        {
            while (count > 0)
            {
                long guestCluster = position >> _clusterBits;
                long inCluster = position - (guestCluster << _clusterBits);
                int n = (int)Math.Min(count, _header.ClusterSize - inCluster);
                WriteInCluster(guestCluster, (int)inCluster, buffer, offset, n);
                position += n;
                offset += n;
                count -= n;
            }
        }
        finally
        {
            WriteDataRun();
            // Data already written is made reachable even when a later cluster of the same write
            // failed; inside a batch, when the batch is committed (one flush sequence for all).
            if (!Batching)
                CommitPending();
        }
    }

    /// <summary>A batch's writes become reachable together: their data and refcounts flushed once, then the tables.</summary>
    protected override void CommitBatch() => CommitPending();

    // The guest clusters whose new entries wait in _pending: a second write into one of them in
    // the same batch must see the first, so the batch is committed before it.
    private readonly HashSet<long> _pendingClusters = new();

    private void CommitPending()
    {
        WriteDataRun(); // the data before the flush that makes it durable ahead of the entries naming it
        if (_pending.Count == 0 && _newTables.Count == 0)
            return;
        _allocator?.WriteCounts();
        _file.Flush(); // refcounts and data before anything names them
        bool releases = false;
        foreach (KeyValuePair<long, long> table in _newTables)
            _tables.WriteNewTable(table.Key * _tables.EntriesPerTable, table.Value, Pick(table.Key));
        if (_newTables.Count > 0)
            _file.Flush(); // new L2 tables before the L1 entries
        foreach (KeyValuePair<long, long> table in _newTables)
            _tables.PointL1(table.Key, table.Value);
        var entries = new List<(long GuestCluster, L2Entry Entry)>(_pending.Count);
        foreach (PendingEntry p in _pending)
        {
            if (!_newTables.ContainsKey(p.GuestCluster / _tables.EntriesPerTable))
                entries.Add((p.GuestCluster, p.Entry));
            releases |= p.ReleaseReplaced;
        }
        _tables.WriteEntries(entries);
        if (releases)
        {
            _file.Flush(); // nothing names the old compressed data any more before its counts drop
            foreach (PendingEntry p in _pending)
            {
                if (!p.ReleaseReplaced)
                    continue;
                long off = p.Replaced.CompressedOffset(_clusterBits);
                long end = off + p.Replaced.CompressedLength(_clusterBits) - 1;
                for (long c = off >> _clusterBits; c <= end >> _clusterBits; c++)
                    Allocator.Release(c);
            }
        }
        _pending.Clear();
        _pendingClusters.Clear();
        _newTables.Clear();
    }

    /// <summary>The entries of the pending writes that fall into the new table of L1 entry <paramref name="l1Index"/>.</summary>
    private IEnumerable<(int Index, L2Entry Entry)> Pick(long l1Index)
    {
        foreach (PendingEntry p in _pending)
        {
            if (p.GuestCluster / _tables.EntriesPerTable == l1Index)
                yield return ((int)(p.GuestCluster % _tables.EntriesPerTable), p.Entry);
        }
    }

    /// <summary>
    /// One write within one guest cluster. In place where the cluster is this image's alone
    /// (COPIED); otherwise a new cluster whose content is what lay beneath with the write over
    /// it, and whose entry waits in <see cref="_pending"/> for <see cref="CommitPending"/>.
    /// </summary>
    private void WriteInCluster(long guestCluster, int inCluster, byte[] buffer, int offset, int count)
    {
        if (_pendingClusters.Contains(guestCluster))
            CommitPending();
        long cluster = _header.ClusterSize;
        long l1Index = guestCluster / _tables.EntriesPerTable;
        bool newTable = _tables.L2Offset(l1Index) == 0;
        if (!newTable && (_tables.L1Entry(l1Index) & ClusterTables.Copied) == 0)
            throw new VirtualDiskException(Path, $"'{Path}': the L2 table of guest offset {guestCluster << _clusterBits} is shared (no COPIED flag); VmClone does not write shared tables.");
        L2Entry entry = newTable ? default : _tables.Lookup(guestCluster);
        ClusterKind kind = _tables.KindOf(entry);
        bool extended = _header.HasExtendedL2;
        long start = guestCluster << _clusterBits;

        if (kind == ClusterKind.Normal && (entry.Word & ClusterTables.Copied) == 0)
            throw new VirtualDiskException(Path, $"'{Path}': the cluster at guest offset {start} is shared (no COPIED flag); VmClone does not write shared clusters.");

        if (kind == ClusterKind.Normal && !extended)
        {
            CheckWritableInPlace(entry.HostOffset, start, _tables.L2Offset(l1Index));
            _file.Write(entry.HostOffset + inCluster, buffer, offset, count);
            return;
        }

        long host;
        if (kind == ClusterKind.Normal || (kind == ClusterKind.Zero && entry.HostOffset != 0 && (entry.Word & ClusterTables.Copied) != 0))
        {
            host = entry.HostOffset; // a cluster of this image's own (with extended L2, or preallocated as zeros)
            CheckWritableInPlace(host, start, _tables.L2Offset(l1Index));
        }
        else
        {
            if (newTable && !_newTables.ContainsKey(l1Index))
            {
                // The L2 table's cluster is counted now; its content is written after the data.
                long table = Allocator.AllocateCountingLater();
                _tables.ClaimMetadata(table);
                _newTables[l1Index] = table;
            }
            host = Allocator.AllocateCountingLater();
            _allocatedData.Add(host);
        }

        L2Entry updated;
        if ((!extended || kind == ClusterKind.Compressed) && inCluster == 0 && count == cluster)
        {
            // The write covers the whole cluster: nothing beneath shows through, so nothing of it
            // is read (a content-preserving rebase or a flatten into qcow2 writes whole clusters).
            AddToDataRun(host, buffer, offset, count);
            updated = new L2Entry((ulong)host | ClusterTables.Copied, extended ? 0xFFFF_FFFFUL : 0);
        }
        else if (!extended || kind == ClusterKind.Compressed)
        {
            // The whole cluster: what the guest saw there, with the write over it.
            byte[] content = new byte[cluster];
            FillBeneath(entry, kind, start, 0, content, (int)cluster);
            Buffer.BlockCopy(buffer, offset, content, inCluster, count);
            _file.Write(host, content, 0, content.Length);
            // Extended L2: a compressed cluster becomes a standard one, every subcluster allocated.
            updated = new L2Entry((ulong)host | ClusterTables.Copied, extended ? 0xFFFF_FFFFUL : 0);
        }
        else
        {
            // Subclusters: the ones the write touches are written (their uncovered bytes from
            // beneath, or zeros where marked so) and become allocated; the others keep their state.
            int first = (int)(inCluster / _unit);
            int last = (int)((inCluster + count - 1) / _unit);
            int from = (int)(first * _unit);
            int length = (int)((last + 1) * _unit) - from;
            byte[] content = new byte[length];
            for (int sub = first; sub <= last; sub++)
            {
                uint bit = 1u << sub;
                int at = (int)(sub * _unit) - from;
                // A subcluster the write covers whole shows nothing of what was there.
                if (sub * _unit >= inCluster && (sub + 1) * _unit <= inCluster + count)
                    continue;
                if ((entry.AllocatedBits & bit) != 0)
                    ReadHost(host + sub * _unit, content, at, (int)_unit);
                else if ((entry.ZeroBits & bit) == 0)
                    ReadBelowClamped(start + sub * _unit, content, at, (int)_unit);
            }
            Buffer.BlockCopy(buffer, offset, content, inCluster - from, count);
            _file.Write(host + from, content, 0, content.Length);
            uint touched = (last == 31 ? uint.MaxValue : ((1u << (last + 1)) - 1)) & ~((1u << first) - 1);
            uint allocated = entry.AllocatedBits | touched;
            uint zero = entry.ZeroBits & ~touched;
            updated = new L2Entry((ulong)host | ClusterTables.Copied, allocated | ((ulong)zero << 32));
        }

        if (updated.Word != entry.Word || updated.Bitmap != entry.Bitmap)
        {
            _pending.Add(new PendingEntry(guestCluster, updated, entry, kind == ClusterKind.Compressed));
            _pendingClusters.Add(guestCluster);
        }
    }

    // Whole new clusters of one Write that lie one after the other both in the file and in the
    // caller's buffer (new clusters come from the end of the file, in order): written as one
    // run when the write ends or the next cluster does not follow, instead of one write each.
    private byte[]? _runBuffer;
    private int _runOffset, _runLength;
    private long _runHost;

    private void AddToDataRun(long host, byte[] buffer, int offset, int count)
    {
        if (_runBuffer == buffer && host == _runHost + _runLength && offset == _runOffset + _runLength)
        {
            _runLength += count;
            return;
        }
        WriteDataRun();
        (_runBuffer, _runHost, _runOffset, _runLength) = (buffer, host, offset, count);
    }

    private void WriteDataRun()
    {
        if (_runBuffer is null)
            return;
        byte[] buffer = _runBuffer;
        _runBuffer = null;
        _file.Write(_runHost, buffer, _runOffset, _runLength);
    }

    /// <summary>The guest's view of a cluster before the write: beneath (parent), zeros, or the compressed data.</summary>
    private void FillBeneath(L2Entry entry, ClusterKind kind, long start, int at, byte[] content, int length)
    {
        switch (kind)
        {
            case ClusterKind.Compressed:
                Buffer.BlockCopy(_compressed.Read(entry), 0, content, at, length);
                break;
            case ClusterKind.Zero:
                break;
            default:
                ReadBelowClamped(start, content, at, length);
                break;
        }
    }

    /// <summary>What lies beneath, for a range that may run past the virtual size (the last cluster's tail reads zeros).</summary>
    private void ReadBelowClamped(long position, byte[] buffer, int offset, int count)
    {
        int inside = (int)Math.Max(0, Math.Min(count, _size - position));
        if (inside > 0)
            ReadBelow(position, buffer, offset, inside);
    }

    private void ReadHost(long host, byte[] buffer, int offset, int count)
    {
        if (host < _file.Length)
            _file.ReadOrZero(host, buffer, offset, count);
    }

    public override void Flush()
    {
        CommitPending();
        if (CanWrite)
            _file.Flush();
    }

    /// <summary>
    /// Re-points the overlay at another backing file without touching its content, as
    /// <c>qemu-img rebase -u</c> does: the first cluster is rewritten with the new name and the
    /// backing-format extension, every other extension and unknown header field kept byte for
    /// byte. The caller has judged the new parent's content.
    /// </summary>
    public override void SetParent(ParentLink link)
    {
        if (link is null)
            throw new ArgumentNullException(nameof(link));
        EnsureWritable();
        CommitPending();
        string name = link.RelativePath ?? link.AbsolutePath;
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        if (nameBytes.Length > Qcow2Header.MaxBackingNameBytes)
            throw new DiskChainException(Path, ChainProblem.Incompatible,
                $"The path of '{link.AbsolutePath}' is {nameBytes.Length} bytes long as '{Path}' would record it; qcow2 allows {Qcow2Header.MaxBackingNameBytes}.", link.AbsolutePath);
        string format = FormatName(link.Parent.Format);

        var extensions = new List<(uint, byte[])>();
        bool formatWritten = false;
        foreach (HeaderExtension e in _extensions.All)
        {
            if (e.Type == HeaderExtensions.BackingFormatType)
            {
                if (!formatWritten)
                    extensions.Add((e.Type, Encoding.ASCII.GetBytes(format)));
                formatWritten = true;
            }
            else
            {
                extensions.Add((e.Type, e.Data));
            }
        }
        if (!formatWritten)
            extensions.Insert(0, (HeaderExtensions.BackingFormatType, Encoding.ASCII.GetBytes(format)));
        byte[] extensionBytes = HeaderExtensions.Compose(extensions);
        int headerLength = _header.HeaderLength;
        long nameOffset = headerLength + extensionBytes.Length;
        long oldEnd = Math.Max(_extensions.EndOffset, _header.BackingFileOffset == 0 ? 0 : (long)_header.BackingFileOffset + _header.BackingFileSize);
        long newEnd = nameOffset + nameBytes.Length;
        if (newEnd > _header.ClusterSize)
            throw new DiskChainException(Path, ChainProblem.Incompatible,
                $"The header of '{Path}' with the backing file name '{name}' does not fit its first cluster of {_header.ClusterSize} bytes.", link.AbsolutePath);

        byte[] first = new byte[Math.Max(newEnd, oldEnd)];
        _header.Raw.CopyTo(first, 0);
        BinaryPrimitives.WriteUInt64BigEndian(first.AsSpan(8), (ulong)nameOffset);
        BinaryPrimitives.WriteUInt32BigEndian(first.AsSpan(16), (uint)nameBytes.Length);
        extensionBytes.CopyTo(first, headerLength);
        nameBytes.CopyTo(first, nameOffset);
        _file.Write(0, first, 0, first.Length);
        _file.Flush();
        _parentReference = new ParentReference(new[] { new ParentPathCandidate(System.IO.Path.IsPathRooted(name) ? ParentPathKind.Absolute : ParentPathKind.Relative, name) }, "",
            format: ParentFormat(Path, format));
        _backingName = name;
        _backingFormat = format;
        _parentFormatChecked = false;
    }

    private static string FormatName(DiskFormat format) => format switch
    {
        DiskFormat.Qcow2 => "qcow2",
        DiskFormat.Raw => "raw",
        DiskFormat.Vmdk => "vmdk",
        _ => "vhdx",
    };
}
