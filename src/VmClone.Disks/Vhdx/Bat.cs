using System;
using System.Buffers.Binary;

namespace VmClone.Disks.Vhdx;

/// <summary>
/// The Block Allocation Table ([MS-VHDX] 2.5), kept in memory. Payload and sector bitmap
/// entries are interleaved: chunkRatio payload entries, then one sector bitmap entry (2.5).
/// Its size follows from the virtual size, block size and logical sector size; the region
/// must hold at least that many entries (validated before allocation).
/// </summary>
internal sealed class Bat
{
    private readonly ulong[] _entries;

    private Bat(long virtualSize, long blockSize, int logicalSectorSize, bool hasParent, ulong[] entries)
    {
        VirtualSize = virtualSize;
        BlockSize = blockSize;
        LogicalSectorSize = logicalSectorSize;
        HasParent = hasParent;
        _entries = entries;
        ChunkRatio = ComputeChunkRatio(blockSize, logicalSectorSize);
        DataBlocks = (virtualSize + blockSize - 1) / blockSize;
    }

    public long VirtualSize { get; }
    public long BlockSize { get; }
    public int LogicalSectorSize { get; }
    public bool HasParent { get; }

    /// <summary>2.5: payload blocks described by one sector bitmap block, (2^23 × LogicalSectorSize) / BlockSize.</summary>
    public long ChunkRatio { get; }

    /// <summary>2.5: ceil(VirtualDiskSize / BlockSize).</summary>
    public long DataBlocks { get; }

    public long EntryCount => _entries.LongLength;

    /// <summary>Bytes of the bitmap that cover one payload block: BlockSize / LogicalSectorSize bits.</summary>
    public int BitmapBytesPerBlock => (int)(BlockSize / LogicalSectorSize / 8);

    public static long ComputeChunkRatio(long blockSize, int logicalSectorSize) =>
        VhdxConstants.SectorsPerBitmapBlock * logicalSectorSize / blockSize;

    /// <summary>
    /// 2.5: differencing disks have an entry for every sector bitmap block,
    /// bitmapBlocks × (chunkRatio + 1); others dataBlocks + floor((dataBlocks − 1) / chunkRatio).
    /// </summary>
    public static long ComputeEntryCount(long virtualSize, long blockSize, int logicalSectorSize, bool hasParent)
    {
        long chunkRatio = ComputeChunkRatio(blockSize, logicalSectorSize);
        long dataBlocks = (virtualSize + blockSize - 1) / blockSize;
        long bitmapBlocks = (dataBlocks + chunkRatio - 1) / chunkRatio;
        return hasParent ? bitmapBlocks * (chunkRatio + 1) : dataBlocks + (dataBlocks - 1) / chunkRatio;
    }

    public static Bat CreateEmpty(long virtualSize, long blockSize, int logicalSectorSize, bool hasParent) =>
        new(virtualSize, blockSize, logicalSectorSize, hasParent, new ulong[ComputeEntryCount(virtualSize, blockSize, logicalSectorSize, hasParent)]);

    /// <summary>
    /// Reads the first <see cref="ComputeEntryCount"/> entries through <paramref name="read"/>
    /// (offset within the region, buffer, count) in bounded chunks.
    /// </summary>
    public static Bat Load(Action<long, byte[], int> read, long virtualSize, long blockSize, int logicalSectorSize, bool hasParent)
    {
        long count = ComputeEntryCount(virtualSize, blockSize, logicalSectorSize, hasParent);
        var entries = new ulong[count];
        const int ChunkEntries = 1 << 20;
        var buffer = new byte[(int)Math.Min(count, ChunkEntries) * BatEntry.Size];
        for (long first = 0; first < count; first += ChunkEntries)
        {
            int n = (int)Math.Min(ChunkEntries, count - first);
            read(first * BatEntry.Size, buffer, n * BatEntry.Size);
            for (int i = 0; i < n; i++)
                entries[first + i] = BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(i * BatEntry.Size, BatEntry.Size));
        }
        return new Bat(virtualSize, blockSize, logicalSectorSize, hasParent, entries);
    }

    /// <summary>BAT index of payload block <paramref name="block"/>: i + i / chunkRatio.</summary>
    public long PayloadIndex(long block) => block + block / ChunkRatio;

    /// <summary>BAT index of the sector bitmap entry of chunk <paramref name="chunk"/>: k × (chunkRatio + 1) + chunkRatio.</summary>
    public long BitmapIndex(long chunk) => chunk * (ChunkRatio + 1) + ChunkRatio;

    /// <summary>True when <paramref name="index"/> holds a sector bitmap entry.</summary>
    public bool IsBitmapIndex(long index) => index % (ChunkRatio + 1) == ChunkRatio;

    public BatEntry this[long index]
    {
        get => new(_entries[index]);
        set => _entries[index] = value.Raw;
    }

    public BatEntry Payload(long block) => this[PayloadIndex(block)];

    /// <summary>The sector bitmap entry covering payload block <paramref name="block"/>, or null when the BAT has none (non-differencing tail).</summary>
    public long? BitmapIndexForBlock(long block)
    {
        long index = BitmapIndex(block / ChunkRatio);
        return index < _entries.LongLength ? index : null;
    }

    /// <summary>On-disk bytes of the entries [first, first + count).</summary>
    public byte[] ToBytes(long first, int count)
    {
        var data = new byte[count * BatEntry.Size];
        for (int i = 0; i < count; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(i * BatEntry.Size), _entries[first + i]);
        return data;
    }
}
