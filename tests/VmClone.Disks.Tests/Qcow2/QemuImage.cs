using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using VmClone.Disks.Tests.Support;

namespace VmClone.Disks.Tests.Qcow2;

/// <summary>Images made by qemu-img and written by qemu-io, for the qcow2 reader to be judged against qemu's own reading.</summary>
internal static class QemuImage
{
    /// <summary>qemu-img create -f qcow2 -o <paramref name="options"/> (and -b/-F when a backing file is given).</summary>
    public static string Create(string path, long size, string options, string? backing = null, string? backingFormat = null)
    {
        var args = new StringBuilder("create -q -f qcow2");
        if (options.Length > 0)
            args.Append($" -o {options}");
        if (backing is not null)
            args.Append($" -b \"{backing}\" -F {backingFormat}");
        args.Append($" \"{path}\"");
        if (backing is null)
            args.Append($" {size}");
        Oracle.Run("qemu-img", args.ToString());
        return path;
    }

    /// <summary>
    /// <paramref name="count"/> writes at random sector-aligned offsets (seeded), each a pattern
    /// byte, a quarter of them zero writes (qemu's zero flag or subcluster zero bits), some
    /// shorter than a cluster so that qemu copies the rest or allocates subclusters.
    /// </summary>
    public static void WriteRandom(string path, string format, long size, int seed, int count, int maxLength = 256 * 1024)
    {
        var random = new Random(seed);
        var commands = new List<string>();
        for (int i = 0; i < count; i++)
        {
            long length = (random.Next(1, maxLength / 512 + 1)) * 512L;
            long offset = random.NextInt64(0, (size - length) / 512 + 1) * 512;
            commands.Add(random.Next(4) == 0
                ? $"-c \"write -z {offset} {length}\""
                : $"-c \"write -P 0x{random.Next(1, 256):x2} {offset} {length}\"");
        }
        // qemu-io takes many -c commands in one run; a few batches keep the command line short.
        for (int at = 0; at < commands.Count; at += 40)
            Oracle.Run("qemu-io", $"-f {format} {string.Join(" ", commands.GetRange(at, Math.Min(40, commands.Count - at)))} \"{path}\"");
    }

    /// <summary>A raw file of <paramref name="size"/> bytes, partly patterns (compressible), partly random (not), partly zeros.</summary>
    public static string MixedRaw(string path, long size, int seed)
    {
        var random = new Random(seed);
        using var fs = File.Create(path);
        fs.SetLength(size);
        byte[] chunk = new byte[192 * 1024];
        for (long at = 0; at + chunk.Length <= size; at += chunk.Length * 2)
        {
            if (random.Next(2) == 0)
                random.NextBytes(chunk);
            else
                Array.Fill(chunk, (byte)random.Next(256));
            fs.Position = at + random.Next(0, 4096) * 8;
            if (fs.Position + chunk.Length <= size)
                fs.Write(chunk, 0, chunk.Length);
        }
        return path;
    }
}
