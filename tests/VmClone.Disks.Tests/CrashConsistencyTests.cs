using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Disks.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace VmClone.Disks.Tests;

/// <summary>
/// Disk-level crash points: a random guest workload (writes of any size and alignment, flushes)
/// is cut off before its k-th underlying file write, resize or flush; on top of that, any subset
/// of the file writes made since the file's last completed flush is lost, as a power cut may lose
/// them in any order. The file must then open, its deep check must find nothing but warnings, and
/// every sector must read as it was at the last completed guest flush or as one of the values
/// written to it since. The default run samples the crash points; VMCLONE_STRESS=1 tries them all.
/// </summary>
public class CrashConsistencyTests
{
    private const long Size = 4L << 20;
    private const int Sector = 512;
    private static readonly bool Stress = Environment.GetEnvironmentVariable("VMCLONE_STRESS") == "1";
    private readonly ITestOutputHelper _output;

    public CrashConsistencyTests(ITestOutputHelper output)
    {
        _output = output;
    }

    private sealed class Cut : Exception
    {
    }

    /// <summary>Records the file operations of the disk under test, and cuts them off at the chosen one.</summary>
    private sealed class Recorder : IFileWriteObserver
    {
        public readonly List<(long Position, byte[] Before, byte[] After)> Unflushed = new();
        public int Ops;
        public int CrashAt = -1;
        public bool Dead;
        public string File = "";

        private void Step()
        {
            if (Dead)
                throw new Cut();
            Ops++;
            if (Ops == CrashAt)
            {
                Dead = true;
                throw new Cut();
            }
        }

        public void BeforeWrite(string path, long position, byte[] buffer, int offset, int count)
        {
            if (path != File)
                return;
            Step();
            byte[] before = new byte[count];
            using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            {
                fs.Position = position;
                int done = 0, n;
                while (done < count && (n = fs.Read(before, done, count - done)) > 0)
                    done += n;
            }
            Unflushed.Add((position, before, buffer.AsSpan(offset, count).ToArray()));
        }

        public void BeforeSetLength(string path, long length)
        {
            if (path == File)
                Step();
        }

        public void BeforeFlush(string path)
        {
            if (path == File)
                Step();
        }

        public void AfterFlush(string path)
        {
            if (path == File)
                Unflushed.Clear();
        }
    }

    // Every writable registered format with a parent (the chain contract's formats), dynamic
    // and differencing, with and without batches.
    public static IEnumerable<object[]> Variants() =>
        from batched in new[] { false, true }
        from format in Contract.ContractFormats.WithParent().Select(f => (DiskFormat)f[0])
        from differencing in new[] { false, true }
        select new object[] { format, differencing, batched };

    /// <summary>
    /// With <paramref name="batched"/> the workload also opens and closes write batches
    /// (<see cref="DiskLayer.BeginBatch"/>), mostly with whole-sector writes, which batches defer:
    /// the same guarantee holds at every cut.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void AWriteCutOffAnywhereLeavesAFileThatOpensWithEveryFlushedWrite(DiskFormat format, bool differencing, bool batched)
    {
        using var folder = new TempFolder();
        string ext = Contract.ContractFormats.Extension(format);
        DiskCreateOptions create = Contract.ContractFormats.Create(format);
        string parent = folder.File("parent" + ext);
        byte[] initial = new byte[Size];
        if (differencing)
        {
            using VirtualDisk p = VirtualDisk.CreateDynamic(parent, Size, create);
            var rnd = new Random(7);
            for (int i = 0; i < 12; i++)
            {
                long at = rnd.Next((int)(Size / Sector)) * (long)Sector;
                byte[] b = new byte[Math.Min(rnd.Next(1, 200_000), (int)(Size - at))];
                rnd.NextBytes(b);
                p.Content.Position = at;
                p.Content.Write(b, 0, b.Length);
                b.CopyTo(initial, (int)at);
            }
        }
        string pristine = folder.File("pristine" + ext);
        if (differencing)
            VirtualDisk.CreateDifferencing(pristine, parent, create).Dispose();
        else
            VirtualDisk.CreateDynamic(pristine, Size, create).Dispose();

        // The guest workload: deterministic, so every replay makes the same file operations.
        var ops = new List<(long At, byte[]? Data)>();
        var wr = new Random(format == DiskFormat.Vhdx ? 11 : 13);
        for (int i = 0; i < 40; i++)
        {
            if (wr.Next(5) == 0)
            {
                ops.Add((0, null));
                continue;
            }
            if (batched && wr.Next(4) == 0)
            {
                ops.Add((BatchToggle, null));
                continue;
            }
            bool aligned = wr.Next(3) != 0;
            long at = aligned ? wr.Next((int)(Size / Sector) - 140) * (long)Sector : wr.Next((int)Size - 70_000);
            int length = wr.Next(1, 70_000);
            if (batched && aligned)
                length = (length + Sector - 1) / Sector * Sector;
            byte[] data = new byte[length];
            wr.NextBytes(data);
            ops.Add((at, data));
        }

        int total = Replay(folder, pristine, ext, ops, initial, crashAt: -1, lossSeed: 0).Ops;
        IEnumerable<int> points = Enumerable.Range(1, total);
        if (!Stress)
            points = points.Where(k => k % Math.Max(1, total / 24) == 0 || k <= 3);
        int tried = 0;
        foreach (int k in points)
        {
            Replay(folder, pristine, ext, ops, initial, k, lossSeed: k);
            tried++;
        }
        _output.WriteLine($"{format}{(differencing ? " differencing" : " dynamic")}{(batched ? ", batched" : "")}: {total} file operations in the workload, cut off at {tried} of them (each with a random loss of unflushed writes)");
    }

    private const long BatchToggle = -1;

    private static Recorder Replay(TempFolder folder, string pristine, string ext, List<(long At, byte[]? Data)> ops, byte[] initial, int crashAt, int lossSeed)
    {
        string path = folder.File($"run-{crashAt}{ext}");
        File.Copy(pristine, path, overwrite: true);
        var recorder = new Recorder { CrashAt = crashAt, File = Path.GetFullPath(path) };
        byte[] flushed = (byte[])initial.Clone();
        byte[] current = (byte[])initial.Clone();
        var since = new Dictionary<int, HashSet<ulong>>();
        FileAccessor.Observer = recorder;
        VirtualDisk? disk = null;
        IDisposable? batch = null;
        try
        {
            disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
            foreach ((long at, byte[]? data) in ops)
            {
                if (at == BatchToggle)
                {
                    // Ending a batch commits it, which makes nothing more durable than a write
                    // without a batch: "flushed" moves only at a guest flush.
                    if (batch is null)
                    {
                        batch = disk.Top.BeginBatch();
                    }
                    else
                    {
                        batch.Dispose();
                        batch = null;
                    }
                    continue;
                }
                if (data is null)
                {
                    disk.Flush();
                    Array.Copy(current, flushed, current.Length);
                    since.Clear();
                    continue;
                }
                // Recorded before the write: a cut inside it may leave any of its sectors new.
                Array.Copy(data, 0, current, at, data.Length);
                for (long s = at / Sector; s <= (at + data.Length - 1) / Sector; s++)
                {
                    if (!since.TryGetValue((int)s, out HashSet<ulong>? set))
                        since[(int)s] = set = new HashSet<ulong>();
                    set.Add(Fnv(current, (int)(s * Sector)));
                }
                disk.Content.Position = at;
                disk.Content.Write(data, 0, data.Length);
            }
            batch?.Dispose();
            batch = null;
            disk.Flush();
            Array.Copy(current, flushed, current.Length);
            since.Clear();
            disk.Dispose();
            disk = null;
        }
        catch (Cut)
        {
        }
        finally
        {
            try
            {
                disk?.Dispose();
            }
            catch (Cut)
            {
            }
            FileAccessor.Observer = null;
        }
        if (crashAt < 0)
            return recorder;

        // The power cut: each write since the last completed flush is kept or lost.
        var rnd = new Random(lossSeed);
        bool[] keep = recorder.Unflushed.Select(_ => rnd.Next(2) == 0).ToArray();
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite))
        {
            for (int i = recorder.Unflushed.Count - 1; i >= 0; i--)
            {
                fs.Position = recorder.Unflushed[i].Position;
                fs.Write(recorder.Unflushed[i].Before, 0, recorder.Unflushed[i].Before.Length);
            }
            for (int i = 0; i < recorder.Unflushed.Count; i++)
            {
                if (!keep[i])
                    continue;
                fs.Position = recorder.Unflushed[i].Position;
                fs.Write(recorder.Unflushed[i].After, 0, recorder.Unflushed[i].After.Length);
            }
        }

        string what = $"cut at file operation {crashAt}, {keep.Count(x => !x)} of {keep.Length} unflushed writes lost";
        using (VirtualDisk reopened = VirtualDisk.Open(path, FileAccess.Read))
        {
            IReadOnlyList<string> issues = reopened.Top.Check();
            // Benign: a header copy left stale, a VMDK's uncleanShutdown flag (what a crash is).
            Assert.True(issues.All(i => i.StartsWith("Warning:", StringComparison.Ordinal) || i.Contains("not closed cleanly")), $"{what}: {string.Join(" | ", issues)}");
            byte[] actual = new byte[Size];
            reopened.Content.Position = 0;
            int done = 0, n;
            while (done < actual.Length && (n = reopened.Content.Read(actual, done, actual.Length - done)) > 0)
                done += n;
            for (int s = 0; s < Size / Sector; s++)
            {
                if (actual.AsSpan(s * Sector, Sector).SequenceEqual(flushed.AsSpan(s * Sector, Sector)))
                    continue;
                Assert.True(since.TryGetValue(s, out HashSet<ulong>? allowed) && allowed.Contains(Fnv(actual, s * Sector)),
                    $"{what}: sector {s} reads neither its flushed content nor anything written to it since");
            }
        }
        File.Delete(path);
        return recorder;
    }

    private static ulong Fnv(byte[] data, int offset)
    {
        ulong h = 14695981039346656037UL;
        for (int i = offset; i < offset + Sector; i++)
            h = (h ^ data[i]) * 1099511628211UL;
        return h;
    }
}
