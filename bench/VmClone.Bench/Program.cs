using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using VmClone.Disks;

namespace VmClone.Bench;

/// <summary>
/// Runs each benchmark next to its reference in the same run, prints a table and writes it to
/// bench/RESULTS.md. Figures are medians of several runs after one warm-up run (page cache
/// warm for every contender alike), so the ratio compares like with like.
/// </summary>
public static class Program
{
    private const long GiB = 1L << 30;
    private const long MiB = 1L << 20;

    public static int Main(string[] args)
    {
        if (args.Length >= 1 && args[0] == "engine")
            return EngineBench.Run(args);
        if (args.Length == 3 && args[0] == "convert")
        {
            // Run alone in a child process so its peak memory is its own.
            VmClone.Core.Disks.DiskOperations.Convert(args[1], args[2], null, null, null, null, System.Threading.CancellationToken.None);
            Console.WriteLine($"peak={Process.GetCurrentProcess().PeakWorkingSet64}");
            return 0;
        }
        string results = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "RESULTS.md");
        int runs = args.Length > 1 ? int.Parse(args[1]) : 5;
        string work = Path.Combine(Path.GetTempPath(), "vmclone-bench-" + Guid.NewGuid().ToString("N").Substring(0, 8));
        Directory.CreateDirectory(work);
        var rows = new List<Row>();
        try
        {
            Console.WriteLine($"Preparing 1 GiB disks in {work} ...");
            string raw = Path.Combine(work, "reference.raw");
            string base1 = Path.Combine(work, "base.vhdx");
            string mid = Path.Combine(work, "mid.vhdx");
            string top = Path.Combine(work, "top.vhdx");
            Fixtures.WriteRandomRaw(raw, GiB);
            Fixtures.CopyIntoNewDisk(raw, base1, GiB);
            // Depth 3: each child rewrites every third MiB, so reads really walk all layers.
            Fixtures.CreateChildRewriting(base1, mid, phase: 1);
            Fixtures.CreateChildRewriting(mid, top, phase: 2);

            Series cat = Measure(runs, () => Tools.Run("cat", $"'{raw}'", toNull: true));
            rows.Add(Row.Throughput("Sequential read, raw file (cat, page cache)", cat, GiB, null));
            Series d1 = Measure(runs, () => Fixtures.ReadAll(base1));
            rows.Add(Row.Throughput("Sequential read, VHDX depth 1 (VirtualDisk.Content)", d1, GiB, cat, "cat"));
            Series d3 = Measure(runs, () => Fixtures.ReadAll(top));
            rows.Add(Row.Throughput("Sequential read, VHDX depth 3 (VirtualDisk.Content)", d3, GiB, cat, "cat"));
            if (Tools.Exists("qemu-img"))
            {
                // Neither flushes; both start with no dirty pages (sync outside the timing), so
                // one contender's write-back never slows the other.
                string q = Path.Combine(work, "q.raw"), o = Path.Combine(work, "o.raw");
                Series q1 = Measure(runs, () => Tools.Run("qemu-img", $"convert -f vhdx -O raw '{base1}' '{q}'"), before: () => Fixtures.Clean(q));
                Series o1 = Measure(runs, () => Fixtures.ConvertToRaw(base1, o), before: () => Fixtures.Clean(o));
                rows.Add(Row.Throughput("VHDX depth 1 to raw file, qemu-img convert", q1, GiB, null));
                rows.Add(Row.Throughput("VHDX depth 1 to raw file, VmClone (Content.CopyTo)", o1, GiB, q1, "qemu-img convert"));
                Fixtures.Clean(q);
                Fixtures.Clean(o);
            }

            int children = 200;
            Series create = Measure(runs, () =>
            {
                string dir = Path.Combine(work, "children-" + Guid.NewGuid().ToString("N"));
                Directory.CreateDirectory(dir);
                for (int i = 0; i < children; i++)
                    VirtualDisk.CreateDifferencing(Path.Combine(dir, $"c{i}.vhdx"), top).Dispose();
                Directory.Delete(dir, true);
            });
            rows.Add(Row.PerItem($"Create a differencing VHDX over a 1 GiB depth-3 chain ({children} in a row)", create, children));
            (long apparent, long allocated) = Fixtures.ChildFileSize(top, work);
            rows.Add(new Row("Bytes on disk per new VHDX child (allocated / apparent size)", $"{allocated / 1024} KiB / {apparent / 1024} KiB", "", "log, BAT and free metadata space are holes"));
            rows.AddRange(ConvertVmdkChain(work, runs));
            rows.Add(new Row("Peak working set of the benchmark process", $"{Process.GetCurrentProcess().PeakWorkingSet64 / MiB} MiB", "", "bounded: buffers of 1 MiB, BAT in memory"));
        }
        finally
        {
            Directory.Delete(work, true);
        }

        string table = Render(rows, runs);
        Console.WriteLine(table);
        File.WriteAllText(results, table);
        Console.WriteLine($"Written to {results}");
        return 0;
    }

    /// <summary>
    /// Issue: flatten a 2 GiB depth-3 VMDK chain to raw, VmClone (Convert-VmDisk's operation, in
    /// its own process) against qemu-img convert on the same files; time and peak memory.
    /// </summary>
    private static IEnumerable<Row> ConvertVmdkChain(string work, int runs)
    {
        if (!Tools.Exists("qemu-img"))
            yield break;
        Console.WriteLine("Preparing a 2 GiB depth-3 VMDK chain ...");
        string b = Path.Combine(work, "b.vmdk"), m = Path.Combine(work, "m.vmdk"), t = Path.Combine(work, "t.vmdk");
        string raw = Path.Combine(work, "chain-src.raw");
        Fixtures.WriteRandomRaw(raw, 2 * GiB);
        Fixtures.CopyIntoNewDisk(raw, b, 2 * GiB);
        File.Delete(raw);
        Fixtures.CreateChildRewriting(b, m, phase: 1);
        Fixtures.CreateChildRewriting(m, t, phase: 2);
        string self = Environment.ProcessPath!;
        string selfArgs = Path.GetFileName(self) == "dotnet" ? $"'{typeof(Program).Assembly.Location}' " : "";
        long ourPeak = 0, qemuPeak = 0;
        string ours = Path.Combine(work, "ours.raw"), theirs = Path.Combine(work, "theirs.raw");
        // VmClone's Convert flushes the new file to the device before moving it into place (a
        // crash must never leave a complete-looking but empty destination); qemu-img leaves
        // that to the page cache. Both are shown: plain, and followed by sync of its output.
        Series q = Measure(runs, () => qemuPeak = Tools.RunMeasured("qemu-img", $"convert -f vmdk -O raw '{t}' '{theirs}'"),
            before: () => Fixtures.Clean(theirs));
        Series qs = Measure(runs, () =>
        {
            Tools.Run("qemu-img", $"convert -f vmdk -O raw '{t}' '{theirs}'");
            Tools.Run("sync", $"'{theirs}'");
        }, before: () => Fixtures.Clean(theirs));
        Series o = Measure(runs, () =>
        {
            string output = Tools.RunCapture(self, $"{selfArgs}convert '{t}' '{ours}'");
            ourPeak = long.Parse(output.Split('=').Last().Trim());
        }, before: () => Fixtures.Clean(ours));
        yield return Row.Throughput("Flatten 2 GiB depth-3 VMDK chain to raw, qemu-img convert (not flushed)", q, 2 * GiB, null);
        yield return Row.Throughput("Flatten 2 GiB depth-3 VMDK chain to raw, qemu-img convert + sync (durable)", qs, 2 * GiB, null);
        yield return Row.Throughput("Flatten 2 GiB depth-3 VMDK chain to raw, VmClone Convert (durable)", o, 2 * GiB, qs, "qemu-img convert + sync");
        yield return new Row("Flatten 2 GiB depth-3 VMDK chain, VmClone (durable) against qemu-img (not flushed)", "", $"{q.Median / o.Median:P0}", "qemu-img convert (not flushed)");
        yield return new Row("Peak memory of that flatten, VmClone / qemu-img", $"{ourPeak / MiB} MiB / {(qemuPeak > 0 ? $"{qemuPeak / MiB} MiB" : "n/a")}", "", "independent of disk size: 1 MiB buffers, 256 MiB extent windows");
    }

    private static Series Measure(int runs, Action action, Action? before = null)
    {
        before?.Invoke();
        action(); // warm-up: page cache and JIT for every contender alike
        var times = new List<double>();
        for (int i = 0; i < runs; i++)
        {
            before?.Invoke();
            var sw = Stopwatch.StartNew();
            action();
            times.Add(sw.Elapsed.TotalSeconds);
        }
        return new Series(times);
    }

    private static string Render(List<Row> rows, int runs)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# VmClone benchmark results");
        sb.AppendLine();
        sb.AppendLine($"Generated by `dotnet pwsh ./build.ps1 -Task Bench` on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.");
        sb.AppendLine($"Machine: {Environment.ProcessorCount} cores, {Tools.CpuModel()}, {Environment.OSVersion}, .NET {Environment.Version}.");
        sb.AppendLine($"Each figure: median of {runs} runs after one warm-up run (min–max in brackets); ratio = VmClone ÷ reference measured in the same run (higher is better for rates).");
        sb.AppendLine();
        sb.AppendLine("| benchmark | median (min–max) | ratio | reference |");
        sb.AppendLine("|---|---|---|---|");
        foreach (Row r in rows)
            sb.AppendLine($"| {r.Name} | {r.Figure} | {r.Ratio} | {r.Reference} |");
        return sb.ToString();
    }
}

internal sealed class Series
{
    public Series(List<double> seconds)
    {
        Seconds = seconds.OrderBy(s => s).ToList();
    }

    public List<double> Seconds { get; }

    public double Median => Seconds[Seconds.Count / 2];

    public double Min => Seconds[0];

    public double Max => Seconds[Seconds.Count - 1];
}

internal sealed record Row(string Name, string Figure, string Ratio, string Reference)
{
    public static Row Throughput(string name, Series s, long bytes, Series? reference, string referenceName = "row above")
    {
        double mb(double seconds) => bytes / 1e6 / seconds;
        string figure = $"{mb(s.Median):F0} MB/s ({mb(s.Max):F0}–{mb(s.Min):F0})";
        string ratio = reference is null ? "" : $"{reference.Median / s.Median:P0}";
        return new Row(name, figure, ratio, reference is null ? "" : referenceName);
    }

    public static Row PerItem(string name, Series s, int items)
    {
        double ms(double seconds) => seconds * 1000 / items;
        return new Row(name, $"{ms(s.Median):F2} ms each ({ms(s.Min):F2}–{ms(s.Max):F2})", $"{items / s.Median:F0}/s", "");
    }
}

internal static class Tools
{
    public static bool Exists(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, name)));

    public static void Run(string file, string arguments, bool toNull = false)
    {
        var psi = new ProcessStartInfo("/bin/sh", $"-c \"{file} {arguments.Replace("\"", "\\\"")}{(toNull ? " > /dev/null" : "")}\"")
        {
            UseShellExecute = false,
            RedirectStandardError = true,
        };
        using Process p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {arguments} failed: {err}");
    }

    /// <summary>Runs a command under GNU time when present; returns its peak RSS in bytes (0 when unknown).</summary>
    public static long RunMeasured(string file, string arguments)
    {
        if (!File.Exists("/usr/bin/time"))
        {
            Run(file, arguments);
            return 0;
        }
        string report = Path.GetTempFileName();
        try
        {
            Run("/usr/bin/time", $"-f %M -o '{report}' {file} {arguments}");
            return long.Parse(File.ReadAllText(report).Trim().Split('\n').Last()) * 1024;
        }
        finally
        {
            File.Delete(report);
        }
    }

    public static string RunCapture(string file, string arguments)
    {
        var psi = new ProcessStartInfo("/bin/sh", $"-c \"'{file}' {arguments.Replace("\"", "\\\"")}\"")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using Process p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {arguments} failed: {err}");
        return output;
    }

    public static string CpuModel()
    {
        try
        {
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line?.Split(':')[1].Trim() ?? "unknown CPU";
        }
        catch (IOException)
        {
            return "unknown CPU";
        }
    }
}

internal static class Fixtures
{
    private const int Buffer = 1 << 20;

    public static void WriteRandomRaw(string path, long size)
    {
        var rng = new Random(42);
        byte[] buffer = new byte[Buffer];
        using var fs = File.Create(path);
        for (long done = 0; done < size; done += Buffer)
        {
            rng.NextBytes(buffer);
            fs.Write(buffer, 0, Buffer);
        }
    }

    public static void CopyIntoNewDisk(string raw, string disk, long size)
    {
        using VirtualDisk d = VirtualDisk.CreateDynamic(disk, size);
        using FileStream src = File.OpenRead(raw);
        src.CopyTo(d.Content, Buffer);
    }

    public static void CreateChildRewriting(string parent, string child, int phase)
    {
        using VirtualDisk d = VirtualDisk.CreateDifferencing(child, parent);
        byte[] buffer = new byte[Buffer];
        new Random(phase).NextBytes(buffer);
        for (long off = phase * Buffer; off < d.Capacity; off += 3 * Buffer)
        {
            d.Content.Position = off;
            d.Content.Write(buffer, 0, Buffer);
        }
    }

    /// <summary>Deletes an output and writes back every dirty page, outside any timing.</summary>
    public static void Clean(string path)
    {
        File.Delete(path);
        Tools.Run("sync", "");
    }

    public static void ReadAll(string path)
    {
        using VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read);
        byte[] buffer = new byte[Buffer];
        Stream s = d.Content;
        while (s.Read(buffer, 0, buffer.Length) > 0)
        {
        }
    }

    public static void ConvertToRaw(string path, string target)
    {
        using VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read);
        using FileStream fs = File.Create(target);
        d.Content.CopyTo(fs, Buffer);
    }

    public static (long Apparent, long Allocated) ChildFileSize(string parent, string work)
    {
        string child = Path.Combine(work, "size-probe.vhdx");
        VirtualDisk.CreateDifferencing(child, parent).Dispose();
        long apparent = new FileInfo(child).Length;
        string[] stat = Tools.RunCapture("stat", $"-c '%b %B' '{child}'").Trim().Split(' ');
        File.Delete(child);
        return (apparent, long.Parse(stat[0]) * long.Parse(stat[1]));
    }
}
