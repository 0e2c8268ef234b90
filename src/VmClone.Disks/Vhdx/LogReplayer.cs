using System;
using System.Collections.Generic;

namespace VmClone.Disks.Vhdx;

/// <summary>The active log sequence, decoded: what replay must do to the file.</summary>
internal sealed class LogReplayPlan
{
    public LogReplayPlan(List<LogOperation> operations, long flushedFileOffset, long lastFileOffset, int entryCount, ulong headSequence)
    {
        Operations = operations;
        FlushedFileOffset = flushedFileOffset;
        LastFileOffset = lastFileOffset;
        EntryCount = entryCount;
        HeadSequence = headSequence;
    }

    /// <summary>File updates in replay order (tail to head, descriptor order).</summary>
    public List<LogOperation> Operations { get; }
    public long FlushedFileOffset { get; }
    public long LastFileOffset { get; }
    public int EntryCount { get; }
    public ulong HeadSequence { get; }
}

/// <summary>
/// Finds the active log sequence ([MS-VHDX] 2.3.2, 2.3.3): among valid entries (signature,
/// checksum, LogGuid, descriptors), a sequence is a run whose sequence numbers increase by
/// one from the entry at its head's Tail to the head; the active one is the complete
/// sequence with the highest head sequence number. Work is bounded: every 4 KiB offset is
/// parsed once, checksums are computed once per offset within a byte budget, and candidate
/// heads are tried from the highest sequence number down, stopping at the first complete one.
/// </summary>
internal static class LogReplayer
{
    /// <summary>Hyper-V and qemu write 1 MiB logs; larger ones are refused rather than scanned without bound.</summary>
    public const long MaxLogLength = 64 * VhdxConstants.MiB;

    public static LogReplayPlan? FindActiveSequence(byte[] log, Guid logGuid, string path, long logOffset, long fileLength)
    {
        long length = log.LongLength;
        int slots = (int)(length / LogEntry.SectorSize);
        var headers = new LogEntry?[slots];
        var valid = new sbyte[slots]; // 0 unknown, 1 valid, -1 invalid
        var decoded = new List<LogOperation>?[slots];
        long crcBudget = 16 * length + 16 * VhdxConstants.MiB;
        var heads = new List<int>();
        for (int i = 0; i < slots; i++)
        {
            headers[i] = LogEntry.TryParseHeader(log.AsSpan(i * LogEntry.SectorSize, LogEntry.HeaderSize), length, logGuid);
            if (headers[i] is not null)
                heads.Add(i);
        }
        heads.Sort((a, b) => headers[b]!.SequenceNumber.CompareTo(headers[a]!.SequenceNumber));

        bool IsValid(int slot)
        {
            if (valid[slot] != 0)
                return valid[slot] > 0;
            LogEntry e = headers[slot]!;
            crcBudget -= e.EntryLength;
            if (crcBudget < 0)
                throw new DiskFormatException(path, "log", "scanning the log exceeded its work bound: too many overlapping entries (a hostile or corrupt log)", logOffset);
            byte[] bytes = Read(log, (long)slot * LogEntry.SectorSize, e.EntryLength);
            List<LogOperation>? ops = LogEntry.ChecksumMatches(bytes) ? e.Decode(bytes) : null;
            decoded[slot] = ops;
            valid[slot] = ops is null ? (sbyte)-1 : (sbyte)1;
            return ops is not null;
        }

        foreach (int head in heads)
        {
            LogEntry h = headers[head]!;
            if (!IsValid(head))
                continue;
            // Walk from the tail to the head: consecutive sequence numbers, never more than the log.
            int slot = (int)(h.Tail / LogEntry.SectorSize);
            var chain = new List<int>();
            long walked = 0;
            bool complete = false;
            while (true)
            {
                LogEntry? e = headers[slot];
                if (e is null || !IsValid(slot))
                    break;
                if (chain.Count > 0 && e.SequenceNumber != headers[chain[chain.Count - 1]]!.SequenceNumber + 1)
                    break;
                chain.Add(slot);
                walked += e.EntryLength;
                if (walked > length)
                    break;
                if (slot == head)
                {
                    complete = e.SequenceNumber == h.SequenceNumber;
                    break;
                }
                slot = (int)(((long)slot * LogEntry.SectorSize + e.EntryLength) % length / LogEntry.SectorSize);
            }
            if (!complete)
                continue;

            var operations = new List<LogOperation>();
            foreach (int s in chain)
                operations.AddRange(decoded[s]!);
            if (h.FlushedFileOffset > (ulong)fileLength)
                throw new DiskFormatException(path, "log", $"the log says the file was flushed up to {h.FlushedFileOffset} bytes but it is only {fileLength} bytes: data written before the crash is missing (MS-VHDX 2.3.3)", logOffset);
            if (h.LastFileOffset > (ulong)VhdxConstants.MaxVirtualSize * 2)
                throw new DiskFormatException(path, "log", $"the log's last file offset {h.LastFileOffset} is absurd", logOffset);
            long limit = Math.Max(fileLength, (long)h.LastFileOffset);
            foreach (LogOperation op in operations)
            {
                // Log entries update metadata and payload, never the headers (2.3); and never the log itself.
                if (op.FileOffset < VhdxConstants.RegionTable1Offset || op.End > limit ||
                    (op.FileOffset < logOffset + length && logOffset < op.End))
                    throw new DiskFormatException(path, "log", $"a log entry writes {op.Length} bytes at {op.FileOffset}, outside the area a log may update (file of {limit} bytes, log at {logOffset})", logOffset);
            }
            return new LogReplayPlan(operations, (long)h.FlushedFileOffset, (long)h.LastFileOffset, chain.Count, h.SequenceNumber);
        }
        return null;
    }

    /// <summary>A contiguous copy of <paramref name="count"/> bytes at a log offset, wrapping around the circular log.</summary>
    private static byte[] Read(byte[] log, long offset, long count)
    {
        var result = new byte[count];
        long first = Math.Min(count, log.LongLength - offset);
        Array.Copy(log, offset, result, 0, first);
        if (first < count)
            Array.Copy(log, 0, result, first, count - first);
        return result;
    }
}

/// <summary>
/// The replayed log indexed once: the file ranges its operations write, as runs in file order
/// that do not overlap, each taken from the last operation that wrote it (later entries and
/// later descriptors win, 2.3.3). A read looks its range up by binary search instead of
/// scanning every operation, so a log of a million descriptors costs a lookup per read.
/// </summary>
internal sealed class ReplayedLog
{
    private readonly long[] _starts;
    private readonly long[] _ends;
    private readonly LogOperation[] _sources;

    private ReplayedLog(long[] starts, long[] ends, LogOperation[] sources, long dataEnd)
    {
        _starts = starts;
        _ends = ends;
        _sources = sources;
        DataEnd = dataEnd;
    }

    /// <summary>Number of runs.</summary>
    public int Count => _starts.Length;

    /// <summary>First byte any run covers (long.MaxValue when there is none).</summary>
    public long Start => _starts.Length == 0 ? long.MaxValue : _starts[0];

    /// <summary>End of the last run (long.MinValue when there is none).</summary>
    public long End => _ends.Length == 0 ? long.MinValue : _ends[_ends.Length - 1];

    /// <summary>
    /// End of the furthest run that writes data: how far the log itself makes the file reach.
    /// Zeros past the end of the file need no space, and a size the log merely claims
    /// (LastFileOffset) is no reason to grow the file.
    /// </summary>
    public long DataEnd { get; }

    /// <summary>Run <paramref name="i"/>: file range and the operation whose content it holds.</summary>
    public (long Start, long End, LogOperation Source) this[int i] => (_starts[i], _ends[i], _sources[i]);

    /// <summary>
    /// Paints the operations latest first over the elementary ranges between their boundaries;
    /// a "next unpainted range" forest makes every range painted once: O(n log n) in all.
    /// </summary>
    public static ReplayedLog Build(List<LogOperation> operations)
    {
        int n = operations.Count;
        var coords = new long[2 * n];
        for (int i = 0; i < n; i++)
        {
            coords[2 * i] = operations[i].FileOffset;
            coords[2 * i + 1] = operations[i].End;
        }
        Array.Sort(coords);
        int m = 0;
        for (int i = 0; i < coords.Length; i++)
        {
            if (m == 0 || coords[m - 1] != coords[i])
                coords[m++] = coords[i];
        }
        int ranges = Math.Max(0, m - 1);
        var owner = new int[ranges];
        var next = new int[ranges + 1];
        for (int k = 0; k <= ranges; k++)
            next[k] = k;
        for (int k = 0; k < ranges; k++)
            owner[k] = -1;

        int Find(int k)
        {
            int root = k;
            while (next[root] != root)
                root = next[root];
            while (next[k] != root)
            {
                int t = next[k];
                next[k] = root;
                k = t;
            }
            return root;
        }

        for (int j = n - 1; j >= 0; j--)
        {
            LogOperation op = operations[j];
            int from = Array.BinarySearch(coords, 0, m, op.FileOffset);
            int to = Array.BinarySearch(coords, 0, m, op.End);
            for (int k = Find(from); k < to; k = Find(k + 1))
            {
                owner[k] = j;
                next[k] = k + 1;
            }
        }

        var starts = new List<long>();
        var ends = new List<long>();
        var sources = new List<LogOperation>();
        int last = -1;
        long dataEnd = long.MinValue;
        for (int k = 0; k < ranges; k++)
        {
            if (owner[k] < 0)
            {
                last = -1;
                continue;
            }
            if (owner[k] == last)
            {
                ends[ends.Count - 1] = coords[k + 1];
            }
            else
            {
                starts.Add(coords[k]);
                ends.Add(coords[k + 1]);
                sources.Add(operations[owner[k]]);
                last = owner[k];
            }
            if (operations[owner[k]].Data is not null)
                dataEnd = Math.Max(dataEnd, coords[k + 1]);
        }
        return new ReplayedLog(starts.ToArray(), ends.ToArray(), sources.ToArray(), dataEnd);
    }

    /// <summary>Puts the log's content for [position, position + count) over what <paramref name="buffer"/> holds.</summary>
    public void Apply(long position, byte[] buffer, int offset, int count)
    {
        long end = position + count;
        // The first run ending after position (runs are disjoint, so ends are sorted too).
        int lo = 0, hi = _ends.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (_ends[mid] <= position)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (int i = lo; i < _starts.Length && _starts[i] < end; i++)
        {
            long from = Math.Max(position, _starts[i]);
            long to = Math.Min(end, _ends[i]);
            LogOperation op = _sources[i];
            if (op.Data is null)
                Array.Clear(buffer, (int)(offset + from - position), (int)(to - from));
            else
                Array.Copy(op.Data, from - op.FileOffset, buffer, offset + from - position, to - from);
        }
    }
}
