using System;
using System.Buffers.Binary;
using System.Collections.Generic;

namespace VmClone.Disks.Qcow2;

/// <summary>
/// The active L1 table and the L2 tables it names: guest cluster → <see cref="L2Entry"/>.
/// The L1 table is read whole on open (its size is bounded by the file, checked by the header);
/// L2 tables are read when first asked for and kept in a small cache. On open every L2 table
/// is claimed in a <see cref="ClaimMap"/> with the header, refcount table, refcount blocks, L1
/// and snapshot table, so that an L2 table overlapping metadata or another L2 table is refused
/// before it is ever read.
/// </summary>
internal sealed class ClusterTables
{
    // L1 entry: bits 9–55 L2 offset, 63 COPIED; 1–8 and 56–62 reserved.
    private const ulong L1OffsetMask = 0x00FF_FFFF_FFFF_FE00UL;
    private const ulong L1Reserved = 0x7F00_0000_0000_01FFUL;

    // At most this many L2 tables are cached (a 64 KiB-cluster table maps 512 MiB).
    private const int CacheTables = 32;

    private readonly string _path;
    private readonly FileAccessor _file;
    private readonly Qcow2Header _header;
    private readonly ulong[] _l1;
    private readonly Dictionary<int, byte[]> _cache = new();
    private readonly bool _zeroFlagMeaningful;

    private readonly ClaimMap _claims;

    private ClusterTables(string path, FileAccessor file, Qcow2Header header, ulong[] l1, ClaimMap claims)
    {
        _claims = claims;
        _path = path;
        _file = file;
        _header = header;
        _l1 = l1;
        EntriesPerTable = (int)(header.ClusterSize / header.L2EntryBytes);
        _zeroFlagMeaningful = header.Version >= 3 && !header.HasExtendedL2;
    }

    /// <summary>Guest clusters one L2 table maps.</summary>
    public int EntriesPerTable { get; }

    /// <summary>Entries of the active L1 table.</summary>
    public int L1Count => _l1.Length;

    /// <summary>True when bit 0 of a standard descriptor is the zero flag (version 3, standard L2 entries).</summary>
    public bool ZeroFlagMeaningful => _zeroFlagMeaningful;

    /// <summary>
    /// Reads the active L1 table and claims every metadata cluster the header and the refcount
    /// table name, then each L2 table; any table outside the file, misaligned, or sharing a
    /// cluster with another is refused.
    /// </summary>
    public static ClusterTables Open(string path, FileAccessor file, Qcow2Header header)
    {
        long cluster = header.ClusterSize;
        long entriesPerL2 = cluster / header.L2EntryBytes;
        // qemu's "L1 table is too small": the L1 must map the whole virtual size.
        long guestClusters = (long)((header.Size + (ulong)cluster - 1) / (ulong)cluster);
        long needed = (guestClusters + entriesPerL2 - 1) / entriesPerL2;
        if (header.L1Size < needed)
            throw new DiskFormatException(path, "L1 table", $"{header.L1Size} entries cannot map a virtual size of {header.Size} bytes (needs {needed})", (long)header.L1TableOffset);

        long fileClusters = (file.Length + cluster - 1) / cluster;
        var claims = new ClaimMap(fileClusters);
        claims.Claim(0, 1);
        Claim(path, claims, "refcount table", (long)header.RefcountTableOffset, (long)header.RefcountTableClusters * cluster, cluster, null);
        long l1Bytes = (long)header.L1Size * 8;
        Claim(path, claims, "L1 table", (long)header.L1TableOffset, l1Bytes, cluster, null);
        if (header.SnapshotCount > 0)
            claims.Claim((long)header.SnapshotsOffset / cluster, 1);

        ClaimRefcountBlocks(path, file, header, claims, fileClusters);

        var l1 = new ulong[header.L1Size];
        if (l1Bytes > 0)
        {
            byte[] raw = new byte[l1Bytes];
            file.ReadOrZero((long)header.L1TableOffset, raw, 0, raw.Length);
            for (int i = 0; i < l1.Length; i++)
            {
                ulong e = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
                l1[i] = e;
                long at = (long)header.L1TableOffset + i * 8L;
                if ((e & L1Reserved) != 0)
                    throw new DiskFormatException(path, "L1 table", $"entry {i} (0x{e:x16}) sets reserved bits", at);
                long l2 = (long)(e & L1OffsetMask);
                if (l2 == 0)
                    continue;
                if (l2 % cluster != 0)
                    throw new DiskFormatException(path, "L1 table", $"entry {i} names an L2 table at {l2}, not aligned to the {cluster}-byte cluster", at);
                if (l2 >= file.Length)
                    throw new DiskFormatException(path, "L1 table", $"entry {i} names an L2 table at {l2}, past the end of the file ({file.Length} bytes)", at);
                if (!claims.Claim(l2 / cluster, 1))
                    throw new DiskFormatException(path, "L2 table", $"the L2 table of L1 entry {i} overlaps the header, a refcount structure, the L1 table, the snapshot table or another L2 table", l2);
            }
        }
        return new ClusterTables(path, file, header, l1, claims);
    }

    private static void Claim(string path, ClaimMap claims, string what, long offset, long length, long cluster, long? entryAt)
    {
        if (length <= 0)
            return;
        if (!claims.Claim(offset / cluster, (length + cluster - 1) / cluster))
            throw new DiskFormatException(path, what, "overlaps other metadata (the header, the refcount table or the L1 table)", entryAt ?? offset);
    }

    /// <summary>
    /// Claims every refcount block the refcount table names (one cluster each, inside the file).
    /// Only the table's entries up to the end of the file can name a block, so a table that is
    /// mostly empty costs its read alone.
    /// </summary>
    private static void ClaimRefcountBlocks(string path, FileAccessor file, Qcow2Header header, ClaimMap claims, long fileClusters)
    {
        long cluster = header.ClusterSize;
        long tableBytes = (long)header.RefcountTableClusters * cluster;
        // Each block covers cluster*8/refcount_bits clusters: entries past those the file holds name nothing that can exist.
        long perBlock = cluster * 8 / header.RefcountBits;
        long useful = Math.Min(tableBytes / 8, (fileClusters + perBlock - 1) / perBlock + 1);
        byte[] raw = new byte[useful * 8];
        file.ReadOrZero((long)header.RefcountTableOffset, raw, 0, raw.Length);
        for (int i = 0; i < useful; i++)
        {
            ulong e = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
            if (e == 0)
                continue;
            long at = (long)header.RefcountTableOffset + i * 8L;
            if ((e & 0x1FF) != 0 || (long)e % cluster != 0)
                throw new DiskFormatException(path, "refcount table", $"entry {i} names a refcount block at {e}, not aligned to the {cluster}-byte cluster", at);
            if ((long)e >= file.Length || e > long.MaxValue)
                throw new DiskFormatException(path, "refcount table", $"entry {i} names a refcount block at {e}, past the end of the file ({file.Length} bytes)", at);
            if (!claims.Claim((long)e / cluster, 1))
                throw new DiskFormatException(path, "refcount block", $"the refcount block of refcount table entry {i} overlaps other metadata", (long)e);
        }
    }

    /// <summary>True when L1 entry <paramref name="l1Index"/> names an L2 table (false: its whole range is unallocated).</summary>
    public bool HasTable(long l1Index) => l1Index < _l1.Length && (_l1[l1Index] & L1OffsetMask) != 0;

    /// <summary>The L2 entry of guest cluster <paramref name="guestCluster"/>; unallocated when its L1 entry names no table.</summary>
    public L2Entry Lookup(long guestCluster)
    {
        long l1Index = guestCluster / EntriesPerTable;
        if (l1Index >= _l1.Length)
            return default;
        long l2Offset = (long)(_l1[l1Index] & L1OffsetMask);
        if (l2Offset == 0)
            return default;
        byte[] table = Table((int)l1Index, l2Offset);
        int index = (int)(guestCluster % EntriesPerTable);
        int at = index * _header.L2EntryBytes;
        ulong word = BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(at));
        ulong bitmap = _header.HasExtendedL2 ? BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(at + 8)) : 0;
        var entry = new L2Entry(word, bitmap);
        Validate(entry, l2Offset + at);
        return entry;
    }

    /// <summary>Kind of <paramref name="entry"/> as this image reads it.</summary>
    public ClusterKind KindOf(L2Entry entry) => entry.Kind(_zeroFlagMeaningful, _header.HasExternalData);

    /// <summary>The checks qemu's reader and qemu-img check make on an entry before it is used.</summary>
    private void Validate(L2Entry entry, long at)
    {
        ClusterKind kind = KindOf(entry);
        if (kind == ClusterKind.Compressed)
        {
            if (_header.HasExternalData)
                throw new DiskFormatException(_path, "L2 table", "a compressed cluster in an image with an external data file", at);
            if ((entry.Word & L2Entry.CopiedFlag) != 0)
                throw new DiskFormatException(_path, "L2 table", "a compressed cluster carries the COPIED flag", at);
            if (entry.Bitmap != 0)
                throw new DiskFormatException(_path, "L2 table", "a compressed cluster has a non-zero subcluster bitmap", at);
            return;
        }
        ulong reserved = L2Entry.StandardReserved | (_zeroFlagMeaningful ? 0 : L2Entry.ZeroFlag);
        if ((entry.Word & reserved) != 0)
            throw new DiskFormatException(_path, "L2 table", $"entry 0x{entry.Word:x16} sets reserved bits or names an unaligned host cluster", at);
        if (_header.HasExtendedL2)
        {
            if ((entry.AllocatedBits & entry.ZeroBits) != 0)
                throw new DiskFormatException(_path, "L2 table", "a subcluster is marked both allocated and reads-as-zero", at + 8);
            if (kind == ClusterKind.Unallocated && entry.AllocatedBits != 0)
                throw new DiskFormatException(_path, "L2 table", "subclusters are marked allocated in a cluster without a host offset", at + 8);
        }
    }

    private byte[] Table(int l1Index, long l2Offset)
    {
        if (_cache.TryGetValue(l1Index, out byte[]? table))
            return table;
        if (_cache.Count >= CacheTables)
            _cache.Clear();
        table = new byte[_header.ClusterSize];
        // The open checked that the table starts inside the file; a file may end inside it.
        _file.ReadOrZero(l2Offset, table, 0, table.Length);
        _cache[l1Index] = table;
        return table;
    }

    /// <summary>L1 entry <paramref name="l1Index"/> as stored (0 past the table).</summary>
    public ulong L1Entry(long l1Index) => l1Index < _l1.Length ? _l1[l1Index] : 0;

    /// <summary>Host offset of the L2 table of L1 entry <paramref name="l1Index"/> (0: none).</summary>
    public long L2Offset(long l1Index) => (long)(L1Entry(l1Index) & L1OffsetMask);

    /// <summary>The COPIED flag (bit 63) of L1 and L2 entries: refcount exactly one.</summary>
    public const ulong Copied = 1UL << 63;

    /// <summary>
    /// Writes these entries of existing L2 tables (not flushed): the entries of consecutive guest
    /// clusters in one table are one write, so a 1 MiB copy of 64 KiB clusters changes its table
    /// with one write instead of sixteen. Each write holds only the entries given.
    /// </summary>
    public void WriteEntries(List<(long GuestCluster, L2Entry Entry)> entries)
    {
        entries.Sort((a, b) => a.GuestCluster.CompareTo(b.GuestCluster));
        int bytes = _header.L2EntryBytes;
        for (int i = 0; i < entries.Count;)
        {
            long l1Index = entries[i].GuestCluster / EntriesPerTable;
            long l2Offset = L2Offset(l1Index);
            byte[] table = Table((int)l1Index, l2Offset);
            int first = (int)(entries[i].GuestCluster % EntriesPerTable) * bytes;
            int j = i;
            do
            {
                int at = (int)(entries[j].GuestCluster % EntriesPerTable) * bytes;
                BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(at), entries[j].Entry.Word);
                if (_header.HasExtendedL2)
                    BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(at + 8), entries[j].Entry.Bitmap);
                j++;
            }
            while (j < entries.Count && entries[j].GuestCluster == entries[j - 1].GuestCluster + 1 && entries[j].GuestCluster / EntriesPerTable == l1Index);
            _file.Write(l2Offset + first, table, first, (j - i) * bytes);
            i = j;
        }
    }

    /// <summary>
    /// Writes a new L2 table at <paramref name="l2Offset"/> holding <paramref name="entries"/>
    /// (index in the table, entry) for L1 entry <paramref name="firstGuestCluster"/>'s range;
    /// not flushed, and not yet named by the L1 table (<see cref="PointL1"/>).
    /// </summary>
    public void WriteNewTable(long firstGuestCluster, long l2Offset, IEnumerable<(int Index, L2Entry Entry)> entries)
    {
        long l1Index = firstGuestCluster / EntriesPerTable;
        byte[] table = new byte[_header.ClusterSize];
        foreach ((int index, L2Entry entry) in entries)
        {
            int at = index * _header.L2EntryBytes;
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(at), entry.Word);
            if (_header.HasExtendedL2)
                BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(at + 8), entry.Bitmap);
        }
        _file.Write(l2Offset, table, 0, table.Length);
        if (_cache.Count >= CacheTables)
            _cache.Clear();
        _cache[(int)l1Index] = table;
    }

    /// <summary>Points L1 entry <paramref name="l1Index"/> at the L2 table at <paramref name="l2Offset"/> (COPIED); not flushed.</summary>
    public void PointL1(long l1Index, long l2Offset)
    {
        ulong l1 = (ulong)l2Offset | Copied;
        byte[] raw = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(raw, l1);
        _file.Write((long)_header.L1TableOffset + l1Index * 8, raw, 0, 8);
        _l1[l1Index] = l1;
    }

    /// <summary>True when the host cluster at <paramref name="hostOffset"/> holds metadata (header, refcount structures, L1, L2, snapshot table).</summary>
    public bool IsMetadata(long hostOffset) => _claims.IsClaimed(hostOffset / _header.ClusterSize);

    /// <summary>Records a cluster just allocated for metadata (an L2 table, a refcount block).</summary>
    public void ClaimMetadata(long hostOffset) => _claims.Claim(hostOffset / _header.ClusterSize, 1);

    /// <summary>
    /// Before the first write into an image: every data cluster the active tables name is
    /// claimed once, so that a table naming a cluster of metadata, or one cluster for two guest
    /// clusters, is refused before a write in place could land on what another structure
    /// holds. Reads every L2 table once (cost follows the tables the file really has); the
    /// claims cost bits sized by the file.
    /// </summary>
    public void ClaimDataClusters(bool externalData)
    {
        if (externalData)
            return; // host offsets are in another file
        long cluster = _header.ClusterSize;
        var data = new ClaimMap((_file.Length + cluster - 1) / cluster);
        for (long l1Index = 0; l1Index < _l1.Length; l1Index++)
        {
            if (!HasTable(l1Index))
                continue;
            for (long i = 0; i < EntriesPerTable; i++)
            {
                long guestCluster = l1Index * EntriesPerTable + i;
                L2Entry entry = Lookup(guestCluster);
                if (KindOf(entry) != ClusterKind.Normal && !(KindOf(entry) == ClusterKind.Zero && entry.HostOffset != 0))
                    continue;
                long host = entry.HostOffset;
                long at = L2Offset(l1Index) + i * _header.L2EntryBytes;
                if (_claims.IsClaimed(host / cluster))
                    throw new DiskFormatException(_path, "L2 table", $"guest cluster {guestCluster} maps to {host}, a cluster of metadata", at);
                if (!data.Claim(host / cluster, 1))
                    throw new DiskFormatException(_path, "L2 table", $"guest cluster {guestCluster} maps to {host}, a cluster another guest cluster maps to already", at);
            }
        }
    }
}
