using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading;
using Microsoft.Win32.SafeHandles;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Bench;

/// <summary>
/// Runs each benchmark next to its reference in the same run, prints a table and writes it to
/// bench/RESULTS.md. Figures are medians of several runs after one warm-up run (page cache
/// warm for every contender alike), so the ratio compares like with like. Every result a
/// benchmark produces is checked against content computed independently of both contenders,
/// so a fast wrong answer fails the run instead of looking good.
/// </summary>
public static class Program
{
    internal const long GiB = 1L << 30;
    internal const long MiB = 1L << 20;

    public static int Main(string[] args)
    {
        if (args.Length >= 1 && args[0] == "engine")
            return EngineBench.Run(args);
        if (args.Length > 0 && ChildProcess.Modes.Contains(args[0]))
            return ChildProcess.Run(args);
        if (args.Length >= 3 && args[0] == "repeat")
            return ChildProcess.Repeat(args);
        string results = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "RESULTS.md");
        int runs = args.Length > 1 ? int.Parse(args[1]) : 5;
        // Only some sections (their keys, or any word of a key: "qcow2", "reads", "rebase-vhd"),
        // merged into the results of earlier runs; empty: all of them.
        string[] only = args.Length > 2 ? args[2].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : Array.Empty<string>();
        string work = Path.Combine(Path.GetTempPath(), "vmclone-bench-" + Guid.NewGuid().ToString("N").Substring(0, 8));
        Directory.CreateDirectory(work);
        var report = new Report(only, runs);
        try
        {
            string raw = Path.Combine(work, "reference.raw");
            if (report.AnySelected(Report.Order.Where(k => k != "process").ToArray()))
            {
                Console.WriteLine($"Preparing a 1 GiB random raw file in {work} ...");
                Fixtures.WriteRandomRaw(raw, GiB);
            }
            ChainReads.Run(report, work, raw, runs);
            report.Section("convert-vhdx", () => ConvertAndCreate(report, work, raw, runs));
            foreach (BenchFormat f in new[] { BenchFormat.Qcow2, BenchFormat.Vhd })
                report.Section($"create-{f.Key}", () => CreateChildren(report, work, raw, runs, f));
            // The rebase takes half a second and moves with the disk's mood: all the runs. The
            // multi-second flatten gets at most three: its spread is small next to its length,
            // and the whole benchmark has to stay short enough to be run.
            foreach (BenchFormat f in new[] { BenchFormat.Vmdk, BenchFormat.Qcow2, BenchFormat.Vhd })
                report.Section($"rebase-{f.Key}", () => PreservingRebase.Run(report, work, raw, runs, f));
            foreach (BenchFormat f in new[] { BenchFormat.Vmdk, BenchFormat.Qcow2, BenchFormat.Vhd })
                report.Section($"flatten-{f.Key}", () => ConvertChain(report, work, Math.Min(runs, 3), f));
            report.Section("scale", () => MemoryAtScale.Run(report, work));
            report.Section("process", () =>
                report.Add(new Row("Peak working set of this benchmark process (all of the above in-process work)", $"{Process.GetCurrentProcess().PeakWorkingSet64 / MiB} MiB", "", "one process for all; not split per benchmark")));
        }
        finally
        {
            Directory.Delete(work, true);
        }

        string table = report.Write(results);
        Console.WriteLine(table);
        Console.WriteLine($"Written to {results}");
        if (report.Failures.Count > 0)
        {
            Console.Error.WriteLine("Content checks failed:" + Environment.NewLine + string.Join(Environment.NewLine, report.Failures));
            return 1;
        }
        return 0;
    }

    /// <summary>A VHDX depth 1 to a raw file against qemu-img, and creating children in a row.</summary>
    private static void ConvertAndCreate(Report report, string work, string raw, int runs)
    {
        string base1 = Path.Combine(work, "convert-base.vhdx");
        Fixtures.CopyIntoNewDisk(raw, base1, GiB);
        if (Tools.Exists("qemu-img"))
        {
            // Every contender starts with no dirty pages (sync outside the timing), so one's
            // write-back never slows another. Convert-VmDisk flushes its output before moving it
            // into place (a crash must never leave a complete-looking but empty file). qemu-img
            // convert by default writes with cache=unsafe (no flush at all); with -t writeback
            // it flushes its output once at the end, the same work. Both are shown.
            string q = Path.Combine(work, "q.raw"), o = Path.Combine(work, "o.raw"), c = Path.Combine(work, "c.raw");
            Series[] m = MeasureSideBySide(runs,
                (() => Tools.Run("qemu-img", $"convert -f vhdx -O raw '{base1}' '{q}'"), () => Fixtures.Clean(q)),
                (() => Tools.Run("qemu-img", $"convert -t writeback -f vhdx -O raw '{base1}' '{q}'"), () => Fixtures.Clean(q)),
                (() => DiskOperations.Convert(base1, c, null, null, null, null, CancellationToken.None), () => Fixtures.Clean(c)),
                (() => Fixtures.ConvertToRaw(base1, o), () => Fixtures.Clean(o)));
            (Series q1, Series qs, Series c1, Series o1) = (m[0], m[1], m[2], m[3]);
            report.Check(Fixtures.Sha256(q) == Fixtures.Sha256(raw) && Fixtures.Sha256(o) == Fixtures.Sha256(raw) && Fixtures.Sha256(c) == Fixtures.Sha256(raw),
                "VHDX depth 1 to raw: every output equals the source raw file");
            report.Add(Row.Throughput("VHDX depth 1 to raw file, qemu-img convert (its default cache=unsafe: not flushed)", q1, GiB, null));
            report.Add(Row.Throughput("VHDX depth 1 to raw file, qemu-img convert -t writeback (durable: flushed at the end)", qs, GiB, null));
            report.Add(Row.Throughput("VHDX depth 1 to raw file, VmClone Convert-VmDisk's operation (durable)", c1, GiB, qs, "qemu-img convert -t writeback"));
            report.Add(Row.Throughput("VHDX depth 1 to raw file, VmClone's content stream copied into a file (VirtualDisk.Content.CopyTo, not flushed, one thread)", o1, GiB, q1, "qemu-img convert (not flushed)"));
            Fixtures.Clean(c);
            Fixtures.Clean(q);
            Fixtures.Clean(o);
        }

        int children = 200;
        Series create = Measure(runs, () =>
        {
            string dir = Path.Combine(work, "children-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            for (int i = 0; i < children; i++)
                VirtualDisk.CreateDifferencing(Path.Combine(dir, $"c{i}.vhdx"), base1).Dispose();
            Directory.Delete(dir, true);
        });
        report.Add(Row.PerItem($"Create a differencing VHDX over a 1 GiB disk ({children} in a row)", create, children));
        (long apparent, long allocated) = Fixtures.ChildFileSize(base1, work);
        report.Add(new Row("Bytes on disk per new VHDX child (allocated / apparent size)", $"{allocated / 1024} KiB / {apparent / 1024} KiB", "", "log, BAT and free metadata space are holes"));
        File.Delete(base1);
    }

    /// <summary>
    /// Issue: flatten a 2 GiB depth-3 chain to raw, VmClone (Convert-VmDisk's operation, in its
    /// own process) against qemu-img convert on the same files; time and peak memory. qemu reads
    /// no differencing VHD: for VHD VmClone's figure stands alone, beside qemu's row saying so.
    /// </summary>
    private static void ConvertChain(Report report, string work, int runs, BenchFormat format)
    {
        if (!Tools.Exists("qemu-img"))
            return;
        string ext = format.Extension, label = $"2 GiB depth-3 {format.Name} chain";
        Console.WriteLine($"Preparing a {label} ...");
        string b = Path.Combine(work, $"b.{ext}"), m = Path.Combine(work, $"m.{ext}"), t = Path.Combine(work, $"t.{ext}");
        string raw = Path.Combine(work, "chain-src.raw");
        Fixtures.WriteRandomRaw(raw, 2 * GiB);
        Fixtures.CopyIntoNewDisk(raw, b, 2 * GiB);
        Fixtures.CreateChildRewriting(b, m, phase: 1, stride: 3);
        Fixtures.CreateChildRewriting(m, t, phase: 2, stride: 3);
        string expected = Fixtures.ExpectedSha256(raw, 2 * GiB, stride: 3, depth: 3);
        File.Delete(raw);
        long ourPeak = 0, qemuPeak = 0;
        string ours = Path.Combine(work, "ours.raw"), theirs = Path.Combine(work, "theirs.raw");
        if (format.IsVhd)
        {
            Series alone = Measure(runs, () => ourPeak = ChildProcess.Start($"convert '{t}' '{ours}'"), () => Fixtures.Clean(ours));
            report.Check(Fixtures.Sha256(ours) == expected, $"Flatten of the {label}: VmClone's raw output equals the expected content");
            Tools.Run("qemu-img", $"convert -f vpc -O raw '{t}' '{theirs}'");
            report.Check(Fixtures.Sha256(theirs) != expected, $"Flatten of the {label}: qemu-img convert -f vpc writes content other than the expected (its parents ignored), so it is not timed");
            report.Add(new Row($"Flatten {label} to raw, qemu-img convert", "cannot read it", "", Row.Quote(BenchFormat.QemuVhdChildren, work)));
            report.Add(Row.Throughput($"Flatten {label} to raw, VmClone Convert (durable, own process)", alone, 2 * GiB, null));
            report.Add(Row.Peak("Peak memory of that flatten", ourPeak, 0, "qemu-img convert"));
        }
        else
        {
            // VmClone's Convert flushes the new file to the device before moving it into place (a
            // crash must never leave a complete-looking but empty destination); qemu-img convert
            // by default does not flush (cache=unsafe), and with -t writeback flushes once at the
            // end, the same work. Both are shown.
            Series[] series = MeasureSideBySide(runs,
                (() => qemuPeak = Tools.RunMeasured("qemu-img", $"convert -f {format.Qemu} -O raw '{t}' '{theirs}'"), () => Fixtures.Clean(theirs)),
                (() => Tools.Run("qemu-img", $"convert -t writeback -f {format.Qemu} -O raw '{t}' '{theirs}'"), () => Fixtures.Clean(theirs)),
                (() => ourPeak = ChildProcess.Start($"convert '{t}' '{ours}'"), () => Fixtures.Clean(ours)));
            (Series q, Series qs, Series o) = (series[0], series[1], series[2]);
            report.Check(Fixtures.Sha256(ours) == expected && Fixtures.Sha256(theirs) == expected,
                $"Flatten of the {label}: VmClone's and qemu-img's raw outputs equal the expected content");
            report.Add(Row.Throughput($"Flatten {label} to raw, qemu-img convert (its default cache=unsafe: not flushed)", q, 2 * GiB, null));
            report.Add(Row.Throughput($"Flatten {label} to raw, qemu-img convert -t writeback (durable: flushed at the end)", qs, 2 * GiB, null));
            report.Add(Row.Throughput($"Flatten {label} to raw, VmClone Convert (durable, own process)", o, 2 * GiB, qs, "qemu-img convert -t writeback"));
            report.Add(new Row($"Flatten {label}, VmClone (durable) against qemu-img (not flushed)", "", Row.RatioOf(o, q), "qemu-img convert, cache=unsafe"));
            report.Add(Row.Peak("Peak memory of that flatten", ourPeak, qemuPeak, "qemu-img convert"));
        }
        foreach (string f in new[] { b, m, t, ours, theirs })
            File.Delete(f);
    }

    /// <summary>
    /// Creating 200 children of a 1 GiB disk in a row: the engine against a shell loop of
    /// qemu-img create -b on the same base (qemu's vpc driver has no backing files: for VHD
    /// its refusal is shown), side by side.
    /// </summary>
    private static void CreateChildren(Report report, string work, string raw, int runs, BenchFormat format)
    {
        string ext = format.Extension;
        string dir = Path.Combine(work, "create-" + format.Key);
        Directory.CreateDirectory(dir);
        string parent = Path.Combine(dir, $"base.{ext}");
        Fixtures.CopyIntoNewDisk(raw, parent, GiB);
        const int children = 200;
        string Fresh(string what)
        {
            string d = Path.Combine(dir, what + "-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(d);
            return d;
        }
        Action ours = () =>
        {
            string d = Fresh("ours");
            for (int i = 0; i < children; i++)
                VirtualDisk.CreateDifferencing(Path.Combine(d, $"c{i}.{ext}"), parent).Dispose();
            Directory.Delete(d, true);
        };
        string name = $"Create a differencing {format.Name} over a 1 GiB disk ({children} in a row)";
        string? qemuError = Tools.Exists("qemu-img")
            ? Tools.TryRun("qemu-img", $"create -q -f {format.Qemu} -b '{parent}' -F {format.Qemu} '{Path.Combine(dir, "probe." + ext)}'")
            : "qemu-img not installed";
        if (qemuError is null)
        {
            string script = Path.Combine(dir, "loop.sh");
            Action theirs = () =>
            {
                string d = Fresh("qemu");
                File.WriteAllText(script, $"cd '{d}'; for i in $(seq 1 {children}); do qemu-img create -q -f {format.Qemu} -b '{parent}' -F {format.Qemu} c$i.{ext} || exit 1; done\n");
                Tools.Run("bash", $"'{script}'");
                Directory.Delete(d, true);
            };
            Series[] m = MeasureSideBySide(runs, (theirs, null), (ours, null));
            report.Add(Row.PerItem($"{name}, qemu-img create -b in a shell loop", m[0], children));
            report.Add(new Row($"{name}, VmClone (VirtualDisk.CreateDifferencing)", Row.PerItemFigure(m[1], children), Row.RatioOf(m[1], m[0]), "qemu-img create -b loop (row above)"));
            string probe = Path.Combine(dir, "probe." + ext);
            report.Add(new Row($"Bytes on disk per new {format.Name} child, VmClone / qemu-img (allocated / apparent size)",
                FileSizes(Fixtures.ChildFileSize(parent, dir)) + " / " + FileSizes((new FileInfo(probe).Length, Fixtures.Allocated(probe))), "", ""));
        }
        else
        {
            Series m = Measure(runs, ours);
            report.Add(new Row($"{name}, qemu-img create -b", "cannot", "", Row.Quote(qemuError, dir)));
            report.Add(Row.PerItem($"{name}, VmClone (VirtualDisk.CreateDifferencing)", m, children));
            report.Add(new Row($"Bytes on disk per new {format.Name} child, VmClone (allocated / apparent size)", FileSizes(Fixtures.ChildFileSize(parent, dir)), "", ""));
        }
        // A fresh child is checked as qemu sees it: opens over its parent, nothing wrong.
        string check = Path.Combine(dir, "check." + ext);
        VirtualDisk.CreateDifferencing(check, parent).Dispose();
        if (format == BenchFormat.Qcow2)
            report.Check(Tools.TryRun("qemu-img", $"check -q -f qcow2 '{check}'") is null && ChainReads.QemuSha256(check, "qcow2", dir) == Fixtures.Sha256(raw),
                "A new qcow2 child made by VmClone: qemu-img check finds nothing wrong and qemu reads its parent's content through it");
        else
            report.Check(Fixtures.ContentSha256(check) == Fixtures.Sha256(raw), $"A new {format.Name} child made by VmClone shows its parent's content");
        Directory.Delete(dir, true);
    }

    private static string FileSizes((long Apparent, long Allocated) s) => $"{s.Allocated / 1024} KiB / {s.Apparent / 1024} KiB";

    /// <summary>
    /// Several contenders measured side by side: one warm-up each, then run by run, each
    /// contender in turn, the order rotated every run so that none always follows the same
    /// one. Whatever drifts on the machine during the benchmark (background write-back, a
    /// virtual disk's bursts and throttling, other load) then falls on all of them alike
    /// instead of on whichever was measured last or in a fixed place.
    /// </summary>
    internal static Series[] MeasureSideBySide(int runs, params (Action Action, Action? Before)[] contenders)
    {
        foreach ((Action action, Action? before) in contenders)
        {
            before?.Invoke();
            action();
        }
        var times = contenders.Select(_ => new List<double>()).ToArray();
        for (int i = 0; i < runs; i++)
        {
            for (int k = 0; k < contenders.Length; k++)
            {
                int c = (i + k) % contenders.Length;
                contenders[c].Before?.Invoke();
                var sw = Stopwatch.StartNew();
                contenders[c].Action();
                times[c].Add(sw.Elapsed.TotalSeconds);
            }
        }
        return times.Select(t => new Series(t)).ToArray();
    }

    /// <summary>One contender alone: one warm-up run, then <paramref name="runs"/> timed ones.</summary>
    internal static Series Measure(int runs, Action action, Action? before = null) => MeasureSideBySide(runs, (action, before))[0];
}

/// <summary>
/// A format the benchmarks run for, and what qemu can do with it: qemu-img's name for it, and
/// whether qemu reads and makes its differencing layers (its vpc driver opens a differencing
/// VHD as if it were dynamic, ignores the parent and reads zeros there, without an error).
/// </summary>
internal sealed record BenchFormat(string Key, string Name, string Extension, string Qemu)
{
    public static readonly BenchFormat Vhdx = new("vhdx", "VHDX", "vhdx", "vhdx");
    public static readonly BenchFormat Vmdk = new("vmdk", "VMDK", "vmdk", "vmdk");
    public static readonly BenchFormat Qcow2 = new("qcow2", "qcow2", "qcow2", "qcow2");
    /// <summary>A dynamic VHD base (made by VmClone) and differencing VHD children.</summary>
    public static readonly BenchFormat Vhd = new("vhd", "VHD", "vhd", "vpc");
    /// <summary>A fixed VHD made by qemu-img (-o subformat=fixed), read alone.</summary>
    public static readonly BenchFormat VhdFixed = new("vhd-fixed", "fixed VHD", "vhd", "vpc");

    public bool IsVhd => Qemu == "vpc";

    /// <summary>The row label of a chain of this depth.</summary>
    public string Label(int depth) => Key switch
    {
        "vhd" => depth == 1 ? "dynamic VHD depth 1" : $"VHD depth {depth} (differencing over dynamic)",
        _ => $"{Name} depth {depth}",
    };

    /// <summary>What qemu says it cannot do with VHD children (it has no backing files for vpc).</summary>
    public const string QemuVhdChildren = "qemu-img's vpc driver reads a differencing VHD as a dynamic one, without its parent: no error, zeros where the parent holds data";
}

/// <summary>
/// Issue: sequential and 4 KiB random reads through chains of depth 1, 3 and 10, VHDX, VMDK,
/// qcow2 and VHD, against qemu-img convert (into qemu's null-co driver, so only reading is timed)
/// and qemu-io on the same files, and against the page cache itself (cat and pread of a raw file).
/// </summary>
internal static class ChainReads
{
    internal const int RandomReads = 20_000;
    internal const int RandomSeed = 7;

    public static void Run(Report report, string work, string raw, int runs)
    {
        BenchFormat[] formats = { BenchFormat.Vhdx, BenchFormat.Vmdk, BenchFormat.Qcow2, BenchFormat.Vhd, BenchFormat.VhdFixed };
        // The raw references are measured in every run that reads a chain, so the ratios are of one run.
        if (!report.AnySelected(formats.Select(f => "reads-" + f.Key).Append("raw").ToArray()))
            return;
        bool qemu = Tools.Exists("qemu-img") && Tools.Exists("qemu-io");
        long[] offsets = Fixtures.RandomOffsets(Program.GiB, RandomReads, RandomSeed);
        // One qemu-io process reads the commands from its standard input, as one VirtualDisk
        // serves them all: neither pays a process start per read.
        string script = Path.Combine(work, "random-4k.qemu-io");
        File.WriteAllLines(script, offsets.Select(o => $"read -q {o} 4k"));
        string readsName = $"{RandomReads:N0} random 4 KiB reads";
        Series cat = null!, pread = null!;
        report.Section("raw", () =>
        {
            cat = Program.Measure(runs, () => Tools.Run("cat", $"'{raw}'", toNull: true));
            report.Add(Row.Throughput("Sequential read, raw file (cat, page cache)", cat, Program.GiB, null));
            pread = Program.Measure(runs, () => Fixtures.ReadRandomRaw(raw, offsets));
            report.Add(Row.Rate($"{readsName}, raw file (pread, page cache)", pread, RandomReads, "reads"));
            if (qemu)
            {
                // qemu-io parses and runs one command per read; on a raw file that cost is all there
                // is, so this row is the most any chain can get through qemu-io.
                Series floor = Program.Measure(runs, () => Tools.Run("qemu-io", $"-r -f raw '{raw}' < '{script}'", toNull: true));
                report.Add(Row.Rate($"{readsName}, raw file, qemu-io (its per-command ceiling)", floor, RandomReads, "reads"));
            }
        }, always: true);

        foreach (BenchFormat format in formats)
        {
            report.Section("reads-" + format.Key, () =>
            {
                string fmt = format.Extension;
                string baseDisk = Path.Combine(work, $"base.{fmt}");
                int[] depths = format == BenchFormat.VhdFixed ? new[] { 1 } : new[] { 1, 3, 10 };
                Console.WriteLine($"Preparing {format.Name} chains of depth {string.Join(", ", depths)} ...");
                if (format == BenchFormat.VhdFixed)
                    Tools.Run("qemu-img", $"convert -q -f raw -O vpc -o subformat=fixed,force_size=on '{raw}' '{baseDisk}'");
                else
                    Fixtures.CopyIntoNewDisk(raw, baseDisk, Program.GiB);
                var created = new List<string> { baseDisk };
                foreach (int depth in depths)
                {
                    // Depth d: layer k (1..d-1) rewrites every MiB i with i % d == k, so every layer
                    // owns a share of the content and a read really walks the whole chain.
                    string top = baseDisk;
                    for (int k = 1; k < depth; k++)
                    {
                        string child = Path.Combine(work, $"d{depth}-{k}.{fmt}");
                        Fixtures.CreateChildRewriting(top, child, phase: k, stride: depth);
                        created.Add(child);
                        top = child;
                    }
                    MeasureChain(report, work, raw, top, format, format.Label(depth), depth, runs, qemu, cat, pread, offsets, script, readsName);
                }
                foreach (string f in created)
                    File.Delete(f);
            });
        }
    }

    private static void MeasureChain(Report report, string work, string raw, string top, BenchFormat format, string label, int depth, int runs,
        bool qemu, Series cat, Series pread, long[] offsets, string script, string readsName)
    {
        Console.WriteLine($"  {label} ...");
        string fmt = format.Qemu;
        string qemuRead = $"convert -n -f {fmt} '{top}' --target-image-opts driver=null-co,size={Program.GiB}";
        string qemuRandom = $"-r -f {fmt} '{top}' < '{script}'";
        string? qemuError = qemu ? Tools.TryRun("qemu-io", $"-r -f {fmt} -c 'read -q 0 4k' '{top}'") : "qemu-img/qemu-io not installed";
        string expected = Fixtures.ExpectedSha256(raw, Program.GiB, depth, depth);
        string cannot = "cannot open it";
        if (qemuError is null && format == BenchFormat.Vhd && depth > 1)
        {
            // qemu opens a differencing VHD without complaint and reads it wrongly: shown, not timed.
            bool wrong = QemuSha256(top, fmt, work) != expected;
            report.Check(wrong, $"{label}: qemu-img convert -f vpc reads content other than the expected (its parent ignored), so it is not timed");
            qemuError = BenchFormat.QemuVhdChildren;
            cannot = "cannot read it";
        }

        long qemuReadPeak = 0, qemuIoPeak = 0;
        if (qemuError is null)
        {
            // CPU time beside the wall clock: qemu-img reads with a pool of threads, VmClone with
            // one, so on a loaded machine the wall-clock share follows the thread count as well.
            var ourCpu = new List<double>();
            var qemuCpu = new List<double>();
            Series[] m = Program.MeasureSideBySide(runs,
                (() =>
                {
                    TimeSpan before = Process.GetCurrentProcess().TotalProcessorTime;
                    Fixtures.ReadAll(top);
                    ourCpu.Add((Process.GetCurrentProcess().TotalProcessorTime - before).TotalSeconds);
                }, null),
                (() =>
                {
                    (qemuReadPeak, double cpu) = Tools.RunMeasuredCpu("qemu-img", qemuRead);
                    qemuCpu.Add(cpu);
                }, null));
            (Series seq, Series qs) = (m[0], m[1]);
            report.Add(Row.Throughput($"Sequential read, {label}, qemu-img convert to null-co", qs, Program.GiB, null));
            report.Add(new Row($"Sequential read, {label}, VmClone (VirtualDisk.Content)", Row.ThroughputFigure(seq, Program.GiB),
                $"{Row.RatioOf(seq, qs)} · {Row.RatioOf(seq, cat)}", "qemu-img (row above) · cat"));
            if (qemuCpu.Count > 0 && qemuCpu.Min() > 0)
            {
                (Series oc, Series qc) = (new Series(ourCpu), new Series(qemuCpu));
                report.Add(new Row($"  CPU time of that sequential read, VmClone (in process) / qemu-img convert (whole process)", $"{oc.Median * 1000:F0} ms / {qc.Median * 1000:F0} ms",
                    Row.RatioOf(oc, qc), "qemu-img, CPU time (user + system) instead of wall clock"));
            }
            m = Program.MeasureSideBySide(runs,
                (() => Fixtures.ReadRandom(top, offsets, null), null),
                (() => qemuIoPeak = Tools.RunMeasured("qemu-io", qemuRandom, toNull: true), null));
            (Series rnd, Series qr) = (m[0], m[1]);
            report.Add(Row.Rate($"{readsName}, {label}, qemu-io (one process, one command per read)", qr, offsets.Length, "reads"));
            report.Add(new Row($"{readsName}, {label}, VmClone (VirtualDisk.Content)", Row.RateFigure(rnd, offsets.Length, "reads"),
                $"{Row.RatioOf(rnd, qr)} · {Row.RatioOf(rnd, pread)}", "qemu-io (row above) · pread"));
        }
        else
        {
            Series seq = Program.Measure(runs, () => Fixtures.ReadAll(top));
            Series rnd = Program.Measure(runs, () => Fixtures.ReadRandom(top, offsets, null));
            report.Add(new Row($"Sequential read / random reads, {label}, qemu-img / qemu-io", cannot, "", Row.Quote(qemuError, work)));
            report.Add(new Row($"Sequential read, {label}, VmClone (VirtualDisk.Content)", Row.ThroughputFigure(seq, Program.GiB), Row.RatioOf(seq, cat), "cat"));
            report.Add(new Row($"{readsName}, {label}, VmClone (VirtualDisk.Content)", Row.RateFigure(rnd, offsets.Length, "reads"), Row.RatioOf(rnd, pread), "pread"));
        }

        if (depth == 10)
        {
            report.Add(Row.Peak($"Peak memory, sequential read of {label}", ChildProcess.Start($"read '{top}'"), qemuReadPeak, "qemu-img convert"));
            report.Add(Row.Peak($"Peak memory, {readsName} of {label}", ChildProcess.Start($"random '{top}'"), qemuIoPeak, "qemu-io"));
        }

        // The content every reader must see, computed from the raw file and the layers' seeds.
        using var expectedContent = new ExpectedContent(raw, depth, depth);
        bool ok = Fixtures.ContentSha256(top) == expected
            && Fixtures.ReadRandom(top, offsets, expectedContent) == Fixtures.ReadRandom(top, offsets, null, hash: true);
        string checkedBy = "VmClone";
        if (qemuError is null)
        {
            ok &= QemuSha256(top, fmt, work) == expected;
            checkedBy = "VmClone (sequential and random) and qemu-img convert";
        }
        report.Check(ok, $"{label}: content read by {checkedBy} equals the expected content");
    }

    /// <summary>SHA-256 of a disk's content as qemu-img reads it (converted to a raw file, then hashed).</summary>
    internal static string QemuSha256(string path, string format, string dir)
    {
        string view = Path.Combine(dir, "qemu-view.raw");
        Tools.Run("qemu-img", $"convert -f {format} -O raw '{path}' '{view}'");
        string sha = Fixtures.Sha256(view);
        File.Delete(view);
        return sha;
    }
}

/// <summary>
/// Issue: Set-VmDisk -PreserveContent of a child holding 256 MiB of its own changes onto a new
/// base against qemu-img rebase (safe mode) on the same files: qcow2 as is; a VMDK or VHD, which
/// qemu-img cannot rebase, is tried on the same files (qemu's own words are shown) and the same
/// chain as qcow2 is then its nearest reference. The child's whole content is hashed before and
/// after, through VmClone and through qemu-img where qemu reads the format's children.
/// </summary>
internal static class PreservingRebase
{
    public static void Run(Report report, string work, string raw, int runs, BenchFormat format)
    {
        string ext = format.Extension;
        Console.WriteLine($"Preparing a {format.Name} child with 256 MiB of changes and two 1 GiB bases ...");
        string dir = Path.Combine(work, "rebase");
        Directory.CreateDirectory(dir);
        string oldBase = Path.Combine(dir, $"old.{ext}"), newBase = Path.Combine(dir, $"new.{ext}");
        string pristine = Path.Combine(dir, $"pristine.{ext}"), child = Path.Combine(dir, $"child.{ext}");
        Fixtures.CopyIntoNewDisk(raw, oldBase, Program.GiB);
        // The new base is the old one with every 8th MiB changed (128 MiB): a patched base, so the
        // rebase has to compare the whole 768 MiB the child leaves to its parent and copy a part.
        Fixtures.CopyIntoNewDisk(raw, newBase, Program.GiB);
        using (VirtualDisk d = VirtualDisk.Open(newBase, FileAccess.ReadWrite))
            Fixtures.Rewrite(d, phase: 0, stride: 8, seed: 80);
        // The child's own 256 MiB: every 4th MiB, none of them among the new base's changes.
        Fixtures.CreateChildRewriting(oldBase, pristine, phase: 1, stride: 4);
        string before = Fixtures.ContentSha256(pristine);
        long pristineBytes = Fixtures.Allocated(pristine);

        string name = $"Content-preserving rebase of a 1 GiB {format.Name} child with 256 MiB of changes onto a new base";
        long ourPeak = 0;
        // In a running session (a pwsh with the module loaded, here this process once warmed up):
        // the operation alone, without a process start and first-use compilation.
        string inSessionChild = Path.Combine(dir, $"child-in-session.{ext}");
        Action ownProcess = () => ourPeak = ChildProcess.Start($"rebase '{child}' '{newBase}'");
        Action inSessionRun = () => DiskOperations.SetParent(inSessionChild, newBase, preserveContent: true, ignoreIdMismatch: false, null, CancellationToken.None);
        if (!Tools.Exists("qemu-img"))
        {
            Series alone = Program.Measure(runs, ownProcess, before: () => Fixtures.CopyFresh(pristine, child));
            report.Add(Row.Throughput($"{name}, VmClone Set-VmDisk -PreserveContent (own process)", alone, Program.GiB, null));
            return;
        }

        bool sameFiles = format == BenchFormat.Qcow2;
        string? qemuError = null;
        double qemuSeconds = 0;
        long qemuBytes = 0;
        string oldQ = oldBase, newQ = newBase, pristineQ = pristine, childQ = Path.Combine(dir, "child-qemu.qcow2");
        if (!sameFiles)
        {
            // qemu-img rebase on the very same files: its vmdk driver does the copy, then cannot
            // write the new backing file name. Shown once with qemu's own words and how long it ran.
            Fixtures.CopyFresh(pristine, child);
            var sw = Stopwatch.StartNew();
            qemuError = Tools.TryRun("qemu-img", $"rebase -f {format.Qemu} -b '{newBase}' -F {format.Qemu} '{child}'");
            qemuSeconds = sw.Elapsed.TotalSeconds;
            qemuBytes = Fixtures.Allocated(child);

            // The nearest qemu reference: the same three disks as qcow2 (64 KiB clusters, like the
            // VMDK grains), the child holding only its own 256 MiB over the old base. qemu cannot
            // read a differencing VHD, so that child is written again as qcow2 by VmClone.
            oldQ = Path.Combine(dir, "old.qcow2");
            newQ = Path.Combine(dir, "new.qcow2");
            pristineQ = Path.Combine(dir, "pristine.qcow2");
            Tools.Run("qemu-img", $"convert -f {format.Qemu} -O qcow2 '{oldBase}' '{oldQ}'");
            Tools.Run("qemu-img", $"convert -f {format.Qemu} -O qcow2 '{newBase}' '{newQ}'");
            if (format.IsVhd)
                Fixtures.CreateChildRewriting(oldQ, pristineQ, phase: 1, stride: 4);
            else
                Tools.Run("qemu-img", $"convert -f {format.Qemu} -O qcow2 -B '{oldQ}' -F qcow2 '{pristine}' '{pristineQ}'");
            report.Check(ChainReads.QemuSha256(pristineQ, "qcow2", dir) == before,
                $"qcow2 reference child holds the same content as the {format.Name} child before the rebase");
        }
        else
        {
            report.Check(ChainReads.QemuSha256(pristine, "qcow2", dir) == before,
                "qcow2 child read by qemu-img before the rebase holds the content VmClone reads");
        }

        long qemuPeak = 0;
        Series[] m = Program.MeasureSideBySide(runs,
            (ownProcess, () => Fixtures.CopyFresh(pristine, child)),
            (inSessionRun, () => Fixtures.CopyFresh(pristine, inSessionChild)),
            (() => qemuPeak = Tools.RunMeasured("qemu-img", $"rebase -f qcow2 -b '{newQ}' -F qcow2 '{childQ}'"), () => Fixtures.CopyFresh(pristineQ, childQ)));
        (Series ours, Series inSession, Series theirs) = (m[0], m[1], m[2]);

        using (VirtualDisk after = VirtualDisk.Open(child, FileAccess.Read))
            report.Check(after.Layers.Count == 2 && after.Layers[1].Path == newBase && Fixtures.ContentSha256(child) == before,
                $"Set-VmDisk -PreserveContent ({format.Name}): the child is over the new base and its content hash, read by VmClone, is unchanged");
        if (!format.IsVhd)
        {
            report.Check(ChainReads.QemuSha256(child, format.Qemu, dir) == before,
                $"Set-VmDisk -PreserveContent ({format.Name}): the child's content hash, read by qemu-img convert, is unchanged");
            report.Check(ChainReads.QemuSha256(inSessionChild, format.Qemu, dir) == before,
                $"Set-VmDisk -PreserveContent in a running session ({format.Name}): the child's content hash, read by qemu-img convert, is unchanged");
        }
        else
        {
            report.Check(Fixtures.ContentSha256(inSessionChild) == before,
                $"Set-VmDisk -PreserveContent in a running session ({format.Name}): the child's content hash, read by VmClone, is unchanged (qemu cannot read a differencing VHD)");
        }
        if (sameFiles)
        {
            string? check = Tools.TryRun("qemu-img", $"check -q -f qcow2 '{child}'");
            report.Check(check is null, $"Set-VmDisk -PreserveContent (qcow2): qemu-img check finds no corruption and no leak in the rebased child{(check is null ? "" : ": " + check)}");
        }
        string backing = Tools.RunCapture("qemu-img", $"info -f qcow2 --output=json '{childQ}'");
        report.Check(backing.Contains($"\"backing-filename\": \"{newQ}\"", StringComparison.Ordinal) && ChainReads.QemuSha256(childQ, "qcow2", dir) == before,
            $"qemu-img rebase (qcow2): the child is over the new base and its content hash is unchanged");

        string reference;
        if (sameFiles)
        {
            reference = "qemu-img rebase, same files";
            report.Add(Row.PerItem($"{name}, qemu-img rebase (safe), same qcow2 files", theirs, 1));
        }
        else
        {
            reference = "qemu-img rebase, qcow2";
            report.Add(new Row($"{name}, qemu-img rebase (safe), same {format.Name} files",
                qemuError is null ? $"{qemuSeconds:F2} s" : $"fails after {qemuSeconds:F2} s, the child grown from {pristineBytes / Program.MiB} to {qemuBytes / Program.MiB} MiB", "",
                qemuError is null ? "" : Row.Quote(qemuError, dir)));
            report.Add(Row.PerItem($"{name}, qemu-img rebase (safe) of the same chain as qcow2 (nearest qemu reference)", theirs, 1));
        }
        report.Add(new Row($"{name}, VmClone Set-VmDisk -PreserveContent's operation (own process: .NET start and first-use compilation included)", Row.PerItemFigure(ours, 1),
            Row.RatioOf(ours, theirs), reference));
        report.Add(new Row($"{name}, VmClone in a running session (as each clone of Invoke-VmRebase, or any call after the first)", Row.PerItemFigure(inSession, 1),
            Row.RatioOf(inSession, theirs), reference));
        report.Add(new Row($"  bytes the child holds before / after the rebase, VmClone {format.Name} / qemu qcow2",
            $"{pristineBytes / Program.MiB} → {Fixtures.Allocated(child) / Program.MiB} MiB / {Fixtures.Allocated(pristineQ) / Program.MiB} → {Fixtures.Allocated(childQ) / Program.MiB} MiB", "", "both copy the 128 MiB the new base changed"));
        report.Add(Row.Peak("Peak memory of that rebase", ourPeak, qemuPeak, reference));
        Directory.Delete(dir, true);
    }
}

/// <summary>
/// Issue: peak memory bounded and independent of disk size. The flatten and the
/// content-preserving rebase above (1–2 GiB disks) again on 100 GiB VMDK disks holding a few
/// hundred MiB: VmClone's peak should not grow with the virtual size.
/// </summary>
internal static class MemoryAtScale
{
    public static void Run(Report report, string work)
    {
        Console.WriteLine("Preparing 100 GiB VMDK disks holding a few hundred MiB ...");
        string dir = Path.Combine(work, "scale");
        Directory.CreateDirectory(dir);
        const long size = 100 * Program.GiB;
        string oldBase = Path.Combine(dir, "old.vmdk"), newBase = Path.Combine(dir, "new.vmdk"), child = Path.Combine(dir, "child.vmdk");
        string flat = Path.Combine(dir, "flat.raw");
        byte[] a = Fixtures.LayerBuffer(1), b = Fixtures.LayerBuffer(2), c = Fixtures.LayerBuffer(3);
        void Scatter(VirtualDisk d, byte[] data, long first, long step)
        {
            for (long at = first; at < d.Capacity; at += step)
            {
                d.Content.Position = at;
                d.Content.Write(data, 0, data.Length);
            }
        }
        using (VirtualDisk d = VirtualDisk.CreateDynamic(oldBase, size))
            Scatter(d, a, 0, 512 * Program.MiB);
        using (VirtualDisk d = VirtualDisk.CreateDynamic(newBase, size))
            Scatter(d, b, 0, 512 * Program.MiB);
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(child, oldBase))
            Scatter(d, c, 256 * Program.MiB, Program.GiB);
        // Reading 100 GiB to hash it would take longer than the work: MiBs at every place that
        // holds data in some layer, and between them, stand for the content.
        var samples = new List<long>();
        for (long at = 0; at < size; at += 512 * Program.MiB)
            samples.AddRange(new[] { at, at + 100 * Program.MiB, at + 256 * Program.MiB });
        string before = Fixtures.SampledSha256(child, samples);

        long convertPeak = ChildProcess.Start($"convert '{child}' '{flat}'");
        long qemuConvertPeak = Tools.Exists("qemu-img") ? Tools.RunMeasured("qemu-img", $"convert -f vmdk -O raw '{child}' '{flat}.qemu'") : 0;
        report.Check(Fixtures.SampledSha256(flat, samples) == before, "Flatten of a 100 GiB VMDK child: the raw output holds the child's content");
        File.Delete(flat);
        File.Delete(flat + ".qemu");
        long rebasePeak = ChildProcess.Start($"rebase '{child}' '{newBase}'");
        report.Check(Fixtures.SampledSha256(child, samples) == before, "Content-preserving rebase of a 100 GiB VMDK child: its content hash is unchanged");

        report.Add(Row.Peak("Peak memory, flatten of a 100 GiB VMDK child (300 MiB of data) to raw", convertPeak, qemuConvertPeak, "qemu-img convert").AtScale());
        report.Add(new Row("Peak memory, content-preserving rebase of that 100 GiB child onto another 100 GiB base, VmClone (own process)",
            $"{rebasePeak / Program.MiB} MiB", "", "compare with the 1 GiB rebase above: the same, not 100 times more"));
        Directory.Delete(dir, true);
    }
}

/// <summary>
/// VmClone work run alone in a child process, so its peak memory is its own (and, like a
/// qemu-img command, it pays its process start). Prints "peak=bytes" on success.
/// </summary>
internal static class ChildProcess
{
    public static readonly string[] Modes = { "convert", "rebase", "read", "random" };

    public static int Run(string[] args)
    {
        switch (args[0])
        {
            case "convert":
                DiskOperations.Convert(args[1], args[2], null, null, null, null, CancellationToken.None);
                break;
            case "rebase":
                DiskOperations.SetParent(args[1], args[2], preserveContent: true, ignoreIdMismatch: false, null, CancellationToken.None);
                break;
            case "read":
                Fixtures.ReadAll(args[1]);
                break;
            case "random":
                Fixtures.ReadRandom(args[1], Fixtures.RandomOffsets(Program.GiB, ChainReads.RandomReads, ChainReads.RandomSeed), null);
                break;
        }
        Console.WriteLine($"peak={Process.GetCurrentProcess().PeakWorkingSet64}");
        return 0;
    }

    /// <summary>
    /// `repeat count [--fresh pristine target] mode args...`: one mode's work run count times in
    /// one process, each run's time printed (for a profiler or strace, and for a stopwatch
    /// comparison of one row without the process start). With --fresh, target is copied from
    /// pristine before each run, outside the time, so a rebase has its work to do every run and
    /// the first run's extra time is what a process start's first use costs.
    /// </summary>
    public static int Repeat(string[] args)
    {
        int count = int.Parse(args[1]);
        string[] rest = args.Skip(2).ToArray();
        (string Pristine, string Target)? fresh = null;
        if (rest.Length > 2 && rest[0] == "--fresh")
        {
            fresh = (rest[1], rest[2]);
            rest = rest.Skip(3).ToArray();
        }
        var times = new List<double>();
        for (int i = 0; i < count; i++)
        {
            if (fresh is { } f)
                Fixtures.CopyFresh(f.Pristine, f.Target);
            var sw = Stopwatch.StartNew();
            Run(rest);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        Console.WriteLine($"ms: {string.Join(" ", times.Select(t => t.ToString("F1")))}; median {times.OrderBy(t => t).ElementAt(times.Count / 2):F1}");
        return 0;
    }

    /// <summary>Runs this program in <paramref name="arguments"/>' mode; returns the child's peak working set.</summary>
    public static long Start(string arguments)
    {
        string self = Environment.ProcessPath!;
        string selfArgs = Path.GetFileName(self) == "dotnet" ? $"'{typeof(Program).Assembly.Location}' " : "";
        string output = Tools.RunCapture(self, $"{selfArgs}{arguments}");
        return long.Parse(output.Split('=').Last().Trim());
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
    private const double MiB = 1 << 20;

    public static Row Throughput(string name, Series s, long bytes, Series? reference, string referenceName = "row above") =>
        new(name, ThroughputFigure(s, bytes), reference is null ? "" : RatioOf(s, reference), reference is null ? "" : referenceName);

    public static string ThroughputFigure(Series s, long bytes)
    {
        double mb(double seconds) => bytes / 1e6 / seconds;
        return $"{mb(s.Median):F0} MB/s ({mb(s.Max):F0}–{mb(s.Min):F0})";
    }

    public static Row Rate(string name, Series s, int items, string unit) => new(name, RateFigure(s, items, unit), "", "");

    public static string RateFigure(Series s, int items, string unit) =>
        $"{items / s.Median:N0} {unit}/s ({items / s.Max:N0}–{items / s.Min:N0})";

    public static Row PerItem(string name, Series s, int items) =>
        new(name, PerItemFigure(s, items), items == 1 ? "" : $"{items / s.Median:F0}/s", "");

    public static string PerItemFigure(Series s, int items)
    {
        double ms(double seconds) => seconds * 1000 / items;
        return items == 1
            ? $"{ms(s.Median):F0} ms ({ms(s.Min):F0}–{ms(s.Max):F0})"
            : $"{ms(s.Median):F2} ms each ({ms(s.Min):F2}–{ms(s.Max):F2})";
    }

    /// <summary>VmClone's rate as a share of the reference's: above 100 % VmClone is faster.</summary>
    public static string RatioOf(Series ours, Series reference) => $"{reference.Median / ours.Median:P0}";

    public static Row Peak(string name, long ours, long theirs, string reference) =>
        new($"{name}, VmClone (own process) / {reference}", $"{ours / MiB:F0} MiB / {(theirs > 0 ? $"{theirs / MiB:F0} MiB" : "n/a")}", "",
            "at this disk size; VmClone's includes the .NET runtime");

    /// <summary>The same row, noted as the large-disk counterpart of a peak measured above.</summary>
    public Row AtScale() => this with { Reference = "compare with the smaller disk above: VmClone's peak does not grow with the disk" };

    /// <summary>A tool's error message as one table cell, without the run's temporary folder.</summary>
    public static string Quote(string error, string folder) =>
        "\"" + string.Join(" ", error.Replace(folder + Path.DirectorySeparatorChar, "").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim())).Replace("|", "\\|") + "\"";
}

/// <summary>
/// The rows and content checks, by section. Every run writes them to a sidecar
/// (RESULTS.json beside RESULTS.md) as well as the table; a run of only some sections
/// (-BenchOnly) replaces those sections in the sidecar, keeps the others as they were measured,
/// and renders the whole table again from it, with the fleet part of RESULTS.md kept.
/// </summary>
internal sealed class Report
{
    /// <summary>Every section, in the order of the table.</summary>
    public static readonly string[] Order =
    {
        "raw", "reads-vhdx", "reads-vmdk", "reads-qcow2", "reads-vhd", "reads-vhd-fixed", "convert-vhdx", "create-qcow2", "create-vhd",
        "rebase-vmdk", "rebase-qcow2", "rebase-vhd", "flatten-vmdk", "flatten-qcow2", "flatten-vhd", "scale", "process",
    };

    private const string FleetHeading = "## Fleet operations";

    private readonly string[] _only;
    private readonly int _runs;
    private readonly List<ResultSection> _ran = new();
    private ResultSection? _current;

    public Report(string[] only, int runs)
    {
        foreach (string o in only)
        {
            if (!Order.Any(k => Matches(k, o)) && o != "fleet")
                throw new ArgumentException($"No benchmark section matches '{o}'; the sections: {string.Join(", ", Order)} (or any word of one).");
        }
        _only = only.Where(o => o != "fleet").ToArray();
        _runs = runs;
        Partial = only.Length > 0;
    }

    /// <summary>Only some sections run, merged into the earlier results.</summary>
    public bool Partial { get; }

    public List<string> Failures { get; } = new();

    private static bool Matches(string key, string only) =>
        key.Equals(only, StringComparison.OrdinalIgnoreCase) || key.Split('-').Contains(only, StringComparer.OrdinalIgnoreCase);

    public bool Selected(string key) => !Partial || _only.Any(o => Matches(key, o));

    public bool AnySelected(params string[] keys) => keys.Any(Selected);

    /// <summary>Runs <paramref name="body"/> as the section <paramref name="key"/> when it is selected (or <paramref name="always"/>).</summary>
    public void Section(string key, Action body, bool always = false)
    {
        if (!Order.Contains(key))
            throw new ArgumentException($"Unknown section {key}.");
        if (!always && !Selected(key))
            return;
        Console.WriteLine($"[{key}]");
        _current = new ResultSection(key, DateTime.UtcNow, _runs, new List<Row>(), new List<string>(), new List<string>());
        _ran.Add(_current);
        try
        {
            body();
        }
        finally
        {
            _current = null;
        }
    }

    private ResultSection Current => _current ?? throw new InvalidOperationException("A row outside any section.");

    public void Add(Row row)
    {
        Current.Rows.Add(row);
        Console.WriteLine($"{row.Name}: {row.Figure} {row.Ratio}");
    }

    public void Check(bool ok, string what)
    {
        (ok ? Current.Passed : Current.Failures).Add(what);
        if (!ok)
            Failures.Add(what);
        Console.WriteLine($"{(ok ? "ok" : "FAILED")}: {what}");
    }

    /// <summary>Merges this run into the sidecar beside <paramref name="results"/>, writes both; returns the table.</summary>
    public string Write(string results)
    {
        string sidecar = Path.ChangeExtension(results, ".json");
        var options = new JsonSerializerOptions { WriteIndented = true };
        ResultFile? earlier = !Partial ? null
            : File.Exists(sidecar) ? JsonSerializer.Deserialize<ResultFile>(File.ReadAllText(sidecar))
            : File.Exists(results) ? Import(File.ReadAllText(results))
            : null;
        if (Partial && earlier is null)
            Console.Error.WriteLine($"No earlier {sidecar} or {results}: the table holds only the sections run now.");
        var sections = (earlier?.Sections ?? new List<ResultSection>()).Where(s => _ran.All(r => r.Key != s.Key)).Concat(_ran)
            .OrderBy(s => Array.IndexOf(Order, s.Key)).ToList();
        var file = new ResultFile(earlier?.FullRun ?? DateTime.UtcNow, earlier?.FullRuns ?? _runs, sections);
        File.WriteAllText(sidecar, JsonSerializer.Serialize(file, options) + Environment.NewLine);
        // What Fleet.ps1 appended to an earlier full run stays, unless the fleet runs again.
        string tail = "";
        if (Partial && File.Exists(results))
        {
            string old = File.ReadAllText(results);
            int at = old.IndexOf(Environment.NewLine + FleetHeading, StringComparison.Ordinal);
            tail = at >= 0 ? old.Substring(at) : "";
        }
        string table = Render(file);
        File.WriteAllText(results, table + tail);
        return table;
    }

    // Where a row or check of a table written before the sidecar existed belongs, by its words
    // (first match; a row matching none, such as "  bytes the child holds", follows the row above).
    private static readonly (string Words, string Key)[] ImportRules =
    {
        ("VHDX depth 1 to raw", "convert-vhdx"), ("differencing VHDX", "convert-vhdx"), ("new VHDX child", "convert-vhdx"),
        ("100 GiB", "scale"), ("Peak working set", "process"),
        ("rebase of a 1 GiB VMDK", "rebase-vmdk"), ("qcow2 reference child", "rebase-vmdk"), ("Set-VmDisk -PreserveContent", "rebase-vmdk"), ("qemu-img rebase (qcow2)", "rebase-vmdk"),
        ("depth-3 VMDK chain", "flatten-vmdk"), ("raw file", "raw"), ("VHDX depth", "reads-vhdx"), ("VMDK depth", "reads-vmdk"),
    };

    /// <summary>
    /// The sections of a RESULTS.md written before the sidecar existed, recovered from its table
    /// and checks (<see cref="ImportRules"/>), so a partial run can be merged into it.
    /// </summary>
    private static ResultFile? Import(string markdown)
    {
        var generated = System.Text.RegularExpressions.Regex.Match(markdown, @"on (\d{4}-\d\d-\d\d \d\d:\d\d) UTC");
        var runs = System.Text.RegularExpressions.Regex.Match(markdown, @"median of (\d+) runs");
        if (!generated.Success)
            return null;
        DateTime when = DateTime.SpecifyKind(DateTime.ParseExact(generated.Groups[1].Value, "yyyy-MM-dd HH:mm", System.Globalization.CultureInfo.InvariantCulture), DateTimeKind.Utc);
        int fullRuns = runs.Success ? int.Parse(runs.Groups[1].Value) : 5;
        var sections = new Dictionary<string, ResultSection>();
        ResultSection For(string key) => sections.TryGetValue(key, out ResultSection? s) ? s
            : sections[key] = new ResultSection(key, when, fullRuns, new List<Row>(), new List<string>(), new List<string>());
        string? Rule(string text) => ImportRules.FirstOrDefault(r => text.Contains(r.Words, StringComparison.Ordinal)).Key;
        string engine = markdown.Split(new[] { "\n" + FleetHeading }, StringSplitOptions.None)[0];
        string last = "raw";
        foreach (string line in engine.Split('\n').Select(l => l.TrimEnd('\r')))
        {
            if (line.StartsWith("| ", StringComparison.Ordinal) && !line.StartsWith("| benchmark", StringComparison.Ordinal))
            {
                string[] cells = line.Substring(2, line.Length - 4).Split(" | ");
                if (cells.Length != 4)
                    continue;
                last = Rule(cells[0]) ?? last;
                For(last).Rows.Add(new Row(cells[0], cells[1], cells[2], cells[3]));
            }
            else if (line.StartsWith("- passed: ", StringComparison.Ordinal) || line.StartsWith("- **FAILED**: ", StringComparison.Ordinal))
            {
                bool passed = line.StartsWith("- passed: ", StringComparison.Ordinal);
                string text = line.Substring(passed ? 10 : 14);
                ResultSection section = For(Rule(text) ?? last);
                (passed ? section.Passed : section.Failures).Add(text);
            }
        }
        return new ResultFile(when, fullRuns, sections.Values.ToList());
    }

    private string Render(ResultFile file)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# VmClone benchmark results");
        sb.AppendLine();
        sb.AppendLine($"Generated by `dotnet pwsh ./build.ps1 -Task Bench` on {file.FullRun:yyyy-MM-dd HH:mm} UTC.");
        var later = file.Sections.Where(s => s.Generated > file.FullRun.AddMinutes(30)).ToList();
        if (later.Count > 0)
            sb.AppendLine($"Sections run again alone since (`-Task Bench -BenchOnly ...`, merged by the generator): {string.Join(", ", later.Select(s => $"{s.Key} on {s.Generated:yyyy-MM-dd HH:mm} UTC ({s.Runs} runs)"))}.");
        sb.AppendLine($"Machine: {Environment.ProcessorCount} cores, {Tools.CpuModel()}, {Tools.MemoryTotal()} RAM, {Environment.OSVersion}, .NET {Environment.Version}, {Tools.QemuVersion()}.");
        sb.AppendLine($"Each figure: median of {file.FullRuns} runs (of {Math.Min(file.FullRuns, 3)} for the 2 GiB flattens) after one warm-up run (min–max in brackets); ratio = VmClone's rate ÷ the reference's, measured in the same run (above 100 % VmClone is faster); the converts, the child creation, the flattens, the rebases and (in sections generated from 2026-12-02 on) each chain's reads against qemu run their contenders side by side, run by run, so drift on the machine falls on all alike. All reads come from the page cache.");
        sb.AppendLine();
        sb.AppendLine("| benchmark | median (min–max) | ratio | reference |");
        sb.AppendLine("|---|---|---|---|");
        foreach (Row r in file.Sections.SelectMany(s => s.Rows))
            sb.AppendLine($"| {r.Name} | {r.Figure} | {r.Ratio} | {r.Reference} |");
        sb.AppendLine();
        sb.AppendLine("Content checks (each result compared with content computed from the source data, not with the other contender alone):");
        sb.AppendLine();
        foreach (string p in file.Sections.SelectMany(s => s.Passed))
            sb.AppendLine($"- passed: {p}");
        foreach (string f in file.Sections.SelectMany(s => s.Failures))
            sb.AppendLine($"- **FAILED**: {f}");
        return sb.ToString();
    }
}

/// <summary>One section's rows and checks, as measured on <see cref="Generated"/>.</summary>
internal sealed record ResultSection(string Key, DateTime Generated, int Runs, List<Row> Rows, List<string> Passed, List<string> Failures);

/// <summary>The sidecar: when the last full run was made, and every section's latest figures.</summary>
internal sealed record ResultFile(DateTime FullRun, int FullRuns, List<ResultSection> Sections);

internal static class Tools
{
    public static bool Exists(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, name)));

    public static void Run(string file, string arguments, bool toNull = false)
    {
        string? error = TryRun(file, arguments, toNull);
        if (error is not null)
            throw new InvalidOperationException($"{file} {arguments} failed: {error}");
    }

    /// <summary>Runs a command through the shell; returns null on success, else what it wrote to stderr.</summary>
    public static string? TryRun(string file, string arguments, bool toNull = false)
    {
        var psi = new ProcessStartInfo("/bin/sh", $"-c \"{file} {arguments.Replace("\"", "\\\"")}{(toNull ? " > /dev/null" : "")}\"")
        {
            UseShellExecute = false,
            RedirectStandardError = true,
        };
        using Process p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0 ? null : err.Trim();
    }

    /// <summary>Runs a command under GNU time when present; returns its peak RSS in bytes (0 when unknown).</summary>
    public static long RunMeasured(string file, string arguments, bool toNull = false)
    {
        if (!File.Exists("/usr/bin/time"))
        {
            Run(file, arguments, toNull);
            return 0;
        }
        string report = Path.GetTempFileName();
        try
        {
            Run("/usr/bin/time", $"-f %M -o '{report}' {file} {arguments}", toNull);
            return long.Parse(File.ReadAllText(report).Trim().Split('\n').Last()) * 1024;
        }
        finally
        {
            File.Delete(report);
        }
    }

    /// <summary>As <see cref="RunMeasured"/>, with the command's CPU time (user + system, in seconds; 0 when unknown).</summary>
    public static (long Peak, double CpuSeconds) RunMeasuredCpu(string file, string arguments, bool toNull = false)
    {
        if (!File.Exists("/usr/bin/time"))
        {
            Run(file, arguments, toNull);
            return (0, 0);
        }
        string report = Path.GetTempFileName();
        try
        {
            Run("/usr/bin/time", $"-f '%M %U %S' -o '{report}' {file} {arguments}", toNull);
            string[] f = File.ReadAllText(report).Trim().Split('\n').Last().Split(' ');
            var inv = System.Globalization.CultureInfo.InvariantCulture;
            return (long.Parse(f[0]) * 1024, double.Parse(f[1], inv) + double.Parse(f[2], inv));
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

    public static string CpuModel() => ProcField("/proc/cpuinfo", "model name") ?? "unknown CPU";

    public static string MemoryTotal()
    {
        string? kb = ProcField("/proc/meminfo", "MemTotal")?.Split(' ')[0];
        return kb is null ? "unknown" : $"{long.Parse(kb) / (1024 * 1024.0):F0} GiB";
    }

    public static string QemuVersion() =>
        Exists("qemu-img") ? RunCapture("qemu-img", "--version").Split('\n')[0].Trim() : "no qemu-img";

    private static string? ProcField(string file, string key)
    {
        try
        {
            string? line = File.ReadLines(file).FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
            return line?.Split(':')[1].Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }
}

internal static class Fixtures
{
    private const int Buffer = 1 << 20;
    private const int Small = 4096;

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

    /// <summary>A child of <paramref name="parent"/> holding its own data in every MiB i with i % stride == phase.</summary>
    public static void CreateChildRewriting(string parent, string child, int phase, int stride)
    {
        using VirtualDisk d = VirtualDisk.CreateDifferencing(child, parent);
        Rewrite(d, phase, stride, seed: phase);
    }

    /// <summary>Writes one MiB of seeded random bytes at every MiB i with i % stride == phase.</summary>
    public static void Rewrite(VirtualDisk d, int phase, int stride, int seed)
    {
        byte[] buffer = LayerBuffer(seed);
        for (long off = phase * Buffer; off < d.Capacity; off += stride * (long)Buffer)
        {
            d.Content.Position = off;
            d.Content.Write(buffer, 0, Buffer);
        }
    }

    public static byte[] LayerBuffer(int seed)
    {
        byte[] buffer = new byte[Buffer];
        new Random(seed).NextBytes(buffer);
        return buffer;
    }

    public static string ExpectedSha256(string raw, long size, int stride, int depth)
    {
        using var expected = new ExpectedContent(raw, stride, depth);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[Buffer];
        for (long p = 0; p < size; p += Buffer)
        {
            expected.Read(p, buffer, Buffer);
            sha.AppendData(buffer);
        }
        return Convert.ToHexString(sha.GetHashAndReset());
    }

    /// <summary>Deletes an output and writes back every dirty page, outside any timing.</summary>
    public static void Clean(string path)
    {
        File.Delete(path);
        Tools.Run("sync", "");
    }

    /// <summary>A fresh copy of an unmodified disk to be changed by one run, its pages written back.</summary>
    public static void CopyFresh(string pristine, string path)
    {
        File.Delete(path);
        Tools.Run("cp", $"--sparse=always '{pristine}' '{path}'");
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

    /// <summary>SHA-256 of the MiB at each of <paramref name="positions"/> of the disk's content (a raw file read as is).</summary>
    public static string SampledSha256(string path, IEnumerable<long> positions)
    {
        using VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[Buffer];
        foreach (long at in positions)
        {
            d.Content.Position = at;
            d.Content.ReadExactly(buffer, 0, Buffer);
            sha.AppendData(buffer);
        }
        return Convert.ToHexString(sha.GetHashAndReset());
    }

    public static string ContentSha256(string path)
    {
        using VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read);
        return Sha256(d.Content);
    }

    public static string Sha256(string file)
    {
        using FileStream fs = File.OpenRead(file);
        return Sha256(fs);
    }

    // SHA256.ComputeHash(Stream) reads 4 KiB at a time; whole MiBs keep the checks quick.
    private static string Sha256(Stream s)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[Buffer];
        int n;
        while ((n = s.Read(buffer, 0, buffer.Length)) > 0)
            sha.AppendData(buffer, 0, n);
        return Convert.ToHexString(sha.GetHashAndReset());
    }

    private static void ReadFully(Stream s, byte[] buffer)
    {
        for (int done = 0, n; done < buffer.Length; done += n)
        {
            n = s.Read(buffer, done, buffer.Length - done);
            if (n == 0)
                throw new EndOfStreamException("The disk ended before a full read.");
        }
    }

    public static long[] RandomOffsets(long size, int count, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.NextInt64(size / Small) * Small).ToArray();
    }

    /// <summary>
    /// 4 KiB reads at <paramref name="offsets"/> through a chain opened once (or, given
    /// <paramref name="source"/>, from that instead); with a hash asked for, returns the SHA-256
    /// of everything read, else null so the timed runs do not pay for hashing.
    /// </summary>
    public static string? ReadRandom(string path, long[] offsets, ExpectedContent? source, bool hash = false)
    {
        using VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read);
        using IncrementalHash? sha = hash || source is not null ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
        byte[] buffer = new byte[Small];
        Stream s = d.Content;
        foreach (long offset in offsets)
        {
            if (source is not null)
            {
                source.Read(offset, buffer, Small);
            }
            else
            {
                s.Position = offset;
                ReadFully(s, buffer);
            }
            sha?.AppendData(buffer);
        }
        return sha is null ? null : Convert.ToHexString(sha.GetHashAndReset());
    }

    public static void ReadRandomRaw(string raw, long[] offsets)
    {
        using SafeFileHandle file = File.OpenHandle(raw);
        byte[] buffer = new byte[Small];
        foreach (long offset in offsets)
            RandomAccess.Read(file, buffer, offset);
    }

    public static void ConvertToRaw(string path, string target)
    {
        using VirtualDisk d = VirtualDisk.Open(path, FileAccess.Read);
        using FileStream fs = File.Create(target);
        d.Content.CopyTo(fs, Buffer);
    }

    /// <summary>Bytes really allocated to a (sparse) file, not its apparent size.</summary>
    public static long Allocated(string path)
    {
        string[] stat = Tools.RunCapture("stat", $"-c '%b %B' '{path}'").Trim().Split(' ');
        return long.Parse(stat[0]) * long.Parse(stat[1]);
    }

    public static (long Apparent, long Allocated) ChildFileSize(string parent, string work)
    {
        string child = Path.Combine(work, "size-probe" + Path.GetExtension(parent));
        VirtualDisk.CreateDifferencing(child, parent).Dispose();
        long apparent = new FileInfo(child).Length;
        long allocated = Allocated(child);
        File.Delete(child);
        return (apparent, allocated);
    }
}

/// <summary>
/// The content a chain built by <see cref="Fixtures.CreateChildRewriting"/> must show, from the
/// raw file and the layers' seeds alone: MiB i comes from layer i % stride when that layer
/// exists (1 to depth-1), else from the raw file.
/// </summary>
internal sealed class ExpectedContent : IDisposable
{
    private readonly SafeFileHandle _raw;
    private readonly byte[]?[] _layers;
    private readonly int _stride;

    public ExpectedContent(string raw, int stride, int depth)
    {
        _raw = File.OpenHandle(raw);
        _layers = Enumerable.Range(0, depth).Select(k => k == 0 ? null : Fixtures.LayerBuffer(k)).ToArray();
        _stride = stride;
    }

    /// <summary>Reads count bytes at position; a read never crosses a MiB boundary.</summary>
    public void Read(long position, byte[] buffer, int count)
    {
        int k = (int)(position / Program.MiB % _stride);
        if (k >= 1 && k < _layers.Length)
            Array.Copy(_layers[k]!, position % Program.MiB, buffer, 0, count);
        else
            RandomAccess.Read(_raw, buffer.AsSpan(0, count), position);
    }

    public void Dispose() => _raw.Dispose();
}
