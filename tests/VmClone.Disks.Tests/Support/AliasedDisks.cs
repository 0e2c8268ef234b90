using System;
using System.Buffers.Binary;
using System.IO;
using VmClone.Disks.Vhdx;

namespace VmClone.Disks.Tests.Support;

/// <summary>Hostile files whose tables name the same data for a whole large disk: small on disk, terabytes claimed.</summary>
public static class AliasedDisks
{
    private const long MiB = 1024 * 1024;

    /// <summary>
    /// A dynamic VHDX of <paramref name="virtualSize"/> bytes (1 MiB blocks) that stores
    /// <paramref name="dataBytes"/> of random data in its first block, then has every payload
    /// entry of its BAT name that one block.
    /// </summary>
    public static string Vhdx(string path, long virtualSize, int dataBytes)
    {
        using (VirtualDisk disk = VirtualDisk.CreateDynamic(path, virtualSize, new DiskCreateOptions { BlockSizeBytes = MiB }))
        {
            var data = new byte[dataBytes];
            new Random(4).NextBytes(data);
            disk.Content.Write(data, 0, data.Length);
        }
        long batOffset;
        var first = new byte[8];
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read))
        {
            // The region table at 192 KiB names the BAT.
            byte[] regions = new byte[RegionTable.Length];
            fs.Position = 192 * 1024;
            fs.ReadExactly(regions, 0, regions.Length);
            batOffset = RegionTable.TryParse(regions, out _)!.Bat.FileOffset;
            fs.Position = batOffset;
            fs.ReadExactly(first, 0, 8);
        }
        ulong block0 = BinaryPrimitives.ReadUInt64LittleEndian(first);
        if ((block0 & 7) != 6)
            throw new InvalidOperationException($"'{path}': the first block is not fully present (BAT entry {block0:x}).");
        long entries = Bat.ComputeEntryCount(virtualSize, MiB, 512, false);
        long ratio = Bat.ComputeChunkRatio(MiB, 512);
        var bat = new byte[entries * 8];
        for (long i = 0; i < entries; i++)
        {
            // Every payload entry; the sector-bitmap entries between chunks stay empty.
            if (i % (ratio + 1) != ratio)
                BinaryPrimitives.WriteUInt64LittleEndian(bat.AsSpan((int)(i * 8)), block0);
        }
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            fs.Position = batOffset;
            fs.Write(bat, 0, bat.Length);
        }
        return path;
    }
}
