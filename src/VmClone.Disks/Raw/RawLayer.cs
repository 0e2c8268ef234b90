using System;
using System.Collections.Generic;
using System.IO;

namespace VmClone.Disks.Raw;

/// <summary>A flat image: virtual byte n is file byte n. It has no parent and no metadata.</summary>
internal sealed class RawLayer : DiskLayer
{
    private readonly FileAccessor _file;
    private readonly long _size;

    private RawLayer(FileAccessor file)
    {
        _file = file;
        _size = file.Length;
    }

    public static RawLayer Open(string path, FileAccess access) => Open(FileAccessor.Open(path, access));

    /// <summary>A raw layer over a file already open; disposes it on failure.</summary>
    public static RawLayer Open(FileAccessor file)
    {
        if (file.Length == 0)
        {
            file.Dispose();
            throw new DiskFormatException(file.Path, "raw image", "the file is empty");
        }
        return new RawLayer(file);
    }

    public static void Create(LayerCreateSpec spec)
    {
        if (spec.Parent is not null)
            throw new DiskChainException(spec.Path, ChainProblem.Incompatible,
                $"A raw image cannot be a differencing disk ('{spec.Path}'); use VHDX or VMDK for the child.", spec.Parent.Path);
        using FileAccessor file = FileAccessor.CreateNew(spec.Path);
        file.SetLength(spec.VirtualSize); // sparse where the file system allows
        // A raw image is a fixed disk already; asked to, its space is reserved too.
        if (spec.ReserveSpace)
            file.Reserve(spec.VirtualSize);
        file.Flush();
    }

    public override string Path => _file.Path;

    public override DiskFormat Format => DiskFormat.Raw;

    public override DiskType Type => DiskType.Fixed;

    public override long VirtualSize => _size;

    public override int LogicalSectorSize => 512;

    public override long BlockSize => _size;

    public override bool CanWrite => _file.CanWrite;

    /// <summary>A raw file records nothing about itself; its size and last write time stand in.</summary>
    public override string Identity => $"raw:{_size}:{File.GetLastWriteTimeUtc(Path).Ticks}";

    public override ParentReference? ParentReference => null;

    public override long AllocatedBytes => _size;

    public override LayerExtent GetExtent(long position, long maxLength) =>
        new(ExtentKind.Data, Math.Min(maxLength, _size - position));

    public override DataLocation? LocateData(long position, long maxLength) =>
        new DataLocation(Path, position, Math.Min(maxLength, _size - position));

    public override void ReadData(long position, byte[] buffer, int offset, int count) =>
        _file.ReadOrZero(position, buffer, offset, count);

    public override void Write(long position, byte[] buffer, int offset, int count)
    {
        EnsureWritable();
        CheckRange(position, count);
        _file.Write(position, buffer, offset, count);
    }

    internal override long MaxResizeSize => 1L << 60;

    /// <summary>A raw file's length is its size: set it (the added range a hole where the file system allows) and flush.</summary>
    internal override void ResizeInPlace(long newSize)
    {
        EnsureWritable();
        _file.SetLength(newSize);
        _file.Flush();
    }

    public override void Flush()
    {
        if (CanWrite)
            _file.Flush();
    }

    public override IReadOnlyList<string> Check() => Array.Empty<string>();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _file.Dispose();
    }
}
