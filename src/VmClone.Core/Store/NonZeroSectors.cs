using System;
using System.Buffers;
using System.Threading;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// How much of a standalone layer no longer reads as zeros, to the 512-byte sector: what such a
/// volume's DivergedBytes is, its base being empty. Only the runs the layer's file stores are
/// read, through one pooled buffer, so the cost follows what the file holds, never its virtual size.
/// </summary>
internal static class NonZeroSectors
{
    /// <summary>The unit counted, whatever the layer's own sector size: the finest any format records.</summary>
    public const int SectorSize = 512;

    // One read's worth: large enough that a stored block is read in few calls, small enough to
    // be pooled and reused for every run of every volume.
    private const int ChunkSize = 1 << 20;

    /// <summary>
    /// Bytes of the 512-byte sectors of <paramref name="layer"/> that its own file stores
    /// (<see cref="ExtentKind.Data"/>) and that hold a byte other than zero (the last sector of a
    /// size not a multiple of 512 counts its length). What a layer states zero, or leaves to a
    /// parent, is not read.
    /// </summary>
    public static long Count(DiskLayer layer, CancellationToken cancellationToken = default)
    {
        long size = layer.VirtualSize;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            var tally = new Tally(size);
            long position = 0;
            while (position < size)
            {
                LayerExtent extent = layer.GetExtent(position, size - position);
                long length = Math.Max(1, Math.Min(extent.Length, size - position));
                if (extent.Kind == ExtentKind.Data)
                    CountRun(layer, position, position + length, buffer, ref tally, cancellationToken);
                position += length;
            }
            return tally.Bytes;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void CountRun(DiskLayer layer, long start, long end, byte[] buffer, ref Tally tally, CancellationToken cancellationToken)
    {
        int chunk = Math.Min(buffer.Length, ChunkSize) / SectorSize * SectorSize;
        long at = start;
        while (at < end)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // Chunks end on sector boundaries, so a sector is seen whole unless the run itself
            // starts or ends inside it.
            long stop = Math.Min(end, (at / SectorSize * SectorSize) + chunk);
            int count = (int)(stop - at);
            layer.ReadData(at, buffer, 0, count);
            ReadOnlySpan<byte> read = new(buffer, 0, count);
            at = stop;
            // Most of a stored block is usually zeros: a chunk that is all zero is passed at once.
            if (ZeroBytes.All(read))
                continue;
            long sectorStart = stop - count;
            while (!read.IsEmpty)
            {
                int inSector = (int)Math.Min(read.Length, SectorSize - (sectorStart % SectorSize));
                if (!ZeroBytes.All(read.Slice(0, inSector)))
                    tally.Add(sectorStart / SectorSize);
                read = read.Slice(inSector);
                sectorStart += inSector;
            }
        }
    }

    /// <summary>Sectors found non-zero, each counted once (runs that split a sector both see it).</summary>
    private struct Tally
    {
        private readonly long _size;
        private long _last;

        public Tally(long size)
        {
            _size = size;
            _last = -1;
            Bytes = 0;
        }

        public long Bytes { get; private set; }

        public void Add(long sector)
        {
            if (sector == _last)
                return;
            _last = sector;
            Bytes += Math.Min(SectorSize, _size - (sector * SectorSize));
        }
    }
}

/// <summary>
/// Which standalone volumes a description reads to count their non-zero sectors
/// (<see cref="NonZeroSectors"/>). Any other standalone volume shows the bytes its file stores,
/// unread: an upper bound of that count. A volume over a parent is always sector-exact, from its
/// own tables.
/// </summary>
internal enum StandaloneCounting
{
    /// <summary>None: a plan's checks, Get-VmBase and Test-VmStore read no volume's content.</summary>
    None,

    /// <summary>
    /// The system and temporary volumes, whose divergence a clone's own DivergedBytes sums
    /// (Get-VmClone, a command's -PassThru); never a data volume, which a fleet command would
    /// otherwise read for every clone.
    /// </summary>
    CloneTotal,

    /// <summary>Every volume described (Get-VmVolume, which shows each one's figure).</summary>
    Every,
}

internal static class StandaloneCountingExtensions
{
    /// <summary>True when a standalone volume of <paramref name="type"/> is counted.</summary>
    public static bool Counts(this StandaloneCounting counting, VolumeType type) =>
        counting == StandaloneCounting.Every || (counting == StandaloneCounting.CloneTotal && type != VolumeType.Data);
}
