using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using VmClone.Disks;

namespace VmClone.Core.Disks;

public static partial class DiskOperations
{
    /// <summary>
    /// Where each run of <paramref name="path"/>'s virtual content comes from, in order from
    /// offset 0 to the end: data or a stated zero of the layer at some depth of the chain, or
    /// unallocated down to the base (as qemu-img map --output=json shows it). Only metadata is
    /// read; runs are produced window by window as the caller enumerates, neighbours with the same
    /// source merged, so a huge disk takes memory in proportion to one window's extents.
    /// </summary>
    public static IEnumerable<VmDiskMapEntry> Map(string path, DiskOpenOptions? options, CancellationToken cancellationToken)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, options);
        long size = disk.Capacity;
        VmDiskMapEntry? pending = null;
        for (long window = 0; window < size; window += ContentCopier.Window)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (ChainExtent extent in disk.MapExtents(window, Math.Min(ContentCopier.Window, size - window)))
            {
                foreach (VmDiskMapEntry piece in Pieces(extent))
                {
                    if (pending is not null && Continues(pending, piece))
                    {
                        pending.Length += piece.Length;
                        continue;
                    }
                    if (pending is not null)
                        yield return pending;
                    pending = piece;
                }
            }
        }
        if (pending is not null)
            yield return pending;
    }

    /// <summary>One extent as map entries: a data run split where its bytes stop following each other in the file.</summary>
    private static IEnumerable<VmDiskMapEntry> Pieces(ChainExtent extent)
    {
        VmDiskMapKind kind = extent.Kind == ExtentKind.Data ? VmDiskMapKind.Data : extent.Layer is null ? VmDiskMapKind.Unallocated : VmDiskMapKind.Zero;
        int? depth = extent.Layer is null ? null : extent.Level;
        if (kind != VmDiskMapKind.Data)
        {
            yield return new VmDiskMapEntry { Start = extent.Position, Length = extent.Length, Kind = kind, Depth = depth, File = extent.Layer?.Path, Format = extent.Layer?.Format };
            yield break;
        }
        DiskLayer layer = extent.Layer!;
        for (long at = extent.Position; at < extent.End;)
        {
            DataLocation? where = layer.LocateData(at, extent.End - at);
            long length = where is DataLocation w ? Math.Min(w.Length, extent.End - at) : extent.End - at;
            yield return new VmDiskMapEntry
            {
                Start = at,
                Length = length,
                Kind = kind,
                Depth = depth,
                File = where?.File ?? layer.Path,
                Format = layer.Format,
                Offset = where?.Offset,
            };
            at += length;
        }
    }

    /// <summary>True when <paramref name="next"/> extends <paramref name="run"/>: same kind and file, adjacent, and for data contiguous in the file.</summary>
    private static bool Continues(VmDiskMapEntry run, VmDiskMapEntry next) =>
        run.End == next.Start && run.Kind == next.Kind && run.Depth == next.Depth && run.File == next.File
        && (run.Offset is long offset ? next.Offset == offset + run.Length : next.Offset is null);
}
