using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using VmClone.Disks;

namespace VmClone.Bench;

/// <summary>
/// `dotnet run -c Release --project bench/VmClone.Bench -- engine [iterations] [format]`: the
/// per-volume engine costs of fleet commands on 100 GiB disks (what New-VmClone and the
/// describe commands pay per clone volume), each the median of many iterations after a
/// warm-up. Creation figures include the one flush to the device a new file needs.
/// </summary>
internal static class EngineBench
{
    private const long GiB = 1L << 30;

    public static int Run(string[] args)
    {
        int iterations = args.Length > 1 ? int.Parse(args[1]) : 200;
        string[] formats = args.Length > 2 && args[2] != "all" ? new[] { args[2] } : new[] { "vhdx", "vmdk" };
        Only = args.Length > 3 ? args[3] : null;
        string work = Path.Combine(Path.GetTempPath(), "vmclone-engine-" + Guid.NewGuid().ToString("N").Substring(0, 8));
        Directory.CreateDirectory(work);
        try
        {
            Console.WriteLine($"{iterations} iterations per figure; median (p10–p90) in microseconds");
            Console.WriteLine($"{"operation",-58} {"median",9} {"p10",9} {"p90",9}");
            Report("CRC-32C of 64 KiB", () => Measure(iterations * 10, () => Crc32C.Compute(new ReadOnlySpan<byte>(Crc64K))));
            foreach (string format in formats)
                RunFormat(work, format, iterations);
        }
        finally
        {
            Directory.Delete(work, true);
        }
        return 0;
    }

    /// <summary>Only the figures whose name contains this (for strace or a profiler), or all.</summary>
    private static string? Only;

    private static readonly byte[] Crc64K = MakeRandom(64 * 1024);

    private static byte[] MakeRandom(int n)
    {
        var b = new byte[n];
        new Random(1).NextBytes(b);
        return b;
    }

    private static void RunFormat(string work, string ext, int iterations)
    {
        string dir = Path.Combine(work, ext);
        Directory.CreateDirectory(dir);
        string baseDisk = Path.Combine(dir, "base." + ext);
        VirtualDisk.CreateDynamic(baseDisk, 100 * GiB).Dispose();
        // A base with some content, as a real one has: 64 MiB written in 1 MiB pieces every GiB.
        using (VirtualDisk d = VirtualDisk.Open(baseDisk, FileAccess.ReadWrite))
        {
            var buffer = MakeRandom(1 << 20);
            for (long at = 0; at < d.Capacity; at += GiB * 100 / 64)
            {
                d.Content.Position = at / (1 << 20) * (1 << 20);
                d.Content.Write(buffer, 0, buffer.Length);
            }
        }
        string child = Path.Combine(dir, "top." + ext);
        VirtualDisk.CreateDifferencing(child, baseDisk).Dispose();

        int n = 0;
        Report($"{ext}: CreateDynamic 100 GiB (+ open, dispose)", () => Measure(iterations, () =>
            VirtualDisk.CreateDynamic(Path.Combine(dir, $"d{n++}.{ext}"), 100 * GiB).Dispose()));
        foreach (string f in Directory.GetFiles(dir, "d*." + ext))
            File.Delete(f);
        Report($"{ext}: CreateDifferencing over 100 GiB (+ open, dispose)", () => Measure(iterations, () =>
            VirtualDisk.CreateDifferencing(Path.Combine(dir, $"c{n++}.{ext}"), baseDisk).Dispose()));
        foreach (string f in Directory.GetFiles(dir, "c*." + ext))
            File.Delete(f);

        long sink = 0;
        Report($"{ext}: OpenLayer(base) + Identity/VirtualSize/AllocatedBytes", () => Measure(iterations, () =>
        {
            using DiskLayer l = VirtualDisk.OpenLayer(baseDisk, FileAccess.Read);
            sink += l.Identity.Length + l.VirtualSize + l.AllocatedBytes;
        }));
        Report($"{ext}: OpenLayer(child) + Identity/VirtualSize/AllocatedBytes", () => Measure(iterations, () =>
        {
            using DiskLayer l = VirtualDisk.OpenLayer(child, FileAccess.Read);
            sink += l.Identity.Length + l.VirtualSize + l.AllocatedBytes;
        }));
        using (DiskLayer l = VirtualDisk.OpenLayer(child, FileAccess.Read))
        {
            Report($"{ext}: GetExtent walk over the empty child (open layer)", () => Measure(iterations, () => sink += Walk(l)));
        }
        using (DiskLayer l = VirtualDisk.OpenLayer(baseDisk, FileAccess.Read))
        {
            Report($"{ext}: GetExtent walk over the base, 64 runs (open layer)", () => Measure(iterations, () => sink += Walk(l)));
        }
        Report($"{ext}: describe child (OpenLayer, sizes, walk)", () => Measure(iterations, () =>
        {
            using DiskLayer l = VirtualDisk.OpenLayer(child, FileAccess.Read);
            sink += l.Identity.Length + l.VirtualSize + l.AllocatedBytes + Walk(l);
        }));
        Report($"{ext}: VirtualDisk.Open(child) read-only with its parent", () => Measure(iterations, () =>
        {
            using VirtualDisk d = VirtualDisk.Open(child, FileAccess.Read);
            sink += d.Layers.Count;
        }));
        GC.KeepAlive(sink);
    }

    /// <summary>What VmStore.DivergedBytes does: one extent at a time from 0 to the end.</summary>
    private static long Walk(DiskLayer layer)
    {
        long position = 0, size = layer.VirtualSize, runs = 0;
        while (position < size)
        {
            LayerExtent e = layer.GetExtent(position, size - position);
            position += Math.Max(1, e.Length);
            runs++;
        }
        return runs;
    }

    private static List<double> Measure(int iterations, Action action)
    {
        action();
        action();
        var times = new List<double>(iterations);
        for (int i = 0; i < iterations; i++)
        {
            long t = Stopwatch.GetTimestamp();
            action();
            times.Add((Stopwatch.GetTimestamp() - t) * 1e6 / Stopwatch.Frequency);
        }
        times.Sort();
        return times;
    }

    private static void Report(string name, Func<List<double>> measure)
    {
        if (Only is not null && !name.Contains(Only, StringComparison.OrdinalIgnoreCase))
            return;
        List<double> us = measure();
        double P(double q) => us[Math.Min(us.Count - 1, (int)(us.Count * q))];
        Console.WriteLine($"{name,-58} {P(0.5),9:F1} {P(0.1),9:F1} {P(0.9),9:F1}");
    }
}
