using System;
using System.IO;

namespace VmClone.Disks;

/// <summary>Why a disk cannot take the size asked for.</summary>
public enum ResizeProblem
{
    /// <summary>The size is not positive, not a whole number of logical sectors, or past what the format can describe.</summary>
    InvalidSize,
    /// <summary>The file stores data past the asked end: <see cref="DiskResizeException.MinimumSize"/> is the smallest size that keeps it.</summary>
    DataPastEnd,
    /// <summary>A differencing disk may not be larger than its parent: grow the parent first.</summary>
    PastParent,
    /// <summary>The file's kind cannot be resized by VmClone (a stream-optimized VMDK, a VMDK of several extents).</summary>
    Unsupported,
}

/// <summary>A disk refused a new size; <see cref="Problem"/> says why, with the numbers a caller needs to try again.</summary>
public sealed class DiskResizeException : VirtualDiskException
{
    public DiskResizeException(string path, ResizeProblem problem, string message, long? minimumSize = null, long? parentSize = null, string? parentPath = null)
        : base(path, message)
    {
        Problem = problem;
        MinimumSize = minimumSize;
        ParentSize = parentSize;
        ParentPath = parentPath;
    }

    public ResizeProblem Problem { get; }

    /// <summary>With <see cref="ResizeProblem.DataPastEnd"/>: the smallest size the disk can shrink to.</summary>
    public long? MinimumSize { get; }

    /// <summary>With <see cref="ResizeProblem.PastParent"/>: the parent's virtual size, the largest the child may have.</summary>
    public long? ParentSize { get; }

    /// <summary>With <see cref="ResizeProblem.PastParent"/>: the parent's file, the one to grow first.</summary>
    public string? ParentPath { get; }
}

/// <summary>What a resize did.</summary>
public sealed class DiskResizeResult
{
    internal DiskResizeResult(string path, long oldSize, long newSize, long minimumSize)
    {
        Path = path;
        OldSize = oldSize;
        NewSize = newSize;
        MinimumSize = minimumSize;
    }

    /// <summary>The disk file.</summary>
    public string Path { get; }

    /// <summary>Virtual size before, in bytes.</summary>
    public long OldSize { get; }

    /// <summary>Virtual size now, in bytes.</summary>
    public long NewSize { get; }

    /// <summary>The smallest size the disk could have been shrunk to (the end of what it stores).</summary>
    public long MinimumSize { get; }
}

/// <summary>
/// Grows a disk file, or shrinks it when it stores nothing past the new end, in place and in the
/// format's own terms (VHDX metadata and BAT, VMDK header, grain directory and descriptor, qcow2
/// header and L1 table, VHD footer and BAT, a raw file's length). Bytes below the old end keep
/// their content; bytes added read as zeros. Growing keeps the disk's identity (every byte a
/// child can read through it is unchanged), so children stay linked; shrinking changes it where
/// the format records one, since a child larger than the new size would read content that is gone.
/// </summary>
public static class DiskResize
{
    /// <summary>
    /// The smallest virtual size <paramref name="path"/> can shrink to without losing anything it
    /// stores: the end of its last allocated block, grain or cluster (for a fixed or raw disk, the
    /// end of its last sector that is not zero), rounded up to a logical sector; at least one sector.
    /// </summary>
    public static long MinimumSize(string path, DiskOpenOptions? options = null)
    {
        using DiskLayer layer = VirtualDisk.OpenLayerWith(path, FileAccess.Read, options?.Format, options);
        return MinimumSize(layer);
    }

    internal static long MinimumSize(DiskLayer layer)
    {
        long end = layer.StoredEnd();
        long lss = layer.LogicalSectorSize;
        end = (end + lss - 1) / lss * lss;
        return Math.Max(lss, Math.Min(end, layer.VirtualSize));
    }

    /// <summary>
    /// Sets the virtual size of the disk at <paramref name="path"/> to <paramref name="newSize"/>
    /// bytes. Refused with a <see cref="DiskResizeException"/>, nothing written, for a size that is
    /// not a whole number of logical sectors, a shrink past what the file stores
    /// (<see cref="ResizeProblem.DataPastEnd"/>, with the minimum size), or a differencing disk
    /// larger than its parent (<see cref="ResizeProblem.PastParent"/>: grow the parent first).
    /// The same size is a no-op. A cut-off resize leaves a file that opens at the old or the new size.
    /// </summary>
    public static DiskResizeResult Resize(string path, long newSize, DiskOpenOptions? options = null)
    {
        options ??= DiskOpenOptions.Default;
        string full = System.IO.Path.GetFullPath(path);
        long oldSize;
        long minimum;
        using (VirtualDisk disk = VirtualDisk.Open(full, FileAccess.ReadWrite, options))
        {
            DiskLayer top = disk.Top;
            oldSize = top.VirtualSize;
            long lss = top.LogicalSectorSize;
            if (newSize <= 0 || newSize % lss != 0 || newSize > top.MaxResizeSize)
                throw new DiskResizeException(full, ResizeProblem.InvalidSize,
                    $"'{full}' cannot be resized to {newSize} bytes: a {top.Format} disk's size must be a positive multiple of its {lss}-byte logical sector, at most {top.MaxResizeSize} bytes.");
            if (top.Parent is DiskLayer parent && newSize > parent.VirtualSize)
                throw new DiskResizeException(full, ResizeProblem.PastParent,
                    $"'{full}' is a differencing disk over '{parent.Path}' of {parent.VirtualSize} bytes; it cannot grow to {newSize} bytes past its parent. " +
                    $"Grow the parent first (Resize-VmDisk -Path '{parent.Path}' -SizeBytes {newSize}), then this disk.",
                    parentSize: parent.VirtualSize, parentPath: parent.Path);
            minimum = MinimumSize(top);
            if (newSize == oldSize)
                return new DiskResizeResult(full, oldSize, newSize, minimum);
            if (newSize < minimum)
                throw new DiskResizeException(full, ResizeProblem.DataPastEnd,
                    $"'{full}' stores data up to {minimum} bytes; it cannot shrink to {newSize} bytes. The smallest size it can take is {minimum} bytes.",
                    minimumSize: minimum);
            top.ResizeInPlace(newSize);
        }
        if (newSize > oldSize)
            ZeroTail(full, oldSize, newSize, options);
        return new DiskResizeResult(full, oldSize, newSize, minimum);
    }

    /// <summary>
    /// The part of the last allocated unit past the old end was never part of the disk, and a
    /// file written by another tool may hold anything there: where the layer stores it, it is
    /// written with zeros so the added range reads as zeros as promised.
    /// </summary>
    private static void ZeroTail(string path, long oldSize, long newSize, DiskOpenOptions options)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite, options);
        DiskLayer top = disk.Top;
        if (top.BlockSize >= top.VirtualSize && top.Type == DiskType.Fixed)
            return; // a fixed file's added range is new file space, zero already
        long unit = top.BlockSize;
        long tailEnd = Math.Min(newSize, (oldSize + unit - 1) / unit * unit);
        var zeros = new byte[64 * 1024];
        long at = oldSize;
        while (at < tailEnd)
        {
            LayerExtent e = top.GetExtent(at, tailEnd - at);
            if (e.Kind == ExtentKind.Data)
            {
                // Only stray bytes are cleared: a tail that is zero already (what every writer
                // leaves) is not written, so the disk's identity stays and its children stay linked.
                var piece = new byte[zeros.Length];
                for (long done = 0; done < e.Length; done += zeros.Length)
                {
                    int n = (int)Math.Min(zeros.Length, e.Length - done);
                    top.ReadData(at + done, piece, 0, n);
                    if (!ZeroBytes.All(piece.AsSpan(0, n)))
                        top.Write(at + done, zeros, 0, n);
                }
            }
            at += e.Length;
        }
        top.Flush();
    }
}
