using System;
using System.Collections.Concurrent;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using VmClone.Disks;

namespace VmClone.Core.Disks;

/// <summary>
/// Copies every data run of one disk into another, independent one, reading ahead on a worker
/// thread while the caller's thread writes: the source's reads and the destination's writes
/// overlap, as qemu-img's parallel requests do. Only for a source and a target that share no
/// file (a merge reads through the layers it writes, so it copies sequentially). Progress is
/// reported on the caller's thread, where a cmdlet may write it.
/// </summary>
internal static class PipelinedCopy
{
    /// <summary>Buffers in flight: one being written, the rest read ahead; bounds memory at 4 MiB.</summary>
    private const int Buffers = 4;

    private readonly struct Chunk
    {
        public Chunk(long position, byte[]? buffer, int count, long progress)
        {
            Position = position;
            Buffer = buffer;
            Count = count;
            Progress = progress;
        }

        public long Position { get; }

        /// <summary>Null for a progress marker (a window was read completely).</summary>
        public byte[]? Buffer { get; }

        public int Count { get; }

        public long Progress { get; }
    }

    public static void CopyData(VirtualDisk source, Stream target, string activity, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        long capacity = source.Capacity;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var free = new BlockingCollection<byte[]>();
        using var filled = new BlockingCollection<Chunk>(Buffers);
        for (int i = 0; i < Buffers; i++)
            free.Add(new byte[ContentCopier.ChunkSize]);

        Task reader = Task.Run(() =>
        {
            try
            {
                for (long window = 0; window < capacity; window += ContentCopier.Window)
                {
                    long length = Math.Min(ContentCopier.Window, capacity - window);
                    foreach (ChainExtent extent in source.MapExtents(window, length))
                    {
                        if (extent.Kind != ExtentKind.Data)
                            continue;
                        for (long p = extent.Position; p < extent.End; p += ContentCopier.ChunkSize)
                        {
                            byte[] buffer = free.Take(linked.Token);
                            int n = (int)Math.Min(ContentCopier.ChunkSize, extent.End - p);
                            source.Content.Position = p;
                            ContentCopier.ReadFully(source.Content, buffer, n);
                            filled.Add(new Chunk(p, buffer, n, 0), linked.Token);
                        }
                    }
                    filled.Add(new Chunk(0, null, 0, window + length), linked.Token);
                }
            }
            finally
            {
                filled.CompleteAdding();
            }
        }, linked.Token);

        try
        {
            foreach (Chunk chunk in filled.GetConsumingEnumerable(linked.Token))
            {
                if (chunk.Buffer is null)
                {
                    progress?.Report(new OperationProgress(activity, $"{Format.Bytes(chunk.Progress)} of {Format.Bytes(capacity)}", chunk.Progress, capacity));
                    continue;
                }
                ContentCopier.WriteNonZeroRuns(target, chunk.Position, chunk.Buffer, chunk.Count);
                free.Add(chunk.Buffer);
            }
        }
        catch
        {
            linked.Cancel();
            try
            {
                reader.Wait();
            }
            catch (AggregateException)
            {
                // The writer's failure is the one to report.
            }
            throw;
        }
        // The reader's own failure (a damaged source, cancellation) surfaces here.
        reader.GetAwaiter().GetResult();
    }
}
