using System;
using System.Buffers.Binary;
using System.Collections.Generic;

namespace VmClone.Disks.Qcow2;

public sealed partial class Qcow2Layer
{
    // qemu's QCOW_MAX_L1_SIZE: 32 MiB of L1 entries.
    private const long MaxL1Entries = (32L << 20) / 8;

    internal override long MaxResizeSize =>
        (long)Math.Min(long.MaxValue / 4.0, (double)MaxL1Entries * _tables.EntriesPerTable * _header.ClusterSize);

    /// <summary>
    /// A new virtual size, as qemu-img resize makes it: when the L1 table cannot map the new size,
    /// a larger one is written to new clusters first (refcounts raised and durable before anything
    /// names them), then size, L1 size and L1 offset change in one write of the header's first
    /// sector, then the old table's clusters are freed. Cut off before the header write, the image
    /// opens at the old size (new clusters leaked at worst); after it, at the new size. A shrink
    /// (nothing stored past the new end) changes the size alone: a larger L1 table than needed is
    /// valid, and its entries past the end name no data.
    /// </summary>
    internal override void ResizeInPlace(long newSize)
    {
        EnsureWritable();
        CommitBatch();
        PrepareForWrite();
        long cluster = _header.ClusterSize;
        long guestClusters = (newSize + cluster - 1) / cluster;
        long needed = (guestClusters + _tables.EntriesPerTable - 1) / _tables.EntriesPerTable;
        long oldL1 = _header.L1Size;
        long l1Offset = (long)_header.L1TableOffset;
        var oldClusters = new List<long>();
        if (needed > oldL1)
        {
            long oldL1Clusters = (oldL1 * 8 + cluster - 1) / cluster;
            long newL1Clusters = (needed * 8 + cluster - 1) / cluster;
            if (newL1Clusters <= oldL1Clusters && oldL1 > 0)
            {
                // The table's last cluster has room: its entries past the old size made empty.
                _file.Write(l1Offset + oldL1 * 8, new byte[(needed - oldL1) * 8], 0, (int)((needed - oldL1) * 8));
                _file.Flush();
            }
            else
            {
                long at = AllocateContiguous(newL1Clusters);
                byte[] table = new byte[newL1Clusters * cluster];
                for (long i = 0; i < oldL1; i++)
                    BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(i * 8)), _tables.L1Entry(i));
                _file.Write(at, table, 0, table.Length);
                _file.Flush();
                for (long c = 0; c < oldL1Clusters; c++)
                    oldClusters.Add((l1Offset >> _clusterBits) + c);
                l1Offset = at;
            }
        }
        // Size (24), crypt method (32, unchanged), L1 size (36) and L1 offset (40): one write in the first sector.
        byte[] fields = new byte[24];
        BinaryPrimitives.WriteUInt64BigEndian(fields.AsSpan(0), (ulong)newSize);
        BinaryPrimitives.WriteUInt32BigEndian(fields.AsSpan(8), _header.CryptMethod);
        BinaryPrimitives.WriteUInt32BigEndian(fields.AsSpan(12), (uint)Math.Max(needed, oldL1));
        BinaryPrimitives.WriteUInt64BigEndian(fields.AsSpan(16), (ulong)l1Offset);
        _file.Write(24, fields, 0, fields.Length);
        _file.Flush();
        if (oldClusters.Count > 0)
        {
            foreach (long c in oldClusters)
                Allocator.Release(c);
            _file.Flush();
        }
    }

    /// <summary>
    /// <paramref name="count"/> new clusters in a row at the end of the file. The allocator may
    /// place a refcount block between two clusters; a run it breaks is given back (refcount 0:
    /// free space, not a leak) and a new run started after it.
    /// </summary>
    private long AllocateContiguous(long count)
    {
        long cluster = _header.ClusterSize;
        var run = new List<long>();
        while (run.Count < count)
        {
            long at = Allocator.Allocate(flush: false);
            if (run.Count > 0 && at != run[run.Count - 1] + cluster)
            {
                foreach (long c in run)
                    Allocator.Release(c >> _clusterBits);
                run.Clear();
            }
            run.Add(at);
        }
        _file.Flush();
        return run[0];
    }
}
