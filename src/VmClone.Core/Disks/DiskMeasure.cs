using System;
using System.IO;
using System.Threading;
using VmClone.Disks;
using VmClone.Disks.Qcow2;
using VmClone.Disks.Vhd;
using VmClone.Disks.Vhdx;
using VmClone.Disks.Vmdk;

namespace VmClone.Core.Disks;

public static partial class DiskOperations
{
    /// <summary>
    /// The bytes a standalone copy of <paramref name="path"/>'s content (its chain flattened, as
    /// Convert-VmDisk writes it) would take in <paramref name="destinationFormat"/> (by
    /// default the disk's own format), from the extent maps alone: nothing but metadata is read.
    /// Every destination unit (block, grain, cluster) a data run of the chain touches is counted.
    /// For qcow2 and raw the numbers follow qemu-img measure's rule (qcow2: the metadata a fully
    /// allocated image needs, plus the clusters data touches; raw: the virtual size); for VHDX,
    /// VMDK and VHD they are the length of the file Convert writes, laid out as those writers
    /// lay it out.
    /// </summary>
    public static VmDiskMeasurement Measure(string path, DiskFormat? destinationFormat, long? blockSizeBytes, DiskOpenOptions? options, CancellationToken cancellationToken)
    {
        using VirtualDisk source = VirtualDisk.Open(path, FileAccess.Read, options);
        return Measure(source, destinationFormat, blockSizeBytes, cancellationToken);
    }

    /// <summary><see cref="Measure(string, DiskFormat?, long?, DiskOpenOptions?, CancellationToken)"/> of a chain already open.</summary>
    internal static VmDiskMeasurement Measure(VirtualDisk source, DiskFormat? destinationFormat, long? blockSizeBytes, CancellationToken cancellationToken)
    {
        DiskFormat format = destinationFormat ?? source.Format;
        long size = source.Capacity;
        long unit = DestinationUnit(format, blockSizeBytes, source.Path);
        RefuseTooLarge(format, size, source.Path);
        long units = 0, data = 0, lastCounted = -1;
        for (long window = 0; window < size; window += ContentCopier.Window)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (ChainExtent extent in source.MapExtents(window, Math.Min(ContentCopier.Window, size - window)))
            {
                if (extent.Kind != ExtentKind.Data)
                    continue;
                data += extent.Length;
                long first = Math.Max(extent.Position / unit, lastCounted + 1), last = (extent.End - 1) / unit;
                if (first <= last)
                {
                    units += last - first + 1;
                    lastCounted = last;
                }
            }
        }
        long allUnits = (size + unit - 1) / unit;
        (long required, long full) = format switch
        {
            DiskFormat.Raw => (RoundUp(size, 512), RoundUp(size, 512)),
            DiskFormat.Qcow2 => Qcow2Sizes(size, unit, units),
            DiskFormat.Vhdx => (VhdxLength(size, unit, source.LogicalSectorSize, units), VhdxLength(size, unit, source.LogicalSectorSize, allUnits)),
            DiskFormat.Vmdk => (VmdkLength(size, unit, units), VmdkLength(size, unit, allUnits)),
            DiskFormat.Vhd => (VhdLength(size, unit, units), VhdLength(size, unit, allUnits)),
            _ => throw new ArgumentException($"'{source.Path}' cannot be measured for {format}: VmClone does not write that format."),
        };
        return new VmDiskMeasurement
        {
            Path = source.Path,
            DestinationFormat = format,
            VirtualSize = size,
            BlockSize = unit,
            RequiredBytes = required,
            FullyAllocatedBytes = full,
            DataBytes = data,
        };
    }

    /// <summary>The allocation unit Convert would give the new file, checked as its writer checks it.</summary>
    private static long DestinationUnit(DiskFormat format, long? given, string path)
    {
        (long fallback, long min, long max) = format switch
        {
            DiskFormat.Vhdx => (VhdxConstants.DefaultDynamicBlockSize, VhdxConstants.MiB, 256 * VhdxConstants.MiB),
            DiskFormat.Vmdk => (VmdkLayer.DefaultGrainBytes, 8L * 1024, VhdxConstants.MiB),
            DiskFormat.Qcow2 => (Qcow2Layer.DefaultClusterSize, 512L, 2 * VhdxConstants.MiB),
            DiskFormat.Vhd => (VhdLayer.DefaultBlockSize, 512L, 256 * VhdxConstants.MiB),
            _ => (512L, 512L, 512L),
        };
        if (format == DiskFormat.Raw || given is null)
            return fallback;
        long unit = given.Value;
        if (unit < min || unit > max || (unit & (unit - 1)) != 0)
            throw new ArgumentException($"'{path}': a {format} block size must be a power of two from {Format.Bytes(min)} to {Format.Bytes(max)}, not {unit} bytes.");
        return unit;
    }

    /// <summary>Refuses a disk larger than the format can hold, as its writer would refuse the convert.</summary>
    private static void RefuseTooLarge(DiskFormat format, long size, string path)
    {
        long max = format switch
        {
            DiskFormat.Vhdx => VhdxConstants.MaxVirtualSize,
            DiskFormat.Vmdk => (long)SparseExtentHeader.MaxCapacitySectors * 512,
            DiskFormat.Vhd => VhdFooter.MaxVirtualSize,
            _ => long.MaxValue,
        };
        if (size > max)
            throw new ArgumentException($"'{path}' cannot be copied as {format}: its {Format.Bytes(size)} are more than a {format} disk holds ({Format.Bytes(max)}).");
    }

    private static long RoundUp(long value, long unit) => (value + unit - 1) / unit * unit;

    private static long DivRoundUp(long value, long unit) => (value + unit - 1) / unit;

    /// <summary>qemu's qcow2_measure without a backing file: (required, fully allocated), 16-bit refcounts, no extended L2.</summary>
    private static (long Required, long FullyAllocated) Qcow2Sizes(long size, long cluster, long dataClusters)
    {
        long virtualSize = RoundUp(size, cluster);
        long full = Qcow2PreallocatedSize(virtualSize, cluster, refcountOrder: 4);
        return (full - virtualSize + dataClusters * cluster, full);
    }

    /// <summary>qemu's qcow2_calc_prealloc_size: header, every L2 and L1 table, refcount metadata, data.</summary>
    private static long Qcow2PreallocatedSize(long totalSize, long cluster, int refcountOrder)
    {
        const long l2EntrySize = 8, l1EntrySize = 8;
        long aligned = RoundUp(totalSize, cluster);
        long meta = cluster; // header
        long l2Entries = RoundUp(aligned / cluster, cluster / l2EntrySize);
        meta += l2Entries * l2EntrySize;
        long l1Entries = RoundUp(l2Entries * l2EntrySize / cluster, cluster / l1EntrySize);
        meta += l1Entries * l1EntrySize;
        meta += Qcow2RefcountMetadataSize((meta + aligned) / cluster, cluster, refcountOrder);
        return meta + aligned;
    }

    /// <summary>qemu's qcow2_refcount_metadata_size: the fixed point where refcount blocks and table count themselves too.</summary>
    private static long Qcow2RefcountMetadataSize(long clusters, long cluster, int refcountOrder)
    {
        long blocksPerTableCluster = cluster / 8;
        long refcountsPerBlock = cluster * 8 / (1L << refcountOrder);
        long table = 0, blocks = 0, n = 0, last;
        do
        {
            last = n;
            blocks = DivRoundUp(clusters + table + blocks, refcountsPerBlock);
            table = DivRoundUp(blocks, blocksPerTableCluster);
            n = clusters + blocks + table;
        }
        while (n != last);
        return (blocks + table) * cluster;
    }

    /// <summary>A VHDX as VhdxLayer.Create lays it out (headers, log, metadata: 1 MiB each, the BAT in whole MiB) with <paramref name="blocks"/> payload blocks after it.</summary>
    private static long VhdxLength(long size, long blockSize, int logicalSectorSize, long blocks)
    {
        long batEntries = Bat.ComputeEntryCount(size, blockSize, logicalSectorSize, hasParent: false);
        return 3 * VhdxConstants.MiB + RoundUp(batEntries * BatEntry.Size, VhdxConstants.MiB) + blocks * RoundUp(blockSize, VhdxConstants.MiB);
    }

    /// <summary>A monolithicSparse VMDK as VmdkLayer.Create lays it out (header, 20-sector descriptor, both grain directories with every table, rounded to the grain) with <paramref name="grains"/> grains appended.</summary>
    private static long VmdkLength(long size, long grainBytes, long grains)
    {
        const long descriptorSectors = 20, tableSectors = 512 * 4 / 512;
        long grainSectors = grainBytes / 512;
        long directoryEntries = DivRoundUp(DivRoundUp(size, 512), grainSectors * 512);
        long directorySectors = DivRoundUp(directoryEntries * 4, 512);
        long tablesEnd = 1 + descriptorSectors + 2 * (directorySectors + directoryEntries * tableSectors);
        return RoundUp(tablesEnd, grainSectors) * 512 + grains * grainBytes;
    }

    /// <summary>A dynamic VHD as VhdLayer lays it out (footer copy, header, BAT, then each block's bitmap and data with the data 4 KiB aligned, the footer last) with <paramref name="blocks"/> blocks.</summary>
    private static long VhdLength(long size, long blockSize, long blocks)
    {
        long entries = DivRoundUp(size, blockSize);
        long end = VhdFooter.Length + DynamicHeader.Length + RoundUp(entries * 4, 512);
        if (blocks > 0)
        {
            long bitmap = BlockBitmap.SizeInFile(blockSize);
            end = RoundUp(end + bitmap, 4096) + blockSize;
            long tail = blockSize % 4096; // every block after the first starts from the same phase
            end += (blocks - 1) * (RoundUp(tail + bitmap, 4096) - tail + blockSize);
        }
        return end + VhdFooter.Length;
    }
}
