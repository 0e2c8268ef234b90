using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;

namespace VmClone.Disks.Vhd;

/// <summary>
/// A VHD file (Microsoft's Virtual Hard Disk Image Format Specification 1.0) as one layer of a
/// chain: fixed, dynamic or differencing. Opening validates the footer copies, the dynamic
/// header, the BAT and every stored block against the file's real length; reads are
/// dispatched on the BAT and each block's sector bitmap.
/// </summary>
internal sealed partial class VhdLayer : DiskLayer
{
    private readonly FileAccessor _file;
    private readonly bool _acceptBadChecksums;
    private VhdFooter _footer = null!;
    private long _footerOffset;           // where the footer that was used lies (0 or the end)
    private readonly List<string> _footerProblems = new();
    private DynamicHeader? _header;
    private string? _headerProblem;
    private BlockAllocationTable? _bat;
    private long _blockSize;
    private int _bitmapBytes;
    private bool _lsbFirstBitmaps;
    private long _virtualSize;
    private bool _sizeByGeometry;
    private long _allocatedBlocks;
    private ParentReference? _parentReference;
    private readonly List<(long Start, long End, string Name)> _metadata = new();
    private readonly Dictionary<long, byte[]> _bitmaps = new();
    private long _bitmapCacheBytes;
    private bool _hasBatmap;
    private bool _badChecksumAccepted;
    private long _reservedEnd;
    private long _nextFree;
    private const long BitmapCacheBudget = 32L << 20;

    private VhdLayer(FileAccessor file, bool acceptBadChecksums)
    {
        _file = file;
        _acceptBadChecksums = acceptBadChecksums;
    }

    /// <summary>Opens a VHD from a file already open; disposes it on failure.</summary>
    public static DiskLayer Open(FileAccessor file) => Open(file, DiskOpenOptions.Default);

    /// <summary>As <see cref="Open(FileAccessor)"/>, with bad checksums accepted when <paramref name="options"/> says so.</summary>
    public static DiskLayer Open(FileAccessor file, DiskOpenOptions options) =>
        LayerLoad.Run(file, new VhdLayer(file, options.AcceptBadChecksums), layer => layer.Load());

    public override string Path => _file.Path;

    public override DiskFormat Format => DiskFormat.Vhd;

    public override DiskType Type => _footer.DiskType switch
    {
        VhdDiskType.Fixed => DiskType.Fixed,
        VhdDiskType.Differencing => DiskType.Differencing,
        _ => DiskType.Dynamic,
    };

    public override long VirtualSize => _virtualSize;

    public override int LogicalSectorSize => 512;

    public override long BlockSize => _bat is null ? _virtualSize : _blockSize;

    public override bool CanWrite => _file.CanWrite;

    /// <summary>The footer's unique id in braces: what a child's dynamic header records as its parent's.</summary>
    public override string Identity => _footer.UniqueId.ToString("B");

    public override ParentReference? ParentReference => _parentReference;

    public override long AllocatedBytes => _bat is null ? _virtualSize : _allocatedBlocks * _blockSize;

    internal VhdFooter Footer => _footer;

    internal DynamicHeader? Header => _header;

    private IReadOnlyList<VhdLocator> _locators = Array.Empty<VhdLocator>();

    /// <summary>A differencing disk's parent locators with a path, in header order; empty for others.</summary>
    internal IReadOnlyList<VhdLocator> Locators => _locators;

    /// <summary>Whether the size is taken from the CHS geometry (qemu's rule for creators "vpc " and "qemu") rather than the current size field.</summary>
    internal bool SizeByGeometry => _sizeByGeometry;

    /// <summary>XenServer's limit on the layers of a VHD chain (MAX_CHAIN_SIZE in xapi-project/sm vhdutil.py): a deeper chain is refused there.</summary>
    internal const int XenServerMaxChainDepth = 30;

    public override IReadOnlyDictionary<string, string> Details
    {
        get
        {
            var d = new Dictionary<string, string>
            {
                ["Creator"] = _footer.CreatorApplication,
                ["CreatorVersion"] = $"{_footer.CreatorVersion >> 16}.{_footer.CreatorVersion & 0xFFFF}",
                ["CreatorHostOs"] = _footer.CreatorHostOs,
                ["UniqueId"] = _footer.UniqueId.ToString("B"),
                ["Geometry"] = _footer.Geometry.ToString(),
                ["CurrentSize"] = _footer.CurrentSize.ToString(CultureInfo.InvariantCulture),
                ["OriginalSize"] = _footer.OriginalSize.ToString(CultureInfo.InvariantCulture),
                ["SizeFrom"] = _sizeByGeometry ? "geometry" : "current size",
                ["Hidden"] = _footer.Hidden.ToString(CultureInfo.InvariantCulture),
                ["SavedState"] = _footer.SavedState.ToString(),
            };
            if (_header is not null)
            {
                d["BlockSize"] = _blockSize.ToString(CultureInfo.InvariantCulture);
                d["MaxTableEntries"] = _header.MaxTableEntries.ToString(CultureInfo.InvariantCulture);
            }
            if (_header is not null && _footer.DiskType == VhdDiskType.Differencing)
            {
                d["ParentUniqueId"] = _header.ParentUniqueId.ToString("B");
                // Reported, not trusted: Windows writes 0, blktap and DiscUtils the parent's modification time.
                d["ParentTimestamp"] = new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds(_header.ParentTimestamp).ToString("o", CultureInfo.InvariantCulture);
                d["ParentName"] = _header.ParentName;
                d["ParentLocators"] = string.Join("; ", _parentReference!.Candidates.Select(c => c.ToString()));
            }
            return d;
        }
    }

    // ------------------------------------------------------------------ open

    private void Load()
    {
        LoadStructures();
        // A checksum accepted as bad is for reading what can be recovered; writing would
        // make the damaged structures look sound.
        if (CanWrite && (_badChecksumAccepted || _headerProblem is not null))
            throw new VirtualDiskException(Path, $"VHD disk '{Path}' has a bad checksum, accepted only for reading; it is not opened for writing.");
    }

    private void LoadStructures()
    {
        long length = _file.Length;
        if (length < VhdFooter.Length)
            throw new DiskFormatException(Path, "footer", $"the file is {length} bytes, shorter than the 512-byte footer every VHD ends with", 0);
        LoadFooter(length);
        if (_footer.DiskType == VhdDiskType.Fixed)
        {
            LoadSize();
            if (_virtualSize > length - VhdFooter.Length)
                throw new DiskFormatException(Path, "footer", $"the fixed disk claims {_virtualSize} bytes but the file holds only {length - VhdFooter.Length} bytes of data before its footer", _footerOffset);
            return;
        }
        _metadata.Add((0, VhdFooter.Length, "the footer copy"));
        LoadHeader(length);
        LoadSize();
        LoadBat(length);
        if (_footer.DiskType == VhdDiskType.Differencing)
            _parentReference = LoadParentReference(length);
        ValidateBlocks(length);
    }

    /// <summary>
    /// The footer: a fixed disk's at the end; a dynamic or differencing disk's copy at 0, or the
    /// one at the end when the copy is damaged. A copy whose checksum is wrong is passed over for
    /// a good one; with none good the file is refused, naming the checksum, unless the caller
    /// accepts bad checksums.
    /// </summary>
    private void LoadFooter(long length)
    {
        long tailOffset = length - VhdFooter.Length;
        VhdFooter? tail = VhdFooter.TryParse(_file.ReadBytes(tailOffset, VhdFooter.Length, "footer"));
        VhdFooter? head = tailOffset == 0 ? null : VhdFooter.TryParse(_file.ReadBytes(0, VhdFooter.Length, "footer copy"));
        static bool Sparse(VhdFooter f) => f.DiskType is VhdDiskType.Dynamic or VhdDiskType.Differencing;

        if (tail is not null && tail.ChecksumValid && tail.DiskType == VhdDiskType.Fixed)
        {
            Use(tail, tailOffset);
            return;
        }
        if (head is not null && head.ChecksumValid && Sparse(head))
        {
            Use(head, 0);
            if (tail is null || !tail.ChecksumValid)
                // What a write cut off leaves (the footer not yet moved past a new block, or not
                // yet given the new unique id); the copy at 0 describes the disk, and the next
                // write puts the footer right.
                _footerProblems.Add(tail is null
                    ? $"Warning: the footer at the end of the file (offset {tailOffset}) is missing; the copy at offset 0 was used."
                    : $"Warning: the footer at the end of the file (offset {tailOffset}) has a bad checksum; the copy at offset 0 was used.");
            else if (!tail.Raw.AsSpan().SequenceEqual(head.Raw))
                _footerProblems.Add($"Warning: the footer at the end of the file (offset {tailOffset}) differs from its copy at offset 0, which was used.");
            return;
        }
        if (tail is not null && tail.ChecksumValid && Sparse(tail))
        {
            Use(tail, tailOffset);
            _footerProblems.Add(head is null
                ? "Warning: the footer copy at offset 0 is missing; the footer at the end of the file was used."
                : "Warning: the footer copy at offset 0 has a bad checksum; the footer at the end of the file was used.");
            return;
        }
        if (tail is not null && tail.ChecksumValid)
            throw new DiskFormatException(Path, "footer", $"disk type {tail.RawDiskType} is not fixed (2), dynamic (3) or differencing (4)", tailOffset);
        if (head is not null && head.ChecksumValid)
            throw new DiskFormatException(Path, "footer copy", $"disk type {head.RawDiskType} is not fixed (2), dynamic (3) or differencing (4)", 0);

        // No copy has a right checksum.
        VhdFooter? damaged = head is not null && Sparse(head) ? head : tail ?? head;
        if (damaged is null)
            throw new DiskFormatException(Path, "footer", $"no VHD footer: neither offset 0 nor the end of the file (offset {tailOffset}) holds the \"conectix\" cookie", tailOffset);
        long at = damaged == head ? 0 : tailOffset;
        string which = head is not null && tail is not null
            ? $"both copies of the footer (at offset 0 and at {tailOffset}) have a bad checksum"
            : $"the footer at offset {at} has a bad checksum";
        string detail = $"{which} (stored 0x{damaged.StoredChecksum:X8}, computed 0x{VhdChecksum.Compute(damaged.Raw, VhdFooter.ChecksumOffset):X8})";
        if (!_acceptBadChecksums)
            throw new DiskFormatException(Path, "footer checksum", detail + "; the file was edited or damaged (open it with bad checksums accepted only to recover data)", at);
        if (damaged.DiskType == VhdDiskType.None)
            throw new DiskFormatException(Path, "footer", $"disk type {damaged.RawDiskType} is not fixed (2), dynamic (3) or differencing (4)", at);
        Use(damaged, at);
        _badChecksumAccepted = true;
        _footerProblems.Add("The footer checksum is wrong: " + detail + "; read because bad checksums were accepted.");

        void Use(VhdFooter f, long offset)
        {
            _footer = f;
            _footerOffset = offset;
        }
    }

    /// <summary>The virtual size by qemu's rule (<see cref="VhdFooter.VirtualSizeByQemuRule"/>), within what the format holds.</summary>
    private void LoadSize()
    {
        _virtualSize = _footer.VirtualSizeByQemuRule(out _sizeByGeometry);
        if (_virtualSize <= 0)
            throw new DiskFormatException(Path, "footer", _sizeByGeometry
                ? $"the geometry {_footer.Geometry} gives a size of 0 bytes"
                : $"the current size {_footer.CurrentSize} is less than one 512-byte sector", _footerOffset);
        if (_virtualSize > VhdFooter.MaxVirtualSize)
            throw new DiskFormatException(Path, "footer", $"the disk claims {_footer.CurrentSize} bytes, more than the {VhdFooter.MaxVirtualSize} bytes (2040 GiB) a VHD holds", _footerOffset);
    }

    private void LoadHeader(long length)
    {
        ulong at = _footer.DataOffset;
        if (at < VhdFooter.Length || at > (ulong)(length - VhdFooter.Length - DynamicHeader.Length))
            throw new DiskFormatException(Path, "footer", $"the dynamic disk header offset {at} lies outside the file ({length} bytes)", _footerOffset);
        long offset = (long)at;
        _header = DynamicHeader.Parse(_file.ReadBytes(offset, DynamicHeader.Length, "dynamic disk header"));
        if (!_header.HasCookie)
            throw new DiskFormatException(Path, "dynamic disk header", "no \"cxsparse\" cookie", offset);
        if (!_header.ChecksumValid)
        {
            string detail = $"bad checksum (stored 0x{_header.StoredChecksum:X8}, computed 0x{VhdChecksum.Compute(_header.Raw, DynamicHeader.ChecksumOffset):X8})";
            if (!_acceptBadChecksums)
                throw new DiskFormatException(Path, "dynamic disk header checksum", detail + "; the file was edited or damaged (open it with bad checksums accepted only to recover data)", offset);
            _headerProblem = $"The dynamic disk header at offset {offset} has a {detail}; read because bad checksums were accepted.";
        }
        if (_header.HeaderVersion != VhdFooter.Version1)
            throw new DiskFormatException(Path, "dynamic disk header", $"header version 0x{_header.HeaderVersion:X8} is not 0x00010000", offset);
        long bs = _header.BlockSize;
        if (bs < DynamicHeader.MinBlockSize || bs > DynamicHeader.MaxBlockSize || (bs & (bs - 1)) != 0)
            throw new DiskFormatException(Path, "dynamic disk header", $"block size {bs} is not a power of two from {DynamicHeader.MinBlockSize} to {DynamicHeader.MaxBlockSize} bytes", offset);
        _blockSize = bs;
        _bitmapBytes = BlockBitmap.SizeInFile(bs);
        // tapdisk 0.1 wrote bitmaps least significant bit first (blktap vhd.h).
        _lsbFirstBitmaps = _footer.CreatorApplication == "tap" && _footer.CreatorVersion == 0x00000001;
        _metadata.Add((offset, offset + DynamicHeader.Length, "the dynamic disk header"));
    }

    private void LoadBat(long length)
    {
        DynamicHeader h = _header!;
        long headerAt = (long)_footer.DataOffset;
        ulong tableOffset = h.TableOffset;
        long tableBytes = (long)h.MaxTableEntries * BlockAllocationTable.EntrySize;
        if (tableOffset > (ulong)length || tableBytes > length - (long)tableOffset)
            throw new DiskFormatException(Path, "BAT", $"the table of {h.MaxTableEntries} entries ({tableBytes} bytes at offset {tableOffset}) lies beyond the end of the file ({length} bytes)", headerAt);
        long blocks = (_virtualSize + _blockSize - 1) / _blockSize;
        if (blocks > h.MaxTableEntries)
            throw new DiskFormatException(Path, "BAT", $"a {_virtualSize}-byte disk of {_blockSize}-byte blocks needs {blocks} entries but the table has {h.MaxTableEntries}", headerAt);
        long at = (long)tableOffset;
        foreach (var m in _metadata)
        {
            if (at < m.End && m.Start < at + Math.Max(tableBytes, 1))
                throw new DiskFormatException(Path, "BAT", $"the table at offset {at} overlaps {m.Name}", headerAt);
        }
        _bat = BlockAllocationTable.Parse(_file.ReadBytes(at, (int)(blocks * BlockAllocationTable.EntrySize), "BAT"), (int)blocks);
        long tableEnd = at + (tableBytes + 511) / 512 * 512;
        _metadata.Add((at, tableEnd, "the BAT"));
        // XenServer's batmap (blktap "tdbatmap") follows the BAT; VmClone does not keep it.
        if (tableEnd <= length - 8)
            _hasBatmap = _file.ReadBytes(tableEnd, 8, "batmap").AsSpan().SequenceEqual(System.Text.Encoding.ASCII.GetBytes("tdbatmap"));
    }

    /// <summary>
    /// Where to look for the parent, in the order tried: relative locators (W2ru, Wi2r, a
    /// relative MacX URL), then absolute ones (W2ku, Wi2k, MacX), then the parent name field (as
    /// stored, then its file name beside the child: how tools that ignore locators find it).
    /// A locator whose data lies outside the file is refused.
    /// </summary>
    private ParentReference LoadParentReference(long length)
    {
        DynamicHeader h = _header!;
        long headerAt = (long)_footer.DataOffset;
        var relative = new List<ParentPathCandidate>();
        var absolute = new List<ParentPathCandidate>();
        IReadOnlyList<ParentLocatorEntry> locators = h.Locators;
        var locatorsRead = new List<VhdLocator>();
        _locators = locatorsRead;
        for (int i = 0; i < locators.Count; i++)
        {
            ParentLocatorEntry e = locators[i];
            if (e.IsEmpty)
                continue;
            long entryAt = headerAt + 576 + i * ParentLocatorEntry.Length;
            if (e.DataLength == 0)
                continue;
            if (e.DataLength > ParentLocatorEntry.MaxDataLength)
                throw new DiskFormatException(Path, "parent locator", $"locator {i} ({e.CodeName}) claims {e.DataLength} bytes of path, more than the {ParentLocatorEntry.MaxDataLength} any path takes", entryAt);
            if (e.DataOffset > (ulong)length || e.DataLength > length - (long)e.DataOffset)
                throw new DiskFormatException(Path, "parent locator", $"locator {i} ({e.CodeName}) points at {e.DataLength} bytes at offset {e.DataOffset}, outside the file ({length} bytes)", entryAt);
            if (e.DataOffset < VhdFooter.Length)
                throw new DiskFormatException(Path, "parent locator", $"locator {i} ({e.CodeName}) points at offset {e.DataOffset}, inside the footer copy", entryAt);
            byte[] data = _file.ReadBytes((long)e.DataOffset, (int)e.DataLength, "parent locator");
            _metadata.Add(((long)e.DataOffset, (long)e.DataOffset + e.DataLength, $"parent locator {i}"));
            _reservedEnd = Math.Max(_reservedEnd, Math.Min(length, (long)e.DataOffset + e.ReservedBytes));
            string? decoded = e.DecodePath(data);
            locatorsRead.Add(new VhdLocator(e.CodeName, decoded, decoded is null || decoded.Length == 0 ? null : e.IsRelative(decoded) ? ParentPathKind.Relative : ParentPathKind.Absolute));
            if (decoded is null || decoded.Length == 0)
                continue;
            (e.IsRelative(decoded) ? relative : absolute).Add(new ParentPathCandidate(
                e.IsRelative(decoded) ? ParentPathKind.Relative : ParentPathKind.Absolute, decoded));
        }
        var candidates = new List<ParentPathCandidate>(relative);
        candidates.AddRange(absolute);
        string name = h.ParentName;
        if (name.Length > 0)
        {
            bool rooted = name.StartsWith("/", StringComparison.Ordinal) || name.StartsWith("\\", StringComparison.Ordinal) || (name.Length >= 2 && name[1] == ':');
            AddByName(new ParentPathCandidate(rooted ? ParentPathKind.Absolute : ParentPathKind.Relative, name));
            string fileName = name.Substring(name.LastIndexOfAny(new[] { '/', '\\' }) + 1);
            if (fileName.Length > 0 && fileName != name)
                AddByName(new ParentPathCandidate(ParentPathKind.Relative, fileName));
        }
        return new ParentReference(candidates, h.ParentUniqueId.ToString("B"));

        // The name field is a guess at where the parent is, not a link the file makes: the file
        // name beside a child named as its parent (a store's clones/lab/system.vhd over
        // bases/v1/system.vhd) is the child itself, passed over so that a parent missing or
        // modified is told as that, not as a loop.
        void AddByName(ParentPathCandidate candidate)
        {
            string? local = PathUtil.Localize(candidate, System.IO.Path.GetDirectoryName(Path) ?? ".");
            if (local is null || !PathUtil.SamePath(local, Path))
                candidates.Add(candidate);
        }
    }

    /// <summary>
    /// Every stored block lies inside the file, clear of the metadata and of every other block:
    /// a block two entries name, or one over the BAT, would show one piece of the file as two
    /// parts of the disk. Costs a sort of the stored blocks, nothing for the blocks not stored.
    /// </summary>
    private void ValidateBlocks(long length)
    {
        BlockAllocationTable bat = _bat!;
        long tableAt = (long)_header!.TableOffset;
        var stored = new List<(long Start, long End, long Block)>();
        for (long b = 0; b < bat.Count; b++)
        {
            if (!bat.IsAllocated(b))
                continue;
            long start = bat.BitmapOffset(b);
            long end = start + _bitmapBytes + UsedBytes(b);
            if (end > length)
                throw new DiskFormatException(Path, "BAT", $"block {b} at offset {start} ({end - start} bytes with its bitmap) lies beyond the end of the file ({length} bytes)", tableAt + b * 4);
            foreach (var m in _metadata)
            {
                if (start < m.End && m.Start < end)
                    throw new DiskFormatException(Path, "BAT", $"block {b} at offset {start} overlaps {m.Name}", tableAt + b * 4);
            }
            stored.Add((start, end, b));
        }
        stored.Sort((x, y) => x.Start.CompareTo(y.Start));
        for (int i = 1; i < stored.Count; i++)
        {
            if (stored[i].Start < stored[i - 1].End)
                throw new DiskFormatException(Path, "BAT", $"block {stored[i].Block} at offset {stored[i].Start} overlaps block {stored[i - 1].Block} at offset {stored[i - 1].Start}; a block in the file belongs to one entry only", tableAt + stored[i].Block * 4);
        }
        _allocatedBlocks = stored.Count;
        _blocksEnd = stored.Count == 0 ? 0 : stored.Max(s => s.Start + _bitmapBytes + _blockSize);
        // New blocks start where the footer at the end lies, past every structure and block.
        _nextFree = Math.Max(length - VhdFooter.Length, Math.Max(_blocksEnd, _reservedEnd));
        foreach (var m in _metadata)
            _nextFree = Math.Max(_nextFree, m.End);
    }

    // End of the furthest stored block taken at its full size: where new blocks may begin.
    private long _blocksEnd;

    private long UsedBytes(long block) => Math.Min(_blockSize, _virtualSize - block * _blockSize);

    // ------------------------------------------------------------------ read

    public override LayerExtent GetExtent(long position, long maxLength)
    {
        CommitBatch();
        CheckRange(position, 1);
        maxLength = Math.Min(maxLength, _virtualSize - position);
        if (_bat is null)
            return new LayerExtent(ExtentKind.Data, maxLength);
        ExtentKind? kind = null;
        long total = 0;
        while (total < maxLength)
        {
            long pos = position + total;
            long block = pos / _blockSize;
            long inBlock = pos % _blockSize;
            long limit = Math.Min(_blockSize - inBlock, maxLength - total);
            (ExtentKind k, long length) = ExtentInBlock(block, inBlock, limit);
            if (kind is null)
                kind = k;
            else if (k != kind)
                break;
            total += length;
            if (length < limit)
                break;
        }
        return new LayerExtent(kind ?? ExtentKind.Parent, total);
    }

    private (ExtentKind Kind, long Length) ExtentInBlock(long block, long inBlock, long limit)
    {
        if (!_bat!.IsAllocated(block))
            return (ExtentKind.Parent, limit);
        byte[] bitmap = Bitmap(block);
        long sector = inBlock / 512;
        long within = inBlock % 512;
        long maxSectors = (within + limit + 511) / 512;
        long run = BlockBitmap.RunLength(bitmap, sector, maxSectors, _lsbFirstBitmaps, out bool set);
        // A clear bit: the parent's sector in a differencing disk; zeros in a dynamic one.
        ExtentKind kind = set ? ExtentKind.Data : _footer.DiskType == VhdDiskType.Differencing ? ExtentKind.Parent : ExtentKind.Zero;
        return (kind, Math.Min(limit, run * 512 - within));
    }

    /// <summary>A stored block's bitmap (cached; the cache is emptied when it passes its budget).</summary>
    private byte[] Bitmap(long block)
    {
        if (_bitmaps.TryGetValue(block, out byte[]? cached) || _pendingBitmaps.TryGetValue(block, out cached))
            return cached;
        byte[] bitmap = _file.ReadBytes(_bat!.BitmapOffset(block), (int)Math.Max(1, _blockSize / 512 / 8), "sector bitmap");
        if (_bitmapCacheBytes + bitmap.Length > BitmapCacheBudget)
        {
            _bitmaps.Clear();
            _bitmapCacheBytes = 0;
        }
        _bitmaps[block] = bitmap;
        _bitmapCacheBytes += bitmap.Length;
        return bitmap;
    }

    public override DataLocation? LocateData(long position, long maxLength)
    {
        CheckRange(position, Math.Min(maxLength, VirtualSize - position));
        if (_bat is null)
            return new DataLocation(Path, position, Math.Min(maxLength, VirtualSize - position));
        long block = position / _blockSize;
        long inBlock = position % _blockSize;
        if (!_bat.IsAllocated(block))
            return null;
        return new DataLocation(Path, _bat.BitmapOffset(block) + _bitmapBytes + inBlock, Math.Min(maxLength, _blockSize - inBlock));
    }

    public override void ReadData(long position, byte[] buffer, int offset, int count)
    {
        CommitBatch();
        CheckRange(position, count);
        if (_bat is null)
        {
            _file.ReadExactly(position, buffer, offset, count, "data");
            return;
        }
        while (count > 0)
        {
            long block = position / _blockSize;
            long inBlock = position % _blockSize;
            if (!_bat.IsAllocated(block))
                throw new DiskFormatException(Path, "BAT", $"block {block} is read as stored but the BAT does not store it", (long)_header!.TableOffset + block * 4);
            long fileOffset = _bat.BitmapOffset(block) + _bitmapBytes + inBlock;
            int run = (int)Math.Min(count, _blockSize - inBlock);
            _file.ReadExactly(fileOffset, buffer, offset, run, "block data");
            position += run;
            offset += run;
            count -= run;
        }
    }

    // ------------------------------------------------------------------ check

    public override IReadOnlyList<string> Check()
    {
        var problems = new List<string>(_footerProblems);
        if (_headerProblem is not null)
            problems.Add(_headerProblem);
        return problems;
    }

    // ------------------------------------------------------------------ misc

    public override void Flush()
    {
        CommitBatch();
        if (CanWrite)
            _file.Flush();
    }

    protected override void Dispose(bool disposing)
    {
        if (!disposing)
            return;
        try
        {
            Flush();
        }
        finally
        {
            _file.Dispose();
        }
    }
}

/// <summary>One parent locator of a differencing VHD: its platform code and the path it holds.</summary>
internal sealed class VhdLocator
{
    public VhdLocator(string code, string? storedPath, ParentPathKind? kind)
    {
        Code = code;
        StoredPath = storedPath;
        Kind = kind;
    }

    /// <summary>The platform code as four ASCII characters ("W2ru", "W2ku", "MacX" ...).</summary>
    public string Code { get; }

    /// <summary>The path the locator holds (a MacX URL as its path), or null for a code whose data is not a path VmClone reads.</summary>
    public string? StoredPath { get; }

    /// <summary>Relative to the child's folder or absolute; null without a path.</summary>
    public ParentPathKind? Kind { get; }
}
