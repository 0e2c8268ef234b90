using System;
using System.Buffers.Binary;
using System.Collections.Generic;

namespace VmClone.Disks.Qcow2;

/// <summary>What a host cluster's refcount disagrees with, as qemu-img check tells them apart.</summary>
public enum Qcow2RefcountProblem
{
    /// <summary>The refcount is higher than the references: space wasted, no data at risk (qemu-img check -r leaks mends it).</summary>
    Leak,

    /// <summary>The refcount is lower than the references (a cluster in use counted free, or shared but counted once): a later write could overwrite live data.</summary>
    Corruption,

    /// <summary>A table names a cluster past the end of the file.</summary>
    PastEnd,

    /// <summary>An L1 or L2 entry's COPIED flag (bit 63) disagrees with its cluster's refcount being exactly one.</summary>
    CopiedFlag,
}

/// <summary>One host cluster whose refcount disagrees with the references found to it.</summary>
public sealed class Qcow2RefcountFinding
{
    internal Qcow2RefcountFinding(Qcow2RefcountProblem problem, long hostOffset, ulong refcount, long references, string description)
    {
        Problem = problem;
        HostOffset = hostOffset;
        Refcount = refcount;
        References = references;
        Description = description;
    }

    /// <summary>What is wrong.</summary>
    public Qcow2RefcountProblem Problem { get; }

    /// <summary>Offset of the host cluster in the image file.</summary>
    public long HostOffset { get; }

    /// <summary>The refcount the image records.</summary>
    public ulong Refcount { get; }

    /// <summary>References found to the cluster (header, tables, data).</summary>
    public long References { get; }

    /// <summary>The finding in qemu-img check's words.</summary>
    public string Description { get; }

    public override string ToString() => Description;
}

/// <summary>Why a qcow2 image's refcounts were not recomputed and compared.</summary>
public enum Qcow2RefcountSkip
{
    /// <summary>The image holds internal snapshots, whose L1 and L2 tables share clusters with the active layer; this check does not walk them.</summary>
    InternalSnapshots,

    /// <summary>The image holds persistent dirty bitmaps, whose tables this check does not walk.</summary>
    PersistentBitmaps,

    /// <summary>The file holds more clusters than the check counts in bounded memory (more than 256 Mi).</summary>
    TooManyClusters,
}

/// <summary>
/// The refcounts of an image recomputed from everything that references a host cluster and
/// compared with the ones it records, as qemu-img check does: leaks and corruptions apart.
/// </summary>
public sealed class Qcow2RefcountReport
{
    internal Qcow2RefcountReport(bool compared, string? notComparedBecause, List<Qcow2RefcountFinding> leaks, long leakCount, List<Qcow2RefcountFinding> corruptions, long corruptionCount, Qcow2RefcountSkip? skipped = null)
    {
        Compared = compared;
        Skipped = skipped;
        NotComparedBecause = notComparedBecause;
        Leaks = leaks;
        LeakedClusters = leakCount;
        Corruptions = corruptions;
        CorruptionCount = corruptionCount;
    }

    /// <summary>False when the image holds structures this check does not walk (internal snapshots, persistent bitmaps); then nothing is listed.</summary>
    public bool Compared { get; }

    /// <summary>Why the refcounts were not compared, or null.</summary>
    public string? NotComparedBecause { get; }

    /// <summary>Why the refcounts were not compared, as a state; null when they were.</summary>
    public Qcow2RefcountSkip? Skipped { get; }

    /// <summary>Leaked clusters (at most <see cref="RefcountCheck.MaxListed"/> listed; <see cref="LeakedClusters"/> counts all).</summary>
    public IReadOnlyList<Qcow2RefcountFinding> Leaks { get; }

    /// <summary>Every leaked cluster.</summary>
    public long LeakedClusters { get; }

    /// <summary>Corruptions (at most <see cref="RefcountCheck.MaxListed"/> listed; <see cref="CorruptionCount"/> counts all).</summary>
    public IReadOnlyList<Qcow2RefcountFinding> Corruptions { get; }

    /// <summary>Every corruption found.</summary>
    public long CorruptionCount { get; }
}

/// <summary>
/// Recomputes an image's refcounts: the header cluster, the refcount table and blocks, the
/// active L1 table, each L2 table and each host cluster an L2 entry names (a compressed
/// cluster's every cluster its bytes touch, a zero cluster's preallocated one), then compares.
/// Memory: one count per cluster of the file, and the refcount blocks the file holds.
/// </summary>
internal static class RefcountCheck
{
    /// <summary>Findings listed per kind; the rest are counted.</summary>
    public const int MaxListed = 100;

    /// <summary>Clusters of a file whose references are counted (4 bytes each, 1 GiB at most: a file of 128 GiB at 512-byte clusters, 16 TiB at 64 KiB); a larger file is not compared.</summary>
    private const long MaxClusters = 256L << 20;

    public static Qcow2RefcountReport Run(FileAccessor file, Qcow2Header header, HeaderExtensions extensions)
    {
        var leaks = new List<Qcow2RefcountFinding>();
        var corruptions = new List<Qcow2RefcountFinding>();
        if (header.SnapshotCount > 0)
            return new Qcow2RefcountReport(false, $"the image holds {header.SnapshotCount} internal snapshot(s), whose tables this check does not walk (use qemu-img check)", leaks, 0, corruptions, 0, Qcow2RefcountSkip.InternalSnapshots);
        if (extensions.Find(HeaderExtensions.BitmapsType) is not null)
            return new Qcow2RefcountReport(false, "the image holds persistent bitmaps, whose tables this check does not walk (use qemu-img check)", leaks, 0, corruptions, 0, Qcow2RefcountSkip.PersistentBitmaps);

        long cluster = header.ClusterSize;
        int clusterBits = header.ClusterBits;
        long fileClusters = (file.Length + cluster - 1) / cluster;
        if (fileClusters > MaxClusters)
            return new Qcow2RefcountReport(false, $"the file holds {fileClusters} clusters of {cluster} bytes; counting their references would take more than {MaxClusters * 4 >> 20} MiB (use qemu-img check)", leaks, 0, corruptions, 0, Qcow2RefcountSkip.TooManyClusters);
        var refs = new int[fileClusters];
        long corruptionCount = 0, leakCount = 0;

        void Corrupt(Qcow2RefcountProblem problem, long offset, ulong refcount, long references, string text)
        {
            corruptionCount++;
            if (corruptions.Count < MaxListed)
                corruptions.Add(new Qcow2RefcountFinding(problem, offset, refcount, references, text));
        }

        void Reference(long offset, long length, string what)
        {
            if (length <= 0)
                return;
            long first = offset / cluster, last = (offset + length - 1) / cluster;
            for (long c = first; c <= last; c++)
            {
                if (c >= fileClusters)
                {
                    Corrupt(Qcow2RefcountProblem.PastEnd, c * cluster, 0, 1, $"ERROR {what} at offset {c * cluster} lies past the end of the file ({file.Length} bytes)");
                    return;
                }
                if (refs[c] < int.MaxValue)
                    refs[c]++;
            }
        }

        Reference(0, cluster, "header");
        long tableBytes = (long)header.RefcountTableClusters * cluster;
        Reference((long)header.RefcountTableOffset, tableBytes, "refcount table");

        // The refcount table and the blocks it names (each inside the file, as the open checked).
        long perBlock = RefcountBlock.EntriesPerBlock(cluster, header.RefcountBits);
        long tableEntries = Math.Min(tableBytes / 8, (fileClusters + perBlock - 1) / perBlock + 1);
        byte[] tableRaw = new byte[tableEntries * 8];
        file.ReadOrZero((long)header.RefcountTableOffset, tableRaw, 0, tableRaw.Length);
        var blocks = new Dictionary<long, byte[]>();
        for (long i = 0; i < tableEntries; i++)
        {
            long block = (long)(BinaryPrimitives.ReadUInt64BigEndian(tableRaw.AsSpan((int)(i * 8))) & ~0x1FFUL);
            if (block == 0)
                continue;
            Reference(block, cluster, "refcount block");
            byte[] data = new byte[cluster];
            file.ReadOrZero(block, data, 0, data.Length);
            blocks[i] = data;
        }

        ulong Refcount(long c)
        {
            return blocks.TryGetValue(c / perBlock, out byte[]? b) ? RefcountBlock.Get(b, c % perBlock, header.RefcountBits) : 0;
        }

        // The active L1 table and every table and cluster it reaches.
        long l1Bytes = (long)header.L1Size * 8;
        Reference((long)header.L1TableOffset, l1Bytes, "L1 table");
        byte[] l1 = new byte[l1Bytes];
        file.ReadOrZero((long)header.L1TableOffset, l1, 0, l1.Length);
        int entryBytes = header.L2EntryBytes;
        byte[] l2 = new byte[cluster];
        // COPIED flags are judged once the references are all counted.
        var copied = new List<(long Offset, long Cluster, bool Flag, string What)>();
        for (long i = 0; i < header.L1Size; i++)
        {
            ulong e = BinaryPrimitives.ReadUInt64BigEndian(l1.AsSpan((int)(i * 8)));
            long l2Offset = (long)(e & 0x00FF_FFFF_FFFF_FE00UL);
            if (l2Offset == 0)
                continue;
            Reference(l2Offset, cluster, "L2 table");
            copied.Add((l2Offset, l2Offset / cluster, (e & L2Entry.CopiedFlag) != 0, "L1 entry"));
            if (l2Offset >= file.Length)
                continue;
            file.ReadOrZero(l2Offset, l2, 0, l2.Length);
            for (int j = 0; j < cluster / entryBytes; j++)
            {
                ulong word = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(j * entryBytes));
                var entry = new L2Entry(word, 0);
                if (entry.IsCompressed)
                {
                    Reference(entry.CompressedOffset(clusterBits), entry.CompressedLength(clusterBits), "compressed cluster");
                    continue;
                }
                if (header.HasExternalData || entry.HostOffset == 0)
                    continue;
                // A zero cluster may keep its host cluster preallocated: it is referenced all the same.
                Reference(entry.HostOffset, cluster, "data cluster");
                copied.Add((entry.HostOffset, entry.HostOffset / cluster, (word & L2Entry.CopiedFlag) != 0, "L2 entry"));
            }
        }

        // Compare, over every cluster the file holds or a refcount block counts.
        long counted = 0;
        foreach (long b in blocks.Keys)
            counted = Math.Max(counted, (b + 1) * perBlock);
        long end = Math.Max(fileClusters, counted);
        for (long c = 0; c < end; c++)
        {
            if (c >= fileClusters && !blocks.ContainsKey(c / perBlock))
            {
                c = (c / perBlock + 1) * perBlock - 1;
                continue;
            }
            ulong rc = Refcount(c);
            long r = c < fileClusters ? refs[c] : 0;
            if (rc == (ulong)r)
                continue;
            if (rc > (ulong)r)
            {
                leakCount++;
                if (leaks.Count < MaxListed)
                    leaks.Add(new Qcow2RefcountFinding(Qcow2RefcountProblem.Leak, c * cluster, rc, r, $"Leaked cluster {c} refcount={rc} reference={r}"));
            }
            else
            {
                Corrupt(Qcow2RefcountProblem.Corruption, c * cluster, rc, r, $"ERROR cluster {c} refcount={rc} reference={r}");
            }
        }
        foreach ((long offset, long c, bool flag, string what) in copied)
        {
            if (c >= fileClusters)
                continue;
            bool one = Refcount(c) == 1;
            if (flag != one)
                Corrupt(Qcow2RefcountProblem.CopiedFlag, offset, Refcount(c), refs[c],
                    $"ERROR OFLAG_COPIED {(what == "L1 entry" ? "L2 cluster" : "data cluster")}: offset={offset} refcount={Refcount(c)} ({what} {(flag ? "sets" : "lacks")} the COPIED flag)");
        }
        return new Qcow2RefcountReport(true, null, leaks, leakCount, corruptions, corruptionCount);
    }
}
