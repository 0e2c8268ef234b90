using System;
using System.Collections.Generic;

namespace VmClone.Disks.Vhdx;

internal sealed partial class VhdxLayer
{
    private const int MaxSentencesPerKind = 20;

    /// <summary>
    /// Deep check of the structures opening does not fully verify: every BAT entry (states,
    /// reserved bits, ranges), overlaps between blocks and with metadata, header and region
    /// table copies, an unreplayed log.
    /// </summary>
    public override IReadOnlyList<string> Check()
    {
        CommitBatch();
        var problems = new List<string>();
        var counts = new Dictionary<string, int>();

        void Report(string kind, string sentence)
        {
            counts.TryGetValue(kind, out int n);
            counts[kind] = n + 1;
            if (n < MaxSentencesPerKind)
                problems.Add(sentence);
        }

        if (!_otherHeaderValid)
            Report("header", $"Warning: header copy {2 - _headerSlot} (at {HeaderOffset(1 - _headerSlot)}) is not valid; the current copy is intact and the next update rewrites the other.");
        if (RegionTable2Problem() is string regionProblem)
            Report("region", regionProblem);
        if (_view.HasOverlay)
            Report("log", $"The log of '{Path}' has not been replayed into the file (it was replayed in memory for this read-only open); open it for writing once to apply it.");

        var stored = new List<(long Start, long End, string Name)>();
        for (long i = 0; i < _bat.EntryCount; i++)
        {
            BatEntry e = _bat[i];
            bool isBitmap = _bat.IsBitmapIndex(i);
            string name = isBitmap ? $"sector bitmap entry {i} (chunk {i / (_bat.ChunkRatio + 1)})" : $"payload block {i - i / (_bat.ChunkRatio + 1)} (BAT entry {i})";
            if (e.HasReservedBits)
                Report("reserved", $"BAT entry {i} has reserved bits set (0x{e.Raw:X16}).");
            long block = i - i / (_bat.ChunkRatio + 1);
            if (isBitmap)
            {
                if (e.State is not (BatState.NotPresent or BatState.FullyPresent))
                    Report("state", $"The {name} has invalid state {e.RawState} (only 0 and 6 are defined).");
            }
            else if (block >= _bat.DataBlocks)
            {
                continue; // differencing BATs pad the last chunk; those entries describe nothing.
            }
            else
            {
                switch (e.State)
                {
                    case BatState.FullyPresent:
                    case BatState.PartiallyPresent:
                        break;
                    case BatState.NotPresent:
                    case BatState.Undefined:
                    case BatState.Zero:
                    case BatState.Unmapped:
                    case BatState.UnmappedV095:
                        if (_parameters.LeaveBlockAllocated)
                            Report("fixed", $"The disk is fixed (LeaveBlockAllocated) but {name} is not present (state {e.RawState}).");
                        continue;
                    default:
                        Report("state", $"The {name} has undefined state {e.RawState}.");
                        continue;
                }
                if (e.State == BatState.PartiallyPresent)
                {
                    if (!_parameters.HasParent)
                        Report("partial", $"The {name} is PARTIALLY_PRESENT in a disk without a parent.");
                    long? sb = _bat.BitmapIndexForBlock(block);
                    if (sb is null || _bat[sb.Value].State != BatState.FullyPresent)
                        Report("partial", $"The {name} is PARTIALLY_PRESENT but its sector bitmap block is not present.");
                }
            }
            if (isBitmap && e.State != BatState.FullyPresent)
                continue;
            long length = isBitmap ? VhdxConstants.SectorBitmapBlockSize : Math.Min(BlockSize, _virtualSize - block * BlockSize);
            if (!e.FileOffsetRepresentable || e.FileOffset > _view.Length - length)
            {
                Report("eof", $"The {name} at file offset {(e.FileOffsetRepresentable ? e.FileOffset : -1)} lies beyond the end of the file ({_view.Length} bytes).");
                continue;
            }
            foreach (var r in _reserved)
                if (e.FileOffset < r.End && r.Start < e.FileOffset + length)
                    Report("overlap", $"The {name} at file offset {e.FileOffset} overlaps {r.Name}.");
            stored.Add((e.FileOffset, e.FileOffset + length, name));
        }

        stored.Sort((a, b) => a.Start.CompareTo(b.Start));
        long reach = -1;
        string reachName = "";
        foreach (var s in stored)
        {
            if (s.Start < reach)
                Report("overlap", $"The {s.Name} at file offset {s.Start} overlaps the {reachName}.");
            if (s.End > reach)
            {
                reach = s.End;
                reachName = s.Name;
            }
        }

        foreach (var kv in counts)
            if (kv.Value > MaxSentencesPerKind)
                problems.Add($"... and {kv.Value - MaxSentencesPerKind} more problems of the same kind ({kv.Key}).");
        return problems;
    }
}
