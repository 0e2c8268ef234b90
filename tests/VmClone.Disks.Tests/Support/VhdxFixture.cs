using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Disks.Vhdx;

namespace VmClone.Disks.Tests.Support;

/// <summary>
/// Byte-level edits of VHDX files for structure tests: headers and region tables are
/// re-checksummed after an edit, so each test breaks exactly the rule it is about.
/// </summary>
public static class VhdxFixture
{
    public const long MiB = 1024 * 1024;

    internal static long HeaderOffset(int slot) => slot == 0 ? 64 * 1024 : 128 * 1024;

    internal static VhdxHeader? ReadHeader(string path, int slot) =>
        VhdxHeader.TryParse(ReadAt(path, HeaderOffset(slot), VhdxHeader.Length));

    internal static void EditHeader(string path, int slot, Action<VhdxHeader> edit)
    {
        VhdxHeader h = ReadHeader(path, slot) ?? throw new InvalidOperationException("header not valid");
        edit(h);
        WriteAt(path, HeaderOffset(slot), h.ToBytes());
    }

    /// <summary>Applies the same edit to both header copies.</summary>
    internal static void EditHeaders(string path, Action<VhdxHeader> edit)
    {
        EditHeader(path, 0, edit);
        EditHeader(path, 1, edit);
    }

    internal static RegionTable ReadRegionTable(string path) =>
        RegionTable.TryParse(ReadAt(path, 192 * 1024, RegionTable.Length), out _)!;

    /// <summary>Rewrites both region table copies with new entries.</summary>
    internal static void WriteRegionTable(string path, IEnumerable<RegionTableEntry> entries)
    {
        byte[] bytes = new RegionTable(entries.ToList()).ToBytes();
        WriteAt(path, 192 * 1024, bytes);
        WriteAt(path, 256 * 1024, bytes);
    }

    internal static long BatOffset(string path) => ReadRegionTable(path).Bat.FileOffset;

    internal static long MetadataOffset(string path) => ReadRegionTable(path).Metadata.FileOffset;

    internal static ulong ReadBatEntry(string path, long index) =>
        BinaryPrimitives.ReadUInt64LittleEndian(ReadAt(path, BatOffset(path) + index * 8, 8));

    internal static void WriteBatEntry(string path, long index, ulong raw)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, raw);
        WriteAt(path, BatOffset(path) + index * 8, b);
    }

    internal static MetadataTable ReadMetadataTable(string path)
    {
        long at = MetadataOffset(path);
        return MetadataTable.Parse(ReadAt(path, at, MetadataTable.Length), path, at, MiB, new AnyGuid());
    }

    /// <summary>Replaces a metadata item's bytes (placed where it was, or at a free offset when longer).</summary>
    internal static void ReplaceMetadataItem(string path, Guid itemId, byte[] data, uint? flags = null)
    {
        long region = MetadataOffset(path);
        MetadataTable table = ReadMetadataTable(path);
        var entries = table.Entries.ToList();
        int i = entries.FindIndex(e => e.ItemId == itemId);
        uint offset = i >= 0 && data.Length <= entries[i].Length ? entries[i].Offset : 512 * 1024;
        var updated = new MetadataTableEntry(itemId, offset, (uint)data.Length, flags ?? (i >= 0 ? entries[i].Flags : MetadataTableEntry.IsRequiredFlag));
        if (i >= 0)
            entries[i] = updated;
        else
            entries.Add(updated);
        WriteAt(path, region + offset, data);
        WriteAt(path, region, new MetadataTable(entries).ToBytes());
    }

    /// <summary>Rewrites a differencing disk's parent locator with one key changed.</summary>
    internal static void SetLocatorValue(string path, string key, string value)
    {
        long region = MetadataOffset(path);
        MetadataTableEntry e = ReadMetadataTable(path).Find(ParentLocator.ItemId)!.Value;
        ParentLocator locator = ParentLocator.Parse(ReadAt(path, region + e.Offset, (int)e.Length), path, 0);
        var entries = locator.Entries.Where(kv => kv.Key != key).ToList();
        entries.Add(new KeyValuePair<string, string>(key, value));
        ReplaceMetadataItem(path, ParentLocator.ItemId, new ParentLocator(locator.LocatorType, entries).ToBytes());
    }

    /// <summary>Treats every item as known, so fixtures can read tables holding the items under test.</summary>
    private sealed class AnyGuid : List<Guid>, ICollection<Guid>
    {
        bool ICollection<Guid>.Contains(Guid item) => true;
    }

    public static byte[] ReadAt(string path, long offset, int count)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var buffer = new byte[count];
        fs.Position = offset;
        int done = 0;
        while (done < count)
        {
            int n = fs.Read(buffer, done, count - done);
            if (n <= 0)
                break;
            done += n;
        }
        return buffer;
    }

    public static void WriteAt(string path, long offset, byte[] data)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        fs.Position = offset;
        fs.Write(data, 0, data.Length);
    }

    /// <summary>Creates a dynamic VHDX with some written content and returns the content written.</summary>
    public static byte[] CreateWritten(string path, long size, long? blockSize = null, int sectorSize = 512, int seed = 1)
    {
        var model = new byte[size];
        using (VirtualDisk disk = VirtualDisk.CreateDynamic(path, size, new DiskCreateOptions { BlockSizeBytes = blockSize, LogicalSectorSizeBytes = sectorSize }))
        {
            var rng = new Random(seed);
            for (int i = 0; i < 4; i++)
            {
                int len = rng.Next(1, 200_000);
                long at = rng.NextInt64(0, size - len);
                var data = new byte[len];
                rng.NextBytes(data);
                disk.Content.Position = at;
                disk.Content.Write(data, 0, len);
                Array.Copy(data, 0, model, at, len);
            }
        }
        return model;
    }

    public static string Sha256OfDisk(string path, DiskOpenOptions? options = null)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, options);
        return Hashing.Sha256Stream(disk.Content);
    }

    public static byte[] ReadAll(VirtualDisk disk)
    {
        var all = new byte[disk.Capacity];
        disk.Content.Position = 0;
        int done = 0;
        while (done < all.Length)
        {
            int n = disk.Content.Read(all, done, (int)Math.Min(all.Length - done, 4 << 20));
            if (n <= 0)
                throw new EndOfStreamException();
            done += n;
        }
        return all;
    }
}
