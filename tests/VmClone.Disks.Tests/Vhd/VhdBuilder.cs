using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Text;
using VmClone.Disks.Vhd;

namespace VmClone.Disks.Tests.Vhd;

/// <summary>
/// Writes small dynamic and differencing VHDs byte by byte for structure and hostile-input
/// tests: footer copy, dynamic header, BAT, locators, blocks placed in reverse order (the file
/// order differs from the BAT order, as Windows writes them), footer.
/// </summary>
internal sealed class VhdBuilder
{
    public long Size { get; set; } = 1L << 20;
    public uint BlockSize { get; set; } = 64 * 1024;
    public VhdDiskType Type { get; set; } = VhdDiskType.Dynamic;
    public Guid Id { get; set; } = Guid.NewGuid();
    public Guid ParentId { get; set; }
    public string ParentName { get; set; } = "";
    public uint? MaxTableEntries { get; set; }

    /// <summary>Locators: code, path (encoded for the code), data space as written.</summary>
    public List<(uint Code, string Path, uint? Space, ulong? Offset)> Locators { get; } = new();

    /// <summary>Stored blocks: index → (sectors stored in this file, the block's data).</summary>
    public SortedDictionary<long, (bool[] Sectors, byte[] Data)> Blocks { get; } = new();

    /// <summary>Stores <paramref name="data"/> in block <paramref name="block"/> for the sectors flagged (all when null).</summary>
    public void Store(long block, byte[] data, bool[]? sectors = null)
    {
        sectors ??= Array.ConvertAll(new bool[BlockSize / 512], _ => true);
        Blocks[block] = (sectors, data);
    }

    /// <summary>Extra changes to the bytes before they are written (footer and header checksums already set).</summary>
    public Action<byte[]>? Tamper { get; set; }

    public const int HeaderAt = 512;
    public const int BatAt = 1536;

    public long BatEntries => (Size + BlockSize - 1) / BlockSize;

    public byte[] Build()
    {
        long entries = BatEntries;
        uint maxEntries = MaxTableEntries ?? (uint)entries;
        long batBytes = (Math.Min(entries, maxEntries) * 4 + 511) / 512 * 512;
        var file = new MemoryStream();
        file.SetLength(BatAt + batBytes);
        var bat = new byte[batBytes];
        bat.AsSpan().Fill(0xFF);
        var header = DynamicHeader.Create(BatAt, maxEntries, BlockSize);
        header.ParentUniqueId = ParentId;
        header.ParentName = ParentName;
        long at = BatAt + batBytes;
        for (int i = 0; i < Locators.Count; i++)
        {
            (uint code, string path, uint? space, ulong? offset) = Locators[i];
            byte[] data = code == ParentLocatorEntry.MacX ? Encoding.UTF8.GetBytes("file://" + path) : Encoding.Unicode.GetBytes(path);
            header.SetLocator(i, new ParentLocatorEntry(code, space ?? 512, (uint)data.Length, offset ?? (ulong)at));
            file.Position = at;
            file.Write(data);
            at += 512;
        }
        file.SetLength(at);
        header.UpdateChecksum();
        int bitmapBytes = BlockBitmap.SizeInFile(BlockSize);
        // Reverse order: the last block first in the file.
        var order = new List<long>(Blocks.Keys);
        order.Reverse();
        foreach (long b in order)
        {
            (bool[] sectors, byte[] data) = Blocks[b];
            var bitmap = new byte[bitmapBytes];
            for (int s = 0; s < sectors.Length; s++)
                if (sectors[s])
                    bitmap[s >> 3] |= (byte)(0x80 >> (s & 7));
            BinaryPrimitives.WriteUInt32BigEndian(bat.AsSpan((int)b * 4), (uint)(at / 512));
            file.Position = at;
            file.Write(bitmap);
            file.Write(data);
            at += bitmapBytes + BlockSize;
        }
        var footer = VhdFooter.Create(Type, Size, HeaderAt, Id, 0);
        file.Position = 0;
        file.Write(footer.Raw);
        file.Write(header.Raw);
        file.Write(bat);
        file.Position = at;
        file.Write(footer.Raw);
        byte[] bytes = file.ToArray();
        Tamper?.Invoke(bytes);
        return bytes;
    }

    public string WriteTo(string path)
    {
        File.WriteAllBytes(path, Build());
        return path;
    }

    /// <summary>Sets a footer field in both copies (offset 0 and the end) and fixes their checksums.</summary>
    public static void PatchFooters(byte[] file, Action<byte[]> change)
    {
        foreach (int at in new[] { 0, file.Length - 512 })
        {
            byte[] raw = file.AsSpan(at, 512).ToArray();
            change(raw);
            BinaryPrimitives.WriteUInt32BigEndian(raw.AsSpan(64), VhdChecksum.Compute(raw, 64));
            raw.CopyTo(file, at);
        }
    }

    /// <summary>Sets a dynamic header field and fixes its checksum.</summary>
    public static void PatchHeader(byte[] file, Action<byte[]> change)
    {
        byte[] raw = file.AsSpan(HeaderAt, 1024).ToArray();
        change(raw);
        BinaryPrimitives.WriteUInt32BigEndian(raw.AsSpan(36), VhdChecksum.Compute(raw, 36));
        raw.CopyTo(file, HeaderAt);
    }

    public static byte[] Pattern(int seed, int length)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }
}
