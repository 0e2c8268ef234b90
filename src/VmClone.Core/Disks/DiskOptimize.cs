using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.Core.Disks;

public static partial class DiskOperations
{
    /// <summary>
    /// Prefix of the hidden folder beside a disk file in which its compacted copy is written
    /// (the folder is the prefix and the file's name; the copy inside keeps the file's name,
    /// which a VMDK's descriptor names). Whatever such a folder holds is a cut-off optimize's
    /// leftover: the next optimize of that file, or Test-VmStore -Repair, deletes it.
    /// </summary>
    public const string OptimizeStagingPrefix = ".vmclone-staging-";

    /// <summary>Room asked of the volume beyond the content a compacted copy stores: its tables and headers.</summary>

    /// <summary>
    /// What an optimize of <paramref name="path"/> would start from, without writing: the
    /// before-figures filled, the after-figures equal to them. Refused as the optimize would be
    /// for a store volume given by path (DiskInStore) or a kind VmClone does not rewrite
    /// (OptimizeNotSupported).
    /// </summary>
    public static VmDiskOptimization PlanOptimize(string path, DiskOpenOptions? options = null)
    {
        string full = Path.GetFullPath(path);
        RefuseOptimizeInStore(full);
        using VirtualDisk disk = VirtualDisk.Open(full, FileAccess.Read, options);
        RefuseCopy(disk.Top);
        return Before(disk.Top);
    }

    /// <summary>
    /// Gives back the space of what <paramref name="path"/> stores for nothing: runs that read as
    /// zeros and, in a differencing disk, runs that read as what its parent chain reads there, so
    /// that every byte read through the chain stays as it was. A dynamic or differencing disk is
    /// written again as a compacted copy (same format, block size, parent link and identity, so
    /// its children stay linked) in a hidden folder beside it and renamed over it: cut off, the
    /// file is the old one, whole. A fixed disk or raw file has its all-zero ranges punched out
    /// in place. Refused, nothing written: a store volume given by path (DiskInStore), a file
    /// another process holds open (DiskInUse), a kind VmClone does not rewrite
    /// (OptimizeNotSupported), a volume without room for the copy (DiskFull).
    /// </summary>
    public static VmDiskOptimization Optimize(string path, DiskOpenOptions? options, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        string full = Path.GetFullPath(path);
        RefuseOptimizeInStore(full);
        if (FileNode.Of(full) == FileNodeKind.RegularFile && FileInUse.LastingHolder(full) is string holder)
            throw new VmCloneException(StoreErrorIds.DiskInUse, VmCloneErrorKind.InUse,
                $"'{full}' is in use by {holder}; it was not optimized. Stop the machine using it first.", full);
        return OptimizeFile(full, options, progress, cancellationToken);
    }

    /// <summary>
    /// <see cref="Optimize"/> without the store and in-use refusals: for the store's own command,
    /// which holds the clone's lock and has probed every volume of the clone for a holder itself.
    /// </summary>
    internal static VmDiskOptimization OptimizeFile(string full, DiskOpenOptions? options, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        RemoveOptimizeStaging(full);
        VirtualDisk disk = VirtualDisk.Open(full, FileAccess.Read, options);
        try
        {
            RefuseCopy(disk.Top);
            VmDiskOptimization result = Before(disk.Top);
            string activity = $"Optimizing {Path.GetFileName(full)}";
            if (disk.Top.Type == DiskType.Fixed)
            {
                List<(string File, long Offset, long Length)> holes = ZeroRanges(disk.Top, result, activity, progress, cancellationToken);
                disk.Dispose();
                Punch(holes, result, cancellationToken);
                result.Method = result.RangesDropped > 0 ? OptimizeMethod.Punched : OptimizeMethod.Unchanged;
            }
            else
            {
                using IDisposable room = ReserveFor(full, CopyBytesAtMost(disk.Top), $"the compacted copy of '{full}' beside it");
                result.Method = Rewrite(disk, full, result, activity, progress, cancellationToken) ? OptimizeMethod.Rewritten : OptimizeMethod.Unchanged;
            }
            using DiskLayer after = VirtualDisk.OpenLayer(full, FileAccess.Read, result.Format);
            result.StoredBytesAfter = after.Type == DiskType.Fixed ? after.VirtualSize : after.AllocatedBytes;
            result.SizeOnDiskAfter = after.SizeOnDisk;
            return result;
        }
        finally
        {
            disk.Dispose();
        }
    }

    /// <summary>The hidden staging folder of <paramref name="full"/>'s compacted copy.</summary>
    internal static string OptimizeStagingFolder(string full) =>
        Path.Combine(Path.GetDirectoryName(full) ?? ".", OptimizeStagingPrefix + Path.GetFileName(full));

    /// <summary>Deletes what a cut-off optimize of <paramref name="full"/> left (its staging folder); the file itself was never touched.</summary>
    internal static void RemoveOptimizeStaging(string full)
    {
        string staging = OptimizeStagingFolder(full);
        if (FileNode.Of(staging) == FileNodeKind.Directory)
            Directory.Delete(staging, recursive: true);
        else if (FileNode.Of(staging) != FileNodeKind.Missing)
            File.Delete(staging);
    }

    private static void RefuseOptimizeInStore(string full)
    {
        if (StoreOfFile.FindRoot(full) is string root)
            throw new VmCloneException(StoreErrorIds.DiskInStore, VmCloneErrorKind.InvalidOperation,
                $"'{full}' lies in store '{root}'; its volumes are optimized by the store's form of the command, under the clone's lock: " +
                "Optimize-VmDisk -Store <store> -Name <clone>, or Get-VmClone <clone> | Optimize-VmDisk.", full);
    }

    private static VmDiskOptimization Before(DiskLayer top)
    {
        long stored = top.Type == DiskType.Fixed ? top.VirtualSize : top.AllocatedBytes;
        long onDisk = top.SizeOnDisk;
        return new VmDiskOptimization
        {
            Path = top.Path,
            Format = top.Format,
            Type = top.Type,
            VirtualSize = top.VirtualSize,
            StoredBytesBefore = stored,
            StoredBytesAfter = stored,
            SizeOnDiskBefore = onDisk,
            SizeOnDiskAfter = onDisk,
        };
    }

    private static void RefuseCopy(DiskLayer top)
    {
        if (top.Type == DiskType.Fixed || top.CopyRefusal is not string reason)
            return;
        throw new VmCloneException(StoreErrorIds.OptimizeNotSupported, VmCloneErrorKind.InvalidOperation, reason, top.Path);
    }


    /// <summary>
    /// What the compacted copy of <paramref name="top"/> can take at most: what the layer stores
    /// now, and its tables (qcow2 L2 entries are 8 bytes per 64 KiB cluster, the largest share
    /// among the formats: less than 1/4096 of the virtual size) and headers.
    /// </summary>
    private static long CopyBytesAtMost(DiskLayer top) => top.AllocatedBytes + top.VirtualSize / 4096 + (1L << 20);

    /// <summary>
    /// Writes the compacted copy of <paramref name="disk"/>'s top layer in its staging folder,
    /// gives it the original's identity, makes it durable and renames it over the original.
    /// A copy that gives nothing back (see <see cref="GivesBack"/>; a qcow2 image of compressed
    /// clusters, which the copy stores plainly, comes out longer) is deleted and the file left
    /// as it was; false then.
    /// </summary>
    private static bool Rewrite(VirtualDisk disk, string full, VmDiskOptimization result, string activity,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        DiskLayer top = disk.Top;
        string staging = OptimizeStagingFolder(full);
        Directory.CreateDirectory(staging);
        // The folder is ours only when it is a real folder (not a link someone put in its place).
        if (FileNode.Of(staging) != FileNodeKind.Directory)
            throw new VmCloneException(StoreErrorIds.OptimizeNotSupported, VmCloneErrorKind.InvalidOperation,
                $"'{full}' was not optimized: '{staging}', where its copy is written, is not a plain folder. Remove it and run the command again.", full);
        string staged = Path.Combine(staging, Path.GetFileName(full));
        bool replaced = false;
        long copyStored, copyLength;
        try
        {
            using (DiskLayer copy = VirtualDisk.CreateLayerCopy(staged, top, full))
            {
                FaultPoint.Hit("optimize:created");
                using (copy.BeginBatch())
                    CopyDiffering(top, copy, activity, progress, cancellationToken);
                FaultPoint.Hit("optimize:copied");
                copy.AdoptIdentity(top);
                copy.Flush();
                CountDropped(top, copy, result);
                copyStored = copy.AllocatedBytes;
                copyLength = copy.FileSize;
            }
            FaultPoint.Hit("optimize:durable");
            if (!GivesBack(top.FileSize, result.StoredBytesBefore, copyLength, copyStored))
            {
                result.RangesDropped = 0;
                result.BytesDropped = 0;
                TryDeleteFolder(staging);
                return false;
            }
            disk.Dispose();
            // One rename: cut off, the name holds the old file or the whole copy, never neither.
            File.Replace(staged, full, null);
            replaced = true;
            FaultPoint.Hit("optimize:renamed");
        }
        catch (IOException ex) when (!replaced && PlanExecutor.IsDiskFull(ex))
        {
            TryDeleteFolder(staging);
            throw new VmCloneException(StoreErrorIds.DiskFull, VmCloneErrorKind.InvalidOperation,
                $"'{full}' was not optimized: the volume filled up while its compacted copy was written. The file is as it was; free some space and run the command again.", full, ex);
        }
        catch (Exception ex) when (!FaultPoint.IsCrash(ex) && !replaced)
        {
            TryDeleteFolder(staging);
            throw;
        }
        TryDeleteFolder(staging);
        return true;
    }

    /// <summary>
    /// Whether a copy <paramref name="copyLength"/> bytes long that stores
    /// <paramref name="copyStored"/> bytes is worth putting in the place of a file
    /// <paramref name="length"/> bytes long that stores <paramref name="stored"/>: shorter, or
    /// as long and storing less. Measured on what the files hold, never on the blocks the file
    /// system counts for them: those move with how it laid the file out (an extent-tree block
    /// of a fragmented file, space reserved past the end), so the same bytes could be copied
    /// again and again to give nothing back.
    /// </summary>
    private static bool GivesBack(long length, long stored, long copyLength, long copyStored) =>
        copyLength < length || (copyLength == length && copyStored < stored);

    /// <summary>
    /// Copies into <paramref name="copy"/> (whose parent is <paramref name="top"/>'s) the runs of
    /// what <paramref name="top"/> stores that read otherwise than what lies below it: for a base,
    /// the runs that are not zero. A run left out reads, in the copy, from below: the same bytes.
    /// </summary>
    private static void CopyDiffering(DiskLayer top, DiskLayer copy, string activity,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        byte[] data = new byte[ContentCopier.ChunkSize];
        byte[] below = new byte[ContentCopier.ChunkSize];
        int granule = ContentCopier.ZeroGranule;
        long capacity = top.VirtualSize;
        long reported = 0;
        for (long at = 0; at < capacity;)
        {
            cancellationToken.ThrowIfCancellationRequested();
            LayerExtent extent = top.GetExtent(at, capacity - at);
            long end = at + extent.Length;
            if (extent.Kind == ExtentKind.Parent)
            {
                at = end;
                continue;
            }
            for (long pos = at; pos < end;)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int n = (int)Math.Min(data.Length, end - pos);
                if (extent.Kind == ExtentKind.Data)
                    top.ReadData(pos, data, 0, n);
                else
                    Array.Clear(data, 0, n);
                ChainReader.Read(top.Parent, pos, below, 0, n);
                int runStart = -1;
                for (int g = 0; g < n; g += granule)
                {
                    int len = Math.Min(granule, n - g);
                    bool same = data.AsSpan(g, len).SequenceEqual(below.AsSpan(g, len));
                    if (same)
                    {
                        if (runStart >= 0)
                        {
                            copy.Write(pos + runStart, data, runStart, g - runStart);
                            runStart = -1;
                        }
                    }
                    else
                    {
                        if (runStart < 0)
                            runStart = g;
                    }
                }
                if (runStart >= 0)
                    copy.Write(pos + runStart, data, runStart, n - runStart);
                pos += n;
                if (pos - reported >= ContentCopier.Window || pos == capacity)
                {
                    reported = pos;
                    progress?.Report(new OperationProgress(activity, $"{Format.Bytes(pos)} of {Format.Bytes(capacity)}", pos, capacity));
                }
            }
            at = end;
        }
        progress?.Report(new OperationProgress(activity, $"{Format.Bytes(capacity)} of {Format.Bytes(capacity)}", capacity, capacity));
    }

    /// <summary>The runs <paramref name="top"/> stores (data or stated zeros) that <paramref name="copy"/> leaves to what lies below.</summary>
    private static void CountDropped(DiskLayer top, DiskLayer copy, VmDiskOptimization result)
    {
        long capacity = top.VirtualSize;
        bool inRun = false;
        for (long at = 0; at < capacity;)
        {
            LayerExtent was = top.GetExtent(at, capacity - at);
            LayerExtent now = copy.GetExtent(at, was.Length);
            long n = Math.Min(was.Length, now.Length);
            bool dropped = was.Kind != ExtentKind.Parent && now.Kind == ExtentKind.Parent;
            if (dropped)
            {
                if (!inRun)
                    result.RangesDropped++;
                result.BytesDropped += n;
            }
            inRun = dropped;
            at += n;
        }
    }

    /// <summary>
    /// The ranges of a fixed layer's files that hold data and read as zeros, in whole 4 KiB file
    /// blocks: what can be punched out without changing a byte read.
    /// </summary>
    private static List<(string File, long Offset, long Length)> ZeroRanges(DiskLayer top, VmDiskOptimization result, string activity,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        const long FileBlock = 4096;
        var ranges = new List<(string File, long Offset, long Length)>();
        byte[] data = new byte[ContentCopier.ChunkSize];
        int granule = ContentCopier.ZeroGranule;
        long capacity = top.VirtualSize;
        for (long at = 0; at < capacity;)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = (int)Math.Min(data.Length, capacity - at);
            LayerExtent extent = top.GetExtent(at, n);
            n = (int)Math.Min(n, extent.Length);
            if (extent.Kind == ExtentKind.Data)
            {
                top.ReadData(at, data, 0, n);
                for (int g = 0; g < n; g += granule)
                {
                    int len = Math.Min(granule, n - g);
                    if (!ZeroBytes.All(data.AsSpan(g, len)))
                        continue;
                    for (long v = at + g, left = len; left > 0;)
                    {
                        if (top.LocateData(v, left) is not DataLocation where)
                            break;
                        long start = (where.Offset + FileBlock - 1) / FileBlock * FileBlock;
                        long stop = (where.Offset + where.Length) / FileBlock * FileBlock;
                        if (stop > start)
                            Add(ranges, where.File, start, stop - start);
                        v += where.Length;
                        left -= where.Length;
                    }
                }
            }
            long before = at;
            at += n;
            // Once a window (or at the end), as the copy reports: not for every MiB of a large disk.
            if (at / ContentCopier.Window != before / ContentCopier.Window || at == capacity)
                progress?.Report(new OperationProgress(activity, $"{Format.Bytes(at)} of {Format.Bytes(capacity)}", at, capacity));
        }
        return ranges;
    }

    private static void Add(List<(string File, long Offset, long Length)> ranges, string file, long offset, long length)
    {
        if (ranges.Count > 0)
        {
            (string f, long o, long l) = ranges[ranges.Count - 1];
            if (f == file && o + l == offset)
            {
                ranges[ranges.Count - 1] = (f, o, l + length);
                return;
            }
        }
        ranges.Add((file, offset, length));
    }

    /// <summary>Punches out each range that still holds data (ranges that are holes already are left); counts them.</summary>
    private static void Punch(List<(string File, long Offset, long Length)> ranges, VmDiskOptimization result, CancellationToken cancellationToken)
    {
        FileAccessor? open = null;
        try
        {
            foreach ((string file, long offset, long length) in ranges)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (open is null || open.Path != file)
                {
                    open?.Dispose();
                    open = FileAccessor.Open(file, FileAccess.ReadWrite, refuseLink: true);
                }
                if (open.NextData(offset) is long data && data >= offset + length)
                    continue;
                if (!open.PunchHole(offset, length))
                    throw new VmCloneException(StoreErrorIds.OptimizeNotSupported, VmCloneErrorKind.InvalidOperation,
                        $"'{file}' is a fixed disk, and its file system cannot punch holes: its zero ranges cannot be given back in place. Convert it to a dynamic disk instead (Convert-VmDisk).", file);
                result.RangesDropped++;
                result.BytesDropped += length;
                FaultPoint.Hit("optimize:punched");
            }
            open?.Flush();
        }
        finally
        {
            open?.Dispose();
        }
    }

    private static void TryDeleteFolder(string folder)
    {
        try
        {
            if (Directory.Exists(folder))
                Directory.Delete(folder, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
