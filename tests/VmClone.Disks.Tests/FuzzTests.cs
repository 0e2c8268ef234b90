using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using CsCheck;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhdx;
using Xunit;
using Xunit.Abstractions;

namespace VmClone.Disks.Tests;

/// <summary>
/// Mutation fuzzing of the VHDX and VMDK parsers: valid seed files (dynamic, differencing, with
/// an unreplayed log, streamOptimized) mutated by CsCheck-generated edits — byte and word
/// overwrites biased towards the bytes that carry structure, interesting values, truncation,
/// and for VHDX checksums recomputed afterwards so that mutations reach past them. Every input is
/// opened read-only with its chain, read and deep-checked. It must end in success or a
/// VirtualDiskException (DiskFormatException, DiskChainException) naming the file; never another
/// exception, never more than 256 MiB allocated, never more than 10 s, never a changed byte.
/// The default run takes VMCLONE_FUZZ_SECONDS (default 15) per format; a failure prints the
/// CsCheck seed (replay it with VMCLONE_FUZZ_SEED).
/// </summary>
public class FuzzTests
{
    private const long Size = 8L << 20;
    private readonly ITestOutputHelper _output;

    public FuzzTests(ITestOutputHelper output)
    {
        _output = output;
    }

    private static int Seconds => int.TryParse(Environment.GetEnvironmentVariable("VMCLONE_FUZZ_SECONDS"), out int s) && s > 0 ? s : 15;

    /// <summary>One edit of a seed file.</summary>
    public readonly record struct Edit(int Kind, double Where, ulong Value);

    /// <summary>A seed and the edits made to it.</summary>
    public readonly record struct Mutation(int Seed, Edit[] Edits, bool FixChecksums, double Truncate)
    {
        public override string ToString() => $"seed {Seed}, fix checksums {FixChecksums}, truncate {Truncate:F3}, edits [{string.Join(", ", Edits.Select(e => $"{e.Kind}@{e.Where:F6}={e.Value:X}"))}]";
    }

    private static readonly Gen<Mutation> Mutations =
        Gen.Select(Gen.Int[0, 15], Gen.Select(Gen.Int[0, 5], Gen.Double[0, 1], Gen.ULong).Select((k, w, v) => new Edit(k, w, v)).Array[1, 8],
            Gen.Bool, Gen.Frequency((4, Gen.Const(1.0)), (1, Gen.Double[0, 1])))
        .Select((s, e, f, t) => new Mutation(s, e, f, t));

    private sealed class Seeds : IDisposable
    {
        public readonly TempFolder Folder = new();
        public readonly List<(string Name, byte[] Bytes, int[] Hot)> Files = new();
        public string Ext = "";
        public string? Parent;

        public void Add(string name, string path)
        {
            // Small seeds keep executions fast; a large corpus image adds little the small ones lack.
            if (new FileInfo(path).Length > 12L << 20)
                return;
            byte[] bytes = File.ReadAllBytes(path);
            var hot = new List<int>();
            for (int i = 0; i + 8 <= bytes.Length; i += 8)
            {
                if (BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(i)) != 0)
                    hot.Add(i);
            }
            Files.Add((name, bytes, hot.ToArray()));
        }

        public void Dispose() => Folder.Dispose();
    }

    private static Seeds VhdxSeeds()
    {
        var s = new Seeds { Ext = ".vhdx" };
        var opts = new DiskCreateOptions { BlockSizeBytes = 1L << 20 };
        string parent = s.Folder.File("parent.vhdx");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(parent, Size, opts))
            Fill(d, 1);
        s.Parent = parent;
        s.Add("dynamic", parent);
        string child = s.Folder.File("seed-child.vhdx");
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(child, parent, opts))
            Fill(d, 2);
        s.Add("differencing", child);
        string sectors4k = s.Folder.File("seed-4k.vhdx");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(sectors4k, Size, new DiskCreateOptions { BlockSizeBytes = 2L << 20, LogicalSectorSizeBytes = 4096 }))
            Fill(d, 3);
        s.Add("4k sectors", sectors4k);
        s.Add("unreplayed log", DirtyVhdx(s.Folder));
        if (Corpus.Root is string root && File.Exists(Path.Combine(root, "coreos-hyperv", "config2_base.vhdx.bz2")))
            s.Add("Hyper-V (corpus)", Corpus.Extract("coreos-hyperv/config2_base.vhdx.bz2", s.Folder));
        return s;
    }

    private static Seeds VmdkSeeds()
    {
        var s = new Seeds { Ext = ".vmdk" };
        var opts = new DiskCreateOptions { Format = DiskFormat.Vmdk };
        string parent = s.Folder.File("parent.vmdk");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(parent, Size, opts))
            Fill(d, 1);
        s.Parent = parent;
        s.Add("monolithicSparse", parent);
        string child = s.Folder.File("seed-child.vmdk");
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(child, parent, opts))
            Fill(d, 2);
        s.Add("delta", child);
        if (Corpus.Root is string root && File.Exists(Path.Combine(root, "xo-vmdk-to-vhd", "test.vmdk")))
            s.Add("streamOptimized (corpus)", Corpus.Extract("xo-vmdk-to-vhd/test.vmdk", s.Folder));
        return s;
    }

    private static Seeds VhdSeeds()
    {
        var s = new Seeds { Ext = ".vhd" };
        var opts = new DiskCreateOptions { Format = DiskFormat.Vhd };
        string parent = s.Folder.File("parent.vhd");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(parent, Size, opts))
            Fill(d, 1);
        s.Parent = parent;
        s.Add("dynamic", parent);
        string child = s.Folder.File("seed-child.vhd");
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(child, parent, opts))
            Fill(d, 2);
        s.Add("differencing", child);
        string small = s.Folder.File("seed-small-blocks.vhd");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(small, 2L << 20, new DiskCreateOptions { Format = DiskFormat.Vhd, BlockSizeBytes = 64 * 1024 }))
            Fill(d, 3, 2L << 20);
        s.Add("64 KiB blocks", small);
        // A fixed VHD: the footer at the end only.
        string fixedVhd = s.Folder.File("seed-fixed.vhd");
        const int fixedSize = 2 << 20;
        byte[] fixedBytes = new byte[fixedSize + 512];
        new Random(4).NextBytes(fixedBytes.AsSpan(0, 8192));
        byte[] dynamicBytes = File.ReadAllBytes(parent);
        dynamicBytes.AsSpan(dynamicBytes.Length - 512).CopyTo(fixedBytes.AsSpan(fixedSize));
        FixedFooter(fixedBytes.AsSpan(fixedSize), fixedSize);
        File.WriteAllBytes(fixedVhd, fixedBytes);
        s.Add("fixed", fixedVhd);
        if (Corpus.Root is string root && File.Exists(Path.Combine(root, "dfvfs", "fat-differential.vhd")))
            s.Add("Windows differencing (corpus)", Corpus.Extract("dfvfs/fat-differential.vhd", s.Folder));
        return s;
    }

    /// <summary>Makes a dynamic disk's footer a fixed disk's of <paramref name="size"/> bytes (disk type 2, no dynamic header), checksum recomputed.</summary>
    private static void FixedFooter(Span<byte> footer, long size)
    {
        BinaryPrimitives.WriteUInt64BigEndian(footer.Slice(16), ulong.MaxValue);
        BinaryPrimitives.WriteUInt64BigEndian(footer.Slice(40), (ulong)size);
        BinaryPrimitives.WriteUInt64BigEndian(footer.Slice(48), (ulong)size);
        BinaryPrimitives.WriteUInt32BigEndian(footer.Slice(60), 2);
        FixVhdSum(footer, 64);
    }

    private static Seeds Qcow2Seeds()
    {
        var s = new Seeds { Ext = ".qcow2" };
        var opts = new DiskCreateOptions { Format = DiskFormat.Qcow2 };
        string parent = s.Folder.File("parent.qcow2");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(parent, Size, opts))
            Fill(d, 1);
        s.Parent = parent;
        s.Add("qcow2", parent);
        string child = s.Folder.File("seed-child.qcow2");
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(child, parent, opts))
            Fill(d, 2);
        s.Add("overlay", child);
        string small = s.Folder.File("seed-4k.qcow2");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(small, Size, new DiskCreateOptions { Format = DiskFormat.Qcow2, BlockSizeBytes = 4096 }))
            Fill(d, 3);
        s.Add("4 KiB clusters", small);
        return s;
    }

    private static void Fill(VirtualDisk d, int seed, long size = Size)
    {
        var rnd = new Random(seed);
        for (int i = 0; i < 6; i++)
        {
            byte[] b = new byte[rnd.Next(1, 100_000)];
            rnd.NextBytes(b);
            d.Content.Position = rnd.Next((int)size - b.Length);
            d.Content.Write(b, 0, b.Length);
        }
    }

    /// <summary>A dynamic VHDX whose log holds an entry not yet replayed (as a host crash leaves it).</summary>
    private static string DirtyVhdx(TempFolder dir)
    {
        string path = dir.File("seed-log.vhdx");
        VirtualDisk.CreateDynamic(path, Size, new DiskCreateOptions { BlockSizeBytes = 1L << 20 }).Dispose();
        long bat = VhdxFixture.BatOffset(path);
        long blockAt = new FileInfo(path).Length;
        VhdxFixture.WriteAt(path, blockAt, Enumerable.Repeat((byte)0x5A, 1 << 20).ToArray());
        byte[] batSector = VhdxFixture.ReadAt(path, bat, 4096);
        BinaryPrimitives.WriteUInt64LittleEndian(batSector, (ulong)(blockAt >> 20) << 20 | 6);
        var logGuid = Guid.NewGuid();
        long length = new FileInfo(path).Length;
        VhdxFixture.WriteAt(path, 1L << 20, LogEntry.Build(logGuid, 10, 0, new[] { (bat, batSector) }, (ulong)length, (ulong)length));
        VhdxFixture.EditHeaders(path, h => h.LogGuid = logGuid);
        return path;
    }

    /// <summary>The seed with the mutation applied.</summary>
    private static byte[] Apply(Seeds seeds, Mutation m)
    {
        (string _, byte[] original, int[] hot) = seeds.Files[m.Seed % seeds.Files.Count];
        byte[] b = (byte[])original.Clone();
        foreach (Edit e in m.Edits)
        {
            // Half the edits land on a word that carries structure, the rest anywhere.
            int at = e.Kind % 2 == 0 && hot.Length > 0 ? hot[(int)(e.Where * (hot.Length - 1))] + (int)(e.Value >> 61) : (int)(e.Where * (b.Length - 1));
            at = Math.Min(Math.Max(at, 0), b.Length - 1);
            switch (e.Kind)
            {
                case 0:
                case 1:
                    b[at] ^= (byte)(1 << (int)(e.Value % 8));
                    break;
                case 2:
                    b[at] = (byte)e.Value;
                    break;
                case 3:
                {
                    // An interesting value: 0, all ones, sign bits, powers of two, huge counts.
                    ulong[] interesting = { 0, ulong.MaxValue, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1UL << 40, 1UL << 62, 512, 4096, 1 << 20 };
                    ulong v = interesting[e.Value % (ulong)interesting.Length];
                    int width = (int)(e.Value >> 60) % 2 == 0 ? 4 : 8;
                    at = Math.Min(at & ~3, b.Length - width);
                    if (width == 4)
                        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), (uint)v);
                    else
                        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at), v);
                    break;
                }
                case 4:
                    BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(Math.Min(at & ~3, b.Length - 4)), (uint)e.Value);
                    break;
                default:
                {
                    // A run copied from elsewhere in the file.
                    int from = (int)(e.Value % (ulong)b.Length);
                    int n = Math.Min(64, Math.Min(b.Length - from, b.Length - at));
                    Buffer.BlockCopy(b, from, b, at, n);
                    break;
                }
            }
        }
        if (m.FixChecksums && seeds.Ext == ".vhdx")
            FixVhdxChecksums(b);
        if (m.FixChecksums && seeds.Ext == ".vhd")
            FixVhdChecksums(b);
        if (m.Truncate < 1.0)
            Array.Resize(ref b, (int)(b.Length * m.Truncate));
        return b;
    }

    /// <summary>Recomputes the CRC-32C of both headers, both region tables and the log entries at their usual places.</summary>
    private static void FixVhdxChecksums(byte[] b)
    {
        void Fix(int offset, int length)
        {
            if (offset + length > b.Length || length < 8)
                return;
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(offset + 4), 0);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(offset + 4), Crc32C.Compute(b.AsSpan(offset, length)));
        }
        Fix(64 * 1024, 4096);
        Fix(128 * 1024, 4096);
        Fix(192 * 1024, 64 * 1024);
        Fix(256 * 1024, 64 * 1024);
        int log = 1 << 20;
        if (b.Length >= log + 16 && b[log] == (byte)'l')
        {
            uint entryLength = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(log + 8));
            if (entryLength is > 0 and <= 1 << 20 && entryLength % 4096 == 0)
                Fix(log, (int)entryLength);
        }
    }

    /// <summary>Recomputes the checksums of a VHD's footer, its copy at offset 0 and the dynamic header the footer names.</summary>
    private static void FixVhdChecksums(byte[] b)
    {
        if (b.Length < 512)
            return;
        int tail = b.Length - 512;
        foreach (int at in new[] { 0, tail })
        {
            if (b.AsSpan(at).StartsWith("conectix"u8))
                FixVhdSum(b.AsSpan(at, 512), 64);
        }
        if (b.AsSpan(0).StartsWith("conectix"u8))
        {
            ulong header = BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(16));
            if (b.Length >= 1024 && header <= (ulong)(b.Length - 1024) && b.AsSpan((int)header).StartsWith("cxsparse"u8))
                FixVhdSum(b.AsSpan((int)header, 1024), 36);
        }
    }

    /// <summary>A VHD checksum: the one's complement of the byte sum with the field taken as zero.</summary>
    private static void FixVhdSum(Span<byte> structure, int field)
    {
        BinaryPrimitives.WriteUInt32BigEndian(structure.Slice(field), 0);
        uint sum = 0;
        foreach (byte x in structure)
            sum += x;
        BinaryPrimitives.WriteUInt32BigEndian(structure.Slice(field), ~sum);
    }

    /// <summary>Guards the current input: a hang is reported with the input saved, instead of blocking the run.</summary>
    private sealed class Watchdog : IDisposable
    {
        private readonly System.Threading.Timer _timer;
        private long _started = long.MaxValue;
        public string Current = "";

        public Watchdog()
        {
            _timer = new System.Threading.Timer(_ =>
            {
                long started = Interlocked.Read(ref _started);
                if (started != long.MaxValue && Stopwatch.GetTimestamp() - started > 10 * Stopwatch.Frequency)
                {
                    string keep = Path.Combine(Path.GetTempPath(), "vmclone-fuzz-hang-" + Guid.NewGuid().ToString("N").Substring(0, 8));
                    File.Copy(Current, keep);
                    Environment.FailFast($"Fuzz input took more than 10 s (a loop?); it is saved as '{keep}'.");
                }
            }, null, 1000, 1000);
        }

        public void Start() => Interlocked.Exchange(ref _started, Stopwatch.GetTimestamp());

        public void Stop() => Interlocked.Exchange(ref _started, long.MaxValue);

        public void Dispose() => _timer.Dispose();
    }

    /// <summary>Opens one input read-only with its chain, reads it, checks it; what the harness demands of every input.</summary>
    private static void Exercise(string path, string allowedRoot, Watchdog? watchdog)
    {
        byte[] before = File.ReadAllBytes(path);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        watchdog?.Start();
        try
        {
            using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = allowedRoot });
            byte[] buffer = new byte[256 * 1024];
            long capacity = disk.Capacity;
            foreach (long at in new[] { 0L, capacity / 3, capacity - buffer.Length })
            {
                if (at < 0 || at >= capacity)
                    continue;
                disk.Content.Position = at;
                _ = disk.Content.Read(buffer, 0, (int)Math.Min(buffer.Length, capacity - at));
            }
            foreach (DiskLayer layer in disk.Layers)
                layer.Check();
            _ = disk.Top.AllocatedBytes;
        }
        catch (VirtualDiskException ex)
        {
            Assert.False(string.IsNullOrEmpty(ex.Message));
            Assert.Contains(Path.GetFileName(ex.Path), ex.Message);
        }
        finally
        {
            watchdog?.Stop();
        }
        long used = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.True(used < 256L << 20, $"{used} bytes allocated for a {before.Length}-byte file");
        Assert.True(before.AsSpan().SequenceEqual(File.ReadAllBytes(path)), "a read-only open changed the file");
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    [InlineData("vhd")]
    [InlineData("qcow2")]
    public void MutatedFilesEndInSuccessOrADiskError(string format)
    {
        using Seeds seeds = format switch
        {
            "vhdx" => VhdxSeeds(),
            "vmdk" => VmdkSeeds(),
            "vhd" => VhdSeeds(),
            "qcow2" => Qcow2Seeds(),
            _ => throw new ArgumentException($"no seeds for {format}", nameof(format)),
        };
        using var watchdog = new Watchdog();
        string path = seeds.Folder.File("input" + seeds.Ext);
        watchdog.Current = path;
        long executions = 0;
        var distinct = new HashSet<ulong>();
        Mutations.Sample(m =>
        {
            byte[] input = Apply(seeds, m);
            File.WriteAllBytes(path, input);
            distinct.Add(Hash(input));
            executions++;
            Exercise(path, seeds.Folder.Path, watchdog);
        }, seed: Environment.GetEnvironmentVariable("VMCLONE_FUZZ_SEED"), iter: long.MaxValue, time: Seconds, threads: 1, print: m => m.ToString());
        _output.WriteLine($"{format}: {executions} executions, {distinct.Count} distinct inputs from {seeds.Files.Count} seeds ({string.Join(", ", seeds.Files.Select(f => f.Name))}) in {Seconds} s");
    }

    private static ulong Hash(byte[] data) => BinaryPrimitives.ReadUInt64LittleEndian(System.Security.Cryptography.SHA256.HashData(data));
}
