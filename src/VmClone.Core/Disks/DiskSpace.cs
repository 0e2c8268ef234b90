using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Store;
using VmClone.Disks;
using VmClone.Disks.Qcow2;
using VmClone.Disks.Vhd;
using VmClone.Disks.Vhdx;
using VmClone.Disks.Vmdk;

namespace VmClone.Core.Disks;

/// <summary>
/// Upper bounds of what a copy writes, from extent maps alone (nothing but metadata is read): what
/// plans show ("copies at most") and what a command checks against the free space before it starts.
/// </summary>
public static partial class DiskOperations
{
    /// <summary>File-system allocation unit the bounds round to: a run that ends inside one still takes all of it.</summary>
    private const long FileSystemBlock = 4096;

    /// <summary>
    /// At most the bytes a standalone copy of <paramref name="path"/>'s content (its chain flattened,
    /// as Convert-VmDisk writes it) adds to its destination's file system. See <see cref="CopyBound(VirtualDisk, DiskFormat, long?, bool, CancellationToken)"/>.
    /// </summary>
    internal static long CopyBound(string path, DiskFormat format, long? blockSizeBytes, DiskOpenOptions? options, CancellationToken cancellationToken)
    {
        using VirtualDisk source = VirtualDisk.Open(path, FileAccess.Read, options);
        return CopyBound(source, format, blockSizeBytes, isFixed: false, cancellationToken);
    }

    /// <summary>
    /// At most the bytes a standalone copy of <paramref name="source"/> in <paramref name="format"/>
    /// adds to its destination's file system: a sparse format's whole file as
    /// <see cref="Measure(string, DiskFormat?, long?, DiskOpenOptions?, CancellationToken)"/> lays it
    /// out (every unit a data run touches, and the metadata); raw and fixed files, which keep the
    /// source's holes, the data runs each rounded out to whole file-system blocks, and their metadata.
    /// </summary>
    internal static long CopyBound(VirtualDisk source, DiskFormat format, long? blockSizeBytes, bool isFixed, CancellationToken cancellationToken)
    {
        VmDiskMeasurement m = Measure(source, format, blockSizeBytes, cancellationToken);
        if (format != DiskFormat.Raw && !isFixed)
            return m.RequiredBytes;
        long metadata = Math.Max(0, m.FullyAllocatedBytes - RoundUp(m.VirtualSize, m.BlockSize)) + VhdFooter.Length;
        long data = DataRunsBound(source, e => true, cancellationToken);
        return Math.Min(RoundUp(m.FullyAllocatedBytes, FileSystemBlock) + FileSystemBlock, data + RoundUp(metadata, FileSystemBlock));
    }

    /// <summary>The copy's bound, or null where measuring refuses what the writer will refuse in its own words (a size or block size the format does not take).</summary>
    private static long? SpaceBound(VirtualDisk source, DiskFormat format, long? blockSizeBytes, bool isFixed, CancellationToken cancellationToken)
    {
        try
        {
            return CopyBound(source, format, blockSizeBytes, isFixed, cancellationToken);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>The data runs of <paramref name="disk"/> that <paramref name="include"/> takes, each rounded out to whole file-system blocks.</summary>
    private static long DataRunsBound(VirtualDisk disk, Func<ChainExtent, bool> include, CancellationToken cancellationToken)
    {
        long total = 0;
        for (long window = 0; window < disk.Capacity; window += ContentCopier.Window)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (ChainExtent e in disk.MapExtents(window, Math.Min(ContentCopier.Window, disk.Capacity - window)))
            {
                if (e.Kind == ExtentKind.Data && include(e))
                    total += RoundUp(e.Length, FileSystemBlock) + FileSystemBlock;
            }
        }
        return total;
    }

    /// <summary>
    /// At most the bytes a content-preserving re-parent (<see cref="SetParent(string, string, bool, bool, DiskOpenOptions?, IProgress{OperationProgress}?, CancellationToken)"/>)
    /// of a child of <paramref name="oldParent"/> onto <paramref name="newParent"/> writes into the
    /// child, measured without opening the child: it receives only ranges where the two parents
    /// differ, and they can differ only where one of them stores data, so every unit of the
    /// child's format (the largest either parent or the format's default uses) that a data run of
    /// either parent's chain touches is counted, with the metadata such writes can add (qcow2: its
    /// tables for a fully written file; VHDX: sector bitmaps; VHD: each block's bitmap). What the
    /// child stores itself hides the parents, so the bound is loose for a child that wrote much.
    /// </summary>
    internal static long ReparentBound(string oldParent, string newParent, DiskFormat childFormat, DiskOpenOptions? options, CancellationToken cancellationToken)
    {
        using VirtualDisk a = VirtualDisk.Open(oldParent, FileAccess.Read, options);
        using VirtualDisk b = VirtualDisk.Open(newParent, FileAccess.Read, options);
        long size = Math.Max(a.Capacity, b.Capacity);
        long unit = new[] { DefaultUnit(childFormat), Unit(a.Top), Unit(b.Top) }.Max();
        long units = 0, lastCounted = -1;
        for (long window = 0; window < size; window += ContentCopier.Window)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var runs = new List<(long Start, long End)>();
            foreach (VirtualDisk d in new[] { a, b })
            {
                long length = Math.Min(ContentCopier.Window, d.Capacity - window);
                if (length <= 0)
                    continue;
                runs.AddRange(d.MapExtents(window, length).Where(e => e.Kind == ExtentKind.Data).Select(e => (e.Position, e.End)));
            }
            units += CountUnits(runs.OrderBy(r => r.Start), unit, ref lastCounted);
        }
        return WrittenInPlace(childFormat, size, unit, units);
    }

    /// <summary>Units of <paramref name="unit"/> bytes the runs (in order of position) touch, none counted twice across calls.</summary>
    private static long CountUnits(IEnumerable<(long Start, long End)> runs, long unit, ref long lastCounted)
    {
        long units = 0;
        foreach ((long start, long end) in runs)
        {
            long first = Math.Max(start / unit, lastCounted + 1), last = (end - 1) / unit;
            if (first <= last)
            {
                units += last - first + 1;
                lastCounted = last;
            }
        }
        return units;
    }

    /// <summary>What writing into <paramref name="units"/> units of an existing sparse file can add: the units, and the metadata such writes allocate (qcow2: its tables for a fully written file; VHDX: sector bitmaps; VHD: each block's bitmap).</summary>
    private static long WrittenInPlace(DiskFormat format, long size, long unit, long units)
    {
        long perUnit = format == DiskFormat.Vhd ? RoundUp(BlockBitmap.SizeInFile(unit), FileSystemBlock) + FileSystemBlock : 0;
        long metadata = format switch
        {
            DiskFormat.Qcow2 => Qcow2Sizes(size, unit, 0).FullyAllocated - RoundUp(size, unit),
            DiskFormat.Vhdx => (DivRoundUp(size, 4L << 30) + 1) * VhdxConstants.MiB,
            _ => 0,
        };
        return units * (unit + perUnit) + metadata;
    }

    /// <summary>
    /// At most the bytes a merge of <paramref name="child"/>'s chain down to layer
    /// <paramref name="target"/> (1: its parent) adds to the target's file: every unit of the
    /// target that a data run of the layers above it touches, and the metadata that can take;
    /// for a fixed or raw target the runs themselves, rounded out to file-system blocks.
    /// </summary>
    internal static long MergeBound(string child, int target, DiskOpenOptions options, CancellationToken cancellationToken)
    {
        using VirtualDisk view = VirtualDisk.Open(child, FileAccess.Read, options);
        DiskLayer into = view.Layers[target];
        if (into.Format == DiskFormat.Raw || into.Type == DiskType.Fixed)
            return DataRunsBound(view, e => e.Level < target, cancellationToken);
        long unit = Unit(into), units = 0, lastCounted = -1;
        for (long window = 0; window < view.Capacity; window += ContentCopier.Window)
        {
            cancellationToken.ThrowIfCancellationRequested();
            units += CountUnits(view.MapExtents(window, Math.Min(ContentCopier.Window, view.Capacity - window))
                .Where(e => e.Kind == ExtentKind.Data && e.Level < target).Select(e => (e.Position, e.End)), unit, ref lastCounted);
        }
        return WrittenInPlace(into.Format, view.Capacity, unit, units);
    }

    private static long Unit(DiskLayer layer) => layer.Format == DiskFormat.Raw ? FileSystemBlock : Math.Min(layer.BlockSize, 256 * VhdxConstants.MiB);

    private static long DefaultUnit(DiskFormat format) => format switch
    {
        DiskFormat.Vhdx => VhdxConstants.DefaultDynamicBlockSize,
        DiskFormat.Vmdk => VmdkLayer.DefaultGrainBytes,
        DiskFormat.Qcow2 => Qcow2Layer.DefaultClusterSize,
        DiskFormat.Vhd => VhdLayer.DefaultBlockSize,
        _ => FileSystemBlock,
    };

    /// <summary>
    /// Refuses (DiskFull, with the folder and the numbers, nothing written) a disk command whose
    /// copy of at most <paramref name="bytes"/> does not fit where <paramref name="destination"/>
    /// is written; else sets the bytes aside until the result is disposed.
    /// </summary>
    internal static IDisposable ReserveFor(string destination, long bytes, string what)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(destination))!;
        return FreeSpace.Reserve(folder, bytes + FreeSpace.Margin, s => s.Into(new VmCloneException(StoreErrorIds.DiskFull, VmCloneErrorKind.InvalidOperation,
            $"There is not enough free space for {what}: {s.Numbers}. Nothing was written; free some space (or write elsewhere) and run the command again.", destination)));
    }
}
