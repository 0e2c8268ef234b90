using System;
using System.IO;
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

    public static bool IsAllZero(byte[] buffer, int offset, int count) => ZeroBytes.All(buffer.AsSpan(offset, count));

    /// <summary>
    /// Granularity of the zero check: runs of this size that read as zeros are not written, so a
    /// destination with small allocation units (VMDK grains, raw holes) stays as sparse as the
    /// content.
    /// </summary>
    public const int ZeroGranule = 64 * 1024;

    /// <summary>
    /// Copies [position, +length) of <paramref name="source"/> into <paramref name="target"/> at the
    /// same position. Granules that read as zeros are written only when <paramref name="writeZeros"/>
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
            if (writeZeros)
            {
                target.Position = position;
                target.Write(buffer, 0, n);
            }
            else
            {
                WriteNonZeroRuns(target, position, buffer, n);
            }
            position += n;
            length -= n;
        }
    }

    /// <summary>Writes the runs of <paramref name="buffer"/> that are not all zero, coalescing neighbours into one write.</summary>
    internal static void WriteNonZeroRuns(Stream target, long position, byte[] buffer, int count)
    {
        int runStart = -1;
        for (int at = 0; at < count; at += ZeroGranule)
        {
            int n = Math.Min(ZeroGranule, count - at);
            bool zero = IsAllZero(buffer, at, n);
            if (!zero && runStart < 0)
                runStart = at;
            if (zero && runStart >= 0)
            {
                target.Position = position + runStart;
                target.Write(buffer, runStart, at - runStart);
                runStart = -1;
            }
        }
        if (runStart >= 0)
        {
            target.Position = position + runStart;
            target.Write(buffer, runStart, count - runStart);
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
