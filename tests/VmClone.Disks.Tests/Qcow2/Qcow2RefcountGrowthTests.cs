using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Qcow2;

/// <summary>
/// qemu-img makes a refcount table of one cluster, which covers a file of cluster²/8 clusters
/// per refcount-block cluster: 8 MiB at 512-byte clusters (16-bit counts), 2 MiB with 64-bit
/// counts, 4 GiB at 4 KiB. Writing past that needs a larger table: a new one (with the blocks
/// that count it) written and flushed at the end of the file, then the header pointed at it,
/// then the old table's clusters freed. Cut off anywhere, qemu-img check finds at worst leaks.
/// </summary>
public class Qcow2RefcountGrowthTests
{
    private static string QemuHash(string path, string dir)
    {
        string raw = Path.Combine(dir, Guid.NewGuid().ToString("N") + ".raw");
        Oracle.Run("qemu-img", $"convert -f qcow2 -O raw \"{path}\" \"{raw}\"");
        using var fs = File.OpenRead(raw);
        string hash = Convert.ToHexString(SHA256.HashData(fs));
        fs.Dispose();
        File.Delete(raw);
        return hash;
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData("cluster_size=512", 12L << 20)]
    [InlineData("cluster_size=512,refcount_bits=64", 5L << 20)]
    [InlineData("cluster_size=512,refcount_bits=32", 6L << 20)]
    public void WritesPastWhatQemusRefcountTableCoversGrowItAndQemuReadsEveryByte(string options, long written)
    {
        using var dir = new TempFolder();
        string image = QemuImage.Create(dir.File("small-table.qcow2"), 16L << 20, options);
        byte[] data = new byte[written];
        new Random(41).NextBytes(data);
        using (VirtualDisk disk = Qcow2Chain.Open(image, writable: true))
        {
            disk.Content.Position = 1 << 20;
            disk.Content.Write(data, 0, data.Length);
        }
        Qcow2Check.AssertClean(image);
        byte[] expected = new byte[16L << 20];
        data.CopyTo(expected, 1 << 20);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(expected)), QemuHash(image, dir.Path));
        using (VirtualDisk disk = Qcow2Chain.Open(image))
        {
            byte[] back = new byte[expected.Length];
            disk.Content.ReadExactly(back, 0, back.Length);
            Assert.True(back.AsSpan().SequenceEqual(expected), "VmClone reads what it wrote after the table grew");
        }
        // Grown once, the table takes further writes (and a second growth) just as well.
        using (VirtualDisk disk = Qcow2Chain.Open(image, writable: true))
        {
            disk.Content.Position = 0;
            disk.Content.Write(data, 0, 1 << 20);
        }
        Qcow2Check.AssertClean(image);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void AWriteThatGrowsTheTableCutOffAnywhereLeavesOnlyLeaksAndReopens()
    {
        using var dir = new TempFolder();
        // 64-bit counts at 512-byte clusters: the one-cluster table covers 2 MiB of file.
        string pristine = QemuImage.Create(dir.File("pristine.qcow2"), 4L << 20, "cluster_size=512,refcount_bits=64");
        Oracle.Run("qemu-io", $"-f qcow2 -c \"write -P 0x5a 0 1900k\" \"{pristine}\"");
        byte[] before = new byte[4L << 20];
        using (VirtualDisk disk = Qcow2Chain.Open(pristine))
            disk.Content.ReadExactly(before, 0, before.Length);
        var random = new Random(7);
        byte[] data = new byte[200 * 1024];
        random.NextBytes(data);
        var ops = new List<(long At, byte[] Data)> { (2L << 20, data) };
        byte[] after = (byte[])before.Clone();
        data.CopyTo(after, 2L << 20);

        string image = dir.File("image.qcow2");
        File.Copy(pristine, image);
        int total = Qcow2CrashTests.Run(image, ops, new Qcow2CrashTests.Recorder { File = image });
        Qcow2Check.AssertClean(image);
        File.Delete(image);

        // The cut points around the growth itself, and a spread over the rest.
        var cuts = new SortedSet<int>();
        for (int k = 1; k <= total; k += Math.Max(1, total / 12))
            cuts.Add(k);
        int growthAt = FindGrowth(pristine, image, ops, total);
        for (int k = Math.Max(1, growthAt - 4); k <= Math.Min(total, growthAt + 8); k++)
            cuts.Add(k);
        foreach (int k in cuts)
        {
            File.Copy(pristine, image);
            var recorder = new Qcow2CrashTests.Recorder { File = image, CrashAt = k };
            Qcow2CrashTests.Run(image, ops, recorder);
            // The power cut: each write since the last flush is kept or lost at random.
            using (var fs = new FileStream(image, FileMode.Open, FileAccess.ReadWrite))
            {
                for (int i = recorder.Unflushed.Count - 1; i >= 0; i--)
                {
                    if (random.Next(2) == 0)
                        continue;
                    fs.Position = recorder.Unflushed[i].Position;
                    fs.Write(recorder.Unflushed[i].Before);
                }
            }
            var (exit, corruptions, _, output) = Qcow2Check.Run(image);
            Assert.True(corruptions == 0 && (exit == 0 || exit == 3), $"cut at {k} of {total} (growth at {growthAt}): qemu-img check exit {exit}, {corruptions} corruptions\n{output}");
            using (VirtualDisk disk = Qcow2Chain.Open(image))
            {
                byte[] content = new byte[before.Length];
                disk.Content.ReadExactly(content, 0, content.Length);
                for (int s = 0; s < content.Length; s += 512)
                {
                    Span<byte> sector = content.AsSpan(s, 512);
                    Assert.True(sector.SequenceEqual(before.AsSpan(s, 512)) || sector.SequenceEqual(after.AsSpan(s, 512)), $"cut at {k} of {total}: sector {s / 512} reads as neither before nor after");
                }
            }
            File.Delete(image);
        }
    }

    /// <summary>The operation count at which the header is rewritten (the table switch), found by cutting there.</summary>
    private static int FindGrowth(string pristine, string image, List<(long At, byte[] Data)> ops, int total)
    {
        // The first cut after which the header names another refcount table.
        byte[] original = ReadHeader(pristine);
        int lo = 1, hi = total;
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            File.Copy(pristine, image, overwrite: true);
            Qcow2CrashTests.Run(image, ops, new Qcow2CrashTests.Recorder { File = image, CrashAt = mid });
            if (ReadHeader(image).AsSpan(48, 12).SequenceEqual(original.AsSpan(48, 12)))
                lo = mid + 1;
            else
                hi = mid;
        }
        File.Delete(image);
        return lo;
    }

    private static byte[] ReadHeader(string path)
    {
        byte[] header = new byte[104];
        using var fs = File.OpenRead(path);
        fs.ReadExactly(header, 0, header.Length);
        return header;
    }
}
