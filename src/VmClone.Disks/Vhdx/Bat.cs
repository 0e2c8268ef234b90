using System;
using System.Buffers;
using System.Buffers.Binary;

namespace VmClone.Disks.Vhdx;

/// <summary>
/// The Block Allocation Table ([MS-VHDX] 2.5), kept in memory. Payload and sector bitmap
/// entries are interleaved: chunkRatio payload entries, then one sector bitmap entry (2.5).
/// Its size follows from the virtual size, block size and logical sector size; the region
/// must hold at least that many entries (validated before allocation).
/// </summary>
/// <remarks>
/// Entries live in pages of 8,192 (64 KiB, below the large object heap); a page with no entry
/// set is one shared read-only page until something is written into it. A new 100 GiB child
/// has a 400 KiB BAT of zeros: as pages it costs a few hundred bytes, no clearing and no large
/// object collection per open, and runs of empty pages are skipped whole.
/// </remarks>
internal sealed class Bat
{
    private const int PageShift = 13;
    private const int PageEntries = 1 << PageShift;
    private const int PageMask = PageEntries - 1;
    private static readonly ulong[] ZeroPage = new ulong[PageEntries];

    private readonly ulong[][] _pages;
    private readonly long _entryCount;

    private Bat(long virtualSize, long blockSize, int logicalSectorSize, bool hasParent, long entryCount, ulong[][] pages)
    {
        VirtualSize = virtualSize;
        BlockSize = blockSize;
        LogicalSectorSize = logicalSectorSize;
        HasParent = hasParent;
        _entryCount = entryCount;
        _pages = pages;
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

    public long EntryCount => _entryCount;

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

    public static Bat CreateEmpty(long virtualSize, long blockSize, int logicalSectorSize, bool hasParent)
    {
        long count = ComputeEntryCount(virtualSize, blockSize, logicalSectorSize, hasParent);
        return new(virtualSize, blockSize, logicalSectorSize, hasParent, count, EmptyPages(count));
    }

    private static ulong[][] EmptyPages(long count)
    {
        var pages = new ulong[(count + PageEntries - 1) >> PageShift][];
        for (int i = 0; i < pages.Length; i++)
            pages[i] = ZeroPage;
        return pages;
    }

    /// <summary>
    /// Reads the first <see cref="ComputeEntryCount"/> entries through <paramref name="read"/>
    /// (offset within the region, buffer, count) in bounded chunks. A range for which
    /// <paramref name="knownZero"/> (offset within the region, length) is true is not read: its
    /// pages stay empty.
    /// </summary>
    public static Bat Load(Action<long, byte[], int> read, Func<long, long, bool>? knownZero, long virtualSize, long blockSize, int logicalSectorSize, bool hasParent)
    {
        long count = ComputeEntryCount(virtualSize, blockSize, logicalSectorSize, hasParent);
        ulong[][] pages = EmptyPages(count);
        const int ChunkEntries = 1 << 20; // whole pages per read
        int bufferBytes = (int)Math.Min(count, ChunkEntries) * BatEntry.Size;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(bufferBytes);
        try
        {
            for (long first = 0; first < count; first += ChunkEntries)
            {
                int n = (int)Math.Min(ChunkEntries, count - first);
                if (knownZero is not null && knownZero(first * BatEntry.Size, n * BatEntry.Size))
                    continue;
                read(first * BatEntry.Size, buffer, n * BatEntry.Size);
                for (int at = 0; at < n; at += PageEntries)
                {
                    int m = Math.Min(PageEntries, n - at);
                    ReadOnlySpan<byte> bytes = new(buffer, at * BatEntry.Size, m * BatEntry.Size);
                    if (ZeroBytes.All(bytes))
                        continue; // stays the shared empty page
                    var page = new ulong[PageEntries];
                    if (BitConverter.IsLittleEndian)
                    {
                        // The on-disk form is the in-memory form: one copy instead of a parse per entry.
                        Buffer.BlockCopy(buffer, at * BatEntry.Size, page, 0, m * BatEntry.Size);
                    }
                    else
                    {
                        for (int i = 0; i < m; i++)
                            page[i] = BinaryPrimitives.ReadUInt64LittleEndian(bytes.Slice(i * BatEntry.Size));
                    }
                    pages[(first + at) >> PageShift] = page;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return new Bat(virtualSize, blockSize, logicalSectorSize, hasParent, count, pages);
    }

    /// <summary>
    /// How many payload blocks from <paramref name="firstBlock"/> on (at most
    /// <paramref name="maxBlocks"/>) have a state in <paramref name="states"/> (bit n set: state n
    /// belongs). A scan of the raw entries, chunk by chunk past the sector bitmap entries: what
    /// lets a 100 GiB disk that is all NOT_PRESENT be answered as one run without per-block work.
    /// </summary>
    public long CountRun(long firstBlock, long maxBlocks, int states)
    {
        long ratio = ChunkRatio;
        bool zeroStateBelongs = (states & 1) != 0;
        long done = 0;
        long block = firstBlock;
        while (done < maxBlocks)
        {
            long inChunk = block % ratio;
            long index = PayloadIndex(block);
            // Payload entries left in this chunk, in this page, and wanted.
            long n = Math.Min(Math.Min(ratio - inChunk, maxBlocks - done), _entryCount - index);
            ulong[] page = _pages[index >> PageShift];
            int inPage = (int)(index & PageMask);
            n = Math.Min(n, PageEntries - inPage);
            if (n <= 0)
                break;
            int i = 0;
            if (page == ZeroPage)
            {
                if (!zeroStateBelongs)
                    break;
                i = (int)n;
            }
            else
            {
                while (i < n && ((states >> (int)(page[inPage + i] & StateMask)) & 1) != 0)
                    i++;
            }
            done += i;
            block += i;
            if (i < n)
                break;
        }
        return done;
    }

    private const ulong StateMask = 0x7;

    /// <summary>
    /// Counts stored payload blocks (FULLY or PARTIALLY_PRESENT) and finds the end of the last
    /// stored block or sector bitmap block, in one pass over the entries (empty pages skipped).
    /// The same pass claims the 1 MiB units of a file of <paramref name="fileLength"/> bytes
    /// each stored block occupies (blocks lie on 1 MiB boundaries, 2.5.1): units claimed by two
    /// entries come back in <paramref name="shared"/> (null when there are none, as in every
    /// sound file), so reads can refuse them.
    /// <paramref name="storedEnd"/> counts only blocks that start inside the file: one an entry
    /// places past its end is refused when used, and must not decide where a writer appends.
    /// <paramref name="reach"/> is the end of the furthest block that starts inside the first
    /// <paramref name="realLength"/> bytes: as far as this file's blocks can honestly reach.
    /// </summary>
    public void Summarize(long fileLength, long realLength, out long storedBlocks, out long storedEnd, out ClaimMap? shared, out long reach)
    {
        long period = ChunkRatio + 1;
        long stored = 0;
        long end = 0;
        reach = 0;
        long fileUnits = fileLength / VhdxConstants.MiB;
        ClaimMap? claimed = null;
        shared = null;
        for (int p = 0; p < _pages.Length; p++)
        {
            ulong[] page = _pages[p];
            if (page == ZeroPage)
                continue;
            long first = (long)p << PageShift;
            int n = (int)Math.Min(PageEntries, _entryCount - first);
            for (int i = 0; i < n; i++)
            {
                ulong raw = page[i];
                if ((raw & StateMask) < (ulong)BatState.FullyPresent)
                    continue; // a sector bitmap entry is stored only in state 6, also >= 6
                var e = new BatEntry(raw);
                bool isBitmap = (first + i) % period == ChunkRatio;
                if (isBitmap && e.State != BatState.FullyPresent)
                    continue;
                if (!e.FileOffsetRepresentable)
                    continue;
                if (!isBitmap)
                    stored++;
                if (e.FileOffset < fileLength)
                    end = Math.Max(end, e.FileOffset + (isBitmap ? VhdxConstants.SectorBitmapBlockSize : BlockSize));
                if (e.FileOffset < realLength)
                    reach = Math.Max(reach, e.FileOffset + StoredBytes(first + i, isBitmap));
                long unit = e.FileOffset / VhdxConstants.MiB;
                if (unit >= fileUnits)
                    continue; // beyond the file: refused when read
                long units = Math.Min(StoredUnits(first + i, isBitmap), fileUnits - unit);
                claimed ??= new ClaimMap(fileUnits);
                if (!claimed.Claim(unit, units))
                {
                    // Mark every unit this entry shares; the earlier claimant's units are among them.
                    shared ??= new ClaimMap(fileUnits);
                    for (long u = unit; u < unit + units; u++)
                    {
                        if (claimed.IsClaimed(u))
                            shared.Claim(u, 1);
                    }
                }
            }
        }
        storedBlocks = stored;
        storedEnd = end;
    }

    /// <summary>Bytes of the file the block an entry describes occupies (the last payload block may be shorter).</summary>
    public long StoredBytes(long index, bool isBitmap)
    {
        if (isBitmap)
            return VhdxConstants.SectorBitmapBlockSize;
        long block = index - index / (ChunkRatio + 1);
        return Math.Max(1, Math.Min(BlockSize, VirtualSize - block * BlockSize));
    }

    /// <summary>1 MiB units of the file the block an entry describes occupies (the last payload block may be shorter).</summary>
    public long StoredUnits(long index, bool isBitmap)
    {
        if (isBitmap)
            return VhdxConstants.SectorBitmapBlockSize / VhdxConstants.MiB;
        long block = index - index / (ChunkRatio + 1);
        long used = Math.Max(1, Math.Min(BlockSize, VirtualSize - block * BlockSize));
        return (used + VhdxConstants.MiB - 1) / VhdxConstants.MiB;
    }

    /// <summary>BAT index of payload block <paramref name="block"/>: i + i / chunkRatio.</summary>
    public long PayloadIndex(long block) => block + block / ChunkRatio;

    /// <summary>BAT index of the sector bitmap entry of chunk <paramref name="chunk"/>: k × (chunkRatio + 1) + chunkRatio.</summary>
    public long BitmapIndex(long chunk) => chunk * (ChunkRatio + 1) + ChunkRatio;

    /// <summary>True when <paramref name="index"/> holds a sector bitmap entry.</summary>
    public bool IsBitmapIndex(long index) => index % (ChunkRatio + 1) == ChunkRatio;

    public BatEntry this[long index]
    {
        get
        {
            if ((ulong)index >= (ulong)_entryCount)
                throw new IndexOutOfRangeException($"BAT entry {index} of {_entryCount}");
            return new(_pages[index >> PageShift][index & PageMask]);
        }
        set
        {
            if ((ulong)index >= (ulong)_entryCount)
                throw new IndexOutOfRangeException($"BAT entry {index} of {_entryCount}");
            ref ulong[] page = ref _pages[index >> PageShift];
            if (page == ZeroPage)
            {
                if (value.Raw == 0)
                    return;
                page = new ulong[PageEntries];
            }
            page[index & PageMask] = value.Raw;
        }
    }

    public BatEntry Payload(long block) => this[PayloadIndex(block)];

    /// <summary>The sector bitmap entry covering payload block <paramref name="block"/>, or null when the BAT has none (non-differencing tail).</summary>
    public long? BitmapIndexForBlock(long block)
    {
        long index = BitmapIndex(block / ChunkRatio);
        return index < _entryCount ? index : null;
    }

    /// <summary>On-disk bytes of the entries [first, first + count).</summary>
    public byte[] ToBytes(long first, int count)
    {
        var data = new byte[count * BatEntry.Size];
        for (int i = 0; i < count; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(i * BatEntry.Size), this[first + i].Raw);
        return data;
    }
}
