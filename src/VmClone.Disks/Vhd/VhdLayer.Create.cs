using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace VmClone.Disks.Vhd;

internal sealed partial class VhdLayer
{
    /// <summary>Hyper-V's block size for VHDs, and the only one XenServer uses.</summary>
    public const long DefaultBlockSize = 2L << 20;

    private const long HeaderOffset = VhdFooter.Length;
    private const long TableOffset = HeaderOffset + DynamicHeader.Length;

    /// <summary>
    /// Writes a new dynamic VHD, or a differencing one over <see cref="LayerCreateSpec.Parent"/>,
    /// as Hyper-V lays them out: footer copy, dynamic header, BAT (all blocks unused), for a
    /// child its W2ru and W2ku locators, then the footer. Current size with the matching CHS
    /// geometry, creator "win ", a new unique id; 2 MiB blocks unless asked otherwise. A fixed
    /// disk (<see cref="LayerCreateSpec.Fixed"/>) is the data and the footer (<see cref="CreateFixed"/>).
    /// </summary>
    public static void Create(LayerCreateSpec spec)
    {
        string path = System.IO.Path.GetFullPath(spec.Path);
        if (spec.Parent is not null and not VhdLayer)
            throw new DiskChainException(path, ChainProblem.Incompatible,
                $"A VHD differencing disk needs a VHD parent; '{spec.Parent.Path}' is {spec.Parent.Format}. Convert the parent to VHD first.", spec.Parent.Path);
        long size = spec.VirtualSize;
        if (size <= 0 || size > VhdFooter.MaxVirtualSize || size % 512 != 0)
            throw new ArgumentOutOfRangeException(nameof(spec), $"A VHD virtual size must be a positive multiple of 512 bytes up to 2040 GiB, not {size} ('{path}').");
        if (spec.LogicalSectorSize != 512)
            throw new ArgumentOutOfRangeException(nameof(spec), $"A VHD has 512-byte sectors, not {spec.LogicalSectorSize} ('{path}').");
        if (spec.Fixed && spec.Parent is null)
        {
            CreateFixed(spec, path);
            return;
        }
        long blockSize = spec.BlockSize ?? DefaultBlockSize;
        if (blockSize < DynamicHeader.MinBlockSize || blockSize > DynamicHeader.MaxBlockSize || (blockSize & (blockSize - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(spec), $"A VHD block size must be a power of two from 512 bytes to 256 MiB, not {blockSize} ('{path}').");

        long entries = (size + blockSize - 1) / blockSize;
        long tableBytes = RoundUp(entries * BlockAllocationTable.EntrySize, 512);
        long at = TableOffset + tableBytes;
        var header = DynamicHeader.Create((ulong)TableOffset, (uint)entries, (uint)blockSize);
        var locatorData = new List<(long Offset, byte[] Data)>();
        VhdDiskType type = VhdDiskType.Dynamic;
        if (spec.Parent is VhdLayer parent)
        {
            type = VhdDiskType.Differencing;
            at = SetParentFields(header, parent, spec.ParentRelativePath, spec.ParentAbsolutePath ?? parent.Path, at, locatorData);
        }
        header.UpdateChecksum();
        VhdFooter footer = VhdFooter.Create(type, size, (ulong)HeaderOffset, Guid.NewGuid(), VhdFooter.TimestampOf(DateTime.UtcNow));
        byte[] bat = new byte[tableBytes];
        bat.AsSpan().Fill(0xFF);

        FileAccessor file = spec.OpenFile();
        try
        {
            file.Write(0, footer.Raw);
            file.Write(HeaderOffset, header.Raw);
            file.Write(TableOffset, bat);
            foreach ((long offset, byte[] data) in locatorData)
                file.Write(offset, data);
            file.Write(at, footer.Raw);
            file.SetLength(at + VhdFooter.Length);
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
    /// Records <paramref name="parent"/> in <paramref name="header"/>: its unique id, its file's
    /// time, its absolute path as the parent name (as Hyper-V writes it), and locators W2ru
    /// (".\" and the relative path with backslashes, when there is one) and W2ku (absolute),
    /// their data placed from <paramref name="at"/> in whole sectors, the data space counted
    /// in bytes as Windows does. Returns the offset after the last locator's space.
    /// </summary>
    private static long SetParentFields(DynamicHeader header, DiskLayer parent, string? relativePath, string absolutePath, long at, List<(long Offset, byte[] Data)> locatorData)
    {
        header.ParentUniqueId = ((VhdLayer)parent).Footer.UniqueId;
        header.ParentTimestamp = VhdFooter.TimestampOf(File.GetLastWriteTimeUtc(absolutePath));
        header.ParentName = absolutePath;
        var paths = new List<(uint Code, string Path)>();
        if (relativePath is string rel)
        {
            string win = PathUtil.ToWindowsSeparators(rel);
            if (!win.StartsWith("..\\", StringComparison.Ordinal) && !win.StartsWith(".\\", StringComparison.Ordinal))
                win = ".\\" + win;
            paths.Add((ParentLocatorEntry.W2ru, win));
        }
        paths.Add((ParentLocatorEntry.W2ku, absolutePath));
        for (int i = 0; i < DynamicHeader.LocatorCount; i++)
            header.SetLocator(i, default);
        for (int i = 0; i < paths.Count; i++)
        {
            byte[] data = Encoding.Unicode.GetBytes(paths[i].Path);
            long space = RoundUp(Math.Max(data.Length, 1), 512);
            header.SetLocator(i, new ParentLocatorEntry(paths[i].Code, (uint)space, (uint)data.Length, (ulong)at));
            locatorData.Add((at, data));
            at += space;
        }
        return at;
    }

    private static long RoundUp(long value, long unit) => (value + unit - 1) / unit * unit;
}
