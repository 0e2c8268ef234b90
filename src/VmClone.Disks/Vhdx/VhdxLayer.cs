using System;
using System.Buffers;
using System.Collections.Generic;
using System.IO;

namespace VmClone.Disks.Vhdx;

/// <summary>
/// A VHDX file ([MS-VHDX] v1) as one layer of a chain: dynamic, fixed or differencing.
/// Opening validates every structure against the file's real length; the BAT is kept in
/// memory; reads are dispatched on block state; writes allocate 1 MiB aligned blocks at the end
/// of the file.
/// </summary>
/// <remarks>
/// Crash safety: metadata is updated by ordered writes with flushes, not through the log.
/// Every change is made in the order data → flush → sector bitmap → flush → (new sector
/// bitmap block's BAT entry → flush) → payload BAT entry → flush. A crash at any point leaves
/// each BAT entry either old or new, and a new entry is only ever durable after what it
/// exposes, so a reader never sees garbage; the worst case is an allocated block no BAT entry
/// points at (leaked space, reported by nothing and harmless). We chose this over the log
/// because the log only helps multi-sector metadata updates, which we never need (every
/// update is one BAT entry or one bitmap slice, each within one sector), and because files
/// with an empty log read correctly in every tool, including libvhdi, which ignores the log.
/// Headers use the two-copy protocol of 2.2.2.1. In a write batch (<see cref="DiskLayer.BeginBatch"/>)
/// the same order holds for all the batch's writes together: every write's data, one flush,
/// every bitmap slice, one flush, every BAT entry, one flush. A torn write of several entries
/// still leaves each entry (8 bytes, within one sector) old or new.
/// </remarks>
internal sealed partial class VhdxLayer : DiskLayer
{
    private readonly FileAccessor _file;
    private readonly VhdxFileView _view;
    private readonly SectorBitmapCache _bitmaps = new();
    private readonly List<(long Start, long End, string Name)> _reserved = new();
    private FileIdentifier _identifier = null!;
    private VhdxHeader _header = null!;
    private int _headerSlot; // 0: header 1 at 64 KiB is current; 1: header 2 at 128 KiB
    private bool _otherHeaderValid;
    private RegionTable _regions = null!;
    private string? _regionTableProblem;
    private FileParameters _parameters;
    private long _virtualSize;
    private long _virtualSizeItemOffset; // file offset of the virtual disk size item (2.6.2.2)
    private int _logicalSectorSize;
    private int _physicalSectorSize;
    private Guid _page83;
    private ParentLocator? _locator;
    private ParentReference? _parentReference;
    private Bat _bat = null!;
    private long _nextFreeOffset;
    private long _reach;
    private long _allocatedBlocks;
    // 1 MiB units of the file that two BAT entries claim (null in a sound file): blocks there are refused.
    private ClaimMap? _sharedUnits;
    private bool _fileWriteGuidChanged;
    private bool _dataWriteGuidChanged;
    private bool _unflushed;
    private string _logState = "clean";
    private Guid _replayedLogGuid;
    private int _replayedEntries;

    private VhdxLayer(FileAccessor file)
    {
        _file = file;
        _view = new VhdxFileView(file);
    }

    /// <summary>
    /// Opens and validates a VHDX file. A dirty log is replayed in memory; a read-write open
    /// writes that replay into the file only after every structure has been validated through
    /// it, so a file that is refused is never written.
    /// </summary>
    public static DiskLayer Open(string path, FileAccess access) => Open(FileAccessor.Open(path, access));

    /// <summary>Opens a VHDX from a file already open (read-write or not, as the layer will be); disposes it on failure.</summary>
    public static DiskLayer Open(FileAccessor file) =>
        LayerLoad.Run(file, new VhdxLayer(file), layer => layer.Load());

    public override string Path => _file.Path;

    public override DiskFormat Format => DiskFormat.Vhdx;

    public override DiskType Type => _parameters.HasParent ? DiskType.Differencing
        : _parameters.LeaveBlockAllocated ? DiskType.Fixed : DiskType.Dynamic;

    public override long VirtualSize => _virtualSize;

    public override int LogicalSectorSize => _logicalSectorSize;

    public override int PhysicalSectorSize => _physicalSectorSize;

    public override long BlockSize => _parameters.BlockSize;

    public override bool CanWrite => _file.CanWrite;

    /// <summary>The DataWriteGuid in braces, lowercase: what a child's parent_linkage records.</summary>
    public override string Identity => _header.DataWriteGuid.ToString("B");

    public override ParentReference? ParentReference => _parentReference;

    public override long AllocatedBytes
    {
        get
        {
            CommitBatch();
            return _allocatedBlocks * BlockSize;
        }
    }

    internal Guid DataWriteGuid => _header.DataWriteGuid;

    internal Guid FileWriteGuid => _header.FileWriteGuid;

    internal Guid LogGuid => _header.LogGuid;

    internal Guid VirtualDiskId => _page83;

    internal ParentLocator? Locator => _locator;

    internal Bat Bat => _bat;

    public override IReadOnlyDictionary<string, string> Details => new Dictionary<string, string>
    {
        ["Creator"] = _identifier.Creator,
        ["FileWriteGuid"] = _header.FileWriteGuid.ToString("B"),
        ["DataWriteGuid"] = _header.DataWriteGuid.ToString("B"),
        ["LogGuid"] = (_header.LogGuid == Guid.Empty ? _replayedLogGuid : _header.LogGuid).ToString("B"),
        ["Log"] = _logState,
        ["VirtualDiskId"] = _page83.ToString("B"),
        ["HeaderSequenceNumber"] = _header.SequenceNumber.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["BlockSize"] = BlockSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["ChunkRatio"] = _bat.ChunkRatio.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["LogicalSectorSize"] = _logicalSectorSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["PhysicalSectorSize"] = _physicalSectorSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["LeaveBlockAllocated"] = _parameters.LeaveBlockAllocated.ToString(),
        ["HasParent"] = _parameters.HasParent.ToString(),
    };

    // ------------------------------------------------------------------ open

    private void Load()
    {
        long fileLength = _file.Length;
        if (fileLength < VhdxConstants.HeaderSectionLength)
            throw new DiskFormatException(Path, "file", $"the file is {fileLength} bytes, shorter than the 1 MiB header section every VHDX has (MS-VHDX 2.1)", 0);
        _identifier = FileIdentifier.Parse(_file.ReadBytes(0, FileIdentifier.Length, "file type identifier"), Path);
        LoadHeaders(fileLength);
        _reserved.Add((0, VhdxConstants.HeaderSectionLength, "the header section"));
        if (_header.LogLength > 0)
            _reserved.Add(((long)_header.LogOffset, (long)_header.LogOffset + _header.LogLength, "the log"));
        bool dirty = _header.LogGuid != Guid.Empty;
        ReplayedLog? replayed = dirty ? ReplayLogInMemory(fileLength) : null;
        LoadRegions();
        LoadMetadata();
        LoadBat();
        if (dirty && CanWrite)
        {
            RefuseReplayBeyondReach(replayed);
            WriteReplay(replayed);
        }
    }

    /// <summary>
    /// A log writes metadata and payload of this file only: the file itself, its regions, and
    /// blocks the (replayed) BAT places starting inside the file. Data past all of that has
    /// nothing here to belong to, and writing it would grow the file to wherever the log says;
    /// such a log is malformed and the read-write open refused before anything is written.
    /// </summary>
    private void RefuseReplayBeyondReach(ReplayedLog? replayed)
    {
        if (replayed is null || replayed.DataEnd <= _reach)
            return;
        throw new DiskFormatException(Path, "log",
            $"a log entry writes data up to {replayed.DataEnd}, past everything this file's regions and blocks reach ({_reach} bytes; the file is {_file.Length} bytes); the file cannot be written safely",
            (long)_header.LogOffset);
    }

    /// <summary>2.2.2: valid = signature and checksum; the larger sequence number wins; one valid copy is enough.</summary>
    private void LoadHeaders(long fileLength)
    {
        VhdxHeader? h1 = VhdxHeader.TryParse(_file.ReadBytes(VhdxConstants.Header1Offset, VhdxHeader.Length, "header 1"));
        VhdxHeader? h2 = VhdxHeader.TryParse(_file.ReadBytes(VhdxConstants.Header2Offset, VhdxHeader.Length, "header 2"));
        if (h1 is null && h2 is null)
            throw new DiskFormatException(Path, "header", $"neither header copy (at {VhdxConstants.Header1Offset} and {VhdxConstants.Header2Offset}) has a valid signature and CRC-32C checksum (MS-VHDX 2.2.2)", VhdxConstants.Header1Offset);
        if (h2 is null || (h1 is not null && h1.SequenceNumber >= h2.SequenceNumber))
        {
            _header = h1!;
            _headerSlot = 0;
            _otherHeaderValid = h2 is not null;
        }
        else
        {
            _header = h2;
            _headerSlot = 1;
            _otherHeaderValid = h1 is not null;
        }
        _header.Validate(Path, HeaderOffset(_headerSlot), fileLength);
    }

    private static long HeaderOffset(int slot) => slot == 0 ? VhdxConstants.Header1Offset : VhdxConstants.Header2Offset;

    /// <summary>
    /// 2.3.3: finds the active sequence and lays it over the file in memory (indexed once), so
    /// regions, metadata and BAT are read and validated as they are after replay.
    /// </summary>
    private ReplayedLog? ReplayLogInMemory(long fileLength)
    {
        long logOffset = (long)_header.LogOffset;
        long logLength = _header.LogLength;
        if (logLength > LogReplayer.MaxLogLength)
            throw new DiskFormatException(Path, "log", $"the dirty log is {logLength} bytes; VmClone replays logs of at most {LogReplayer.MaxLogLength} bytes", logOffset);
        byte[] log = _file.ReadBytes(logOffset, (int)logLength, "log");
        LogReplayPlan? plan = LogReplayer.FindActiveSequence(log, _header.LogGuid, Path, logOffset, fileLength);
        _replayedLogGuid = _header.LogGuid;
        if (plan is null)
        {
            _logState = "log GUID set but no complete log sequence: nothing to replay";
            return null;
        }
        ReplayedLog replayed = ReplayedLog.Build(plan.Operations);
        _view.SetOverlay(replayed);
        _replayedEntries = plan.EntryCount;
        _logState = $"replayed in memory only ({plan.EntryCount} entries; the file was not changed)";
        return replayed;
    }

    /// <summary>
    /// A read-write open, after everything validated: a new FileWriteGuid, the replayed runs
    /// written into the file and flushed, then the log GUID cleared (2.3.3). Zeros past the
    /// end of the file need no writing; the file grows only as far as the log writes data.
    /// </summary>
    private void WriteReplay(ReplayedLog? replayed)
    {
        _view.ClearOverlay();
        UpdateHeader(h => h.FileWriteGuid = Guid.NewGuid());
        _fileWriteGuidChanged = true;
        if (replayed is not null)
        {
            byte[]? zeros = null;
            for (int i = 0; i < replayed.Count; i++)
            {
                (long start, long end, LogOperation op) = replayed[i];
                if (op.Data is not null)
                {
                    _view.Write(start, op.Data, (int)(start - op.FileOffset), (int)(end - start));
                    continue;
                }
                zeros ??= new byte[VhdxConstants.MiB];
                long stop = Math.Min(end, _file.Length);
                for (long at = start; at < stop; at += zeros.Length)
                    _view.Write(at, zeros, 0, (int)Math.Min(zeros.Length, stop - at));
            }
            _view.Flush();
        }
        UpdateHeader(h => h.LogGuid = Guid.Empty);
        _logState = replayed is null ? "log GUID cleared (no complete log sequence)" : $"replayed into the file ({_replayedEntries} entries)";
    }

    /// <summary>
    /// 2.2.3: region table 1, or copy 2 when copy 1 is damaged. Copy 2 is only read when copy 1
    /// is unusable; otherwise the checker looks at it (<see cref="RegionTable2Problem"/>), so
    /// an open reads and checksums 64 KiB less.
    /// </summary>
    private void LoadRegions()
    {
        RegionTable? t1 = ParseRegionTable(VhdxConstants.RegionTable1Offset, "region table 1", out string? p1);
        RegionTable? t2 = null;
        string? p2 = null;
        if (t1 is null)
            t2 = ParseRegionTable(VhdxConstants.RegionTable2Offset, "region table 2", out p2);
        long at = t1 is not null ? VhdxConstants.RegionTable1Offset : VhdxConstants.RegionTable2Offset;
        _regions = t1 ?? t2 ?? throw new DiskFormatException(Path, "region table",
            $"neither copy is usable: copy 1 at {VhdxConstants.RegionTable1Offset}: {p1}; copy 2 at {VhdxConstants.RegionTable2Offset}: {p2} (MS-VHDX 2.2.3)", VhdxConstants.RegionTable1Offset);
        if (t1 is null)
            _regionTableProblem = $"Region table copy 1 (at {VhdxConstants.RegionTable1Offset}) is damaged ({p1}); copy 2 was used.";
        _regions.Validate(Path, at, _view.Length, (long)_header.LogOffset, _header.LogLength);
        foreach (RegionTableEntry e in _regions.Entries)
            _reserved.Add((e.FileOffset, e.End, e.Id == RegionTable.BatRegion ? "the BAT" : e.Id == RegionTable.MetadataRegion ? "the metadata region" : $"region {e.Id:B}"));
    }

    /// <summary>Reads and parses one region table copy through a pooled buffer (the table keeps no reference to it).</summary>
    private RegionTable? ParseRegionTable(long offset, string name, out string? problem)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(RegionTable.Length);
        try
        {
            // A region table is 64 KiB of which a few entries are used: the rest of a new
            // file's table is a hole, zero-filled without being read.
            _view.ReadStructure(offset, buffer, 0, RegionTable.Length, name);
            return RegionTable.TryParse(new ReadOnlySpan<byte>(buffer, 0, RegionTable.Length), out problem);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The checker's sentence about region table copy 2 when copy 1 was used and copy 2 is damaged.</summary>
    private string? RegionTable2Problem()
    {
        if (_regionTableProblem is not null)
            return _regionTableProblem;
        ParseRegionTable(VhdxConstants.RegionTable2Offset, "region table 2", out string? p2);
        return p2 is null ? null : $"Region table copy 2 (at {VhdxConstants.RegionTable2Offset}) is damaged ({p2}); copy 1 is intact.";
    }

    private static readonly Guid[] KnownItems =
    {
        FileParameters.ItemId, VirtualDiskMetadata.VirtualDiskSizeId, VirtualDiskMetadata.Page83DataId,
        VirtualDiskMetadata.LogicalSectorSizeId, VirtualDiskMetadata.PhysicalSectorSizeId, ParentLocator.ItemId,
    };

    /// <summary>2.6: the table, then every required system item (2.6.2).</summary>
    private void LoadMetadata()
    {
        RegionTableEntry region = _regions.Metadata;
        // The table and, in every file we have seen, all items lie in the region's first
        // 128 KiB: one read instead of one per item (items elsewhere are read on their own).
        int windowLength = (int)Math.Min(region.Length, 2 * MetadataTable.Length);
        byte[] window = ArrayPool<byte>.Shared.Rent(windowLength);
        try
        {
            _view.ReadStructure(region.FileOffset, window, 0, windowLength, "metadata table");
            LoadMetadata(region, window, windowLength);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(window);
        }
    }

    private void LoadMetadata(RegionTableEntry region, byte[] window, int windowLength)
    {
        MetadataTable table = MetadataTable.Parse(new ReadOnlySpan<byte>(window, 0, windowLength), Path, region.FileOffset, region.Length, KnownItems);

        byte[] Item(Guid id, string name, bool required)
        {
            MetadataTableEntry? e = table.Find(id);
            if (e is null)
            {
                if (required)
                    throw new DiskFormatException(Path, "metadata table", $"the required {name} item is missing (MS-VHDX 2.6.2)", region.FileOffset);
                return Array.Empty<byte>();
            }
            if (e.Value.Offset + (long)e.Value.Length <= windowLength)
                return window.AsSpan((int)e.Value.Offset, (int)e.Value.Length).ToArray();
            return _view.ReadBytes(region.FileOffset + e.Value.Offset, (int)e.Value.Length, name);
        }

        long ItemOffset(Guid id) => region.FileOffset + (table.Find(id)?.Offset ?? 0);

        _parameters = FileParameters.Parse(Item(FileParameters.ItemId, "file parameters", true), Path, ItemOffset(FileParameters.ItemId));
        _virtualSize = VirtualDiskMetadata.ParseVirtualDiskSize(Item(VirtualDiskMetadata.VirtualDiskSizeId, "virtual disk size", true), Path, ItemOffset(VirtualDiskMetadata.VirtualDiskSizeId));
        _virtualSizeItemOffset = ItemOffset(VirtualDiskMetadata.VirtualDiskSizeId);
        _page83 = VirtualDiskMetadata.ParsePage83Data(Item(VirtualDiskMetadata.Page83DataId, "page 83 data", true), Path, ItemOffset(VirtualDiskMetadata.Page83DataId));
        _logicalSectorSize = VirtualDiskMetadata.ParseSectorSize(Item(VirtualDiskMetadata.LogicalSectorSizeId, "logical sector size", true), Path, ItemOffset(VirtualDiskMetadata.LogicalSectorSizeId), "logical sector size", "2.6.2.4");
        _physicalSectorSize = VirtualDiskMetadata.ParseSectorSize(Item(VirtualDiskMetadata.PhysicalSectorSizeId, "physical sector size", true), Path, ItemOffset(VirtualDiskMetadata.PhysicalSectorSizeId), "physical sector size", "2.6.2.5");
        if (_virtualSize % _logicalSectorSize != 0)
            throw new DiskFormatException(Path, "virtual disk size", $"{_virtualSize} bytes is not a multiple of the {_logicalSectorSize}-byte logical sector (MS-VHDX 2.6.2.2)", ItemOffset(VirtualDiskMetadata.VirtualDiskSizeId));
        if (_parameters.HasParent)
        {
            long at = ItemOffset(ParentLocator.ItemId);
            _locator = ParentLocator.Parse(Item(ParentLocator.ItemId, "parent locator", true), Path, at);
            _parentReference = _locator.ToParentReference(Path, at);
        }
    }

    /// <summary>2.5: the BAT size implied by the geometry must fit the BAT region (which lies inside the file).</summary>
    private void LoadBat()
    {
        RegionTableEntry region = _regions.Bat;
        long entries = Bat.ComputeEntryCount(_virtualSize, BlockSize, _logicalSectorSize, _parameters.HasParent);
        if (entries * BatEntry.Size > region.Length)
            throw new DiskFormatException(Path, "BAT", $"a {_virtualSize}-byte disk with {BlockSize}-byte blocks needs {entries} BAT entries ({entries * BatEntry.Size} bytes) but the BAT region holds {region.Length} bytes (MS-VHDX 2.5)", region.FileOffset);
        // A BAT range lying in a hole of the file is all NOT_PRESENT: a new child's BAT is one
        // hole (the file was extended over it), so it is known without reading it. Not with a
        // log replayed in memory, which may have written BAT entries the file does not hold.
        Func<long, long, bool>? knownZero = _view.HasOverlay ? null : (offset, length) =>
            _file.NextData(region.FileOffset + offset) is long data && data >= region.FileOffset + offset + length;
        _bat = Bat.Load((offset, buffer, count) => _view.ReadExactly(region.FileOffset + offset, buffer, 0, count, "BAT"),
            knownZero, _virtualSize, BlockSize, _logicalSectorSize, _parameters.HasParent);

        long end = _view.Length;
        foreach (var r in _reserved)
            end = Math.Max(end, r.End);
        _bat.Summarize(_view.Length, _file.Length, out _allocatedBlocks, out long storedEnd, out _sharedUnits, out long reach);
        foreach (var r in _reserved)
        {
            if (r.Start < _file.Length)
                reach = Math.Max(reach, r.End);
        }
        _reach = Math.Max(_file.Length, reach);
        // New blocks go at the real end of the file (past blocks that start inside it), never
        // where an entry pointing past the end claims a block lies; such an entry is refused
        // when its block is read or written.
        _nextFreeOffset = VhdxConstants.RoundUp(Math.Max(end, storedEnd), VhdxConstants.MiB);
    }

    // ------------------------------------------------------------------ read

    // BAT states (bit n = state n) that answer a whole block with one kind, for CountRun.
    private const int ParentStates = 1 << (int)BatState.NotPresent;
    private const int ZeroStates = 1 << (int)BatState.Undefined | 1 << (int)BatState.Zero | 1 << (int)BatState.Unmapped | 1 << (int)BatState.UnmappedV095;
    private const int DataStates = 1 << (int)BatState.FullyPresent;

    public override LayerExtent GetExtent(long position, long maxLength)
    {
        CommitBatch();
        CheckRange(position, 1);
        maxLength = Math.Min(maxLength, _virtualSize - position);
        ExtentKind? kind = null;
        long total = 0;
        while (total < maxLength)
        {
            long pos = position + total;
            long block = pos / BlockSize;
            long inBlock = pos % BlockSize;
            if (kind is ExtentKind k0 && inBlock == 0)
            {
                // Whole blocks of the same kind straight from the in-memory BAT, however many.
                long maxBlocks = (maxLength - total + BlockSize - 1) / BlockSize;
                int states = k0 == ExtentKind.Parent ? ParentStates : k0 == ExtentKind.Zero ? ZeroStates : DataStates;
                long run = _bat.CountRun(block, maxBlocks, states);
                if (k0 == ExtentKind.Data)
                {
                    for (long b = block; b < block + run; b++)
                        ValidatedBlockOffset(b, _bat.Payload(b));
                }
                if (run > 0)
                {
                    total = Math.Min(maxLength, total + run * BlockSize);
                    continue;
                }
            }
            long limit = Math.Min(BlockSize - inBlock, maxLength - total);
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
        BatEntry e = _bat.Payload(block);
        switch (e.State)
        {
            case BatState.NotPresent:
                return (ExtentKind.Parent, limit);
            case BatState.Undefined:
            case BatState.Zero:
            case BatState.Unmapped:
            case BatState.UnmappedV095:
                return (ExtentKind.Zero, limit);
            case BatState.FullyPresent:
                ValidatedBlockOffset(block, e);
                return (ExtentKind.Data, limit);
            case BatState.PartiallyPresent:
            {
                ValidatedBlockOffset(block, e);
                byte[] slice = BitmapSlice(block);
                long sector = inBlock / _logicalSectorSize;
                long within = inBlock % _logicalSectorSize;
                long maxSectors = (within + limit + _logicalSectorSize - 1) / _logicalSectorSize;
                long run = SectorBitmap.RunLength(slice, sector, maxSectors, out bool set);
                return (set ? ExtentKind.Data : ExtentKind.Parent, Math.Min(limit, run * _logicalSectorSize - within));
            }
            default:
                throw BatError(_bat.PayloadIndex(block), $"payload block {block} has undefined state {e.RawState} (MS-VHDX 2.5.1.1)");
        }
    }

    public override DataLocation? LocateData(long position, long maxLength)
    {
        CheckRange(position, Math.Min(maxLength, VirtualSize - position));
        long block = position / BlockSize;
        long inBlock = position % BlockSize;
        BatEntry e = _bat.Payload(block);
        if (e.State is not (BatState.FullyPresent or BatState.PartiallyPresent))
            return null;
        return new DataLocation(Path, ValidatedBlockOffset(block, e) + inBlock, Math.Min(maxLength, BlockSize - inBlock));
    }

    public override void ReadData(long position, byte[] buffer, int offset, int count)
    {
        CommitBatch();
        CheckRange(position, count);
        while (count > 0)
        {
            long block = position / BlockSize;
            long inBlock = position % BlockSize;
            long fileOffset = ValidatedBlockOffset(block, _bat.Payload(block)) + inBlock;
            long run = Math.Min(count, BlockSize - inBlock);
            // Blocks that follow each other in the file are read with one call.
            for (long next = block + 1; run < count; next++)
            {
                BatEntry ne = _bat.Payload(next);
                if (ne.State is not (BatState.FullyPresent or BatState.PartiallyPresent) || ValidatedBlockOffset(next, ne) != fileOffset + run)
                    break;
                run = Math.Min(count, run + BlockSize);
            }
            _view.Read(fileOffset, buffer, offset, (int)run);
            position += run;
            offset += (int)run;
            count -= (int)run;
        }
    }

    /// <summary>
    /// The file offset of a stored payload block, after checking it may be read: inside the file,
    /// past the header section and clear of the log and regions. Never returns garbage.
    /// </summary>
    private long ValidatedBlockOffset(long block, BatEntry e)
    {
        if (e.State is not (BatState.FullyPresent or BatState.PartiallyPresent))
            throw BatError(_bat.PayloadIndex(block), $"payload block {block} is read as stored but its state is {e.RawState}");
        if (e.State == BatState.PartiallyPresent && !_parameters.HasParent)
            throw BatError(_bat.PayloadIndex(block), $"payload block {block} is PARTIALLY_PRESENT in a disk without a parent (MS-VHDX 2.5.1.1)");
        long used = Math.Min(BlockSize, _virtualSize - block * BlockSize);
        CheckStoredRange(_bat.PayloadIndex(block), e, used, $"payload block {block}");
        return e.FileOffset;
    }

    private void CheckStoredRange(long index, BatEntry e, long length, string what)
    {
        if (!e.FileOffsetRepresentable || e.FileOffset > _view.Length - length)
            throw BatError(index, $"{what} at file offset {(e.FileOffsetRepresentable ? e.FileOffset.ToString(System.Globalization.CultureInfo.InvariantCulture) : "(overflow)")} lies beyond the end of the file ({_view.Length} bytes)");
        foreach (var r in _reserved)
            if (e.FileOffset < r.End && r.Start < e.FileOffset + length)
                throw BatError(index, $"{what} at file offset {e.FileOffset} overlaps {r.Name}");
        // A block two entries name would be read for two parts of the disk (a small file
        // claiming terabytes); neither copy can be trusted.
        if (_sharedUnits is not null && _sharedUnits.AnyClaimed(e.FileOffset / VhdxConstants.MiB, (length + VhdxConstants.MiB - 1) / VhdxConstants.MiB))
            throw BatError(index, $"{what} at file offset {e.FileOffset} is also named by another BAT entry; a block in the file belongs to one entry only (MS-VHDX 2.5)");
    }

    private DiskFormatException BatError(long index, string reason) =>
        new(Path, "BAT", reason, _regions.Bat.FileOffset + index * BatEntry.Size);

    /// <summary>The bitmap bits of a partially present block (cached), after validating its sector bitmap block.</summary>
    private byte[] BitmapSlice(long block)
    {
        if (_bitmaps.TryGet(block, out byte[] cached))
            return cached;
        long index = _bat.BitmapIndexForBlock(block) ?? throw BatError(_bat.PayloadIndex(block), $"payload block {block} has no sector bitmap entry");
        BatEntry sb = _bat[index];
        if (sb.State != BatState.FullyPresent)
            throw BatError(index, $"payload block {block} is PARTIALLY_PRESENT but its sector bitmap block is not present (state {sb.RawState}; MS-VHDX 2.5.1.2)");
        CheckStoredRange(index, sb, VhdxConstants.SectorBitmapBlockSize, $"the sector bitmap block of chunk {block / _bat.ChunkRatio}");
        int bytes = _bat.BitmapBytesPerBlock;
        byte[] slice = _view.ReadBytes(sb.FileOffset + (block % _bat.ChunkRatio) * bytes, bytes, "sector bitmap");
        _bitmaps.Put(block, slice);
        return slice;
    }

    // ------------------------------------------------------------------ misc

    public override void Flush()
    {
        CommitBatch();
        if (CanWrite && _unflushed)
        {
            _view.Flush();
            _unflushed = false;
        }
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
