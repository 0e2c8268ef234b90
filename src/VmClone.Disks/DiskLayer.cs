using System;
using System.Collections.Generic;
using System.IO;

namespace VmClone.Disks;

/// <summary>
/// One file of a chain (a VHDX, a VMDK, a raw file). A layer answers, for any run of virtual
/// bytes, whether it stores them, states them zero, or leaves them to its parent
/// (<see cref="GetExtent"/>); the chain stream stitches layers together from those answers.
/// Layers are not thread safe: <see cref="VirtualDisk"/> serializes access.
/// </summary>
public abstract class DiskLayer : IDisposable
{
    private bool _disposed;
    private int _batchDepth;

    /// <summary>Full path of the file.</summary>
    public abstract string Path { get; }

    public abstract DiskFormat Format { get; }

    public abstract DiskType Type { get; }

    /// <summary>Size of the virtual disk in bytes.</summary>
    public abstract long VirtualSize { get; }

    public abstract int LogicalSectorSize { get; }

    public virtual int PhysicalSectorSize => LogicalSectorSize;

    /// <summary>Allocation unit in bytes (VHDX block, VMDK grain; the whole disk for raw).</summary>
    public abstract long BlockSize { get; }

    /// <summary>True when the layer was opened for writing.</summary>
    public abstract bool CanWrite { get; }

    /// <summary>
    /// What children record to recognise this exact content (VHDX: DataWriteGuid in braces;
    /// VMDK: the CID as 8 hex digits). Changes when user-visible content changes.
    /// </summary>
    public abstract string Identity { get; }

    /// <summary>What this layer records about its parent, or null for a layer without one.</summary>
    public abstract ParentReference? ParentReference { get; }

    /// <summary>The resolved parent layer, set when the chain is assembled.</summary>
    public DiskLayer? Parent { get; internal set; }

    /// <summary>Bytes of virtual content this file stores itself (allocated blocks or grains).</summary>
    public abstract long AllocatedBytes { get; }

    /// <summary>Length of the file(s) in bytes.</summary>
    public virtual long FileSize => new FileInfo(Path).Length;

    /// <summary>
    /// Space the file(s) take on the file system: allocated bytes (Linux st_blocks × 512, Windows
    /// GetCompressedFileSize), which for a sparse file is far less than <see cref="FileSize"/>;
    /// the length where the system cannot say (macOS).
    /// </summary>
    public virtual long SizeOnDisk => SizeOnDiskOf(Path);

    /// <summary>Allocated bytes of one file, or its length where the system cannot say.</summary>
    internal static long SizeOnDiskOf(string path) => RegularFile.AllocatedBytes(path) ?? new FileInfo(path).Length;

    /// <summary>Format-specific facts worth showing a user (create type, CID, GUIDs, ...).</summary>
    public virtual IReadOnlyDictionary<string, string> Details => new Dictionary<string, string>();

    /// <summary>
    /// Where the bytes from <paramref name="position"/> come from, for a run of at most
    /// <paramref name="maxLength"/> bytes (and not past <see cref="VirtualSize"/>).
    /// </summary>
    public abstract LayerExtent GetExtent(long position, long maxLength);

    /// <summary>
    /// Where the bytes from <paramref name="position"/> of a run <see cref="GetExtent"/> reported
    /// as <see cref="ExtentKind.Data"/> lie in the layer's files, for a run of at most
    /// <paramref name="maxLength"/> bytes that follow each other there; null when they are not
    /// stored plainly (compressed) or the format does not say. Reads only metadata.
    /// </summary>
    public virtual DataLocation? LocateData(long position, long maxLength) => null;

    /// <summary>Reads bytes of a run <see cref="GetExtent"/> reported as <see cref="ExtentKind.Data"/>.</summary>
    public abstract void ReadData(long position, byte[] buffer, int offset, int count);

    /// <summary>
    /// Writes virtual bytes into this layer, allocating as needed; bytes of a newly allocated
    /// unit that the write does not cover are filled from <see cref="ReadBelow"/>.
    /// </summary>
    public abstract void Write(long position, byte[] buffer, int offset, int count);

    /// <summary>Makes every completed write durable.</summary>
    public virtual void Flush()
    {
    }

    /// <summary>
    /// Starts a batch of writes: until the returned scope ends, a write puts its data in place at
    /// once but makes newly allocated space reachable (grain tables, BAT, sector bitmaps) only
    /// when the batch is committed — all data flushed once, then all tables — instead of a flush
    /// sequence per write. A bulk copy of many small runs costs a few flushes instead of a few
    /// per run. Cut off inside a batch, the layer reads as before the batch, or as after a
    /// commit; new space written but not yet reachable is only unused file space.
    /// Reading this layer, flushing it, or a write that does not cover whole logical sectors
    /// commits the batch first, so the layer always reads what was written. Batches nest; the
    /// outermost scope's end commits.
    /// </summary>
    public IDisposable BeginBatch()
    {
        EnsureWritable();
        _batchDepth++;
        return new BatchScope(this);
    }

    /// <summary>True inside <see cref="BeginBatch"/>: writes may defer their metadata commit.</summary>
    protected bool Batching => _batchDepth > 0;

    /// <summary>Commits what writes in a batch deferred (data flushed, then tables); nothing when nothing was deferred.</summary>
    protected virtual void CommitBatch()
    {
    }

    private sealed class BatchScope : IDisposable
    {
        private DiskLayer? _layer;

        public BatchScope(DiskLayer layer) => _layer = layer;

        public void Dispose()
        {
            DiskLayer? layer = _layer;
            _layer = null;
            if (layer is null)
                return;
            layer._batchDepth--;
            if (layer._batchDepth == 0 && !layer._disposed)
                layer.CommitBatch();
        }
    }

    /// <summary>
    /// Checks the file's own structures beyond what opening validated (every table entry,
    /// overlaps, bitmaps). Returns problems as sentences; empty when healthy.
    /// </summary>
    public abstract IReadOnlyList<string> Check();

    /// <summary>The largest virtual size <see cref="DiskResize"/> may give this layer.</summary>
    internal virtual long MaxResizeSize => 0;

    /// <summary>
    /// Sets the virtual size in the file's own structures; the caller has checked the size (a
    /// sector multiple, not below <see cref="StoredEnd"/>). Crash-safe: cut off, the file opens
    /// at the old size or the new one.
    /// </summary>
    internal virtual void ResizeInPlace(long newSize) =>
        throw new DiskResizeException(Path, ResizeProblem.Unsupported, $"{Format} {Type} disk '{Path}' cannot be resized.");

    /// <summary>
    /// The end of what this layer stores: its last allocated unit for a dynamic or differencing
    /// file; for a fixed file (every byte stored), its last byte that is not zero.
    /// </summary>
    internal virtual long StoredEnd()
    {
        long end = 0, at = 0;
        while (at < VirtualSize)
        {
            LayerExtent e = GetExtent(at, VirtualSize - at);
            at += e.Length;
            if (e.Kind == ExtentKind.Data)
                end = at;
        }
        return Type == DiskType.Fixed ? LastNonZeroEnd(end) : end;
    }

    /// <summary>The end of the last byte below <paramref name="end"/> that is not zero, read backwards in 1 MiB pieces.</summary>
    private protected long LastNonZeroEnd(long end)
    {
        var buffer = new byte[1 << 20];
        while (end > 0)
        {
            int n = (int)Math.Min(buffer.Length, end);
            ReadData(end - n, buffer, 0, n);
            for (int i = n - 1; i >= 0; i--)
            {
                if (buffer[i] != 0)
                    return end - n + i + 1;
            }
            end -= n;
        }
        return 0;
    }

    /// <summary>
    /// Rewrites what this layer records about its parent (stored paths and expected identity)
    /// without touching its content, crash-safely. The caller has checked that the new parent is
    /// acceptable; this only writes the link.
    /// </summary>
    public virtual void SetParent(ParentLink link) =>
        throw new NotSupportedException($"{Format} {Type} disk '{Path}' cannot be re-pointed at another parent.");

    /// <summary>
    /// <see cref="SetParent(ParentLink)"/>, held to the caller's boundary: with
    /// <see cref="DiskOpenOptions.AllowedParentRoot"/> the new parent (and every layer linked
    /// below it) must really lie inside that folder, links resolved; else
    /// <see cref="DiskChainException"/> (<see cref="ChainProblem.OutsideAllowedRoot"/>) and
    /// nothing is written.
    /// </summary>
    public void SetParent(ParentLink link, DiskOpenOptions? options)
    {
        if (link is null)
            throw new ArgumentNullException(nameof(link));
        ParentResolver.RefuseOutsideRoot(Path, link.Parent, options);
        SetParent(link);
    }

    /// <summary>
    /// Why this layer cannot be written again as a new file of its own format and kind (a copy
    /// with the same parent link and identity), or null when it can.
    /// </summary>
    internal virtual string? CopyRefusal => null;

    /// <summary>qcow2's extended L2 entries, which a copy of the layer keeps.</summary>
    internal virtual bool HasExtendedL2 => false;

    /// <summary>
    /// Gives this layer, a new copy of <paramref name="original"/> written in full, the identity
    /// the original's children recorded (VHDX DataWriteGuid, VHD unique id, VMDK CID), so they
    /// take the copy as their parent. Written crash-safely as the format writes identity; a later
    /// write through this open layer changes nothing more. Nothing for a format whose children
    /// record no identity (qcow2, raw).
    /// </summary>
    internal virtual void AdoptIdentity(DiskLayer original)
    {
    }

    /// <summary>Reads what lies beneath this layer: the parent chain's content, or zeros.</summary>
    protected void ReadBelow(long position, byte[] buffer, int offset, int count) =>
        ChainReader.Read(Parent, position, buffer, offset, count);

    /// <summary>Throws when the layer was not opened for writing.</summary>
    protected void EnsureWritable()
    {
        if (!CanWrite)
            throw new VirtualDiskException(Path, $"'{Path}' is open read-only; it cannot be written.");
    }

    /// <summary>Throws for a position/length outside the virtual disk.</summary>
    protected void CheckRange(long position, long count)
    {
        if (position < 0 || count < 0 || position > VirtualSize - count)
            throw new ArgumentOutOfRangeException(nameof(position), $"Range {position}+{count} is outside the virtual disk of {VirtualSize} bytes ('{Path}').");
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        try
        {
            // A batch left open (its scope never disposed) is committed, as each write would have been.
            if (_batchDepth > 0)
                CommitBatch();
        }
        finally
        {
            _batchDepth = 0;
            Dispose(true);
        }
        GC.SuppressFinalize(this);
    }

    protected abstract void Dispose(bool disposing);

    public override string ToString() => $"{Format} {Type} '{Path}'";
}
