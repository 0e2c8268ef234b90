using System;
using System.Buffers.Binary;
using System.IO;
using System.IO.Compression;
using ZstdSharp;

namespace VmClone.Disks.Qcow2;

/// <summary>
/// Inflates compressed clusters (qcow2.rst "Compressed Clusters Descriptor"): raw deflate
/// (no zlib header) for compression type 0, one zstd frame for type 1. The input is bounded by
/// the descriptor's sector count and the file's end, the output by one cluster, so a stream
/// that never ends or a bomb cannot run on; one that would produce more than a cluster, or
/// stops short of one, is refused. The last cluster inflated is kept for the reads that follow.
/// </summary>
internal sealed class CompressedClusterReader
{
    private readonly string _path;
    private readonly FileAccessor _file;
    private readonly int _clusterBits;
    private readonly bool _zstd;
    private readonly byte[] _cluster;
    private ulong _cachedWord;
    private bool _cached;

    public CompressedClusterReader(string path, FileAccessor file, int clusterBits, bool zstd)
    {
        _path = path;
        _file = file;
        _clusterBits = clusterBits;
        _zstd = zstd;
        _cluster = new byte[1 << clusterBits];
    }

    /// <summary>The whole guest cluster <paramref name="entry"/> describes, inflated (valid until the next call).</summary>
    public byte[] Read(L2Entry entry)
    {
        if (_cached && _cachedWord == entry.Word)
            return _cluster;
        _cached = false;
        long offset = entry.CompressedOffset(_clusterBits);
        long length = entry.CompressedLength(_clusterBits);
        if (offset >= _file.Length)
            throw new DiskFormatException(_path, "compressed cluster", $"its data at {offset} lies past the end of the file ({_file.Length} bytes)", offset);
        // The last sector may reach past the end of a file that ends mid-sector: read what exists.
        byte[] input = new byte[Math.Min(length, _file.Length - offset)];
        _file.ReadOrZero(offset, input, 0, input.Length);
        try
        {
            int produced = _zstd ? InflateZstd(input, offset) : InflateDeflate(input, offset);
            if (produced < _cluster.Length)
                throw new DiskFormatException(_path, "compressed cluster", $"the {(_zstd ? "zstd" : "deflate")} data at {offset} ends after {produced} of the cluster's {_cluster.Length} bytes", offset);
        }
        catch (InvalidDataException ex)
        {
            throw new DiskFormatException(_path, "compressed cluster", $"the deflate data at {offset} is corrupt: {ex.Message}", offset, ex);
        }
        catch (ZstdException ex)
        {
            throw new DiskFormatException(_path, "compressed cluster", $"the zstd data at {offset} is corrupt: {ex.Message}", offset, ex);
        }
        _cachedWord = entry.Word;
        _cached = true;
        return _cluster;
    }

    private int InflateDeflate(byte[] input, long offset)
    {
        using var inflater = new DeflateStream(new MemoryStream(input, writable: false), CompressionMode.Decompress);
        int done = Fill(inflater);
        if (done == _cluster.Length && inflater.ReadByte() >= 0)
            throw new DiskFormatException(_path, "compressed cluster", $"the deflate data inflates beyond one cluster of {_cluster.Length} bytes", offset);
        return done;
    }

    private int InflateZstd(byte[] input, long offset)
    {
        // The input runs to the end of the descriptor's last sector, where the next cluster's
        // frame may begin; a zstd stream would go on into it. Only this cluster's one frame is
        // inflated, so that output past the cluster is this frame's own.
        int frame = FrameLength(input, offset);
        using var inflater = new DecompressionStream(new MemoryStream(input, 0, frame, writable: false));
        int done = Fill(inflater);
        if (done == _cluster.Length && inflater.ReadByte() >= 0)
            throw new DiskFormatException(_path, "compressed cluster", $"the zstd frame at {offset} inflates beyond one cluster of {_cluster.Length} bytes", offset);
        return done;
    }

    /// <summary>
    /// Bytes of the zstd frame at the start of <paramref name="input"/> (RFC 8878 section 3.1.1):
    /// the frame header, then blocks (a 3-byte header: last-block bit, type, size) up to the
    /// last, then a 4-byte checksum when the header says so. A frame that does not end inside
    /// the input is refused.
    /// </summary>
    private int FrameLength(byte[] input, long offset)
    {
        if (input.Length < 6 || BinaryPrimitives.ReadUInt32LittleEndian(input) != 0xFD2FB528)
            throw new DiskFormatException(_path, "compressed cluster", "the zstd data does not start with a frame", offset);
        byte descriptor = input[4];
        int contentSizeFlag = descriptor >> 6;
        bool singleSegment = (descriptor & 0x20) != 0;
        bool checksum = (descriptor & 0x04) != 0;
        int dictionaryFlag = descriptor & 0x03;
        int at = 5 + (singleSegment ? 0 : 1) + dictionaryFlag switch { 0 => 0, 1 => 1, 2 => 2, _ => 4 };
        int contentSizeBytes = contentSizeFlag switch { 0 => singleSegment ? 1 : 0, 1 => 2, 2 => 4, _ => 8 };
        if (contentSizeBytes > 0 && at + contentSizeBytes <= input.Length)
        {
            ulong declared = 0;
            for (int i = contentSizeBytes - 1; i >= 0; i--)
                declared = (declared << 8) | input[at + i];
            if (contentSizeBytes == 2)
                declared += 256;
            if (declared > (ulong)_cluster.Length)
                throw new DiskFormatException(_path, "compressed cluster", $"the zstd frame declares {declared} bytes, beyond one cluster of {_cluster.Length} bytes", offset);
        }
        at += contentSizeBytes;
        while (true)
        {
            if (at + 3 > input.Length)
                throw new DiskFormatException(_path, "compressed cluster", "the zstd frame does not end within the sectors its descriptor names", offset);
            int header = input[at] | (input[at + 1] << 8) | (input[at + 2] << 16);
            bool last = (header & 1) != 0;
            int type = (header >> 1) & 3;
            int size = header >> 3;
            if (type == 3)
                throw new DiskFormatException(_path, "compressed cluster", "the zstd frame holds a reserved block type", offset);
            at += 3 + (type == 1 ? 1 : size); // an RLE block stores one byte
            if (last)
                break;
        }
        if (checksum)
            at += 4;
        if (at > input.Length)
            throw new DiskFormatException(_path, "compressed cluster", "the zstd frame does not end within the sectors its descriptor names", offset);
        return at;
    }

    private int Fill(Stream inflater)
    {
        int done = 0;
        while (done < _cluster.Length)
        {
            int n = inflater.Read(_cluster, done, _cluster.Length - done);
            if (n <= 0)
                break;
            done += n;
        }
        return done;
    }
}
