using System;
using System.Collections.Generic;
using System.IO;

namespace VmClone.Disks.Vhdx;

internal sealed partial class VhdxLayer
{
    public const string CreatorName = "VmClone";

    /// <summary>
    /// Writes a new, empty dynamic or differencing VHDX, laid out as Hyper-V does: identifier,
    /// headers and region tables in the first 1 MiB, a 1 MiB log at 1 MiB, the metadata region
    /// at 2 MiB, the BAT at 3 MiB (rounded to 1 MiB); payload blocks follow when written. Only
    /// metadata is written, so creating a child costs the same for any parent size. A fixed
    /// disk (<see cref="LayerCreateSpec.Fixed"/>) has every block present from the start
    /// (<see cref="WriteFixedBat"/>). A failed create deletes its partial file.
    /// </summary>
    public static void Create(LayerCreateSpec spec)
    {
        string path = System.IO.Path.GetFullPath(spec.Path);
        bool differencing = spec.Parent is not null;
        if (spec.Parent is not null and not VhdxLayer)
            throw new DiskChainException(path, ChainProblem.Incompatible,
                $"A VHDX differencing disk needs a VHDX parent; '{spec.Parent.Path}' is {spec.Parent.Format}. Convert the parent to VHDX first.", spec.Parent.Path);
        int lss = spec.LogicalSectorSize, pss = spec.PhysicalSectorSize;
        if (!VhdxConstants.IsValidSectorSize(lss))
            throw new ArgumentOutOfRangeException(nameof(spec), $"Logical sector size {lss} is not 512 or 4096 ('{path}').");
        if (!VhdxConstants.IsValidSectorSize(pss))
            throw new ArgumentOutOfRangeException(nameof(spec), $"Physical sector size {pss} is not 512 or 4096 ('{path}').");
        if (spec.Parent is not null && spec.Parent.LogicalSectorSize != lss)
            throw new DiskChainException(path, ChainProblem.Incompatible,
                $"A child of '{spec.Parent.Path}' must use its logical sector size of {spec.Parent.LogicalSectorSize} bytes, not {lss}.", spec.Parent.Path);
        long size = spec.VirtualSize;
        if (size <= 0 || size > VhdxConstants.MaxVirtualSize || size % lss != 0)
            throw new ArgumentOutOfRangeException(nameof(spec), $"A VHDX virtual size must be a positive multiple of the {lss}-byte sector up to 64 TiB, not {size} ('{path}').");
        long blockSize = spec.BlockSize ?? (differencing ? VhdxConstants.DefaultDifferencingBlockSize : VhdxConstants.DefaultDynamicBlockSize);
        if (!VhdxConstants.IsValidBlockSize(blockSize))
            throw new ArgumentOutOfRangeException(nameof(spec), $"A VHDX block size must be a power of two from 1 MiB to 256 MiB, not {blockSize} ('{path}').");

        var items = new List<(Guid Id, byte[] Data, uint Flags)>
        {
            (FileParameters.ItemId, new FileParameters((uint)blockSize, spec.Fixed && !differencing, differencing).ToBytes(), MetadataTableEntry.IsRequiredFlag),
            (VirtualDiskMetadata.VirtualDiskSizeId, VirtualDiskMetadata.UInt64Bytes((ulong)size), MetadataTableEntry.IsRequiredFlag | MetadataTableEntry.IsVirtualDiskFlag),
            (VirtualDiskMetadata.Page83DataId, Guid.NewGuid().ToByteArray(), MetadataTableEntry.IsRequiredFlag | MetadataTableEntry.IsVirtualDiskFlag),
            (VirtualDiskMetadata.LogicalSectorSizeId, VirtualDiskMetadata.UInt32Bytes((uint)lss), MetadataTableEntry.IsRequiredFlag | MetadataTableEntry.IsVirtualDiskFlag),
            (VirtualDiskMetadata.PhysicalSectorSizeId, VirtualDiskMetadata.UInt32Bytes((uint)pss), MetadataTableEntry.IsRequiredFlag | MetadataTableEntry.IsVirtualDiskFlag),
        };
        if (spec.Parent is not null)
            items.Add((ParentLocator.ItemId, BuildLocator(spec).ToBytes(), MetadataTableEntry.IsRequiredFlag));

        const long logOffset = VhdxConstants.MiB, logLength = VhdxConstants.MiB;
        const long metadataOffset = 2 * VhdxConstants.MiB, metadataLength = VhdxConstants.MiB;
        const long batOffset = 3 * VhdxConstants.MiB;
        long batEntries = Bat.ComputeEntryCount(size, blockSize, lss, differencing);
        long batLength = VhdxConstants.RoundUp(batEntries * BatEntry.Size, VhdxConstants.MiB);
        if (batLength > uint.MaxValue - VhdxConstants.MiB)
            throw new ArgumentOutOfRangeException(nameof(spec), $"A {size}-byte disk with {blockSize}-byte blocks needs a BAT larger than a region can hold; use larger blocks ('{path}').");

        var entries = new List<MetadataTableEntry>();
        long at = MetadataTable.Length;
        foreach (var item in items)
        {
            if (at + item.Data.Length > metadataLength)
                throw new ArgumentOutOfRangeException(nameof(spec), $"The parent locator of '{path}' is too long for the metadata region.");
            entries.Add(new MetadataTableEntry(item.Id, (uint)at, (uint)item.Data.Length, item.Flags));
            at = VhdxConstants.RoundUp(at + item.Data.Length, 8);
        }
        // Only the used head of the region is built (the rest reads as zeros in the new file):
        // a 1 MiB buffer per new disk would be a large-object allocation, and a fleet command
        // creating thousands of disks would spend its time in full garbage collections.
        long metadataUsed = at;
        var metadata = new byte[metadataUsed];
        new MetadataTable(entries).ToBytes().CopyTo(metadata, 0);
        for (int i = 0; i < items.Count; i++)
            Array.Copy(items[i].Data, 0, metadata, entries[i].Offset, items[i].Data.Length);

        var regions = new RegionTable(new[]
        {
            new RegionTableEntry(RegionTable.BatRegion, batOffset, (uint)batLength, true),
            new RegionTableEntry(RegionTable.MetadataRegion, metadataOffset, (uint)metadataLength, true),
        }).ToBytes();
        var header = new VhdxHeader
        {
            FileWriteGuid = Guid.NewGuid(),
            DataWriteGuid = Guid.NewGuid(),
            LogGuid = Guid.Empty,
            LogLength = (uint)logLength,
            LogOffset = (ulong)logOffset,
        };

        FileAccessor file = spec.OpenFile();
        try
        {
            file.Write(0, new FileIdentifier(CreatorName).ToBytes());
            header.SequenceNumber = 1;
            file.Write(VhdxConstants.Header1Offset, header.ToBytes());
            header.SequenceNumber = 2;
            file.Write(VhdxConstants.Header2Offset, header.ToBytes());
            // The tables' 64 KiB are checksummed whole, but past the two entries they are zeros,
            // which the new file already reads as: only the used head is written.
            int regionsUsed = (int)VhdxConstants.RoundUp(RegionTable.EntriesOffset + 2 * RegionTableEntry.Size, 512);
            file.Write(VhdxConstants.RegionTable1Offset, regions, 0, regionsUsed);
            file.Write(VhdxConstants.RegionTable2Offset, regions, 0, regionsUsed);
            // Only the table and the items: the rest of the region, the log and the BAT (all
            // NOT_PRESENT) are zeros, which extending the file gives for free, as holes where
            // the file system allows. A child then occupies a few KiB whatever its size.
            // The table's 64 KiB are mostly zeros too: its used head, then the items after it.
            // Every block not written stays a hole, which also makes the one flush cheaper.
            int tableUsed = (int)VhdxConstants.RoundUp(MetadataTable.EntriesOffset + entries.Count * MetadataTableEntry.Size, 512);
            file.Write(metadataOffset, metadata, 0, tableUsed);
            file.Write(metadataOffset + MetadataTable.Length, metadata, MetadataTable.Length, (int)(metadataUsed - MetadataTable.Length));
            long end = batOffset + batLength;
            if (spec.Fixed && !differencing)
                end = WriteFixedBat(file, batOffset, batLength, size, blockSize, lss, spec.ReserveSpace);
            file.SetLength(end);
            file.Flush();
            file.Dispose();
        }
        catch
        {
            spec.Abandon(file);
            throw;
        }
    }

    /// <summary>
    /// A fixed VHDX as Hyper-V's New-VHD -Fixed lays it out: every payload block FULLY_PRESENT,
    /// in order from the end of the BAT region (1 MiB aligned), each a whole block in the file;
    /// the sector bitmap entries stay NOT_PRESENT (a disk without a parent has none). The blocks
    /// read as zeros (holes, or space reserved with <paramref name="reserve"/>). Returns the
    /// file's length. The BAT is written a piece at a time, so a large disk costs no large buffer.
    /// </summary>
    private static long WriteFixedBat(FileAccessor file, long batOffset, long batLength, long size, long blockSize, int lss, bool reserve)
    {
        long payloadStart = batOffset + batLength;
        long blocks = (size + blockSize - 1) / blockSize;
        long chunkRatio = Bat.ComputeChunkRatio(blockSize, lss);
        long end = payloadStart + blocks * blockSize;
        file.SetLength(end);
        if (reserve)
            file.Reserve(end);
        const int PieceEntries = 64 * 1024;
        var piece = new byte[PieceEntries * BatEntry.Size];
        long entries = blocks + (blocks - 1) / chunkRatio;
        for (long first = 0; first < entries; first += PieceEntries)
        {
            int count = (int)Math.Min(PieceEntries, entries - first);
            Array.Clear(piece, 0, piece.Length);
            for (int i = 0; i < count; i++)
            {
                long index = first + i;
                if (index % (chunkRatio + 1) == chunkRatio)
                    continue; // a sector bitmap entry
                long block = index - index / (chunkRatio + 1);
                ulong raw = new BatEntry(BatState.FullyPresent, payloadStart + block * blockSize).Raw;
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(piece.AsSpan(i * BatEntry.Size), raw);
            }
            file.Write(batOffset + first * BatEntry.Size, piece, 0, count * BatEntry.Size);
        }
        return end;
    }

    /// <summary>
    /// 2.6.2.6.1: parent_linkage = the parent's DataWriteGuid, relative_path in Windows form
    /// (".\name.vhdx" or "..\dir\name.vhdx"), absolute_win32_path. On Linux/macOS the absolute
    /// path is stored as this host spells it: it resolves here, not on Windows (the relative
    /// path is what carries across hosts).
    /// </summary>
    private static ParentLocator BuildLocator(LayerCreateSpec spec)
    {
        var entries = new List<KeyValuePair<string, string>>
        {
            new(ParentLocator.ParentLinkageKey, spec.Parent!.Identity),
        };
        if (spec.ParentRelativePath is string rel)
        {
            string win = PathUtil.ToWindowsSeparators(rel);
            if (!win.StartsWith("..\\", StringComparison.Ordinal) && !win.StartsWith(".\\", StringComparison.Ordinal))
                win = ".\\" + win;
            entries.Add(new(ParentLocator.RelativePathKey, win));
        }
        if (spec.ParentAbsolutePath is string abs)
            entries.Add(new(ParentLocator.AbsoluteWin32PathKey, abs));
        return new ParentLocator(ParentLocator.VhdxLocatorType, entries);
    }
}
