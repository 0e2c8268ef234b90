using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using VmClone.Disks;

namespace VmClone.Core.Disks;

/// <summary>Moves virtual content between disks in bounded chunks, skipping what is zero.</summary>
internal static class ContentCopier
{
    /// <summary>Chunk of every copy: large enough for sequential speed, small enough to bound memory.</summary>
    public const int ChunkSize = 1 << 20;

    /// <summary>Window of extent mapping: keeps extent lists short on huge disks.</summary>
    public const long Window = 256L << 20;

    public static bool IsAllZero(byte[] buffer, int offset, int count)
    {
        ReadOnlySpan<byte> span = buffer.AsSpan(offset, count);
        int words = span.Length / sizeof(ulong);
        ReadOnlySpan<ulong> wide = MemoryMarshal.Cast<byte, ulong>(span.Slice(0, words * sizeof(ulong)));
        foreach (ulong w in wide)
        {
            if (w != 0)
                return false;
        }
        for (int i = words * sizeof(ulong); i < span.Length; i++)
        {
            if (span[i] != 0)
                return false;
        }
        return true;
    }

    /// <summary>
    /// Copies [position, +length) of <paramref name="source"/> into <paramref name="target"/> at the
    /// same position. Chunks that read as zeros are written only when <paramref name="writeZeros"/>
    /// (a destination that starts empty needs no zeros written; a merge target does).
    /// </summary>
    public static void CopyRange(Stream source, Stream target, long position, long length, byte[] buffer, bool writeZeros, CancellationToken cancellationToken)
    {
        while (length > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = (int)Math.Min(buffer.Length, length);
            source.Position = position;
            ReadFully(source, buffer, n);
            if (writeZeros || !IsAllZero(buffer, 0, n))
            {
                target.Position = position;
                target.Write(buffer, 0, n);
            }
            position += n;
            length -= n;
        }
    }

    public static void ReadFully(Stream stream, byte[] buffer, int count)
    {
        int done = 0;
        while (done < count)
        {
            int n = stream.Read(buffer, done, count - done);
            if (n <= 0)
                throw new EndOfStreamException("The virtual disk ended before its stated size.");
            done += n;
        }
    }
}
