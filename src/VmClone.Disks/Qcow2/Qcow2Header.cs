using System;
using System.Buffers.Binary;

namespace VmClone.Disks.Qcow2;

/// <summary>
/// The qcow2 image header at offset 0 (qcow2.rst "Header"). Big-endian. Version 2 ends at byte
/// 72; version 3 adds the feature words, the refcount order and its own length, which may cover
/// fields newer than this reader (kept verbatim in <see cref="Raw"/> so a rewrite preserves them).
/// </summary>
internal sealed class Qcow2Header
{
    /// <summary>"QFI\xfb".</summary>
    public const uint Magic = 0x514649FB;

    /// <summary>Bytes of a version 2 header.</summary>
    public const int V2Length = 72;

    /// <summary>Smallest version 3 header (up to header_length).</summary>
    public const int V3MinLength = 104;

    /// <summary>Version 3 header with the compression type byte (qemu ≥ 5.1 writes 112).</summary>
    public const int V3Length = 112;

    /// <summary>Longest backing file name qemu accepts (qcow2.rst: "must be less than 1024").</summary>
    public const int MaxBackingNameBytes = 1023;

    // Offsets of the fields (qcow2.rst "Header").
    private const int VersionAt = 4, BackingOffsetAt = 8, BackingSizeAt = 16, ClusterBitsAt = 20, SizeAt = 24,
        CryptAt = 32, L1SizeAt = 36, L1OffsetAt = 40, RefcountTableOffsetAt = 48, RefcountTableClustersAt = 56,
        SnapshotCountAt = 60, SnapshotsOffsetAt = 64, IncompatibleAt = 72, CompatibleAt = 80, AutoclearAt = 88,
        RefcountOrderAt = 96, HeaderLengthAt = 100, CompressionTypeAt = 104;

    private Qcow2Header(byte[] raw)
    {
        Raw = raw;
    }

    /// <summary>The header bytes as read (its whole header_length), unknown trailing fields included.</summary>
    public byte[] Raw { get; }

    /// <summary>
    /// The refcount table's two fields (offset and clusters, bytes 48 to 59) as they are to be
    /// written: one 12-byte write inside the first sector, which a cut-off leaves old or new.
    /// </summary>
    public static byte[] ComposeRefcountTable(ulong offset, uint clusters)
    {
        byte[] fields = new byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(fields, offset);
        BinaryPrimitives.WriteUInt32BigEndian(fields.AsSpan(8), clusters);
        return fields;
    }

    /// <summary>Where the header now says the refcount table lies: after <see cref="ComposeRefcountTable"/>'s bytes were written at <see cref="RefcountTableOffsetAt"/>.</summary>
    public void MovedRefcountTable(ulong offset, uint clusters)
    {
        ComposeRefcountTable(offset, clusters).CopyTo(Raw, RefcountTableOffsetAt);
        RefcountTableOffset = offset;
        RefcountTableClusters = clusters;
    }

    /// <summary>Offset of the refcount table's fields in the header.</summary>
    public const int RefcountTableFieldsAt = RefcountTableOffsetAt;

    /// <summary>2 (compat 0.10) or 3 (compat 1.1).</summary>
    public uint Version { get; private set; }

    /// <summary>Where the backing file name lies (0: no backing file).</summary>
    public ulong BackingFileOffset { get; private set; }

    /// <summary>Length of the backing file name in bytes, no NUL.</summary>
    public uint BackingFileSize { get; private set; }

    /// <summary>log2 of the cluster size; 9 (512 B) to 21 (2 MiB) as qemu accepts.</summary>
    public int ClusterBits { get; private set; }

    public long ClusterSize => 1L << ClusterBits;

    /// <summary>Virtual disk size in bytes.</summary>
    public ulong Size { get; private set; }

    /// <summary>0 none, 1 AES, 2 LUKS.</summary>
    public uint CryptMethod { get; private set; }

    /// <summary>Entries in the active L1 table.</summary>
    public uint L1Size { get; private set; }

    public ulong L1TableOffset { get; private set; }

    public ulong RefcountTableOffset { get; private set; }

    public uint RefcountTableClusters { get; private set; }

    public uint SnapshotCount { get; private set; }

    public ulong SnapshotsOffset { get; private set; }

    public ulong IncompatibleFeatures { get; private set; }

    public ulong CompatibleFeatures { get; private set; }

    public ulong AutoclearFeatures { get; private set; }

    /// <summary>log2 of the refcount width in bits (0..6); version 2 always 4 (16 bits).</summary>
    public int RefcountOrder { get; private set; }

    /// <summary>Bytes of the header, where the header extensions begin.</summary>
    public int HeaderLength { get; private set; }

    /// <summary>0 deflate, 1 zstd.</summary>
    public byte CompressionType { get; private set; }

    // Incompatible feature bits (qcow2.rst "incompatible_features").
    public const int DirtyBit = 0, CorruptBit = 1, ExternalDataBit = 2, CompressionTypeBit = 3, ExtendedL2Bit = 4;

    /// <summary>Every incompatible bit this reader understands.</summary>
    public const ulong KnownIncompatible = (1UL << DirtyBit) | (1UL << CorruptBit) | (1UL << ExternalDataBit) | (1UL << CompressionTypeBit) | (1UL << ExtendedL2Bit);

    /// <summary>Autoclear bit 0: the persistent bitmaps are consistent; bit 1: the external data file is raw (guest offset = host offset).</summary>
    public const int BitmapsAutoclearBit = 0, RawDataAutoclearBit = 1;

    public bool HasIncompatible(int bit) => (IncompatibleFeatures & (1UL << bit)) != 0;

    public bool IsDirty => HasIncompatible(DirtyBit);

    public bool IsCorrupt => HasIncompatible(CorruptBit);

    public bool HasExternalData => HasIncompatible(ExternalDataBit);

    public bool HasExtendedL2 => HasIncompatible(ExtendedL2Bit);

    /// <summary>Bytes of one L2 entry: 8, or 16 with extended L2 (the second word a subcluster bitmap).</summary>
    public int L2EntryBytes => HasExtendedL2 ? 16 : 8;

    /// <summary>Width of one refcount in bits.</summary>
    public int RefcountBits => 1 << RefcountOrder;

    /// <summary>
    /// Parses and checks the header. <paramref name="head"/> holds the file's first
    /// <paramref name="available"/> bytes (at least the header, when the file has one);
    /// <paramref name="fileLength"/> bounds what offsets may claim.
    /// </summary>
    public static Qcow2Header Parse(string path, byte[] head, int available, long fileLength)
    {
        if (available < V2Length)
            throw new DiskFormatException(path, "qcow2 header", $"the file has {available} bytes, fewer than the {V2Length} of a header", 0);
        ReadOnlySpan<byte> b = head.AsSpan(0, available);
        if (BinaryPrimitives.ReadUInt32BigEndian(b) != Magic)
            throw new DiskFormatException(path, "qcow2 header", "no QFI\\xfb signature", 0);
        uint version = BinaryPrimitives.ReadUInt32BigEndian(b.Slice(VersionAt));
        if (version is not (2 or 3))
            throw new DiskFormatException(path, "qcow2 header", $"version {version} is not supported (only 2 and 3 exist)", VersionAt);

        int headerLength = V2Length;
        if (version == 3)
        {
            if (available < V3MinLength)
                throw new DiskFormatException(path, "qcow2 header", $"a version 3 header needs {V3MinLength} bytes; the file has {available}", 0);
            uint declared = BinaryPrimitives.ReadUInt32BigEndian(b.Slice(HeaderLengthAt));
            // qcow2.rst: header_length is at least 104 and a multiple of 8 (qemu ≥ 5.1); it must fit the first cluster.
            if (declared < V3MinLength || declared % 8 != 0 || declared > available)
                throw new DiskFormatException(path, "qcow2 header", $"header_length {declared} is not a multiple of 8 between {V3MinLength} and the {available} bytes of the first cluster", HeaderLengthAt);
            headerLength = (int)declared;
        }

        var h = new Qcow2Header(b.Slice(0, headerLength).ToArray())
        {
            Version = version,
            BackingFileOffset = BinaryPrimitives.ReadUInt64BigEndian(b.Slice(BackingOffsetAt)),
            BackingFileSize = BinaryPrimitives.ReadUInt32BigEndian(b.Slice(BackingSizeAt)),
            ClusterBits = (int)BinaryPrimitives.ReadUInt32BigEndian(b.Slice(ClusterBitsAt)),
            Size = BinaryPrimitives.ReadUInt64BigEndian(b.Slice(SizeAt)),
            CryptMethod = BinaryPrimitives.ReadUInt32BigEndian(b.Slice(CryptAt)),
            L1Size = BinaryPrimitives.ReadUInt32BigEndian(b.Slice(L1SizeAt)),
            L1TableOffset = BinaryPrimitives.ReadUInt64BigEndian(b.Slice(L1OffsetAt)),
            RefcountTableOffset = BinaryPrimitives.ReadUInt64BigEndian(b.Slice(RefcountTableOffsetAt)),
            RefcountTableClusters = BinaryPrimitives.ReadUInt32BigEndian(b.Slice(RefcountTableClustersAt)),
            SnapshotCount = BinaryPrimitives.ReadUInt32BigEndian(b.Slice(SnapshotCountAt)),
            SnapshotsOffset = BinaryPrimitives.ReadUInt64BigEndian(b.Slice(SnapshotsOffsetAt)),
            HeaderLength = headerLength,
            RefcountOrder = 4,
        };
        if (version == 3)
        {
            h.IncompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(b.Slice(IncompatibleAt));
            h.CompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(b.Slice(CompatibleAt));
            h.AutoclearFeatures = BinaryPrimitives.ReadUInt64BigEndian(b.Slice(AutoclearAt));
            h.RefcountOrder = (int)Math.Min(int.MaxValue, BinaryPrimitives.ReadUInt32BigEndian(b.Slice(RefcountOrderAt)));
            if (headerLength > CompressionTypeAt)
                h.CompressionType = b[CompressionTypeAt];
        }
        h.Validate(path, fileLength);
        return h;
    }

    /// <summary>The checks qcow2.rst and qemu's qcow2_do_open make on the fields themselves; tables are checked by their readers.</summary>
    private void Validate(string path, long fileLength)
    {
        if (ClusterBits < 9 || ClusterBits > 21)
            throw new DiskFormatException(path, "qcow2 header", $"cluster_bits {ClusterBits} is outside 9..21 (512 bytes to 2 MiB clusters)", ClusterBitsAt);
        if (HasExtendedL2 && ClusterBits < 14)
            throw new DiskFormatException(path, "qcow2 header", $"extended L2 entries need clusters of at least 16 KiB, not {ClusterSize} bytes", ClusterBitsAt);
        if (RefcountOrder > 6)
            throw new DiskFormatException(path, "qcow2 header", $"refcount_order {RefcountOrder} is above 6 (64-bit refcounts)", RefcountOrderAt);
        if (Size > long.MaxValue / 2)
            throw new DiskFormatException(path, "qcow2 header", $"the virtual size {Size} is beyond any disk", SizeAt);
        if (BackingFileOffset != 0 && BackingFileSize > MaxBackingNameBytes)
            throw new DiskFormatException(path, "qcow2 header", $"the backing file name is {BackingFileSize} bytes long; at most {MaxBackingNameBytes} are allowed", BackingSizeAt);
        bool compressionBit = HasIncompatible(CompressionTypeBit);
        if (compressionBit != (CompressionType != 0))
            throw new DiskFormatException(path, "qcow2 header",
                compressionBit ? "the compression-type bit is set but the compression type is deflate (0)" : $"compression type {CompressionType} is set without the compression-type bit",
                CompressionTypeAt);
        if (CompressionType > 1)
            throw new DiskFormatException(path, "qcow2 header", $"compression type {CompressionType} is unknown (0 deflate, 1 zstd)", CompressionTypeAt);
        CheckRegion(path, "refcount table", RefcountTableOffset, (ulong)RefcountTableClusters * (ulong)ClusterSize, RefcountTableOffsetAt, fileLength);
        if (RefcountTableClusters == 0)
            throw new DiskFormatException(path, "qcow2 header", "the refcount table has no clusters", RefcountTableClustersAt);
        CheckRegion(path, "L1 table", L1TableOffset, (ulong)L1Size * 8, L1OffsetAt, fileLength);
        if (SnapshotCount > 0)
            CheckRegion(path, "snapshot table", SnapshotsOffset, (ulong)SnapshotCount * 40, SnapshotsOffsetAt, fileLength);
    }

    /// <summary>
    /// A table the header places: cluster aligned and inside the file. A file may end inside its
    /// last cluster (qemu's own files often do), so the end is judged against the length rounded
    /// up to a whole cluster.
    /// </summary>
    private void CheckRegion(string path, string what, ulong offset, ulong length, int fieldAt, long fileLength)
    {
        if (offset % (ulong)ClusterSize != 0)
            throw new DiskFormatException(path, "qcow2 header", $"the {what} offset {offset} is not aligned to the {ClusterSize}-byte cluster", fieldAt);
        ulong limit = ((ulong)fileLength + (ulong)ClusterSize - 1) & ~((ulong)ClusterSize - 1);
        if (length > 0 && (offset == 0 || offset >= (ulong)fileLength || length > limit - offset))
            throw new DiskFormatException(path, what, $"{length} bytes at {offset} reach past the end of the file ({fileLength} bytes)", (long)Math.Min(offset, long.MaxValue));
    }

    /// <summary>
    /// The header of a new image, as qemu-img create writes it: version 3 with the 112-byte
    /// header (compression type deflate) or version 2 with 72 bytes; no snapshots.
    /// </summary>
    public static byte[] Compose(uint version, int clusterBits, ulong size, uint l1Size, ulong l1Offset, ulong refcountTableOffset,
        uint refcountTableClusters, ulong incompatible, int refcountOrder, ulong backingOffset, uint backingSize)
    {
        byte[] h = new byte[version == 2 ? V2Length : V3Length];
        Span<byte> b = h;
        BinaryPrimitives.WriteUInt32BigEndian(b, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(b.Slice(VersionAt), version);
        BinaryPrimitives.WriteUInt64BigEndian(b.Slice(BackingOffsetAt), backingOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b.Slice(BackingSizeAt), backingSize);
        BinaryPrimitives.WriteUInt32BigEndian(b.Slice(ClusterBitsAt), (uint)clusterBits);
        BinaryPrimitives.WriteUInt64BigEndian(b.Slice(SizeAt), size);
        BinaryPrimitives.WriteUInt32BigEndian(b.Slice(L1SizeAt), l1Size);
        BinaryPrimitives.WriteUInt64BigEndian(b.Slice(L1OffsetAt), l1Offset);
        BinaryPrimitives.WriteUInt64BigEndian(b.Slice(RefcountTableOffsetAt), refcountTableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b.Slice(RefcountTableClustersAt), refcountTableClusters);
        if (version >= 3)
        {
            BinaryPrimitives.WriteUInt64BigEndian(b.Slice(IncompatibleAt), incompatible);
            BinaryPrimitives.WriteUInt32BigEndian(b.Slice(RefcountOrderAt), (uint)refcountOrder);
            BinaryPrimitives.WriteUInt32BigEndian(b.Slice(HeaderLengthAt), V3Length);
        }
        return h;
    }
}
