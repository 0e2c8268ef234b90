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
                VmDiskMapKind kind = extent.Kind == ExtentKind.Data ? VmDiskMapKind.Data : extent.Layer is null ? VmDiskMapKind.Unallocated : VmDiskMapKind.Zero;
                int? depth = extent.Layer is null ? null : extent.Level;
                if (pending is not null && pending.Kind == kind && pending.Depth == depth && pending.End == extent.Position)
                {
                    pending.Length += extent.Length;
                    continue;
                }
                if (pending is not null)
                    yield return pending;
                pending = new VmDiskMapEntry
                {
                    Start = extent.Position,
                    Length = extent.Length,
                    Kind = kind,
                    Depth = depth,
                    File = extent.Layer?.Path,
                    Format = extent.Layer?.Format,
                };
            }
        }
        if (pending is not null)
            yield return pending;
    }
}
