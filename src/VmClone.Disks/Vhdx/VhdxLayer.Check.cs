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
        try
        {
            return CheckStructures();
        }
        catch (Exception ex) when (ex is OutOfMemoryException or OverflowException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            // Every allocation is bounded by the file first; a failure here means a hostile or corrupt file.
            throw new DiskFormatException(Path, "BAT", $"checking the file failed ({ex.Message})", _regions.Bat.FileOffset, ex);
        }
    }

    private IReadOnlyList<string> CheckStructures()
    {
        var problems = new List<string>();
        var counts = new Dictionary<string, int>();

        // Counts a problem and says whether its sentence is still wanted; the sentence is only
        // built when it is, so a BAT full of bad entries costs no string per entry.
        bool Counted(string kind)
        {
            counts.TryGetValue(kind, out int n);
            counts[kind] = n + 1;
            return n < MaxSentencesPerKind;
        }

        if (!_otherHeaderValid && Counted("header"))
            problems.Add($"Warning: header copy {2 - _headerSlot} (at {HeaderOffset(1 - _headerSlot)}) is not valid; the current copy is intact and the next update rewrites the other.");
        if (RegionTable2Problem() is string regionProblem && Counted("region"))
            problems.Add(regionProblem);
        if (_view.HasOverlay && Counted("log"))
            problems.Add($"The log of '{Path}' has not been replayed into the file (it was replayed in memory for this read-only open); open it for writing once to apply it.");

        // Overlaps come from the units two entries claim (found at open, from the same BAT);
        // only those units get an owner here, so no list of every stored block is built.
        var owners = new Dictionary<long, long>();
        for (long i = 0; i < _bat.EntryCount; i++)
        {
            BatEntry e = _bat[i];
            if (e.Raw == 0 && !_parameters.LeaveBlockAllocated)
                continue; // NOT_PRESENT with nothing else set: nothing to check
            bool isBitmap = _bat.IsBitmapIndex(i);
            if (e.HasReservedBits && Counted("reserved"))
                problems.Add($"BAT entry {i} has reserved bits set (0x{e.Raw:X16}).");
            long block = i - i / (_bat.ChunkRatio + 1);
            if (isBitmap)
            {
                if (e.State is not (BatState.NotPresent or BatState.FullyPresent) && Counted("state"))
                    problems.Add($"The {EntryName(i)} has invalid state {e.RawState} (only 0 and 6 are defined).");
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
                        if (_parameters.LeaveBlockAllocated && Counted("fixed"))
                            problems.Add($"The disk is fixed (LeaveBlockAllocated) but {EntryName(i)} is not present (state {e.RawState}).");
                        continue;
                    default:
                        if (Counted("state"))
                            problems.Add($"The {EntryName(i)} has undefined state {e.RawState}.");
                        continue;
                }
                if (e.State == BatState.PartiallyPresent)
                {
                    if (!_parameters.HasParent && Counted("partial"))
                        problems.Add($"The {EntryName(i)} is PARTIALLY_PRESENT in a disk without a parent.");
                    long? sb = _bat.BitmapIndexForBlock(block);
                    if ((sb is null || _bat[sb.Value].State != BatState.FullyPresent) && Counted("partial"))
                        problems.Add($"The {EntryName(i)} is PARTIALLY_PRESENT but its sector bitmap block is not present.");
                }
            }
            if (isBitmap && e.State != BatState.FullyPresent)
                continue;
            long length = isBitmap ? VhdxConstants.SectorBitmapBlockSize : Math.Min(BlockSize, _virtualSize - block * BlockSize);
            if (!e.FileOffsetRepresentable || e.FileOffset > _view.Length - length)
            {
                if (Counted("eof"))
                    problems.Add($"The {EntryName(i)} at file offset {(e.FileOffsetRepresentable ? e.FileOffset : -1)} lies beyond the end of the file ({_view.Length} bytes).");
                continue;
            }
            foreach (var r in _reserved)
                if (e.FileOffset < r.End && r.Start < e.FileOffset + length && Counted("overlap"))
                    problems.Add($"The {EntryName(i)} at file offset {e.FileOffset} overlaps {r.Name}.");
            if (_sharedUnits is null)
                continue;
            long first = e.FileOffset / VhdxConstants.MiB;
            long other = -1;
            for (long u = first; u < first + _bat.StoredUnits(i, isBitmap); u++)
            {
                if (!_sharedUnits.IsClaimed(u))
                    continue;
                if (owners.TryGetValue(u, out long owner))
                    other = other < 0 ? owner : other;
                else
                    owners[u] = i;
            }
            if (other >= 0 && Counted("overlap"))
                problems.Add($"The {EntryName(i)} at file offset {e.FileOffset} overlaps the {EntryName(other)}.");
        }

        string EntryName(long i) => _bat.IsBitmapIndex(i)
            ? $"sector bitmap entry {i} (chunk {i / (_bat.ChunkRatio + 1)})"
            : $"payload block {i - i / (_bat.ChunkRatio + 1)} (BAT entry {i})";

        foreach (var kv in counts)
            if (kv.Value > MaxSentencesPerKind)
                problems.Add($"... and {kv.Value - MaxSentencesPerKind} more problems of the same kind ({kv.Key}).");
        return problems;
    }
}
