using System;
using System.Collections.Generic;

namespace VmClone.Disks.Vmdk;

/// <summary>Reads what lies beneath a layer at a virtual position (parent content or zeros).</summary>
internal delegate void BelowReader(long virtualPosition, byte[] buffer, int offset, int count);

/// <summary>
/// One extent of a VMDK layer: a run of the virtual disk stored by one extent line
/// (sparse file, flat file or ZERO). Positions passed in are relative to the extent's start.
/// </summary>
internal abstract class VmdkExtent : IDisposable
{
    protected VmdkExtent(long start, long length)
    {
        Start = start;
        Length = length;
    }

    /// <summary>First virtual byte of the extent.</summary>
    public long Start { get; }

    /// <summary>Bytes of the virtual disk the extent covers.</summary>
    public long Length { get; }

    /// <summary>The extent's file, or null for a ZERO extent.</summary>
    public abstract string? FilePath { get; }

    public abstract bool CanWrite { get; }

    /// <summary>Why the extent cannot be written, or null when it can.</summary>
    public abstract string? ReadOnlyReason { get; }

    public abstract long AllocatedBytes { get; }

    public abstract LayerExtent GetExtent(long position, long maxLength);

    public abstract void ReadData(long position, byte[] buffer, int offset, int count);

    /// <summary>Where the stored bytes at <paramref name="position"/> (extent relative) lie in the extent's file; null when not stored plainly.</summary>
    public virtual DataLocation? LocateData(long position, long maxLength) => null;

    /// <summary>Writes at <paramref name="position"/> (extent relative); new allocation units are completed from <paramref name="below"/> (virtual positions).</summary>
    public abstract void Write(long position, byte[] buffer, int offset, int count, BelowReader below);

    /// <summary>
    /// Checks what a write of [<paramref name="position"/>, position + count) (extent relative)
    /// will rely on, reading what it must, without writing: a refusal comes before the layer's
    /// first change to any file.
    /// </summary>
    public virtual void PrepareWrite(long position, long count)
    {
    }

    public virtual void Flush()
    {
    }

    /// <summary>Makes what writes since the last commit allocated reachable, in crash-safe order (the layer calls it after each write, or at the end of a batch).</summary>
    public virtual void CommitDeferred()
    {
    }

    public abstract void Check(List<string> problems);

    /// <summary>Facts for the layer's details (only the first sparse extent's are shown).</summary>
    public virtual void AddDetails(Dictionary<string, string> details)
    {
    }

    public abstract void Dispose();
}

/// <summary>A FLAT (or VMFS) extent: virtual byte n of the extent is byte OFFSET×512 + n of its file.</summary>
internal sealed class FlatExtent : VmdkExtent
{
    private readonly FileAccessor _file;
    private readonly long _fileOffset;
    private readonly bool _ownsFile;

    // The last answers of the file system, in file offsets: [_dataFrom, _dataTo) holds data,
    // [_holeFrom, _holeTo) is a hole. Reads ask for an extent each time; these keep that to
    // a few system calls per run of the file instead of two per read.
    private long _dataFrom = -1, _dataTo = -1, _holeFrom = -1, _holeTo = -1;

    public FlatExtent(FileAccessor file, long start, long length, long fileOffset, bool ownsFile)
        : base(start, length)
    {
        _file = file;
        _fileOffset = fileOffset;
        _ownsFile = ownsFile;
    }

    public override string? FilePath => _file.Path;

    public override bool CanWrite => _file.CanWrite;

    public override string? ReadOnlyReason => null;

    /// <summary>A new length for the extent: its file extended (the added range a hole where the file system allows) or cut, then flushed.</summary>
    public void Resize(long length)
    {
        long end = _fileOffset + length;
        if (_file.Length != end)
            _file.SetLength(end);
        _file.Flush();
    }

    public override long AllocatedBytes => Length;

    /// <summary>
    /// Data only where the file holds bytes: its holes and anything past its end (a flat file
    /// may be shorter than its extent line) read as zeros and are reported as zero runs, so a
    /// copy of a small or sparse file never writes more than the file holds.
    /// </summary>
    public override LayerExtent GetExtent(long position, long maxLength)
    {
        long max = Math.Min(maxLength, Length - position);
        long at = _fileOffset + position;
        long fileLength = _file.Length;
        if (at >= fileLength)
            return new(ExtentKind.Zero, max);
        if (at >= _dataFrom && at < _dataTo)
            return new(ExtentKind.Data, Math.Min(max, _dataTo - at));
        if (at >= _holeFrom && at < _holeTo)
            return new(ExtentKind.Zero, Math.Min(max, _holeTo - at));
        long? data = _file.NextData(at);
        if (data is not long d)
            return new(ExtentKind.Data, Math.Min(max, fileLength - at)); // the system cannot tell: read it
        if (d > at)
        {
            (_holeFrom, _holeTo) = (at, d);
            return new(ExtentKind.Zero, Math.Min(max, d - at));
        }
        long hole = _file.NextHole(at) ?? fileLength;
        (_dataFrom, _dataTo) = (at, Math.Max(hole, at + 1));
        return new(ExtentKind.Data, Math.Min(max, _dataTo - at));
    }

    /// <summary>A flat file shorter than its extent reads as zeros past its end (as qemu does for sparse files).</summary>
    public override void ReadData(long position, byte[] buffer, int offset, int count) =>
        _file.ReadOrZero(_fileOffset + position, buffer, offset, count);

    public override DataLocation? LocateData(long position, long maxLength) =>
        new DataLocation(_file.Path, _fileOffset + position, maxLength);

    public override void Write(long position, byte[] buffer, int offset, int count, BelowReader below)
    {
        // What was a hole or past the end may hold data now.
        _holeFrom = _holeTo = _dataFrom = _dataTo = -1;
        _file.Write(_fileOffset + position, buffer, offset, count);
    }

    public override void Flush()
    {
        if (_file.CanWrite)
            _file.Flush();
    }

    public override void Check(List<string> problems)
    {
        if (_file.Length < _fileOffset + Length)
            problems.Add($"Flat extent file '{_file.Path}' is {_file.Length} bytes, shorter than the {_fileOffset + Length} bytes its extent line needs; the missing part reads as zeros.");
    }

    public override void Dispose()
    {
        if (_ownsFile)
            _file.Dispose();
    }
}

/// <summary>A ZERO extent: reads as zeros, stores nothing, hides any parent.</summary>
internal sealed class ZeroExtent : VmdkExtent
{
    public ZeroExtent(long start, long length)
        : base(start, length)
    {
    }

    public override string? FilePath => null;

    public override bool CanWrite => false;

    public override string? ReadOnlyReason => "it contains a ZERO extent, which stores no data";

    public override long AllocatedBytes => 0;

    public override LayerExtent GetExtent(long position, long maxLength) =>
        new(ExtentKind.Zero, Math.Min(maxLength, Length - position));

    public override void ReadData(long position, byte[] buffer, int offset, int count) =>
        Array.Clear(buffer, offset, count);

    public override void Write(long position, byte[] buffer, int offset, int count, BelowReader below) =>
        throw new InvalidOperationException("A ZERO extent cannot be written.");

    public override void Check(List<string> problems)
    {
    }

    public override void Dispose()
    {
    }
}
