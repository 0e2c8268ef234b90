namespace VmClone.Disks.Qcow2;

/// <summary>How an L2 entry describes its guest cluster (qcow2.rst "Cluster mapping").</summary>
internal enum ClusterKind
{
    /// <summary>No host cluster: reads go to the backing file (zeros without one), subcluster bitmaps aside.</summary>
    Unallocated,
    /// <summary>Zero flag set (version 3, standard entries): reads as zeros, the backing file hidden.</summary>
    Zero,
    /// <summary>A host cluster holds the data (or, with extended L2, the subclusters its bitmap marks).</summary>
    Normal,
    /// <summary>The data is compressed at a byte offset, in whole or part 512-byte sectors.</summary>
    Compressed,
}

/// <summary>
/// One L2 entry: the 64-bit cluster descriptor and, with extended L2, the subcluster bitmap
/// (bits 0–31 allocated, 32–63 reads as zero, bit i for subcluster i).
/// </summary>
internal readonly struct L2Entry
{
    /// <summary>Bit 63: refcount exactly one (standard clusters in the active tables).</summary>
    public const ulong CopiedFlag = 1UL << 63;

    /// <summary>Bit 62: a compressed cluster.</summary>
    public const ulong CompressedFlag = 1UL << 62;

    /// <summary>Bit 0 of a standard descriptor (version 3 without extended L2): reads as zeros.</summary>
    public const ulong ZeroFlag = 1;

    /// <summary>Bits 9–55: the host cluster offset of a standard descriptor.</summary>
    public const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00UL;

    /// <summary>Bits a standard descriptor must leave zero: 1–8 and 56–61 (bit 0 too where it has no meaning).</summary>
    public const ulong StandardReserved = 0x3F00_0000_0000_01FEUL;

    public L2Entry(ulong word, ulong bitmap)
    {
        Word = word;
        Bitmap = bitmap;
    }

    public ulong Word { get; }

    public ulong Bitmap { get; }

    /// <summary>Subclusters (of 32) whose allocated bit is set.</summary>
    public uint AllocatedBits => (uint)Bitmap;

    /// <summary>Subclusters whose reads-as-zero bit is set.</summary>
    public uint ZeroBits => (uint)(Bitmap >> 32);

    public bool IsCompressed => (Word & CompressedFlag) != 0;

    /// <summary>Host offset of a standard entry's cluster (0 when none).</summary>
    public long HostOffset => (long)(Word & OffsetMask);

    /// <summary>The kind, for an image with (<paramref name="zeroFlagMeaningful"/>) or without a meaningful bit 0, and whether an external data file lets offset 0 be a cluster.</summary>
    public ClusterKind Kind(bool zeroFlagMeaningful, bool externalData)
    {
        if (IsCompressed)
            return ClusterKind.Compressed;
        if (zeroFlagMeaningful && (Word & ZeroFlag) != 0)
            return ClusterKind.Zero;
        if (HostOffset != 0)
            return ClusterKind.Normal;
        // qcow2.rst: offset 0 names a cluster only with an external data file and bit 63 set.
        return externalData && (Word & CopiedFlag) != 0 ? ClusterKind.Normal : ClusterKind.Unallocated;
    }

    /// <summary>Width of the compressed descriptor's offset field: x = 62 − (cluster_bits − 8).</summary>
    public static int CompressedOffsetBits(int clusterBits) => 62 - (clusterBits - 8);

    /// <summary>Byte offset in the file where a compressed cluster's data begins.</summary>
    public long CompressedOffset(int clusterBits) => (long)(Word & ((1UL << CompressedOffsetBits(clusterBits)) - 1));

    /// <summary>
    /// Bytes the compressed data may span: the sector holding the offset plus the extra sectors
    /// the descriptor counts (a field cluster_bits − 8 wide), less the part of the first sector
    /// before the offset.
    /// </summary>
    public long CompressedLength(int clusterBits)
    {
        int x = CompressedOffsetBits(clusterBits);
        long extraSectors = (long)((Word >> x) & ((1UL << (clusterBits - 8)) - 1));
        return (extraSectors + 1) * 512 - (CompressedOffset(clusterBits) & 511);
    }
}
