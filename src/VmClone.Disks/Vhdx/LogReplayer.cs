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
