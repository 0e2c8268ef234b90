using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Disks;
using VmClone.Core.Store;

namespace VmClone.Core.Disks;

public static partial class DiskOperations
{
    /// <summary>
    /// Re-points a differencing disk at another parent. Without <paramref name="preserveContent"/>
    /// only the link is rewritten, and only when the new parent holds the very content the child
    /// was made from (same identity) — a moved or copied parent — unless
    /// <paramref name="ignoreIdMismatch"/>. With it, the new parent may hold different content:
    /// every range the child does not store itself and where old and new parent differ is first
    /// copied from the old parent into the child, so the child reads exactly as before; then the
    /// link is switched. The old parent can be deleted afterwards.
    /// </summary>
    public static VmDiskInfo SetParent(string childPath, string newParentPath, bool preserveContent, bool ignoreIdMismatch,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken) =>
        SetParent(childPath, newParentPath, preserveContent, ignoreIdMismatch, null, progress, cancellationToken, CopyBatching.Default);

    /// <summary>
    /// <see cref="SetParent(string, string, bool, bool, IProgress{OperationProgress}?, CancellationToken)"/>
    /// with the caller's open options: with <see cref="DiskOpenOptions.AllowedParentRoot"/> the
    /// child's chain (whose content a content-preserving re-parent copies) and the new parent's
    /// are followed only inside that folder, and a new parent outside it is refused.
    /// </summary>
    public static VmDiskInfo SetParent(string childPath, string newParentPath, bool preserveContent, bool ignoreIdMismatch, DiskOpenOptions? options,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken) =>
        SetParent(childPath, newParentPath, preserveContent, ignoreIdMismatch, options, progress, cancellationToken, CopyBatching.Default);

    /// <summary>
    /// The store's content-preserving re-parent of a clone's data volume: as
    /// <see cref="SetParent(string, string, bool, bool, DiskOpenOptions?, IProgress{OperationProgress}?, CancellationToken)"/>
    /// with preserveContent, but the child is not opened again afterwards to describe it (the
    /// store describes the clone once the operation is done, if at all).
    /// </summary>
    internal static void ReparentKeepingContent(string childPath, string newParentPath, DiskOpenOptions options,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken) =>
        SetParent(childPath, newParentPath, preserveContent: true, ignoreIdMismatch: false, options, progress, cancellationToken, CopyBatching.Default, describeResult: false);

    /// <summary>How a content-preserving re-parent batches its copies (see <see cref="CopyDifferences"/>); tests make the batches tiny.</summary>
    internal sealed class CopyBatching
    {
        public static readonly CopyBatching Default = new();

        /// <summary>Copied bytes after which a batch is committed and the next begun: its pending table entries stay bounded.</summary>
        public long BatchBytes { get; init; } = 256L << 20;

        /// <summary>Child runs listed ahead of a batch (each a few dozen bytes; a very fragmented child lists fewer windows at a time).</summary>
        public int MaxListedRuns { get; init; } = 64 * 1024;

        /// <summary>Chunks compared per group: both chains are mapped for a group, then its chunks are read (see <see cref="ReadAhead"/>).</summary>
        public int ChunksPerGroup { get; init; } = 256;
    }

    internal static VmDiskInfo SetParent(string childPath, string newParentPath, bool preserveContent, bool ignoreIdMismatch, DiskOpenOptions? options,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken, CopyBatching batching) =>
        SetParent(childPath, newParentPath, preserveContent, ignoreIdMismatch, options, progress, cancellationToken, batching, describeResult: true)!;

    private static VmDiskInfo? SetParent(string childPath, string newParentPath, bool preserveContent, bool ignoreIdMismatch, DiskOpenOptions? options,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken, CopyBatching batching, bool describeResult)
    {
        string child = Path.GetFullPath(childPath);
        string newParentFull = Path.GetFullPath(newParentPath);
        options ??= new DiskOpenOptions();
        if (options.AllowedParentRoot is string root && !PathUtil.IsReallyUnder(newParentFull, root))
            throw new DiskChainException(child, ChainProblem.OutsideAllowedRoot,
                $"The new parent '{newParentFull}' of '{child}' lies outside '{root}' where parents may be (or is a link leading out of it); it was not opened.", newParentFull);
        var chainOptions = new DiskOpenOptions
        {
            AllowedParentRoot = options.AllowedParentRoot,
            MaxChainDepth = options.MaxChainDepth,
            IgnoreParentIdentityMismatch = ignoreIdMismatch || options.IgnoreParentIdentityMismatch,
        };
        using VirtualDisk newParent = VirtualDisk.Open(newParentFull, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = options.AllowedParentRoot, MaxChainDepth = options.MaxChainDepth });
        if (newParent.Layers.Any(l => PathUtil.SamePath(l.Path, child)))
            throw new DiskChainException(child, ChainProblem.Loop, $"'{newParentFull}' depends on '{child}'; making it the parent would create a loop.", newParentFull);

        if (!preserveContent)
        {
            using DiskLayer layer = VirtualDisk.OpenLayer(child, FileAccess.ReadWrite);
            CheckReparent(layer, newParent);
            if (!layer.ParentReference!.Accepts(newParent.Top.Identity) && !ignoreIdMismatch)
                throw new DiskChainException(child, ChainProblem.ParentModified,
                    $"'{newParentFull}' does not hold the content '{child}' was made from (the child expects {layer.ParentReference.ExpectedIdentity}, " +
                    $"the new parent is {newParent.Top.Identity}). To move the child onto different content while keeping what it shows, use -PreserveContent; " +
                    "-IgnoreIdMismatch forces the link, and the child may then show corrupted content.", newParentFull);
            layer.SetParent(ParentLink.For(child, newParent.Top, options), options);
            layer.Flush();
        }
        else
        {
            using VirtualDisk disk = VirtualDisk.Open(child, FileAccess.ReadWrite, chainOptions);
            CheckReparent(disk.Top, newParent);
            CopyDifferences(disk, newParent, batching, progress, cancellationToken);
            disk.Top.SetParent(ParentLink.For(child, newParent.Top, options), options);
            disk.Flush();
        }

        if (!describeResult)
            return null;
        using VirtualDisk result = VirtualDisk.Open(child, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = options.AllowedParentRoot, MaxChainDepth = options.MaxChainDepth });
        return Describe(result.Top, 0, result.Layers.Count, null);
    }

    private static void CheckReparent(DiskLayer child, VirtualDisk newParent)
    {
        if (child.ParentReference is null)
            throw new VmCloneException(StoreErrorIds.DiskHasNoParent, VmCloneErrorKind.InvalidArgument, $"'{child.Path}' is not a differencing disk; it has no parent to change.", child.Path);
        if (child.VirtualSize != newParent.Capacity)
            throw new DiskChainException(child.Path, ChainProblem.Incompatible,
                $"'{newParent.Path}' is {newParent.Capacity} bytes but '{child.Path}' is {child.VirtualSize}; a parent must have its child's size.", newParent.Path);
        if (child.LogicalSectorSize != newParent.LogicalSectorSize)
            throw new DiskChainException(child.Path, ChainProblem.Incompatible,
                $"'{newParent.Path}' has {newParent.LogicalSectorSize}-byte sectors but '{child.Path}' has {child.LogicalSectorSize}.", newParent.Path);
    }

    /// <summary>
    /// Copies into the child's own layer every range it leaves to its parent where the old and
    /// the new parent chains differ. Runs both chains take from the same file, or both read as
    /// zeros, are equal without being read; the rest is compared sector by sector.
    /// </summary>
    /// <remarks>
    /// What is copied is written in batches (<see cref="DiskLayer.BeginBatch"/>): its data
    /// flushed once, then the tables that make it reachable, instead of a flush sequence per run.
    /// A batch ends after <see cref="CopyBatching.BatchBytes"/> were copied (its pending table
    /// entries stay bounded) or when the runs listed so far are done. Mapping the child inside a
    /// batch would commit it, so the child's runs are listed before each batch, for as many
    /// windows as <see cref="CopyBatching.MaxListedRuns"/> allows: a patched base, with a few
    /// MiB changed here and there, is then copied in one batch and two flushes.
    /// <para>
    /// The new chain is read on a thread of its own (<see cref="ReadAhead"/>) a few chunks ahead
    /// while this one reads the old chain, compares and writes: the two reads, most of the work,
    /// overlap instead of waiting for each other chunk by chunk. Both chains are mapped for a
    /// group of chunks (<see cref="CopyBatching.ChunksPerGroup"/>) before the group is read, so
    /// the new chain's disk is never mapped and read at the same time.
    /// </para>
    /// </remarks>
    private static void CopyDifferences(VirtualDisk disk, VirtualDisk newParent, CopyBatching batching, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        DiskLayer top = disk.Top;
        DiskLayer oldParent = top.Parent!;
        int sector = top.LogicalSectorSize;
        byte[] oldBuffer = new byte[ContentCopier.ChunkSize];
        // The new chain is read on a thread of its own, ahead of the old one (separate files and
        // objects); its disk is mapped here only between groups, while that thread is idle.
        using var newContent = new ReadAhead(newParent.Content, ContentCopier.ChunkSize, depth: 3);
        var group = new List<(long Position, int Length)>(batching.ChunksPerGroup);
        long capacity = top.VirtualSize;
        string activity = $"Re-parenting {Path.GetFileName(top.Path)} onto {Path.GetFileName(newParent.Path)}";
        long reported = 0;
        void Report(long done)
        {
            // Once per window's worth: a fragmented child has tens of thousands of runs.
            if (progress is null || (done - reported < ContentCopier.Window && done < capacity))
                return;
            reported = done;
            progress.Report(new OperationProgress(activity, $"{Format.Bytes(done)} of {Format.Bytes(capacity)}", done, capacity));
        }
        for (long listed = 0; listed < capacity;)
        {
            var runs = new List<(long Position, long Length)>();
            while (listed < capacity && runs.Count < batching.MaxListedRuns)
            {
                cancellationToken.ThrowIfCancellationRequested();
                long windowLength = Math.Min(ContentCopier.Window, capacity - listed);
                runs.AddRange(ParentRuns(top, listed, windowLength));
                listed += windowLength;
            }
            IDisposable batch = top.BeginBatch();
            try
            {
                long inBatch = 0;
                using IEnumerator<(long Position, int Length)> chunks = ChunksToCompare(oldParent, newParent, runs, oldBuffer.Length).GetEnumerator();
                while (NextGroup(chunks, group, batching.ChunksPerGroup))
                {
                    newContent.Begin(group);
                    foreach ((long p, int n) in group)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        inBatch += CopyWhereDifferent(p, n);
                        if (inBatch >= batching.BatchBytes)
                        {
                            batch.Dispose();
                            batch = top.BeginBatch();
                            inBatch = 0;
                        }
                        Report(p + n);
                    }
                }
            }
            finally
            {
                batch.Dispose();
            }
            Report(listed);
        }

        // Reads the old chain's [p, +n) while the read-ahead reads (or has read) the new chain's,
        // and writes the old content where they differ; returns the bytes written.
        long CopyWhereDifferent(long p, int n)
        {
            ChainReader.Read(oldParent, p, oldBuffer, 0, n);
            byte[] newBuffer = newContent.Next();
            return WriteDifferingSectors(top, p, oldBuffer, newBuffer, n, sector);
        }
    }

    /// <summary>
    /// Fills <paramref name="group"/> with the next chunks (at most <paramref name="most"/>);
    /// false when there are none. The enumerator maps both chains as it goes, so it is advanced
    /// only here, never while a group is being read.
    /// </summary>
    private static bool NextGroup(IEnumerator<(long Position, int Length)> chunks, List<(long Position, int Length)> group, int most)
    {
        group.Clear();
        while (group.Count < most && chunks.MoveNext())
            group.Add(chunks.Current);
        return group.Count > 0;
    }

    /// <summary>
    /// The chunks of the child's parent runs (at most <paramref name="chunk"/> bytes each) where
    /// the old and the new chain do not provably agree (see <see cref="DifferingCandidates"/>).
    /// </summary>
    private static IEnumerable<(long Position, int Length)> ChunksToCompare(DiskLayer oldParent, VirtualDisk newParent, List<(long Position, long Length)> runs, int chunk)
    {
        foreach ((long position, long length) in runs)
        {
            var oldMap = new List<ChainExtent>();
            ChainMapper.Map(oldParent, 1, position, length, oldMap);
            foreach ((long start, long count) in DifferingCandidates(oldMap, newParent.MapExtents(position, length)))
            {
                for (long p = start; p < start + count; p += chunk)
                    yield return (p, (int)Math.Min(chunk, start + count - p));
            }
        }
    }

    /// <summary>Runs of [position, +length) that <paramref name="layer"/> leaves to its parent.</summary>
    private static IEnumerable<(long, long)> ParentRuns(DiskLayer layer, long position, long length)
    {
        long end = position + length;
        while (position < end)
        {
            LayerExtent extent = layer.GetExtent(position, end - position);
            long run = Math.Min(extent.Length, end - position);
            if (extent.Kind == ExtentKind.Parent)
                yield return (position, run);
            position += run;
        }
    }

    /// <summary>Sub-runs where the two maps do not provably agree (same source file, or zeros on both sides).</summary>
    private static IEnumerable<(long, long)> DifferingCandidates(IReadOnlyList<ChainExtent> a, IReadOnlyList<ChainExtent> b)
    {
        int i = 0, j = 0;
        while (i < a.Count && j < b.Count)
        {
            long start = Math.Max(a[i].Position, b[j].Position);
            long end = Math.Min(a[i].End, b[j].End);
            if (end > start)
            {
                bool bothZero = a[i].Kind == ExtentKind.Zero && b[j].Kind == ExtentKind.Zero;
                bool sameFile = a[i].Kind == ExtentKind.Data && b[j].Kind == ExtentKind.Data &&
                    a[i].Layer is DiskLayer la && b[j].Layer is DiskLayer lb && PathUtil.SamePath(la.Path, lb.Path);
                if (!bothZero && !sameFile)
                    yield return (start, end - start);
            }
            if (a[i].End <= b[j].End)
                i++;
            else
                j++;
        }
    }

    /// <summary>Writes the sectors where the chains differ (the old content); returns how many bytes were written.</summary>
    private static long WriteDifferingSectors(DiskLayer layer, long position, byte[] oldData, byte[] newData, int count, int sector)
    {
        // Most of what is compared is equal: one vectorized comparison of the whole chunk first.
        if (BytesEqual.Check(oldData.AsSpan(0, count), newData.AsSpan(0, count)))
            return 0;
        long written = 0;
        int offset = 0;
        while (offset < count)
        {
            int len = Math.Min(sector, count - offset);
            if (BytesEqual.Check(oldData.AsSpan(offset, len), newData.AsSpan(offset, len)))
            {
                offset += len;
                continue;
            }
            int runStart = offset;
            while (offset < count)
            {
                len = Math.Min(sector, count - offset);
                if (BytesEqual.Check(oldData.AsSpan(offset, len), newData.AsSpan(offset, len)))
                    break;
                offset += len;
            }
            layer.Write(position + runStart, oldData, runStart, offset - runStart);
            written += offset - runStart;
        }
        return written;
    }
}
