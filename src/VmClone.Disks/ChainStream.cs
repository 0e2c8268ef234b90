using System;
using System.IO;

namespace VmClone.Disks;

/// <summary>The virtual content of a <see cref="VirtualDisk"/> as a seekable stream.</summary>
internal sealed class ChainStream : Stream
{
    private readonly VirtualDisk _disk;
    private long _position;

    public ChainStream(VirtualDisk disk)
    {
        _disk = disk;
    }

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => _disk.CanWrite;

    public override long Length => _disk.Capacity;

    public override long Position
    {
        get => _position;
        set
        {
            if (value < 0)
                throw new ArgumentOutOfRangeException(nameof(value), "The position cannot be negative.");
            _position = value;
        }
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        ValidateBuffer(buffer, offset, count);
        lock (_disk.SyncRoot)
        {
            _disk.ThrowIfDisposed();
            long available = _disk.Capacity - _position;
            if (available <= 0 || count == 0)
                return 0;
            int n = (int)Math.Min(count, available);
            ChainReader.Read(_disk.Top, _position, buffer, offset, n);
            _position += n;
            return n;
        }
    }

    public override void Write(byte[] buffer, int offset, int count)
    {
        ValidateBuffer(buffer, offset, count);
        lock (_disk.SyncRoot)
        {
            _disk.ThrowIfDisposed();
            if (!_disk.CanWrite)
                throw new NotSupportedException($"The disk '{_disk.Path}' was opened read-only.");
            if (_position + count > _disk.Capacity)
                throw new IOException($"Writing {count} bytes at {_position} would go past the end of the {_disk.Capacity}-byte disk '{_disk.Path}'.");
            if (count == 0)
                return;
            _disk.Top.Write(_position, buffer, offset, count);
            _position += count;
        }
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        long target = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => _disk.Capacity + offset,
        };
        Position = target;
        return _position;
    }

    public override void Flush() => _disk.Flush();

    public override void SetLength(long value) =>
        throw new NotSupportedException("The size of a virtual disk cannot be changed through its content stream.");

    private static void ValidateBuffer(byte[] buffer, int offset, int count)
    {
        if (buffer is null)
            throw new ArgumentNullException(nameof(buffer));
        if (offset < 0 || count < 0 || offset > buffer.Length - count)
            throw new ArgumentOutOfRangeException(nameof(count));
    }
}
