using System;
using System.Buffers;
using System.Collections.Generic;
using System.Globalization;
using System.IO;

namespace VmClone.Disks.Vmdk;

/// <summary>
/// A hosted sparse extent (<c>KDMV</c> file): monolithicSparse, one piece of
/// twoGbMaxExtentSparse, or streamOptimized (compressed grains behind markers, read-only).
///
/// Crash safety of writes (the file has no journal, spec B.2): every write, committed by the
/// layer right after it (<see cref="CommitDeferred"/>) or at the end of its batch,
///   1. sets uncleanShutdown in the header (first write of the session only) and flushes;
///   2. writes whole new grains at the end of the file (grain aligned) and flushes, so no
///      table can ever point at a grain whose data is not on the device;
///   3. writes the grain tables holding the new entries (primary and redundant copy; a new
///      table is written complete at the end of the file) and flushes;
///   4. only if a table was new, writes the GD entries pointing at it (both copies) and flushes.
/// A crash between steps leaks the space appended so far but never exposes stale or foreign
/// data; a crash inside 3 or 4 can leave the two copies disagreeing, which Check reports.
/// Rewrites of an already allocated grain go in place and need no metadata.
/// Write does step 2 without its flush and keeps the new grains by grain; the commit does the
/// flush and steps 3–4 for all of them. In a batch (<see cref="DiskLayer.BeginBatch"/>) that is
/// once for the whole batch: the same order, a few flushes. Any other use of the extent
/// (reading, mapping, checking, flushing) commits first.
/// uncleanShutdown is cleared again (and flushed) when the layer is disposed, as VMware does.
/// </summary>
internal sealed partial class SparseExtent : VmdkExtent
{
    private const int MaxCachedTables = 4096; // 8 MiB of 512-entry tables
    private const int MaxProblemsPerKind = 10;

    private readonly FileAccessor _file;
    private readonly bool _ownsFile;
    private readonly SparseExtentHeader _header;
    private readonly long _headerOffset;
    private readonly uint[] _gd;
    private readonly uint[]? _rgd;
    private readonly long _grainBytes;
    private readonly int _gtes;
    private readonly Dictionary<int, uint[]> _tables = new();

    // New grains written and not yet in any table (see CommitDeferred): in order, and by grain.
    private readonly List<KeyValuePair<long, uint>> _deferred = new();
    private readonly Dictionary<long, uint> _deferredGtes = new();
    private const int MaxDeferredGrains = 1 << 16; // bounds the batch's memory (a few MiB)

    /// <summary>
    /// Per grain table: 1 when known to hold no entry, 2 when known to hold one, 0 unknown.
    /// qemu-style files pre-allocate every table, so "no table" alone does not tell an empty
    /// region; this lets extent mapping of a large empty disk skip 32 MiB at a time.
    /// </summary>
    private byte[]? _tableEmpty;

    // The last hole query: [_holeFrom, _dataAt) is a hole of the file, data starts at _dataAt.
    // Only tables are looked up this way, and the file only grows at its end while open.
    private long _holeFrom = -1;
    private long _dataAt = -1;
    private readonly bool _uncleanAtOpen;
    private long _nextFree;
    private bool _markedUnclean;
    private long _cachedGrainSector = -1;
    private byte[]? _grainCache;
    private byte[]? _compressedBuffer;
    private long? _allocatedBytes;

    // Grains named by the tables loaded so far (a unit is a grain-sized slot of the file, a
    // sector for compressed grains), and which tables have been counted: a grain named twice
    // is refused when its second table is loaded, so no run of the disk is read from another's
    // grain and what the layer reports as data never exceeds what the file holds.
    private ClaimMap? _grainClaims;
    private ulong[]? _claimedTables;

    // Open for writing only: the sectors of the metadata a write updates (header, embedded
    // descriptor, both directories, every table they name), checked at open to lie inside the
    // file and overlap nothing; grains are checked against it as their tables are loaded. Grains
    // are claimed in grain-sized slots of the file's grid, which starts at overHead's phase.
    private readonly ClaimMap? _writeMetadata;
    private readonly long _gridPhase;
    private readonly long _lengthAtOpen;

    private enum GrainKind
    {
        Unallocated,
        Zeroed,
        Data,
        Compressed,
    }

    private SparseExtent(FileAccessor file, bool ownsFile, SparseExtentHeader header, long headerOffset, uint[] gd, uint[]? rgd, long start, long length, bool uncleanAtOpen, ClaimMap? writeMetadata)
        : base(start, length)
    {
        _file = file;
        _ownsFile = ownsFile;
        _header = header;
        _headerOffset = headerOffset;
        _gd = gd;
        _rgd = rgd;
        _grainBytes = header.GrainBytes;
        _gtes = (int)header.NumGTEsPerGT;
        _uncleanAtOpen = uncleanAtOpen;
        _writeMetadata = writeMetadata;
        _lengthAtOpen = file.Length;
        // Only a writable extent allocates; its overHead was checked to lie inside the file. New
        // grains go at the real end of the file, on the grid of the grains already there, never
        // where a header or a table claims the file ends.
        _gridPhase = writeMetadata is null ? 0 : (long)(header.OverHead % header.GrainSize) * 512;
        _nextFree = OnGrid(file.Length);
    }

    /// <summary>The first grain position of the file's grid at or after <paramref name="offset"/>.</summary>
    private long OnGrid(long offset) => _gridPhase + RoundUp(Math.Max(0, offset - _gridPhase), _grainBytes);

    public SparseExtentHeader Header => _header;

    public override string? FilePath => _file.Path;

    public override bool CanWrite => _file.CanWrite && ReadOnlyReason is null;

    public override string? ReadOnlyReason =>
        _header.IsCompressed || _header.HasMarkers
            ? "it is streamOptimized (compressed grains); VmClone reads such images but does not write them — convert to monolithicSparse first"
            : null;

    /// <summary>
    /// Opens the sparse extent in <paramref name="file"/>, whose header is <paramref name="header"/>
    /// (already parsed and checked against the file length), covering <paramref name="length"/>
    /// virtual bytes from <paramref name="start"/>.
    /// </summary>
    public static SparseExtent Open(FileAccessor file, SparseExtentHeader header, long start, long length, bool ownsFile)
    {
        try
        {
            return OpenValidated(file, header, start, length, ownsFile);
        }
        catch (Exception ex) when (IsResourceFailure(ex))
        {
            throw new DiskFormatException(file.Path, "sparse extent", $"the file's tables cannot be loaded ({ex.Message})", null, ex);
        }
    }

    /// <summary>
    /// Failures no sound file causes: every allocation is bounded by the file's length first, so
    /// one of these means a hostile or corrupt file, reported as a format error naming it.
    /// </summary>
    private static bool IsResourceFailure(Exception ex) =>
        ex is OutOfMemoryException or OverflowException or IndexOutOfRangeException or ArgumentOutOfRangeException;

    private static SparseExtent OpenValidated(FileAccessor file, SparseExtentHeader header, long start, long length, bool ownsFile)
    {
        string path = file.Path;
        long fileLength = file.Length;
        SparseExtentHeader effective = header;
        long headerOffset = 0;
        if (header.GdOffset == SparseExtentHeader.GdAtEnd)
        {
            // streamOptimized written in one pass: the footer (a copy of the header with the real
            // gdOffset) sits in the last 1536 bytes as [footer marker][footer][end-of-stream marker].
            if (fileLength < 4 * 512)
                throw new DiskFormatException(path, "footer", "gdOffset is GD_AT_END but the file is too short to hold a footer", 0);
            long markerOffset = (fileLength / 512) * 512 - 1536;
            byte[] marker = file.ReadBytes(markerOffset, 512, "footer marker");
            StreamMarker m = StreamMarker.Parse(marker);
            if (!m.IsMetadata || m.Type != (uint)MarkerType.Footer)
                throw new DiskFormatException(path, "footer marker", $"expected a footer marker (type 3) before the last two sectors, found size {m.Size} type {m.Type}", markerOffset);
            headerOffset = markerOffset + 512;
            byte[] footer = file.ReadBytes(headerOffset, 512, "footer");
            effective = SparseExtentHeader.Parse(footer, path, headerOffset, fileLength, "footer");
            if (effective.GdOffset == SparseExtentHeader.GdAtEnd)
                throw new DiskFormatException(path, "footer", "the footer's gdOffset is GD_AT_END too", headerOffset);
            if (effective.Capacity != header.Capacity || effective.GrainSize != header.GrainSize || effective.NumGTEsPerGT != header.NumGTEsPerGT)
                throw new DiskFormatException(path, "footer", "capacity, grain size or table size differ from the header", headerOffset);
        }
        effective.ValidateDirectories(path, headerOffset, fileLength, headerOffset == 0 ? "sparse extent header" : "footer");
        if ((ulong)length > effective.Capacity * 512)
            throw new DiskFormatException(path, "sparse extent header", $"the descriptor gives the extent {length / 512} sectors but the sparse extent holds only {effective.Capacity}", headerOffset);

        int entries = (int)effective.NumGdEntries;
        uint[] gd = GrainTable.Parse(file.ReadBytes((long)effective.GdOffset * 512, entries * 4, "grain directory"), entries);
        RefuseSharedTables(gd, path, (long)effective.GdOffset * 512, "grain directory", fileLength, effective.GtBytes);
        uint[]? rgd = null;
        if (effective.HasRedundantGd)
        {
            rgd = GrainTable.Parse(file.ReadBytes((long)effective.RgdOffset * 512, entries * 4, "redundant grain directory"), entries);
            RefuseSharedTables(rgd, path, (long)effective.RgdOffset * 512, "redundant grain directory", fileLength, effective.GtBytes);
        }
        ClaimMap? writeMetadata = file.CanWrite && !effective.IsCompressed && !effective.HasMarkers
            ? ClaimWriteMetadata(effective, gd, rgd, path, fileLength)
            : null;
        return new SparseExtent(file, ownsFile, effective, headerOffset, gd, rgd, start, length, header.UncleanShutdown, writeMetadata);
    }

    /// <summary>
    /// Before an extent is opened for writing: everything a write updates in place (header,
    /// embedded descriptor, both grain directories, every grain table either directory names)
    /// must lie inside the file and overlap nothing else, and overHead must not lie past the
    /// file's end, or a write would land on other metadata or grow the file to what a header
    /// claims. Only positions are checked (from the directories already read), so the cost is
    /// one claim per directory entry. Returns the sectors claimed, against which grains are
    /// checked as their tables are loaded.
    /// </summary>
    private static ClaimMap ClaimWriteMetadata(SparseExtentHeader h, uint[] gd, uint[]? rgd, string path, long fileLength)
    {
        const string Why = "the file cannot be written safely";
        long fileSectors = fileLength / 512;
        if (h.OverHead > (ulong)fileSectors)
            throw new DiskFormatException(path, "sparse extent header",
                $"overHead (the first grain) at sector {h.OverHead} lies beyond the end of the file ({fileLength} bytes); {Why}", SparseExtentHeader.OffOverHead);
        var map = new ClaimMap(fileSectors + 1);
        map.Claim(0, 1);
        if (h.DescriptorOffset != 0)
        {
            if (h.DescriptorOffset + h.DescriptorSize > (ulong)fileSectors)
                throw new DiskFormatException(path, "embedded descriptor",
                    $"its area (sector {h.DescriptorOffset}, {h.DescriptorSize} sectors) runs past the end of the file ({fileLength} bytes); {Why}", (long)h.DescriptorOffset * 512);
            if (!map.Claim((long)h.DescriptorOffset, (long)h.DescriptorSize))
                throw new DiskFormatException(path, "embedded descriptor",
                    $"its area (sector {h.DescriptorOffset}, {h.DescriptorSize} sectors) overlaps the header; {Why}", (long)h.DescriptorOffset * 512);
        }
        long gdSectors = (gd.Length * 4L + 511) / 512;
        if (!map.Claim((long)h.GdOffset, gdSectors))
            throw new DiskFormatException(path, "grain directory",
                $"the grain directory (sector {h.GdOffset}, {gdSectors} sectors) overlaps the header or the embedded descriptor's area; {Why}", (long)h.GdOffset * 512);
        if (rgd is not null && !map.Claim((long)h.RgdOffset, gdSectors))
            throw new DiskFormatException(path, "redundant grain directory",
                $"the redundant grain directory (sector {h.RgdOffset}, {gdSectors} sectors) overlaps the header, the embedded descriptor's area or the grain directory; {Why}", (long)h.RgdOffset * 512);
        ClaimTables(map, gd, path, "grain directory", (long)h.GdOffset * 512, fileLength, h.GtBytes);
        if (rgd is not null)
            ClaimTables(map, rgd, path, "redundant grain directory", (long)h.RgdOffset * 512, fileLength, h.GtBytes);
        return map;
    }

    /// <summary>
    /// Claims the grain tables a directory names. Writers lay tables out back to back, so runs of
    /// consecutive tables are claimed at once: a fresh 100 GiB disk's 3,200 tables cost a
    /// compare each and one claim, not 3,200 claims on every read-write open.
    /// </summary>
    private static void ClaimTables(ClaimMap map, uint[] directory, string path, string structure, long directoryOffset, long fileLength, int gtBytes)
    {
        long gtSectors = (gtBytes + 511) / 512;
        int i = 0;
        while (i < directory.Length)
        {
            if (directory[i] == GrainTable.Unallocated)
            {
                i++;
                continue;
            }
            int first = i;
            long start = directory[i];
            while (i + 1 < directory.Length && directory[i + 1] == start + (i + 1 - first) * gtSectors)
                i++;
            int count = i - first + 1;
            i++;
            if ((start + (count - 1) * gtSectors) * 512 + gtBytes <= fileLength && !map.AnyClaimed(start, count * gtSectors))
            {
                map.Claim(start, count * gtSectors);
                continue;
            }
            // Something in the run is wrong: find the first entry that is, to name it.
            for (int k = first; k < first + count; k++)
            {
                long sector = start + (k - first) * gtSectors;
                if (sector * 512 + gtBytes > fileLength)
                    throw new DiskFormatException(path, structure,
                        $"entry {k} names a grain table at sector {sector}, beyond the end of the file ({fileLength} bytes); the file cannot be written safely", directoryOffset + k * 4L);
                if (!map.Claim(sector, gtSectors))
                    throw new DiskFormatException(path, structure,
                        $"entry {k} names a grain table at sector {sector}, which overlaps the header, the embedded descriptor's area, a grain directory or another grain table; the file cannot be written safely", directoryOffset + k * 4L);
            }
        }
    }

    private static long RoundUp(long value, long unit) => (value + unit - 1) / unit * unit;

    /// <summary>
    /// Refuses a directory naming one grain table (or overlapping ones) from two entries: each
    /// table maps its own 512 grains of the disk, so a table named twice would make a small file
    /// claim terabytes of the same data. Writers lay tables out in ascending order, which is
    /// checked without allocating; only another order needs a bitmap over the file's tables.
    /// Entries past the end of the file are left to the read that uses them.
    /// </summary>
    private static void RefuseSharedTables(uint[] directory, string path, long directoryOffset, string structure, long fileLength, int gtBytes)
    {
        // A table of fewer than 128 entries still takes a sector of its own.
        long gtSectors = (gtBytes + 511) / 512;
        long last = -1;
        bool ascending = true;
        foreach (uint sector in directory)
        {
            if (sector == GrainTable.Unallocated)
                continue;
            if (last >= 0 && sector < last + gtSectors)
            {
                ascending = false;
                break;
            }
            last = sector;
        }
        if (ascending)
            return;
        var tables = new ClaimMap(fileLength / gtBytes + 1);
        for (int i = 0; i < directory.Length; i++)
        {
            uint sector = directory[i];
            if (sector == GrainTable.Unallocated || (long)sector * 512 + gtBytes > fileLength)
                continue;
            // Tables that do not overlap start in different table-sized slots of the file.
            if (!tables.Claim(sector / gtSectors, 1))
                throw new DiskFormatException(path, structure,
                    $"entry {i} names the grain table at sector {sector}, which an earlier entry names too (or overlaps); a table maps one part of the disk only", directoryOffset + i * 4L);
        }
    }

    /// <summary>
    /// Counts the grains of table <paramref name="gdIndex"/> (once per table) and refuses one that
    /// another loaded table already names. Grains past the end of the file or of the extent are
    /// left out: they are refused or never read.
    /// </summary>
    private void ClaimGrains(int gdIndex, uint[] table)
    {
        _claimedTables ??= new ulong[(_gd.Length + 63) / 64];
        if ((_claimedTables[gdIndex >> 6] & (1UL << (gdIndex & 63))) != 0)
            return;
        long unit = _header.IsCompressed ? 1 : (long)_header.GrainSize;
        long fileSectors = _file.Length / 512;
        for (int j = 0; j < table.Length; j++)
        {
            uint g = table[j];
            if (g == GrainTable.Unallocated || (g == GrainTable.Zeroed && _header.HasZeroedGrainGtes))
                continue;
            long grain = (long)gdIndex * _gtes + j;
            if (grain * _grainBytes >= Length)
                continue;
            if (_writeMetadata is not null)
            {
                ClaimWritableGrain(grain, g, (long)_gd[gdIndex] * 512 + j * 4L);
                continue;
            }
            if (g >= fileSectors)
                continue;
            // Grains that do not overlap start in different grain-sized slots of the file.
            _grainClaims ??= new ClaimMap(fileSectors / unit + 1);
            if (!_grainClaims.Claim(g / unit, 1))
                throw new DiskFormatException(_file.Path, "grain table",
                    $"the entry for grain {grain} names sector {g}, which another grain table entry names too; a grain holds one part of the disk only",
                    (long)_gd[gdIndex] * 512 + j * 4L);
        }
        _claimedTables[gdIndex >> 6] |= 1UL << (gdIndex & 63);
    }

    /// <summary>
    /// A grain of an extent open for writing: it must lie whole inside the file (new grains are
    /// appended at its end and must not overlap it), on no metadata (a write into it would
    /// overwrite the descriptor, a directory or a table) and on no other grain.
    /// </summary>
    private void ClaimWritableGrain(long grain, uint g, long entryOffset)
    {
        long grainSectors = (long)_header.GrainSize;
        // The length at open: space appended since holds only what this extent wrote there.
        if ((long)g * 512 + _grainBytes > _lengthAtOpen)
            throw new DiskFormatException(_file.Path, "grain table",
                $"the entry for grain {grain} names sector {g}, and the grain runs past the end of the file ({_lengthAtOpen} bytes); the file cannot be written safely", entryOffset);
        if (_writeMetadata!.AnyClaimed(g, grainSectors))
            throw new DiskFormatException(_file.Path, "grain table",
                $"the entry for grain {grain} names sector {g}, which lies on the header, the embedded descriptor, a grain directory or a grain table; the file cannot be written safely", entryOffset);
        if (!ClaimGrainSlots(g))
            throw new DiskFormatException(_file.Path, "grain table",
                $"the entry for grain {grain} names sector {g}, which overlaps another grain; a grain holds one part of the disk only", entryOffset);
    }

    /// <summary>
    /// Claims the grid slots grain sector <paramref name="g"/> covers (one when on the grid, the
    /// two it straddles when not): two grains overlap only if they share a slot. False when one
    /// was claimed already.
    /// </summary>
    private bool ClaimGrainSlots(uint g)
    {
        long grainSectors = (long)_header.GrainSize;
        long rel = (long)g - _gridPhase / 512;
        if (rel < 0)
            return true; // before the grid: on the header or metadata, refused above
        _grainClaims ??= new ClaimMap(_file.Length / _grainBytes + 1);
        long first = rel / grainSectors;
        long count = rel % grainSectors == 0 ? 1 : 2;
        return _grainClaims.Claim(first, count);
    }

    private long GdEntryOffset(int index) => (long)_header.GdOffset * 512 + index * 4L;

    /// <summary>The primary grain table for a GD index, or null when unallocated. Cached.</summary>
    private uint[]? Table(int gdIndex)
    {
        if (_tables.TryGetValue(gdIndex, out uint[]? cached))
            return cached;
        uint sector = _gd[gdIndex];
        if (sector == GrainTable.Unallocated)
            return null;
        uint[] table = ReadTable(sector, "grain table", () =>
            new DiskFormatException(_file.Path, "grain directory", $"entry {gdIndex} points to a grain table at sector {sector}, beyond the end of the file ({_file.Length} bytes)", GdEntryOffset(gdIndex)));
        ClaimGrains(gdIndex, table);
        if (_tables.Count >= MaxCachedTables)
            _tables.Clear();
        _tables[gdIndex] = table;
        return table;
    }

    private uint[] ReadTable(uint sector, string structure, Func<Exception> outside)
    {
        long offset = (long)sector * 512;
        if (offset + _header.GtBytes > _file.Length)
            throw outside();
        return GrainTable.Parse(_file.ReadBytes(offset, _header.GtBytes, structure), _gtes);
    }

    /// <summary>True when grain table <paramref name="gdIndex"/> is missing or has no entry at all.</summary>
    private bool TableIsEmpty(int gdIndex)
    {
        if (_gd[gdIndex] == GrainTable.Unallocated)
            return true;
        _tableEmpty ??= new byte[_gd.Length];
        if (_tableEmpty[gdIndex] == 0)
        {
            if (_tables.TryGetValue(gdIndex, out uint[]? cached))
                _tableEmpty[gdIndex] = Array.TrueForAll(cached, e => e == GrainTable.Unallocated) ? (byte)1 : (byte)2;
            else
                ClassifyTablesFrom(gdIndex);
        }
        return _tableEmpty[gdIndex] == 1;
    }

    /// <summary>
    /// Classifies grain table <paramref name="first"/> and the tables stored right after it in
    /// one read of up to 1 MiB: qemu and VmClone lay tables out back to back, so mapping a whole
    /// 100 GiB disk costs a handful of reads instead of thousands.
    /// </summary>
    private void ClassifyTablesFrom(int first)
    {
        int gtBytes = _header.GtBytes;
        // Tables are sector-aligned: one of fewer than 128 entries leaves the rest of its sector
        // unused, so only tables of whole sectors lie back to back and are read together.
        int gtSectors = (gtBytes + 511) / 512;
        int count = 1;
        int maxCount = gtBytes % 512 == 0 ? Math.Max(1, (1 << 20) / gtBytes) : 1;
        while (first + count < _gd.Length && count < maxCount && _tableEmpty![first + count] == 0 &&
               _gd[first + count] == _gd[first] + (uint)(count * gtSectors))
            count++;
        long offset = (long)_gd[first] * 512;
        long? nextData = null;
        if (offset >= _holeFrom && offset < _dataAt)
            nextData = _dataAt; // the answer of the previous query still holds here
        else if (offset + gtBytes <= _file.Length && (nextData = _file.NextData(offset)) is long found)
            (_holeFrom, _dataAt) = (offset, found);
        if (nextData is long data && data >= offset + gtBytes)
        {
            // Tables lying in a hole of the file are zeros: empty, without reading them. A new
            // disk's tables are all one hole (created by extending the file), so a 100 GiB disk
            // is classified by one call instead of reading 6.4 MiB of zeros.
            int k = 0;
            while (first + k < _gd.Length && _tableEmpty![first + k] == 0 &&
                   _gd[first + k] == _gd[first] + (uint)(k * gtSectors) && offset + (long)k * gtSectors * 512 + gtBytes <= data)
            {
                _tableEmpty[first + k] = 1;
                k++;
            }
            return;
        }
        // Only the tables up to the next hole: those after it are classified without a read.
        if (nextData is long dataStart && _file.NextHole(Math.Max(offset, dataStart)) is long hole && hole > offset)
            count = (int)Math.Max(1, Math.Min(count, (hole - offset + gtBytes - 1) / gtBytes));
        if (offset + (long)count * gtBytes > _file.Length)
        {
            // Let the ordinary path raise the precise error for the table that lies outside.
            _tableEmpty![first] = Table(first) is uint[] t && Array.TrueForAll(t, e => e == GrainTable.Unallocated) ? (byte)1 : (byte)2;
            return;
        }
        // A pooled buffer: a fresh 1 MiB array per read would be a large-object allocation,
        // and those collections cost more than the reads themselves.
        byte[] bytes = ArrayPool<byte>.Shared.Rent(count * gtBytes);
        try
        {
            _file.ReadExactly(offset, bytes, 0, count * gtBytes, "grain table");
            for (int i = 0; i < count; i++)
            {
                var table = new ReadOnlySpan<byte>(bytes, i * gtBytes, gtBytes);
                bool empty = ZeroBytes.All(table);
                _tableEmpty![first + i] = empty ? (byte)1 : (byte)2;
                if (empty || _tables.ContainsKey(first + i))
                    continue;
                uint[] parsed = GrainTable.Parse(table, _gtes);
                ClaimGrains(first + i, parsed);
                // A table with entries is about to be looked up: keep it instead of reading it again.
                if (_tables.Count < MaxCachedTables)
                    _tables[first + i] = parsed;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    private uint Gte(long grain)
    {
        if (_deferredGtes.Count > 0 && _deferredGtes.TryGetValue(grain, out uint deferred))
            return deferred;
        long gdIndex = grain / _gtes;
        if (gdIndex >= _gd.Length)
            return GrainTable.Unallocated;
        uint[]? table = Table((int)gdIndex);
        return table is null ? GrainTable.Unallocated : table[grain % _gtes];
    }

    private GrainKind Classify(long grain, uint gte)
    {
        if (gte == GrainTable.Unallocated)
            return GrainKind.Unallocated;
        if (gte == GrainTable.Zeroed && _header.HasZeroedGrainGtes)
            return GrainKind.Zeroed;
        if ((long)gte * 512 >= _file.Length)
        {
            long gdIndex = grain / _gtes;
            long entryOffset = (long)_gd[gdIndex] * 512 + (grain % _gtes) * 4;
            throw new DiskFormatException(_file.Path, "grain table",
                $"the entry for grain {grain} points to sector {gte}, beyond the end of the file ({_file.Length} bytes)", entryOffset);
        }
        return _header.IsCompressed ? GrainKind.Compressed : GrainKind.Data;
    }

    public override LayerExtent GetExtent(long position, long maxLength)
    {
        CommitDeferred();
        maxLength = Math.Min(maxLength, Length - position);
        long grain = position / _grainBytes;
        uint gte = Gte(grain);
        GrainKind kind = Classify(grain, gte);
        long run = Math.Min((grain + 1) * _grainBytes - position, maxLength);
        if (kind != GrainKind.Compressed)
        {
            uint previous = gte;
            long next = grain + 1;
            while (run < maxLength)
            {
                long gdIndex = next / _gtes;
                if (kind == GrainKind.Unallocated && gdIndex < _gd.Length && TableIsEmpty((int)gdIndex))
                {
                    // A missing or empty grain table: skip to its end at once.
                    long tableEnd = (gdIndex + 1) * _gtes;
                    run += (tableEnd - next) * _grainBytes;
                    next = tableEnd;
                    continue;
                }
                if (kind == GrainKind.Unallocated && gdIndex < _gd.Length && Table((int)gdIndex) is uint[] table)
                {
                    // Unallocated entries of a table in memory: a plain scan, no per-grain calls.
                    int from = (int)(next % _gtes), at = from;
                    while (at < table.Length && table[at] == GrainTable.Unallocated)
                        at++;
                    run += (long)(at - from) * _grainBytes;
                    next += at - from;
                    if (at < table.Length)
                        break;
                    continue;
                }
                uint g = Gte(next);
                GrainKind k = Classify(next, g);
                if (k != kind || (kind == GrainKind.Data && g != previous + (uint)_header.GrainSize))
                    break;
                previous = g;
                run += _grainBytes;
                next++;
            }
        }
        run = Math.Min(run, maxLength);
        return kind switch
        {
            GrainKind.Unallocated => new LayerExtent(ExtentKind.Parent, run),
            GrainKind.Zeroed => new LayerExtent(ExtentKind.Zero, run),
            _ => new LayerExtent(ExtentKind.Data, run),
        };
    }

    public override DataLocation? LocateData(long position, long maxLength)
    {
        long grain = position / _grainBytes;
        long inGrain = position % _grainBytes;
        uint gte = Gte(grain);
        if (Classify(grain, gte) != GrainKind.Data)
            return null;
        return new DataLocation(_file.Path, (long)gte * 512 + inGrain, Math.Min(maxLength, _grainBytes - inGrain));
    }

    public override void ReadData(long position, byte[] buffer, int offset, int count)
    {
        CommitDeferred();
        while (count > 0)
        {
            long grain = position / _grainBytes;
            long inGrain = position % _grainBytes;
            uint gte = Gte(grain);
            GrainKind kind = Classify(grain, gte);
            int n = (int)Math.Min(count, _grainBytes - inGrain);
            switch (kind)
            {
                case GrainKind.Compressed:
                    byte[] data = LoadCompressedGrain(grain, gte);
                    Buffer.BlockCopy(data, (int)inGrain, buffer, offset, n);
                    break;
                case GrainKind.Data:
                    // Extend over following grains that continue contiguously in the file: one read.
                    uint previous = gte;
                    long next = grain + 1;
                    while (n < count)
                    {
                        uint g = Gte(next);
                        if (Classify(next, g) != GrainKind.Data || g != previous + (uint)_header.GrainSize)
                            break;
                        n = (int)Math.Min(count, n + _grainBytes);
                        previous = g;
                        next++;
                    }
                    // The grain starts inside the file (checked); a tail past the end reads as zeros.
                    _file.ReadOrZero((long)gte * 512 + inGrain, buffer, offset, n);
                    break;
                default:
                    Array.Clear(buffer, offset, n);
                    break;
            }
            position += n;
            offset += n;
            count -= n;
        }
    }

    private byte[] LoadCompressedGrain(long grain, uint gte)
    {
        if (_cachedGrainSector == gte && _grainCache is not null)
            return _grainCache;
        long offset = (long)gte * 512;
        int max = StreamMarker.MaxCompressedBytes(_grainBytes);
        long dataOffset;
        int size;
        if (_header.HasMarkers)
        {
            byte[] head = _file.ReadBytes(offset, StreamMarker.GrainHeaderBytes, "grain marker");
            StreamMarker marker = StreamMarker.Parse(head);
            if (marker.IsMetadata)
                throw new DiskFormatException(_file.Path, "grain marker", $"the grain table entry of grain {grain} points to a metadata marker, not a grain", offset);
            if (marker.Size > (uint)max)
                throw new DiskFormatException(_file.Path, "grain marker", $"compressed size {marker.Size} exceeds the {max} bytes a {_grainBytes}-byte grain can take", offset);
            dataOffset = offset + StreamMarker.GrainHeaderBytes;
            size = (int)marker.Size;
        }
        else
        {
            dataOffset = offset;
            size = (int)Math.Min(max, _file.Length - offset);
        }
        _compressedBuffer ??= new byte[max];
        _file.ReadExactly(dataOffset, _compressedBuffer, 0, size, "compressed grain");
        _grainCache ??= new byte[_grainBytes];
        _cachedGrainSector = -1;
        StreamMarker.Inflate(_compressedBuffer, size, _grainCache, _file.Path, dataOffset, exactLength: _header.HasMarkers);
        _cachedGrainSector = gte;
        return _grainCache;
    }

    /// <summary>
    /// Loads (and so checks) every grain table a write of [<paramref name="position"/>,
    /// position + count) looks up, before the layer changes anything in the file.
    /// </summary>
    public override void PrepareWrite(long position, long count)
    {
        if (count <= 0 || _writeMetadata is null)
            return;
        long firstTable = position / _grainBytes / _gtes;
        long lastTable = (position + count - 1) / _grainBytes / _gtes;
        for (long t = firstTable; t <= lastTable && t < _gd.Length; t++)
            Table((int)t);
    }

    public override void Write(long position, byte[] buffer, int offset, int count, BelowReader below)
    {
        if (ReadOnlyReason is string reason)
            throw new VirtualDiskException(_file.Path, $"'{_file.Path}' cannot be written: {reason}.");
        MarkUnclean();
        _allocatedBytes = null;
        int deferredBefore = _deferred.Count;
        byte[]? grainBuffer = null;
        try
        {
            while (count > 0)
            {
                long grain = position / _grainBytes;
                long inGrain = position % _grainBytes;
                int n = (int)Math.Min(count, _grainBytes - inGrain);
                uint gte = Gte(grain);
                GrainKind kind = Classify(grain, gte);
                if (kind == GrainKind.Data)
                {
                    _file.Write((long)gte * 512 + inGrain, buffer, offset, n);
                }
                else
                {
                    // A new grain: complete it (parent content for an unallocated grain, zeros for a
                    // zeroed one; nothing past the extent's end) and append it whole.
                    grainBuffer ??= new byte[_grainBytes];
                    long grainStart = grain * _grainBytes;
                    int valid = (int)Math.Min(_grainBytes, Length - grainStart);
                    Array.Clear(grainBuffer, 0, grainBuffer.Length);
                    if (kind == GrainKind.Unallocated)
                    {
                        if (inGrain > 0)
                            below(Start + grainStart, grainBuffer, 0, (int)inGrain);
                        int tail = (int)(inGrain + n);
                        if (tail < valid)
                            below(Start + grainStart + tail, grainBuffer, tail, valid - tail);
                    }
                    Buffer.BlockCopy(buffer, offset, grainBuffer, (int)inGrain, n);
                    uint sector = Allocate(_grainBytes, _grainBytes);
                    _file.Write((long)sector * 512, grainBuffer, 0, grainBuffer.Length);
                    _deferred.Add(new KeyValuePair<long, uint>(grain, sector));
                    _deferredGtes[grain] = sector;
                }
                position += n;
                offset += n;
                count -= n;
            }
        }
        catch
        {
            // The grains this failed write appended never become reachable (leaked space).
            for (int i = deferredBefore; i < _deferred.Count; i++)
                _deferredGtes.Remove(_deferred[i].Key);
            _deferred.RemoveRange(deferredBefore, _deferred.Count - deferredBefore);
            ForgetTables();
            throw;
        }
        if (_deferred.Count >= MaxDeferredGrains)
            CommitDeferred();
    }

    /// <summary>Steps 3–4 for every grain written since the last commit (step 2's flush first).</summary>
    public override void CommitDeferred()
    {
        if (_deferred.Count == 0)
            return;
        try
        {
            CommitGrains(_deferred);
        }
        catch
        {
            ForgetTables();
            throw;
        }
        finally
        {
            // Committed, or failed with the tables reloaded from the file: either way nothing is pending.
            _deferred.Clear();
            _deferredGtes.Clear();
        }
    }

    /// <summary>After a failed write the cached tables may no longer match the file: they are read again.</summary>
    private void ForgetTables()
    {
        _tables.Clear();
        _tableEmpty = null;
        _holeFrom = _dataAt = -1;
    }

    /// <summary>Steps 2–4 of the write protocol (see the class comment).</summary>
    private void CommitGrains(List<KeyValuePair<long, uint>> pending)
    {
        // Tables are about to be written where the file may have had a hole.
        _holeFrom = _dataAt = -1;
        _file.Flush(); // grain data on the device before any table references it

        var touched = new SortedDictionary<int, uint[]>();
        var fresh = new HashSet<int>();
        foreach (KeyValuePair<long, uint> p in pending)
        {
            // New grains lie in space appended at the end: never named by anything else.
            ClaimGrainSlots(p.Value);
            int gdIndex = (int)(p.Key / _gtes);
            if (!touched.TryGetValue(gdIndex, out uint[]? table))
            {
                table = Table(gdIndex);
                if (table is null)
                {
                    table = new uint[_gtes];
                    fresh.Add(gdIndex);
                    _claimedTables ??= new ulong[(_gd.Length + 63) / 64];
                    _claimedTables[gdIndex >> 6] |= 1UL << (gdIndex & 63);
                }
                touched[gdIndex] = table;
            }
            table[p.Key % _gtes] = p.Value;
        }

        var newPrimary = new Dictionary<int, uint>();
        var newRedundant = new Dictionary<int, uint>();
        foreach (KeyValuePair<int, uint[]> t in touched)
        {
            byte[] bytes = GrainTable.ToBytes(t.Value, 0, _gtes);
            uint primary, redundant;
            if (fresh.Contains(t.Key))
            {
                primary = Allocate(bytes.Length, 512);
                newPrimary[t.Key] = primary;
                redundant = 0;
                if (_rgd is not null)
                {
                    redundant = Allocate(bytes.Length, 512);
                    newRedundant[t.Key] = redundant;
                }
            }
            else
            {
                primary = _gd[t.Key];
                redundant = _rgd is null ? 0 : _rgd[t.Key];
            }
            // The redundant copy first, then the primary: readers use the primary.
            if (redundant != 0)
                _file.Write((long)redundant * 512, bytes, 0, bytes.Length);
            _file.Write((long)primary * 512, bytes, 0, bytes.Length);
            if (_tables.Count >= MaxCachedTables)
                _tables.Clear();
            _tables[t.Key] = t.Value;
            if (_tableEmpty is not null)
                _tableEmpty[t.Key] = 0;
        }
        _file.Flush(); // tables on the device before a directory entry points at a new one

        if (newPrimary.Count == 0)
            return;
        foreach (KeyValuePair<int, uint> e in newRedundant)
        {
            _rgd![e.Key] = e.Value;
            _file.Write((long)_header.RgdOffset * 512 + e.Key * 4L, GrainTable.ToBytes(_rgd, e.Key, 1), 0, 4);
        }
        foreach (KeyValuePair<int, uint> e in newPrimary)
        {
            _gd[e.Key] = e.Value;
            _file.Write(GdEntryOffset(e.Key), GrainTable.ToBytes(_gd, e.Key, 1), 0, 4);
        }
        _file.Flush();
    }

    /// <summary>Reserves <paramref name="bytes"/> at the end of the file, aligned; returns its sector.</summary>
    private uint Allocate(long bytes, long alignment)
    {
        long offset = alignment == _grainBytes ? OnGrid(_nextFree) : RoundUp(_nextFree, alignment);
        long end = offset + bytes;
        if (end / 512 > uint.MaxValue)
            throw new VirtualDiskException(_file.Path,
                $"'{_file.Path}' is full: a sparse extent cannot grow beyond 2 TiB (32-bit sector numbers).");
        _nextFree = end;
        return (uint)(offset / 512);
    }

    private void MarkUnclean()
    {
        if (_markedUnclean)
            return;
        _file.Write(_headerOffset + SparseExtentHeader.OffUncleanShutdown, new byte[] { 1 }, 0, 1);
        if (_headerOffset != 0)
            _file.Write(SparseExtentHeader.OffUncleanShutdown, new byte[] { 1 }, 0, 1);
        _file.Flush();
        _markedUnclean = true;
    }

    public override long AllocatedBytes
    {
        get
        {
            CommitDeferred();
            if (_allocatedBytes is long known)
                return known;
            long total = 0;
            for (int i = 0; i < _gd.Length; i++)
            {
                // Empty tables (most of a fresh disk) are recognised in bulk, without parsing.
                if (TableIsEmpty(i))
                    continue;
                uint[]? table = Table(i);
                if (table is null)
                    continue;
                for (int j = 0; j < table.Length; j++)
                {
                    uint g = table[j];
                    if (g == GrainTable.Unallocated || (g == GrainTable.Zeroed && _header.HasZeroedGrainGtes))
                        continue;
                    long start = ((long)i * _gtes + j) * _grainBytes;
                    if (start < Length)
                        total += Math.Min(_grainBytes, Length - start);
                }
            }
            _allocatedBytes = total;
            return total;
        }
    }

    public override void Flush()
    {
        CommitDeferred();
        if (_file.CanWrite)
            _file.Flush();
    }

    public override void AddDetails(Dictionary<string, string> details)
    {
        details["GrainSize"] = _grainBytes.ToString(CultureInfo.InvariantCulture);
        details["HeaderVersion"] = _header.Version.ToString(CultureInfo.InvariantCulture);
        details["HeaderFlags"] = "0x" + _header.Flags.ToString("x", CultureInfo.InvariantCulture);
        details["RedundantGrainDirectory"] = _header.HasRedundantGd ? "True" : "False";
        details["Compression"] = _header.IsCompressed ? "deflate" : "none";
        details["UncleanShutdown"] = _uncleanAtOpen ? "True" : "False";
    }

    public override void Check(List<string> problems)
    {
        CommitDeferred();
        try
        {
            CheckTables(problems);
        }
        catch (Exception ex) when (IsResourceFailure(ex))
        {
            throw new DiskFormatException(_file.Path, "grain tables", $"checking the tables failed ({ex.Message})", null, ex);
        }
    }

    private void CheckTables(List<string> problems)
    {
        string p = $"'{_file.Path}'";
        long fileLength = _file.Length;
        if (_uncleanAtOpen)
            problems.Add($"{p} was not closed cleanly (uncleanShutdown is set): the program that last wrote it stopped before closing it, so its most recent writes may be missing.");

        var counts = new Dictionary<string, int>();
        // Counts a problem and says whether its sentence is still wanted; the sentence is only
        // built when it is, so tables full of bad entries cost no string per entry.
        bool Counted(string kind)
        {
            counts.TryGetValue(kind, out int c);
            counts[kind] = c + 1;
            return c < MaxProblemsPerKind;
        }

        void Report(string kind, string sentence)
        {
            if (Counted(kind))
                problems.Add(sentence);
        }

        // After a write that was cut off (uncleanShutdown set) the two copies may disagree: both
        // are written only after the grains they point at are on the device, the redundant copy
        // first, so either one is consistent; readers use the primary. In a cleanly closed file a
        // disagreement means damage.
        string CopyMismatch(string sentence) => _uncleanAtOpen
            ? $"Warning: {sentence}, left by a write that was cut off between the two copies; the primary copy is used and is consistent."
            : sentence + ".";

        // Sectors of metadata (header, descriptor, directories, every table inside the file) and
        // sectors some grain already uses: bitmaps over the file's real length, with pages only
        // where something is, instead of lists of every grain to sort.
        long gdSectors = (_gd.Length * 4L + 511) / 512;
        long gtSectors = (_header.GtBytes + 511) / 512;
        long fileSectors = fileLength / 512 + 1;
        var metadata = new ClaimMap(fileSectors);
        metadata.Claim(0, 1);
        if (_header.DescriptorOffset != 0)
            metadata.Claim((long)_header.DescriptorOffset, (long)_header.DescriptorSize);
        metadata.Claim((long)_header.GdOffset, gdSectors);
        if (_rgd is not null)
            metadata.Claim((long)_header.RgdOffset, gdSectors);
        for (int i = 0; i < _gd.Length; i++)
        {
            if (_gd[i] != 0 && (long)_gd[i] * 512 + _header.GtBytes <= fileLength)
                metadata.Claim(_gd[i], gtSectors);
            if (_rgd is not null && _rgd[i] != 0 && (long)_rgd[i] * 512 + _header.GtBytes <= fileLength)
                metadata.Claim(_rgd[i], gtSectors);
        }
        var used = new ClaimMap(fileSectors);
        bool compressed = _header.IsCompressed;
        long grainSectors = (long)_header.GrainSize;

        for (int i = 0; i < _gd.Length; i++)
        {
            uint ps = _gd[i];
            uint rs = _rgd is null ? 0 : _rgd[i];
            uint[]? primary = null, redundant = null;
            if (ps != 0)
            {
                if ((long)ps * 512 + _header.GtBytes > fileLength)
                {
                    if (Counted("gd"))
                        problems.Add($"{p}: grain directory entry {i} points to sector {ps}, beyond the end of the file; grains {(long)i * _gtes} to {(long)(i + 1) * _gtes - 1} are unreadable.");
                }
                else
                    primary = GrainTable.Parse(_file.ReadBytes((long)ps * 512, _header.GtBytes, "grain table"), _gtes);
            }
            if (_rgd is not null)
            {
                if ((ps == 0) != (rs == 0) && Counted("gdmismatch"))
                    problems.Add(CopyMismatch($"{p}: the grain directory and the redundant grain directory disagree at entry {i} (sector {ps} vs {rs})"));
                if (rs != 0)
                {
                    if ((long)rs * 512 + _header.GtBytes > fileLength)
                    {
                        if (Counted("rgd"))
                            problems.Add($"{p}: redundant grain directory entry {i} points to sector {rs}, beyond the end of the file.");
                    }
                    else
                        redundant = GrainTable.Parse(_file.ReadBytes((long)rs * 512, _header.GtBytes, "redundant grain table"), _gtes);
                }
            }
            if (primary is null)
                continue;
            for (int j = 0; j < _gtes; j++)
            {
                long grain = (long)i * _gtes + j;
                uint g = primary[j];
                if (redundant is not null && redundant[j] != g && Counted("gtmismatch"))
                    problems.Add(CopyMismatch($"{p}: the grain table and its redundant copy disagree for grain {grain} (sector {g} vs {redundant[j]})"));
                if (g == GrainTable.Unallocated || (g == GrainTable.Zeroed && _header.HasZeroedGrainGtes))
                    continue;
                if (grain * _grainBytes >= Length)
                {
                    if (Counted("beyond"))
                        problems.Add($"{p}: grain {grain} lies past the end of the virtual disk but is allocated (sector {g}).");
                    continue;
                }
                if ((long)g * 512 >= fileLength)
                {
                    if (Counted("eof"))
                        problems.Add($"{p}: the grain table entry for grain {grain} points to sector {g}, beyond the end of the file ({fileLength} bytes).");
                    continue;
                }
                if (compressed)
                {
                    CheckCompressedGrain(grain, g, Report, p);
                    continue;
                }
                if (!used.Claim(g, grainSectors) && Counted("overlap"))
                    problems.Add($"{p}: grain {grain} (sector {g}) and another grain overlap in the file; writing one corrupts the other.");
                if (metadata.AnyClaimed(g, grainSectors) && Counted("meta"))
                    problems.Add($"{p}: grain {grain} at sector {g} overlaps the file's metadata (header, descriptor, grain directory or a grain table).");
            }
        }

        foreach (KeyValuePair<string, int> c in counts)
        {
            if (c.Value > MaxProblemsPerKind)
                problems.Add($"{p}: … and {c.Value - MaxProblemsPerKind} more problems of the same kind.");
        }
    }

    private void CheckCompressedGrain(long grain, uint gte, Action<string, string> report, string p)
    {
        try
        {
            if (_header.HasMarkers)
            {
                StreamMarker marker = StreamMarker.Parse(_file.ReadBytes((long)gte * 512, StreamMarker.GrainHeaderBytes, "grain marker"));
                if (!marker.IsMetadata && marker.Value != (ulong)grain * _header.GrainSize)
                    report("lba", $"{p}: the marker of grain {grain} (sector {gte}) names virtual sector {marker.Value} instead of {(ulong)grain * _header.GrainSize}.");
            }
            LoadCompressedGrain(grain, gte);
        }
        catch (DiskFormatException ex)
        {
            report("compressed", $"{p}: grain {grain} cannot be read: {ex.Reason}.");
        }
    }

    public override void Dispose()
    {
        try
        {
            CommitDeferred();
            if (_markedUnclean && _file.CanWrite)
            {
                // Clean close: everything written is flushed, then the flag goes back to 0.
                _file.Flush();
                _file.Write(_headerOffset + SparseExtentHeader.OffUncleanShutdown, new byte[] { 0 }, 0, 1);
                if (_headerOffset != 0)
                    _file.Write(SparseExtentHeader.OffUncleanShutdown, new byte[] { 0 }, 0, 1);
                _file.Flush();
            }
        }
        finally
        {
            if (_ownsFile)
                _file.Dispose();
        }
    }
}
