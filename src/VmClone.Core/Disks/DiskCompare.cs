using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using VmClone.Disks;

namespace VmClone.Core.Disks;

public static partial class DiskOperations
{
    /// <summary>
    /// Compares the virtual content of two disks (each read through its whole chain), as
    /// qemu-img compare does. Disks of different sizes are identical when the common range reads
    /// the same and the larger disk's extra range reads as zeros; with <paramref name="strict"/>
    /// differing sizes are a difference, and so is a run stored as data in one disk and stated
    /// zero or unallocated in the other (qemu-img compare -s). Runs both disks know to be zero,
    /// and runs both take from the same file, are decided from the extent maps without reading;
    /// the rest is read in two bounded buffers. A difference is a result, never an exception.
    /// </summary>
    public static VmDiskComparison Compare(string path, string differencePath, bool strict, DiskOpenOptions? options, DiskOpenOptions? differenceOptions,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        using VirtualDisk a = VirtualDisk.Open(path, FileAccess.Read, options);
        using VirtualDisk b = VirtualDisk.Open(differencePath, FileAccess.Read, differenceOptions);
        var result = new VmDiskComparison
        {
            Path = a.Path,
            DifferencePath = b.Path,
            Size = a.Capacity,
            DifferenceSize = b.Capacity,
            Strict = strict,
        };
        var comparer = new ChainComparer(a, b, strict, cancellationToken);
        try
        {
            if (strict && a.Capacity != b.Capacity)
                return Differs(result, VmDiskDifference.Size, null, comparer);
            long common = Math.Min(a.Capacity, b.Capacity);
            string activity = $"Comparing {Path.GetFileName(a.Path)} with {Path.GetFileName(b.Path)}";
            long total = Math.Max(a.Capacity, b.Capacity);
            for (long window = 0; window < common; window += ContentCopier.Window)
            {
                long length = Math.Min(ContentCopier.Window, common - window);
                if (comparer.CompareWindow(window, length) is (VmDiskDifference kind, long at))
                    return Differs(result, kind, at, comparer);
                progress?.Report(new OperationProgress(activity, $"{Format.Bytes(window + length)} of {Format.Bytes(total)}", window + length, total));
            }
            VirtualDisk larger = a.Capacity > b.Capacity ? a : b;
            for (long window = common; window < larger.Capacity; window += ContentCopier.Window)
            {
                long length = Math.Min(ContentCopier.Window, larger.Capacity - window);
                if (comparer.FirstNonZero(larger, window, length) is long at)
                    return Differs(result, VmDiskDifference.Content, at, comparer);
                progress?.Report(new OperationProgress(activity, $"{Format.Bytes(window + length)} of {Format.Bytes(total)}", window + length, total));
            }
            result.Identical = true;
            result.BytesRead = comparer.BytesRead;
            return result;
        }
        finally
        {
            comparer.Dispose();
        }
    }

    private static VmDiskComparison Differs(VmDiskComparison result, VmDiskDifference kind, long? at, ChainComparer comparer)
    {
        result.Identical = false;
        result.Difference = kind;
        result.FirstDifferenceOffset = at;
        result.BytesRead = comparer.BytesRead;
        return result;
    }

    /// <summary>The state of one run of a chain for a comparison: what qemu's block status tells apart.</summary>
    private enum RunState
    {
        Data,
        Zero,
        Unallocated,
    }

    /// <summary>Walks two disks' extent maps side by side; holds two chunk buffers for the whole comparison.</summary>
    private sealed class ChainComparer : IDisposable
    {
        private readonly VirtualDisk _a;
        private readonly VirtualDisk _b;
        private readonly bool _strict;
        private readonly CancellationToken _cancellationToken;
        private readonly byte[] _bufferA = System.Buffers.ArrayPool<byte>.Shared.Rent(ContentCopier.ChunkSize);
        private readonly byte[] _bufferB = System.Buffers.ArrayPool<byte>.Shared.Rent(ContentCopier.ChunkSize);

        public ChainComparer(VirtualDisk a, VirtualDisk b, bool strict, CancellationToken cancellationToken)
        {
            _a = a;
            _b = b;
            _strict = strict;
            _cancellationToken = cancellationToken;
        }

        public long BytesRead { get; private set; }

        private static RunState StateOf(ChainExtent extent) =>
            extent.Kind == ExtentKind.Data ? RunState.Data : extent.Layer is null ? RunState.Unallocated : RunState.Zero;

        /// <summary>The first difference in [window, +length) of the common range, or null.</summary>
        public (VmDiskDifference, long)? CompareWindow(long window, long length)
        {
            IReadOnlyList<ChainExtent> left = _a.MapExtents(window, length);
            IReadOnlyList<ChainExtent> right = _b.MapExtents(window, length);
            int i = 0, j = 0;
            long at = window, end = window + length;
            while (at < end)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                while (left[i].End <= at)
                    i++;
                while (right[j].End <= at)
                    j++;
                ChainExtent x = left[i], y = right[j];
                long runEnd = Math.Min(x.End, y.End);
                RunState sx = StateOf(x), sy = StateOf(y);
                if (_strict && sx != sy)
                    return (VmDiskDifference.Allocation, at);
                if (sx == RunState.Data && sy == RunState.Data)
                {
                    // Both sides read the same file at the same virtual offset: the same bytes.
                    if (!PathUtil.SamePath(x.Layer!.Path, y.Layer!.Path) && FirstDifference(at, runEnd - at) is long differs)
                        return (VmDiskDifference.Content, differs);
                }
                else if (sx == RunState.Data || sy == RunState.Data)
                {
                    if (FirstNonZeroIn(sx == RunState.Data ? _a : _b, at, runEnd - at) is long nonZero)
                        return (VmDiskDifference.Content, nonZero);
                }
                at = runEnd;
            }
            return null;
        }

        /// <summary>The first byte of [window, +length) of <paramref name="disk"/> that is not zero, reading only its data runs.</summary>
        public long? FirstNonZero(VirtualDisk disk, long window, long length)
        {
            foreach (ChainExtent extent in disk.MapExtents(window, length))
            {
                if (extent.Kind == ExtentKind.Data && FirstNonZeroIn(disk, extent.Position, extent.Length) is long at)
                    return at;
            }
            return null;
        }

        private long? FirstNonZeroIn(VirtualDisk disk, long position, long length)
        {
            while (length > 0)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                int n = (int)Math.Min(ContentCopier.ChunkSize, length);
                Read(disk, position, _bufferA, n);
                ReadOnlySpan<byte> span = _bufferA.AsSpan(0, n);
                if (!ZeroBytes.All(span))
                {
                    for (int k = 0; k < n; k++)
                    {
                        if (span[k] != 0)
                            return position + k;
                    }
                }
                position += n;
                length -= n;
            }
            return null;
        }

        private long? FirstDifference(long position, long length)
        {
            while (length > 0)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                int n = (int)Math.Min(ContentCopier.ChunkSize, length);
                Read(_a, position, _bufferA, n);
                Read(_b, position, _bufferB, n);
                ReadOnlySpan<byte> x = _bufferA.AsSpan(0, n), y = _bufferB.AsSpan(0, n);
                if (!x.SequenceEqual(y))
                {
                    for (int k = 0; k < n; k++)
                    {
                        if (x[k] != y[k])
                            return position + k;
                    }
                }
                position += n;
                length -= n;
            }
            return null;
        }

        private void Read(VirtualDisk disk, long position, byte[] buffer, int count)
        {
            disk.Content.Position = position;
            ContentCopier.ReadFully(disk.Content, buffer, count);
            BytesRead += count;
        }

        public void Dispose()
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(_bufferA);
            System.Buffers.ArrayPool<byte>.Shared.Return(_bufferB);
        }
    }
}
