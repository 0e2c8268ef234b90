using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
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
        string results = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "RESULTS.md");
        int runs = args.Length > 1 ? int.Parse(args[1]) : 5;
        string work = Path.Combine(Path.GetTempPath(), "vmclone-bench-" + Guid.NewGuid().ToString("N").Substring(0, 8));
        Directory.CreateDirectory(work);
        var report = new Report();
        try
        {
            Console.WriteLine($"Preparing a 1 GiB random raw file in {work} ...");
            string raw = Path.Combine(work, "reference.raw");
            Fixtures.WriteRandomRaw(raw, GiB);
            ChainReads.Run(report, work, raw, runs);
            ConvertAndCreate(report, work, raw, runs);
            // The rebase takes half a second and moves with the disk's mood: all the runs. The
            // multi-second flatten gets at most three: its spread is small next to its length,
            // and the whole benchmark has to stay short enough to be run.
            PreservingRebase.Run(report, work, raw, runs);
            ConvertVmdkChain(report, work, Math.Min(runs, 3));
            MemoryAtScale.Run(report, work);
            report.Add(new Row("Peak working set of this benchmark process (all of the above in-process work)", $"{Process.GetCurrentProcess().PeakWorkingSet64 / MiB} MiB", "", "one process for all; not split per benchmark"));
        }
        finally
        {
            Directory.Delete(work, true);
        }

        string table = report.Render(runs);
        Console.WriteLine(table);
        File.WriteAllText(results, table);
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
    /// Issue: flatten a 2 GiB depth-3 VMDK chain to raw, VmClone (Convert-VmDisk's operation, in
    /// its own process) against qemu-img convert on the same files; time and peak memory.
    /// </summary>
    private static void ConvertVmdkChain(Report report, string work, int runs)
    {
        if (!Tools.Exists("qemu-img"))
            return;
        Console.WriteLine("Preparing a 2 GiB depth-3 VMDK chain ...");
        string b = Path.Combine(work, "b.vmdk"), m = Path.Combine(work, "m.vmdk"), t = Path.Combine(work, "t.vmdk");
        string raw = Path.Combine(work, "chain-src.raw");
        Fixtures.WriteRandomRaw(raw, 2 * GiB);
        Fixtures.CopyIntoNewDisk(raw, b, 2 * GiB);
        Fixtures.CreateChildRewriting(b, m, phase: 1, stride: 3);
        Fixtures.CreateChildRewriting(m, t, phase: 2, stride: 3);
        string expected = Fixtures.ExpectedSha256(raw, 2 * GiB, stride: 3, depth: 3);
        File.Delete(raw);
        long ourPeak = 0, qemuPeak = 0;
        string ours = Path.Combine(work, "ours.raw"), theirs = Path.Combine(work, "theirs.raw");
        // VmClone's Convert flushes the new file to the device before moving it into place (a
        // crash must never leave a complete-looking but empty destination); qemu-img convert
        // by default does not flush (cache=unsafe), and with -t writeback flushes once at the
        // end, the same work. Both are shown.
        Series[] series = MeasureSideBySide(runs,
            (() => qemuPeak = Tools.RunMeasured("qemu-img", $"convert -f vmdk -O raw '{t}' '{theirs}'"), () => Fixtures.Clean(theirs)),
            (() => Tools.Run("qemu-img", $"convert -t writeback -f vmdk -O raw '{t}' '{theirs}'"), () => Fixtures.Clean(theirs)),
            (() => ourPeak = ChildProcess.Start($"convert '{t}' '{ours}'"), () => Fixtures.Clean(ours)));
        (Series q, Series qs, Series o) = (series[0], series[1], series[2]);
        report.Check(Fixtures.Sha256(ours) == expected && Fixtures.Sha256(theirs) == expected,
            "Flatten of the 2 GiB depth-3 VMDK chain: VmClone's and qemu-img's raw outputs equal the expected content");
        report.Add(Row.Throughput("Flatten 2 GiB depth-3 VMDK chain to raw, qemu-img convert (its default cache=unsafe: not flushed)", q, 2 * GiB, null));
        report.Add(Row.Throughput("Flatten 2 GiB depth-3 VMDK chain to raw, qemu-img convert -t writeback (durable: flushed at the end)", qs, 2 * GiB, null));
        report.Add(Row.Throughput("Flatten 2 GiB depth-3 VMDK chain to raw, VmClone Convert (durable, own process)", o, 2 * GiB, qs, "qemu-img convert -t writeback"));
        report.Add(new Row("Flatten 2 GiB depth-3 VMDK chain, VmClone (durable) against qemu-img (not flushed)", "", Row.RatioOf(o, q), "qemu-img convert, cache=unsafe"));
        report.Add(Row.Peak("Peak memory of that flatten", ourPeak, qemuPeak, "qemu-img convert"));
        foreach (string f in new[] { b, m, t, ours, theirs })
            File.Delete(f);
    }

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
/// Issue: sequential and 4 KiB random reads through chains of depth 1, 3 and 10, VHDX and VMDK,
/// against qemu-img convert (into qemu's null-co driver, so only reading is timed) and qemu-io
/// on the same files, and against the page cache itself (cat and pread of a raw file).
/// </summary>
internal static class ChainReads
{
    internal const int RandomReads = 20_000;
    internal const int RandomSeed = 7;

    public static void Run(Report report, string work, string raw, int runs)
    {
        bool qemu = Tools.Exists("qemu-img") && Tools.Exists("qemu-io");
        Series cat = Program.Measure(runs, () => Tools.Run("cat", $"'{raw}'", toNull: true));
        report.Add(Row.Throughput("Sequential read, raw file (cat, page cache)", cat, Program.GiB, null));
        long[] offsets = Fixtures.RandomOffsets(Program.GiB, RandomReads, RandomSeed);
        // One qemu-io process reads the commands from its standard input, as one VirtualDisk
        // serves them all: neither pays a process start per read.
        string script = Path.Combine(work, "random-4k.qemu-io");
        File.WriteAllLines(script, offsets.Select(o => $"read -q {o} 4k"));
        Series pread = Program.Measure(runs, () => Fixtures.ReadRandomRaw(raw, offsets));
        string readsName = $"{RandomReads:N0} random 4 KiB reads";
        report.Add(Row.Rate($"{readsName}, raw file (pread, page cache)", pread, RandomReads, "reads"));
        if (qemu)
        {
            // qemu-io parses and runs one command per read; on a raw file that cost is all there
            // is, so this row is the most any chain can get through qemu-io.
            Series floor = Program.Measure(runs, () => Tools.Run("qemu-io", $"-r -f raw '{raw}' < '{script}'", toNull: true));
            report.Add(Row.Rate($"{readsName}, raw file, qemu-io (its per-command ceiling)", floor, RandomReads, "reads"));
        }

        foreach (DiskFormat format in new[] { DiskFormat.Vhdx, DiskFormat.Vmdk })
        {
            Console.WriteLine($"Preparing {format} chains of depth 1, 3 and 10 ...");
            string fmt = format.ToString().ToLowerInvariant();
            string baseDisk = Path.Combine(work, $"base.{fmt}");
            Fixtures.CopyIntoNewDisk(raw, baseDisk, Program.GiB);
            var created = new List<string> { baseDisk };
            foreach (int depth in new[] { 1, 3, 10 })
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
                string label = $"{format.ToString().ToUpperInvariant()} depth {depth}";
                MeasureChain(report, work, raw, top, fmt, label, depth, runs, qemu, cat, pread, offsets, script, readsName);
            }
            foreach (string f in created)
                File.Delete(f);
        }
    }

    private static void MeasureChain(Report report, string work, string raw, string top, string fmt, string label, int depth, int runs,
        bool qemu, Series cat, Series pread, long[] offsets, string script, string readsName)
    {
        Console.WriteLine($"  {label} ...");
        string qemuRead = $"convert -n -f {fmt} '{top}' --target-image-opts driver=null-co,size={Program.GiB}";
        string qemuRandom = $"-r -f {fmt} '{top}' < '{script}'";
        string? qemuError = qemu ? Tools.TryRun("qemu-io", $"-r -f {fmt} -c 'read -q 0 4k' '{top}'") : "qemu-img/qemu-io not installed";

        Series seq = Program.Measure(runs, () => Fixtures.ReadAll(top));
        Series rnd = Program.Measure(runs, () => Fixtures.ReadRandom(top, offsets, null));
        long qemuReadPeak = 0, qemuIoPeak = 0;
        if (qemuError is null)
        {
            Series qs = Program.Measure(runs, () => qemuReadPeak = Tools.RunMeasured("qemu-img", qemuRead));
            report.Add(Row.Throughput($"Sequential read, {label}, qemu-img convert to null-co", qs, Program.GiB, null));
            report.Add(new Row($"Sequential read, {label}, VmClone (VirtualDisk.Content)", Row.ThroughputFigure(seq, Program.GiB),
                $"{Row.RatioOf(seq, qs)} · {Row.RatioOf(seq, cat)}", "qemu-img (row above) · cat"));
            Series qr = Program.Measure(runs, () => qemuIoPeak = Tools.RunMeasured("qemu-io", qemuRandom, toNull: true));
            report.Add(Row.Rate($"{readsName}, {label}, qemu-io (one process, one command per read)", qr, offsets.Length, "reads"));
            report.Add(new Row($"{readsName}, {label}, VmClone (VirtualDisk.Content)", Row.RateFigure(rnd, offsets.Length, "reads"),
                $"{Row.RatioOf(rnd, qr)} · {Row.RatioOf(rnd, pread)}", "qemu-io (row above) · pread"));
        }
        else
        {
            report.Add(new Row($"Sequential read / random reads, {label}, qemu-img / qemu-io", "cannot open it", "", Row.Quote(qemuError, work)));
            report.Add(new Row($"Sequential read, {label}, VmClone (VirtualDisk.Content)", Row.ThroughputFigure(seq, Program.GiB), Row.RatioOf(seq, cat), "cat"));
            report.Add(new Row($"{readsName}, {label}, VmClone (VirtualDisk.Content)", Row.RateFigure(rnd, offsets.Length, "reads"), Row.RatioOf(rnd, pread), "pread"));
        }

        if (depth == 10)
        {
            report.Add(Row.Peak($"Peak memory, sequential read of {label}", ChildProcess.Start($"read '{top}'"), qemuReadPeak, "qemu-img convert"));
            report.Add(Row.Peak($"Peak memory, {readsName} of {label}", ChildProcess.Start($"random '{top}'"), qemuIoPeak, "qemu-io"));
        }

        // The content every reader must see, computed from the raw file and the layers' seeds.
        string expected = Fixtures.ExpectedSha256(raw, Program.GiB, depth, depth);
        using var expectedContent = new ExpectedContent(raw, depth, depth);
        bool ok = Fixtures.ContentSha256(top) == expected
            && Fixtures.ReadRandom(top, offsets, expectedContent) == Fixtures.ReadRandom(top, offsets, null, hash: true);
        string checkedBy = "VmClone";
        if (qemuError is null)
        {
            string theirs = Path.Combine(work, "qemu-view.raw");
            Tools.Run("qemu-img", $"convert -f {fmt} -O raw '{top}' '{theirs}'");
            ok &= Fixtures.Sha256(theirs) == expected;
            File.Delete(theirs);
            checkedBy = "VmClone (sequential and random) and qemu-img convert";
        }
        report.Check(ok, $"{label}: content read by {checkedBy} equals the expected content");
    }
}

/// <summary>
/// Issue: Set-VmDisk -PreserveContent of a VMDK child holding 256 MiB of its own changes onto a
/// new base against qemu-img rebase (safe mode) on the same files; where qemu-img cannot rebase
/// a VMDK, the same chain converted to qcow2 is its nearest reference. The child's whole
/// content is hashed before and after, through VmClone and through qemu-img.
/// </summary>
internal static class PreservingRebase
{
    public static void Run(Report report, string work, string raw, int runs)
    {
        Console.WriteLine("Preparing a VMDK child with 256 MiB of changes and two 1 GiB bases ...");
        string dir = Path.Combine(work, "rebase");
        Directory.CreateDirectory(dir);
        string oldBase = Path.Combine(dir, "old.vmdk"), newBase = Path.Combine(dir, "new.vmdk");
        string pristine = Path.Combine(dir, "pristine.vmdk"), child = Path.Combine(dir, "child.vmdk");
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

        string name = "Content-preserving rebase of a 1 GiB VMDK child with 256 MiB of changes onto a new base";
        long ourPeak = 0;
        // In a running session (a pwsh with the module loaded, here this process once warmed up):
        // the operation alone, without a process start and first-use compilation.
        string inSessionChild = Path.Combine(dir, "child-in-session.vmdk");
        Action ownProcess = () => ourPeak = ChildProcess.Start($"rebase '{child}' '{newBase}'");
        Action inSessionRun = () => DiskOperations.SetParent(inSessionChild, newBase, preserveContent: true, ignoreIdMismatch: false, null, CancellationToken.None);
        if (!Tools.Exists("qemu-img"))
        {
            Series alone = Program.Measure(runs, ownProcess, before: () => Fixtures.CopyFresh(pristine, child));
            report.Add(Row.Throughput($"{name}, VmClone Set-VmDisk -PreserveContent (own process)", alone, Program.GiB, null));
            return;
        }

        // qemu-img rebase on the very same files: its vmdk driver does the copy, then cannot
        // write the new backing file name. Shown once with qemu's own words and how long it ran.
        Fixtures.CopyFresh(pristine, child);
        var sw = Stopwatch.StartNew();
        string? vmdkError = Tools.TryRun("qemu-img", $"rebase -f vmdk -b '{newBase}' -F vmdk '{child}'");
        double vmdkSeconds = sw.Elapsed.TotalSeconds;
        long vmdkBytes = Fixtures.Allocated(child);

        // The nearest qemu reference: the same three disks as qcow2 (64 KiB clusters, like the
        // VMDK grains), the child holding only its own 256 MiB over the old base.
        string oldQ = Path.Combine(dir, "old.qcow2"), newQ = Path.Combine(dir, "new.qcow2");
        string pristineQ = Path.Combine(dir, "pristine.qcow2"), childQ = Path.Combine(dir, "child.qcow2");
        Tools.Run("qemu-img", $"convert -f vmdk -O qcow2 '{oldBase}' '{oldQ}'");
        Tools.Run("qemu-img", $"convert -f vmdk -O qcow2 '{newBase}' '{newQ}'");
        Tools.Run("qemu-img", $"convert -f vmdk -O qcow2 -B '{oldQ}' -F qcow2 '{pristine}' '{pristineQ}'");
        report.Check(QemuSha256(pristineQ, "qcow2", dir) == before,
            "qcow2 reference child holds the same content as the VMDK child before the rebase");

        long qemuPeak = 0;
        Series[] m = Program.MeasureSideBySide(runs,
            (ownProcess, () => Fixtures.CopyFresh(pristine, child)),
            (inSessionRun, () => Fixtures.CopyFresh(pristine, inSessionChild)),
            (() => qemuPeak = Tools.RunMeasured("qemu-img", $"rebase -f qcow2 -b '{newQ}' -F qcow2 '{childQ}'"), () => Fixtures.CopyFresh(pristineQ, childQ)));
        (Series ours, Series inSession, Series theirs) = (m[0], m[1], m[2]);

        using (VirtualDisk after = VirtualDisk.Open(child, FileAccess.Read))
            report.Check(after.Layers.Count == 2 && after.Layers[1].Path == newBase && Fixtures.ContentSha256(child) == before,
                "Set-VmDisk -PreserveContent (VMDK): the child is over the new base and its content hash, read by VmClone, is unchanged");
        report.Check(QemuSha256(child, "vmdk", dir) == before,
            "Set-VmDisk -PreserveContent (VMDK): the child's content hash, read by qemu-img convert, is unchanged");
        report.Check(QemuSha256(inSessionChild, "vmdk", dir) == before,
            "Set-VmDisk -PreserveContent in a running session (VMDK): the child's content hash, read by qemu-img convert, is unchanged");
        string backing = Tools.RunCapture("qemu-img", $"info -f qcow2 --output=json '{childQ}'");
        report.Check(backing.Contains($"\"backing-filename\": \"{newQ}\"", StringComparison.Ordinal) && QemuSha256(childQ, "qcow2", dir) == before,
            "qemu-img rebase (qcow2): the child is over the new base and its content hash is unchanged");

        report.Add(new Row($"{name}, qemu-img rebase (safe), same VMDK files",
            vmdkError is null ? $"{vmdkSeconds:F2} s" : $"fails after {vmdkSeconds:F2} s, the child grown from {pristineBytes / Program.MiB} to {vmdkBytes / Program.MiB} MiB", "",
            vmdkError is null ? "" : Row.Quote(vmdkError, dir)));
        report.Add(Row.PerItem($"{name}, qemu-img rebase (safe) of the same chain as qcow2 (nearest qemu reference)", theirs, 1));
        report.Add(new Row($"{name}, VmClone Set-VmDisk -PreserveContent's operation (own process: .NET start and first-use compilation included)", Row.PerItemFigure(ours, 1),
            Row.RatioOf(ours, theirs), "qemu-img rebase, qcow2"));
        report.Add(new Row($"{name}, VmClone in a running session (as each clone of Invoke-VmRebase, or any call after the first)", Row.PerItemFigure(inSession, 1),
            Row.RatioOf(inSession, theirs), "qemu-img rebase, qcow2"));
        report.Add(new Row("  bytes the child holds before / after the rebase, VmClone VMDK / qemu qcow2",
            $"{pristineBytes / Program.MiB} → {Fixtures.Allocated(child) / Program.MiB} MiB / {Fixtures.Allocated(pristineQ) / Program.MiB} → {Fixtures.Allocated(childQ) / Program.MiB} MiB", "", "both copy the 128 MiB the new base changed"));
        report.Add(Row.Peak("Peak memory of that rebase", ourPeak, qemuPeak, "qemu-img rebase, qcow2"));
        Directory.Delete(dir, true);
    }

    private static string QemuSha256(string path, string format, string dir)
    {
        string view = Path.Combine(dir, "qemu-view.raw");
        Tools.Run("qemu-img", $"convert -f {format} -O raw '{path}' '{view}'");
        string sha = Fixtures.Sha256(view);
        File.Delete(view);
        return sha;
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

internal sealed class Report
{
    public List<Row> Rows { get; } = new();

    public List<string> Passed { get; } = new();

    public List<string> Failures { get; } = new();

    public void Add(Row row)
    {
        Rows.Add(row);
        Console.WriteLine($"{row.Name}: {row.Figure} {row.Ratio}");
    }

    public void Check(bool ok, string what)
    {
        (ok ? Passed : Failures).Add(what);
        Console.WriteLine($"{(ok ? "ok" : "FAILED")}: {what}");
    }

    public string Render(int runs)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# VmClone benchmark results");
        sb.AppendLine();
        sb.AppendLine($"Generated by `dotnet pwsh ./build.ps1 -Task Bench` on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.");
        sb.AppendLine($"Machine: {Environment.ProcessorCount} cores, {Tools.CpuModel()}, {Tools.MemoryTotal()} RAM, {Environment.OSVersion}, .NET {Environment.Version}, {Tools.QemuVersion()}.");
        sb.AppendLine($"Each figure: median of {runs} runs (of {Math.Min(runs, 3)} for the 2 GiB flatten) after one warm-up run (min–max in brackets); ratio = VmClone's rate ÷ the reference's, measured in the same run (above 100 % VmClone is faster); the converts, the flatten and the rebase run their contenders side by side, run by run, so drift on the machine falls on all alike. All reads come from the page cache.");
        sb.AppendLine();
        sb.AppendLine("| benchmark | median (min–max) | ratio | reference |");
        sb.AppendLine("|---|---|---|---|");
        foreach (Row r in Rows)
            sb.AppendLine($"| {r.Name} | {r.Figure} | {r.Ratio} | {r.Reference} |");
        sb.AppendLine();
        sb.AppendLine("Content checks (each result compared with content computed from the source data, not with the other contender alone):");
        sb.AppendLine();
        foreach (string p in Passed)
            sb.AppendLine($"- passed: {p}");
        foreach (string f in Failures)
            sb.AppendLine($"- **FAILED**: {f}");
        return sb.ToString();
    }
}

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
        string child = Path.Combine(work, "size-probe.vhdx");
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
