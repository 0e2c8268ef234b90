using System;
using System.Buffers.Binary;
using System.IO;
using System.IO.Compression;

namespace VmClone.Disks.Vmdk;

/// <summary>Types of the metadata markers of a streamOptimized extent (VMware 5.0 §"Stream-Optimized Compressed Sparse Extents").</summary>
internal enum MarkerType : uint
{
    EndOfStream = 0,
    GrainTable = 1,
    GrainDirectory = 2,
    Footer = 3,
}

/// <summary>
/// A marker of a streamOptimized extent. Grain marker: <c>u64 lba, u32 size</c> followed by
/// <c>size</c> bytes of zlib data, padded to a sector. Metadata marker: <c>u64 numSectors,
/// u32 size = 0, u32 type</c>, padded to one sector, followed by numSectors of metadata.
/// </summary>
internal readonly struct StreamMarker
{
    public const int OffValue = 0;   // u64: lba (grain) or numSectors (metadata)
    public const int OffSize = 8;    // u32: compressed bytes (grain) or 0 (metadata)
    public const int OffType = 12;   // u32: metadata marker type
    public const int GrainHeaderBytes = 12;

    public StreamMarker(ulong value, uint size, uint type)
    {
        Value = value;
        Size = size;
        Type = type;
    }

    public ulong Value { get; }

    public uint Size { get; }

    public uint Type { get; }

    public bool IsMetadata => Size == 0;

    public static StreamMarker Parse(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(b.Slice(OffValue)),
        BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(OffSize)),
        b.Length >= 16 ? BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(OffType)) : 0);

    /// <summary>
    /// Most compressed bytes a grain may take: deflate's worst case is the input plus 5 bytes
    /// per 16 KiB block, plus the zlib header and checksum; anything beyond is corruption.
    /// </summary>
    public static int MaxCompressedBytes(long grainBytes) => (int)(grainBytes + grainBytes / 1024 + 1024);

    /// <summary>
    /// Inflates one zlib-compressed grain into <paramref name="grain"/> (length = grain size).
    /// Output shorter than a grain is allowed (writers may shorten the last grain) and the rest
    /// is zero-filled; output longer than a grain, a bad zlib header or corrupt deflate data is
    /// a format error.
    /// </summary>
    /// When <paramref name="exactLength"/> is true (grain markers give the stream's exact size)
    /// the trailing Adler-32 of RFC 1950 must match the output: a truncated or damaged stream
    /// that still inflates to something is caught.
    public static void Inflate(byte[] compressed, int count, byte[] grain, string path, long fileOffset, bool exactLength)
    {
        // RFC 1950: CMF (method 8 = deflate, window ≤ 32 KiB), FLG (check bits, no preset dictionary).
        if (count < 2)
            throw new DiskFormatException(path, "compressed grain", "shorter than a zlib header", fileOffset);
        byte cmf = compressed[0];
        byte flg = compressed[1];
        if ((cmf & 0x0F) != 8 || (cmf >> 4) > 7 || ((cmf << 8) | flg) % 31 != 0 || (flg & 0x20) != 0)
            throw new DiskFormatException(path, "compressed grain", $"not a zlib stream (header bytes {cmf:x2} {flg:x2})", fileOffset);
        int total = 0;
        try
        {
            using var input = new MemoryStream(compressed, 2, count - 2, writable: false);
            using var inflater = new DeflateStream(input, CompressionMode.Decompress);
            while (total < grain.Length)
            {
                int n = inflater.Read(grain, total, grain.Length - total);
                if (n <= 0)
                    break;
                total += n;
            }
            if (total == grain.Length)
            {
                byte[] probe = new byte[1];
                if (inflater.Read(probe, 0, 1) > 0)
                    throw new DiskFormatException(path, "compressed grain", $"inflates to more than one grain ({grain.Length} bytes)", fileOffset);
            }
        }
        catch (InvalidDataException ex)
        {
            throw new DiskFormatException(path, "compressed grain", "the deflate data is corrupt: " + ex.Message, fileOffset, ex);
        }
        catch (IOException ex) when (ex is not VirtualDiskException)
        {
            throw new DiskFormatException(path, "compressed grain", "the deflate data cannot be inflated: " + ex.Message, fileOffset, ex);
        }
        if (exactLength)
        {
            if (count < 6)
                throw new DiskFormatException(path, "compressed grain", "too short to hold a zlib stream and its checksum", fileOffset);
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(compressed, count - 4, 4));
            uint actual = Adler32(grain, total);
            if (stored != actual)
                throw new DiskFormatException(path, "compressed grain", $"the zlib checksum does not match (stored {stored:x8}, computed {actual:x8}): the grain is truncated or damaged", fileOffset);
        }
        if (total < grain.Length)
            Array.Clear(grain, total, grain.Length - total);
    }

    /// <summary>Adler-32 (RFC 1950 §9) of the first <paramref name="count"/> bytes.</summary>
    public static uint Adler32(byte[] data, int count)
    {
        const uint Mod = 65521;
        uint a = 1, b = 0;
        int i = 0;
        while (i < count)
        {
            int block = Math.Min(count - i, 5552); // largest run without overflow before the modulo
            for (int end = i + block; i < end; i++)
            {
                a += data[i];
                b += a;
            }
            a %= Mod;
            b %= Mod;
        }
        return (b << 16) | a;
    }
}
