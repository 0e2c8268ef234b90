using System;
using System.Buffers.Binary;

namespace VmClone.Disks.Vmdk;

/// <summary>
/// The 512-byte header of a hosted sparse extent (<c>KDMV</c>), VMware "Virtual Disk Format
/// 1.1" §"Hosted Sparse Extent Header" / 5.0 §"SparseExtentHeader". Packed, little-endian.
/// The same structure is repeated as the footer of a streamOptimized extent (GD_AT_END).
/// </summary>
internal sealed class SparseExtentHeader
{
    public const int Size = 512;
    public const uint Magic = 0x564D444B; // "KDMV" read as a little-endian u32

    // Named offsets (spec table).
    public const int OffMagic = 0;
    public const int OffVersion = 4;
    public const int OffFlags = 8;
    public const int OffCapacity = 12;
    public const int OffGrainSize = 20;
    public const int OffDescriptorOffset = 28;
    public const int OffDescriptorSize = 36;
    public const int OffNumGTEsPerGT = 44;
    public const int OffRgdOffset = 48;
    public const int OffGdOffset = 56;
    public const int OffOverHead = 64;
    public const int OffUncleanShutdown = 72;
    public const int OffNewlineTest = 73;
    public const int OffCompressAlgorithm = 77;

    // Flag bits.
    public const uint FlagValidNewlineTest = 1u << 0;
    public const uint FlagRedundantGd = 1u << 1;
    public const uint FlagZeroedGrainGte = 1u << 2;
    public const uint FlagCompressed = 1u << 16;
    public const uint FlagMarkers = 1u << 17;

    /// <summary>gdOffset value meaning "the real grain directory offset is in the footer" (streamOptimized).</summary>
    public const ulong GdAtEnd = 0xFFFFFFFFFFFFFFFFUL;

    public const ushort CompressionNone = 0;
    public const ushort CompressionDeflate = 1;

    // Sanity bounds for untrusted files.
    /// <summary>Largest grain accepted: 1 MiB (VMware writes 64 KiB; qemu allows larger, none in practice beyond this).</summary>
    public const ulong MaxGrainSectors = 2048;
    /// <summary>VMDK's limit is just under 64 TiB (2 TiB for hosted sparse before 5.0); anything above is refused.</summary>
    public const ulong MaxCapacitySectors = 1UL << 37;
    /// <summary>Largest embedded descriptor accepted: 1 MiB.</summary>
    public const ulong MaxDescriptorSectors = 2048;

    /// <summary>1, 2 (zeroed-grain GTEs) or 3 (streamOptimized from newer writers).</summary>
    public uint Version { get; set; } = 1;

    /// <summary>Bit 0 newline test valid; bit 1 redundant GD; bit 2 zeroed-grain GTEs; bit 16 compressed grains; bit 17 markers.</summary>
    public uint Flags { get; set; } = FlagValidNewlineTest | FlagRedundantGd;

    /// <summary>Capacity of this extent in sectors; need not be a multiple of the grain.</summary>
    public ulong Capacity { get; set; }

    /// <summary>Grain size in sectors: a power of two greater than 8 (VMware default 128).</summary>
    public ulong GrainSize { get; set; } = 128;

    /// <summary>Sector of the embedded descriptor; 0 when the extent has none (split images).</summary>
    public ulong DescriptorOffset { get; set; }

    /// <summary>Sectors reserved for the embedded descriptor.</summary>
    public ulong DescriptorSize { get; set; }

    /// <summary>Entries per grain table; 512 in every known writer.</summary>
    public uint NumGTEsPerGT { get; set; } = 512;

    /// <summary>Sector of the redundant grain directory (valid when flag bit 1 is set).</summary>
    public ulong RgdOffset { get; set; }

    /// <summary>Sector of the grain directory, or <see cref="GdAtEnd"/>.</summary>
    public ulong GdOffset { get; set; }

    /// <summary>Sectors of metadata at the start of the file; grains start at or after it.</summary>
    public ulong OverHead { get; set; }

    /// <summary>Set by VMware while the extent is open for writing; a set value on open means the last writer did not close it.</summary>
    public bool UncleanShutdown { get; set; }

    /// <summary>0 none, 1 deflate (zlib stream per grain).</summary>
    public ushort CompressAlgorithm { get; set; }

    public bool HasRedundantGd => (Flags & FlagRedundantGd) != 0;

    public bool HasZeroedGrainGtes => (Flags & FlagZeroedGrainGte) != 0;

    public bool IsCompressed => (Flags & FlagCompressed) != 0;

    public bool HasMarkers => (Flags & FlagMarkers) != 0;

    public long GrainBytes => (long)GrainSize * 512;

    /// <summary>Sectors covered by one grain table.</summary>
    public ulong SectorsPerGt => GrainSize * NumGTEsPerGT;

    /// <summary>numGDEs = ceil(capacity / (numGTEsPerGT × grainSize)), spec B.2.</summary>
    public ulong NumGdEntries => (Capacity + SectorsPerGt - 1) / SectorsPerGt;

    /// <summary>Bytes of one grain table.</summary>
    public int GtBytes => (int)NumGTEsPerGT * 4;

    /// <summary>
    /// Parses and validates a header (or footer). Checks that do not depend on the file
    /// length are done here; <paramref name="fileLength"/> bounds the descriptor and the GDs.
    /// </summary>
    public static SparseExtentHeader Parse(ReadOnlySpan<byte> b, string path, long fileOffset, long fileLength, string structure = "sparse extent header")
    {
        if (b.Length < Size)
            throw new DiskFormatException(path, structure, "shorter than 512 bytes", fileOffset);
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(OffMagic));
        if (magic != Magic)
            throw new DiskFormatException(path, structure, $"bad signature 0x{magic:x8} (expected KDMV)", fileOffset);
        var h = new SparseExtentHeader
        {
            Version = BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(OffVersion)),
            Flags = BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(OffFlags)),
            Capacity = BinaryPrimitives.ReadUInt64LittleEndian(b.Slice(OffCapacity)),
            GrainSize = BinaryPrimitives.ReadUInt64LittleEndian(b.Slice(OffGrainSize)),
            DescriptorOffset = BinaryPrimitives.ReadUInt64LittleEndian(b.Slice(OffDescriptorOffset)),
            DescriptorSize = BinaryPrimitives.ReadUInt64LittleEndian(b.Slice(OffDescriptorSize)),
            NumGTEsPerGT = BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(OffNumGTEsPerGT)),
            RgdOffset = BinaryPrimitives.ReadUInt64LittleEndian(b.Slice(OffRgdOffset)),
            GdOffset = BinaryPrimitives.ReadUInt64LittleEndian(b.Slice(OffGdOffset)),
            OverHead = BinaryPrimitives.ReadUInt64LittleEndian(b.Slice(OffOverHead)),
            UncleanShutdown = b[OffUncleanShutdown] != 0,
            CompressAlgorithm = BinaryPrimitives.ReadUInt16LittleEndian(b.Slice(OffCompressAlgorithm)),
        };

        void Fail(string reason) => throw new DiskFormatException(path, structure, reason, fileOffset);

        // version: 1, 2 or 3 are defined; anything else is a format we do not know.
        if (h.Version < 1 || h.Version > 3)
            Fail($"unsupported version {h.Version} (1, 2 and 3 are known)");
        // flag bit 0: the four newline-test bytes must be intact ("\n \r\n"); FTP ASCII mode corrupts them.
        if ((h.Flags & FlagValidNewlineTest) != 0 &&
            (b[OffNewlineTest] != (byte)'\n' || b[OffNewlineTest + 1] != (byte)' ' || b[OffNewlineTest + 2] != (byte)'\r' || b[OffNewlineTest + 3] != (byte)'\n'))
            Fail("the newline test bytes are damaged (the file was probably transferred in text mode)");
        // grainSize: power of two, > 8 sectors (spec); bounded by us.
        if (h.GrainSize <= 8 || h.GrainSize > MaxGrainSectors || (h.GrainSize & (h.GrainSize - 1)) != 0)
            Fail($"grain size of {h.GrainSize} sectors is not a power of two between 16 and {MaxGrainSectors}");
        // numGTEsPerGT: 512 in the spec; other powers of two are tolerated within sane bounds.
        if (h.NumGTEsPerGT < 32 || h.NumGTEsPerGT > 4096 || (h.NumGTEsPerGT & (h.NumGTEsPerGT - 1)) != 0)
            Fail($"{h.NumGTEsPerGT} entries per grain table (expected 512)");
        // capacity: > 0, at most ~64 TiB.
        if (h.Capacity == 0 || h.Capacity > MaxCapacitySectors)
            Fail($"capacity of {h.Capacity} sectors is outside 1..{MaxCapacitySectors} (64 TiB)");
        // compressAlgorithm: compressed grains need deflate.
        if (h.IsCompressed && h.CompressAlgorithm != CompressionDeflate)
            Fail($"compressed grains with unknown algorithm {h.CompressAlgorithm} (only 1 = deflate is defined)");
        if (!h.IsCompressed && h.CompressAlgorithm > CompressionDeflate)
            Fail($"unknown compression algorithm {h.CompressAlgorithm}");
        // descriptor: inside the file, bounded.
        if (h.DescriptorOffset != 0)
        {
            if (h.DescriptorSize == 0 || h.DescriptorSize > MaxDescriptorSectors)
                Fail($"embedded descriptor size of {h.DescriptorSize} sectors is outside 1..{MaxDescriptorSectors}");
            if (h.DescriptorOffset > (ulong)fileLength / 512)
                Fail($"embedded descriptor at sector {h.DescriptorOffset} lies beyond the end of the file ({fileLength} bytes)");
        }
        // numGDEs bounded so the GD array cannot be a huge allocation (with 64 KiB grains 64 TiB needs 2^21).
        if (h.NumGdEntries > 1UL << 22)
            Fail($"{h.NumGdEntries} grain directory entries (capacity {h.Capacity} with {h.SectorsPerGt}-sector tables) is more than supported");
        return h;
    }

    /// <summary>Checks the grain directories lie inside a file of <paramref name="fileLength"/> bytes.</summary>
    public void ValidateDirectories(string path, long fileOffset, long fileLength, string structure = "sparse extent header")
    {
        ulong gdBytes = NumGdEntries * 4;
        if (GdOffset == 0 || GdOffset == GdAtEnd || GdOffset > (ulong)fileLength / 512 || GdOffset * 512 + gdBytes > (ulong)fileLength)
            throw new DiskFormatException(path, structure, $"grain directory at sector {GdOffset} ({NumGdEntries} entries) does not lie inside the file ({fileLength} bytes)", fileOffset);
        if (HasRedundantGd && (RgdOffset == 0 || RgdOffset > (ulong)fileLength / 512 || RgdOffset * 512 + gdBytes > (ulong)fileLength))
            throw new DiskFormatException(path, structure, $"redundant grain directory at sector {RgdOffset} ({NumGdEntries} entries) does not lie inside the file ({fileLength} bytes)", fileOffset);
    }

    /// <summary>Serializes the header (padding zero, newline test bytes as the spec wants them).</summary>
    public byte[] ToBytes()
    {
        var b = new byte[Size];
        Span<byte> s = b;
        BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(OffMagic), Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(OffVersion), Version);
        BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(OffFlags), Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(s.Slice(OffCapacity), Capacity);
        BinaryPrimitives.WriteUInt64LittleEndian(s.Slice(OffGrainSize), GrainSize);
        BinaryPrimitives.WriteUInt64LittleEndian(s.Slice(OffDescriptorOffset), DescriptorOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(s.Slice(OffDescriptorSize), DescriptorSize);
        BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(OffNumGTEsPerGT), NumGTEsPerGT);
        BinaryPrimitives.WriteUInt64LittleEndian(s.Slice(OffRgdOffset), RgdOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(s.Slice(OffGdOffset), GdOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(s.Slice(OffOverHead), OverHead);
        b[OffUncleanShutdown] = UncleanShutdown ? (byte)1 : (byte)0;
        b[OffNewlineTest] = (byte)'\n';
        b[OffNewlineTest + 1] = (byte)' ';
        b[OffNewlineTest + 2] = (byte)'\r';
        b[OffNewlineTest + 3] = (byte)'\n';
        BinaryPrimitives.WriteUInt16LittleEndian(s.Slice(OffCompressAlgorithm), CompressAlgorithm);
        return b;
    }
}
