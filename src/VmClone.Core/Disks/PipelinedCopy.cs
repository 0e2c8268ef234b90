using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using VmClone.Disks;

namespace VmClone.Core.Disks;

/// <summary>
/// Copies every data run of one disk into another, independent one, reading ahead on a thread
/// of its own (<see cref="ReadAhead"/>) while the caller's thread writes: the source's reads
/// and the destination's writes overlap, as qemu-img's parallel requests do. Only for a source
/// and a target that share no file (a merge reads through the layers it writes, so it copies
/// sequentially). Progress is reported on the caller's thread, where a cmdlet may write it.
/// </summary>
internal static class PipelinedCopy
{
    /// <summary>Buffers in flight: one being written, the rest read ahead; bounds memory at 4 MiB.</summary>
    private const int Buffers = 4;

    public static void CopyData(VirtualDisk source, Stream target, string activity, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        long capacity = source.Capacity;
        using var ahead = new ReadAhead(source.Content, ContentCopier.ChunkSize, Buffers);
        var chunks = new List<(long Position, int Length)>();
        for (long window = 0; window < capacity; window += ContentCopier.Window)
        {
            // The source is mapped here, a window at a time, while the reader is idle; its chunks
            // (at most a window's worth of small runs) are then read ahead and written.
            long length = Math.Min(ContentCopier.Window, capacity - window);
            chunks.Clear();
            foreach (ChainExtent extent in source.MapExtents(window, length))
            {
                if (extent.Kind != ExtentKind.Data)
                    continue;
                for (long p = extent.Position; p < extent.End; p += ContentCopier.ChunkSize)
                    chunks.Add((p, (int)Math.Min(ContentCopier.ChunkSize, extent.End - p)));
            }
            ahead.Begin(chunks);
            foreach ((long position, int count) in chunks)
            {
                cancellationToken.ThrowIfCancellationRequested();
                ContentCopier.WriteNonZeroRuns(target, position, ahead.Next(), count);
            }
            progress?.Report(new OperationProgress(activity, $"{Format.Bytes(window + length)} of {Format.Bytes(capacity)}", window + length, capacity));
        }
    }
}
