using System;
using System.Buffers.Binary;
using System.Collections.Generic;

namespace VmClone.Disks.Qcow2;

/// <summary>
/// Refcounts and the allocation of new host clusters in an image being written. New clusters
/// always come from the end of the file (never from free space inside it), so a write can
/// never land on a cluster some table still names. Each allocation raises the refcount and
/// makes it durable before the caller points anything at the cluster (qcow2.rst's rule, and
/// what leaves a cut-off write with leaks at worst); a missing refcount block is placed at the
/// first free cluster of the range it covers, so that it counts itself.
/// </summary>
internal sealed class ClusterAllocator
{
    private readonly string _path;
    private readonly FileAccessor _file;
    private readonly Qcow2Header _header;
    private readonly long _cluster;
    private readonly int _bits;
    private readonly long _perBlock;
    private ulong[] _table;
    private readonly Dictionary<long, byte[]> _blocks = new();
    private long _nextFree;

    private readonly Action<long> _metadata;

    /// <summary><paramref name="metadata"/> hears of each refcount block this allocator places.</summary>
    public ClusterAllocator(string path, FileAccessor file, Qcow2Header header, Action<long> metadata)
    {
        _metadata = metadata;
        _path = path;
        _file = file;
        _header = header;
        _cluster = header.ClusterSize;
        _bits = header.RefcountBits;
        _perBlock = RefcountBlock.EntriesPerBlock(_cluster, _bits);
        byte[] raw = new byte[(long)header.RefcountTableClusters * _cluster];
        file.ReadOrZero((long)header.RefcountTableOffset, raw, 0, raw.Length);
        _table = new ulong[raw.Length / 8];
        for (int i = 0; i < _table.Length; i++)
            _table[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8)) & ~0x1FFUL;
        _nextFree = (file.Length + _cluster - 1) / _cluster;
    }

    /// <summary>The refcount of host cluster <paramref name="index"/> (0 where no block covers it).</summary>
    public ulong Get(long index)
    {
        long b = index / _perBlock;
        if (b >= _table.Length || _table[b] == 0)
            return 0;
        return RefcountBlock.Get(Block(b), index % _perBlock, _bits);
    }

    // The entries AllocateCountingLater raised and has not written yet, by refcount block: the
    // byte range of the block they span. They are written together before the next flush
    // (WriteCounts), which is all qcow2's order asks: a count is durable before anything names
    // its cluster, and only a flush makes anything durable. Consecutive clusters' counts are
    // then one write instead of one each.
    private readonly Dictionary<long, (int From, int To)> _unwritten = new();

    /// <summary>
    /// A new host cluster, its refcount 1 written and (with <paramref name="flush"/>) durable;
    /// its bytes are the caller's to write. Several clusters for one write are counted with one flush, the last.
    /// </summary>
    public long Allocate(bool flush = true) => Allocate(flush, countLater: false);

    /// <summary>
    /// A new host cluster whose raised count is written only by the next <see cref="WriteCounts"/>,
    /// which the caller must run before its own flush: the clusters of one write are counted
    /// with one write per refcount block.
    /// </summary>
    public long AllocateCountingLater() => Allocate(flush: false, countLater: true);

    private long Allocate(bool flush, bool countLater)
    {
        while (true)
        {
            long n = _nextFree;
            long b = n / _perBlock;
            if (b >= _table.Length)
            {
                GrowTable();
                continue;
            }
            if (_table[b] == 0)
            {
                // The new block goes to cluster n, the first of those it covers that is free, and counts itself.
                byte[] block = new byte[_cluster];
                RefcountBlock.Set(block, n % _perBlock, _bits, 1);
                _file.Write(n * _cluster, block, 0, block.Length);
                _file.Flush();
                byte[] entry = new byte[8];
                BinaryPrimitives.WriteUInt64BigEndian(entry, (ulong)(n * _cluster));
                _file.Write((long)_header.RefcountTableOffset + b * 8, entry, 0, 8);
                _file.Flush();
                _table[b] = (ulong)(n * _cluster);
                _blocks[b] = block;
                _metadata(n * _cluster);
                _nextFree = n + 1;
                continue;
            }
            if (countLater)
            {
                SetUnwritten(n, 1);
            }
            else
            {
                Set(n, 1);
                if (flush)
                {
                    WriteCounts();
                    _file.Flush();
                }
            }
            _nextFree = n + 1;
            return n * _cluster;
        }
    }

    /// <summary>
    /// Moves the refcount table to a larger one at the end of the file, as qemu does when a
    /// file outgrows its table (qemu-img makes tables of one cluster: 8 MiB of file at 512-byte
    /// clusters, 4 GiB at 4 KiB). In the order that leaves only leaks when cut off: the new
    /// refcount blocks (counting themselves and the new table) and the new table, which keeps
    /// every old entry, are written and flushed while nothing names them; then the header's two
    /// table fields in one write, flushed; only then are the old table's clusters freed. The
    /// table at least doubles, so growth costs a copy of the table about once per doubling of
    /// the file, and it covers every cluster the new structures take.
    /// </summary>
    private void GrowTable()
    {
        WriteCounts();
        long n = _nextFree;
        long perTableCluster = _cluster / 8;
        long firstBlock = n / _perBlock;
        long blocks = 1, tableClusters = 1;
        while (true)
        {
            long end = n + blocks + tableClusters;
            long lastBlock = (end - 1) / _perBlock;
            long needBlocks = lastBlock - firstBlock + 1;
            long entries = Math.Max(2L * _table.Length, lastBlock + 1);
            long needTable = (entries + perTableCluster - 1) / perTableCluster;
            if (needBlocks <= blocks && needTable <= tableClusters)
                break;
            blocks = Math.Max(blocks, needBlocks);
            tableClusters = Math.Max(tableClusters, needTable);
        }
        if (tableClusters > uint.MaxValue || tableClusters * _cluster > int.MaxValue)
            throw new VirtualDiskException(_path, $"'{_path}' would need a refcount table of {tableClusters} clusters to grow further; qemu-img convert with larger clusters makes a copy with room.");
        long tableAt = n + blocks;
        long newEnd = tableAt + tableClusters;
        var newTable = new ulong[tableClusters * perTableCluster];
        Array.Copy(_table, newTable, _table.Length);
        var newBlocks = new Dictionary<long, byte[]>();
        for (long i = 0; i < blocks; i++)
        {
            long b = firstBlock + i;
            byte[] block = new byte[_cluster];
            for (long c = Math.Max(n, b * _perBlock); c < Math.Min(newEnd, (b + 1) * _perBlock); c++)
                RefcountBlock.Set(block, c % _perBlock, _bits, 1);
            _file.Write((n + i) * _cluster, block, 0, block.Length);
            newTable[b] = (ulong)((n + i) * _cluster);
            newBlocks[b] = block;
        }
        byte[] raw = new byte[tableClusters * _cluster];
        for (long i = 0; i < newTable.Length; i++)
            BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan((int)(i * 8)), newTable[i]);
        _file.Write(tableAt * _cluster, raw, 0, raw.Length);
        _file.Flush(); // the new blocks and table before the header names them

        long oldAt = (long)_header.RefcountTableOffset;
        long oldClusters = _header.RefcountTableClusters;
        byte[] fields = Qcow2Header.ComposeRefcountTable((ulong)(tableAt * _cluster), (uint)tableClusters);
        _file.Write(Qcow2Header.RefcountTableFieldsAt, fields, 0, fields.Length);
        _file.Flush(); // the switch before the old table's clusters are freed
        _header.MovedRefcountTable((ulong)(tableAt * _cluster), (uint)tableClusters);
        _table = newTable;
        foreach (KeyValuePair<long, byte[]> block in newBlocks)
            _blocks[block.Key] = block.Value;
        for (long i = 0; i < blocks + tableClusters; i++)
            _metadata((n + i) * _cluster);
        _nextFree = newEnd;
        // Nothing names the old table now; its clusters are never handed out again (new ones
        // come from the end), so a count lost here is a leak, never a corruption.
        for (long c = oldAt / _cluster; c < oldAt / _cluster + oldClusters; c++)
            Release(c);
        _file.Flush();
    }

    /// <summary>Lowers the refcount of host cluster <paramref name="index"/> by one (not below 0); not flushed.</summary>
    public void Release(long index)
    {
        ulong count = Get(index);
        if (count > 0)
            Set(index, count - 1);
    }

    private void Set(long index, ulong value)
    {
        (long b, int at, int bytes) = SetInBlock(index, value);
        // Only the bytes of this entry are written: a partial cluster write never tears another's count.
        _file.Write((long)_table[b] + at, _blocks[b], at, bytes);
    }

    private void SetUnwritten(long index, ulong value)
    {
        (long b, int at, int bytes) = SetInBlock(index, value);
        _unwritten[b] = _unwritten.TryGetValue(b, out (int From, int To) r)
            ? (Math.Min(r.From, at), Math.Max(r.To, at + bytes))
            : (at, at + bytes);
    }

    /// <summary>Writes the counts <see cref="AllocateCountingLater"/> raised (not flushed): the caller flushes next.</summary>
    public void WriteCounts()
    {
        // Each range holds only entries of this block as this allocator last set them (it alone
        // writes the file), so writing the bytes between them again changes nothing.
        foreach (KeyValuePair<long, (int From, int To)> r in _unwritten)
            _file.Write((long)_table[r.Key] + r.Value.From, _blocks[r.Key], r.Value.From, r.Value.To - r.Value.From);
        _unwritten.Clear();
    }

    private (long Block, int At, int Bytes) SetInBlock(long index, ulong value)
    {
        long b = index / _perBlock;
        byte[] block = Block(b);
        long i = index % _perBlock;
        RefcountBlock.Set(block, i, _bits, value);
        int bytes = Math.Max(1, _bits / 8);
        long at = _bits < 8 ? i * _bits / 8 : i * bytes;
        return (b, (int)at, bytes);
    }

    private byte[] Block(long b)
    {
        if (_blocks.TryGetValue(b, out byte[]? block))
            return block;
        block = new byte[_cluster];
        _file.ReadOrZero((long)_table[b], block, 0, block.Length);
        if (_blocks.Count >= 64)
        {
            WriteCounts(); // a block leaves the cache only once its counts are in the file
            _blocks.Clear();
        }
        _blocks[b] = block;
        return block;
    }
}
