using System;

namespace VmClone.Disks.Vhdx;

/// <summary>
/// The VHDX file as the engine sees it: the real file, plus (a file with a dirty log) the
/// replayed log applied in memory. Every structure read goes through it, so the BAT and
/// metadata read as they will be after replay while the file stays untouched: a read-only open
/// keeps it that way, a read-write one writes the replay into the file only once everything
/// read through the view has been validated.
/// </summary>
internal sealed class VhdxFileView
{
    private readonly FileAccessor _file;
    private ReplayedLog? _overlay;
    private long _overlayStart = long.MaxValue;
    private long _overlayEnd = long.MinValue;
    private long _logicalLength = -1;

    public VhdxFileView(FileAccessor file)
    {
        _file = file;
    }

    public string Path => _file.Path;

    /// <summary>True when replayed log content is held in memory instead of in the file.</summary>
    public bool HasOverlay => _overlay is not null;

    /// <summary>File length as the replayed file would have it.</summary>
    public long Length => Math.Max(_file.Length, _logicalLength);

    /// <summary>
    /// Reads from now on see the replayed log over the file. The file reaches as far as the log
    /// writes data, never to a length the log only claims.
    /// </summary>
    public void SetOverlay(ReplayedLog log)
    {
        _overlay = log;
        _overlayStart = log.Start;
        _overlayEnd = log.End;
        _logicalLength = log.DataEnd;
    }

    /// <summary>Back to the file alone (once the replay has been written into it).</summary>
    public void ClearOverlay()
    {
        _overlay = null;
        _overlayStart = long.MaxValue;
        _overlayEnd = long.MinValue;
        _logicalLength = -1;
    }

    /// <summary>Reads a structure; a range past the (replayed) end of the file is a format error.</summary>
    public void ReadExactly(long position, byte[] buffer, int offset, int count, string structure)
    {
        RequireInFile(position, count, structure);
        Read(position, buffer, offset, count);
    }

    /// <summary>As <see cref="ReadExactly"/>, zero-filling the file's holes without reading them (see <see cref="FileAccessor.ReadSkippingHoles"/>).</summary>
    public void ReadStructure(long position, byte[] buffer, int offset, int count, string structure)
    {
        RequireInFile(position, count, structure);
        _file.ReadSkippingHoles(position, buffer, offset, count);
        ApplyOverlay(position, buffer, offset, count);
    }

    private void RequireInFile(long position, int count, string structure)
    {
        if (position < 0 || position > Length - count)
            throw new DiskFormatException(Path, structure, $"{count} bytes at {position} lie beyond the end of the file ({Length} bytes)", position);
    }

    public byte[] ReadBytes(long position, int count, string structure)
    {
        var buffer = new byte[count];
        ReadExactly(position, buffer, 0, count, structure);
        return buffer;
    }

    /// <summary>Reads payload; bytes past the real end of the file (inside the replayed length) are zeros.</summary>
    public void Read(long position, byte[] buffer, int offset, int count)
    {
        _file.ReadOrZero(position, buffer, offset, count);
        ApplyOverlay(position, buffer, offset, count);
    }

    /// <summary>The replayed log's content over what was read from the file.</summary>
    private void ApplyOverlay(long position, byte[] buffer, int offset, int count)
    {
        if (_overlay is null || position >= _overlayEnd || position + count <= _overlayStart)
            return;
        _overlay.Apply(position, buffer, offset, count);
    }

    public void Write(long position, byte[] buffer, int offset, int count)
    {
        if (_overlay is not null)
            throw new InvalidOperationException("A replayed-in-memory view is read-only.");
        _file.Write(position, buffer, offset, count);
    }

    public void Write(long position, byte[] buffer) => Write(position, buffer, 0, buffer.Length);

    public void SetLength(long length) => _file.SetLength(length);

    public void Flush() => _file.Flush();
}
