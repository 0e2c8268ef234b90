using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.ExceptionServices;
using System.Threading;

namespace VmClone.Core.Disks;

/// <summary>
/// Reads ranges of one stream, in order, on a thread of its own into a few buffers ahead of the
/// thread that consumes them: a convert reads its source here while it writes the copy
/// (<see cref="PipelinedCopy"/>), and a content-preserving re-parent reads the new parent chain
/// here while it reads the old chain, compares and writes.
/// </summary>
/// <remarks>
/// One thread for the whole operation, and waits that block instead of spinning: a handoff
/// through the thread pool per chunk costs a task and a spinning wait on both sides, which on a
/// machine with two cores takes the core the copy needs. The stream is read only between
/// <see cref="Begin"/> and the consumer's <see cref="Next"/> for a group's last range: once that
/// returns, the reader is idle again and the caller may use the stream's disk itself (to map it)
/// before the next group.
/// </remarks>
internal sealed class ReadAhead : IDisposable
{
    private readonly int depth;
    private readonly Stream source;
    private readonly byte[][] buffers;
    // No maximum counts: Dispose releases the reader from whichever wait it is in.
    private readonly SemaphoreSlim freeBuffers;
    private readonly SemaphoreSlim filledBuffers = new(0);
    private readonly SemaphoreSlim groupReady = new(0);
    private readonly Thread thread;
    private (long Position, int Length)[] group = Array.Empty<(long, int)>();
    private int consumed;
    private bool holdsBuffer;
    // What the reader met, and at which range of its group. The reader names each range here
    // before reading it, so a consumer woken for range k finds k only while range k is the one
    // being read or the one that failed; the failure is written before the release that wakes
    // the consumer for its range, and the ranges before it still come back whole.
    private ExceptionDispatchInfo? failure;
    private volatile int failedAt = -1;
    private ExceptionDispatchInfo? met;
    private volatile bool stopping;

    /// <summary>Starts the reader with <paramref name="depth"/> buffers: one the consumer holds, the rest read ahead.</summary>
    public ReadAhead(Stream source, int bufferSize, int depth)
    {
        if (depth < 2)
            throw new ArgumentOutOfRangeException(nameof(depth), depth, "A read-ahead needs a buffer to hold and one to read into.");
        this.source = source;
        this.depth = depth;
        freeBuffers = new SemaphoreSlim(depth);
        buffers = new byte[depth][];
        for (int i = 0; i < depth; i++)
            buffers[i] = new byte[bufferSize];
        thread = new Thread(ReadGroups) { IsBackground = true, Name = "VmClone read-ahead" };
        thread.Start();
    }

    /// <summary>
    /// Starts reading <paramref name="ranges"/> (copied: the caller may reuse its list); the
    /// previous group must have been consumed to its end.
    /// </summary>
    public void Begin(IReadOnlyCollection<(long Position, int Length)> ranges)
    {
        if (consumed != group.Length)
            throw new InvalidOperationException("The previous group of ranges was not consumed to its end.");
        ReleaseHeld();
        group = ranges.ToArray();
        consumed = 0;
        if (group.Length > 0)
            groupReady.Release();
    }

    /// <summary>
    /// The next range's bytes (its length at the start of the buffer), valid until the next call;
    /// rethrows what the reader met while reading it, and from then on.
    /// </summary>
    public byte[] Next()
    {
        if (consumed >= group.Length)
            throw new InvalidOperationException("Every range of the group was already read.");
        ReleaseHeld();
        if (met is null)
        {
            filledBuffers.Wait();
            if (failedAt == consumed)
                met = failure;
        }
        met?.Throw();
        holdsBuffer = true;
        return buffers[consumed++ % depth];
    }

    public void Dispose()
    {
        stopping = true;
        groupReady.Release();
        freeBuffers.Release();
        // The reader ends after the read in hand, if any.
        thread.Join();
        freeBuffers.Dispose();
        filledBuffers.Dispose();
        groupReady.Dispose();
    }

    private void ReleaseHeld()
    {
        if (holdsBuffer)
            freeBuffers.Release();
        holdsBuffer = false;
    }

    private void ReadGroups()
    {
        while (true)
        {
            groupReady.Wait();
            if (stopping)
                return;
            (long Position, int Length)[] ranges = group;
            try
            {
                for (int i = 0; i < ranges.Length; i++)
                {
                    failedAt = i;
                    freeBuffers.Wait();
                    if (stopping)
                        return;
                    source.Position = ranges[i].Position;
                    ContentCopier.ReadFully(source, buffers[i % depth], ranges[i].Length);
                    filledBuffers.Release();
                }
                failedAt = -1;
            }
            catch (Exception e)
            {
                // The consumer meets it at that range; nothing more is read.
                failure = ExceptionDispatchInfo.Capture(e);
                filledBuffers.Release();
                return;
            }
        }
    }
}
