using System;
using System.IO;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;

namespace VmClone.Core.Tests.Disks;

/// <summary>Makes real disk files with known content for the operation tests.</summary>
internal static class DiskFiles
{
    public const long MiB = 1L << 20;

    /// <summary>Writes <paramref name="writes"/> random runs (random offsets and lengths, some unaligned) into a disk.</summary>
    public static void WriteRandom(string path, Random rng, int writes, int maxLength = 300_000)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
        WriteRandom(disk, rng, writes, maxLength);
    }

    public static void WriteRandom(VirtualDisk disk, Random rng, int writes, int maxLength = 300_000)
    {
        for (int i = 0; i < writes; i++)
        {
            int length = rng.Next(1, maxLength);
            long position = (long)(rng.NextDouble() * (disk.Capacity - length));
            byte[] data = new byte[length];
            rng.NextBytes(data);
            disk.Content.Position = position;
            disk.Content.Write(data, 0, length);
        }
    }

    public static void Write(string path, long position, byte[] data)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
        disk.Content.Position = position;
        disk.Content.Write(data, 0, data.Length);
    }

    public static string ContentHash(string path)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        return Hashing.Sha256Stream(disk.Content);
    }

    public static byte[] Random(int seed, int length)
    {
        byte[] data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }
}
