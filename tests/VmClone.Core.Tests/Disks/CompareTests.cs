using System;
using System.IO;
using System.Text.RegularExpressions;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

/// <summary>Compare-VmDisk's operation, judged by qemu-img compare on the same two files.</summary>
public class CompareTests
{
    private const long Size = 64L << 20;

    private static VmDiskComparison Compare(string a, string b, bool strict = false) =>
        DiskOperations.Compare(a, b, strict, null, null, null, CancellationToken.None);

    /// <summary>qemu-img compare's verdict: exit code (0 identical, 1 different) and the offset it names, if any.</summary>
    private static (int Code, long? Offset, string Text) Qemu(string a, string b, bool strict = false)
    {
        var (code, stdout, stderr) = Oracle.Run("qemu-img", $"compare {(strict ? "-s " : "")}\"{a}\" \"{b}\"", throwOnError: false);
        Assert.True(code is 0 or 1, $"qemu-img compare failed ({code}): {stdout} {stderr}");
        Match m = Regex.Match(stdout, @"[Oo]ffset (\d+)");
        return (code, m.Success ? long.Parse(m.Groups[1].Value) : null, stdout);
    }

    private static string MakeDisk(TempFolder dir, string name, int seed, long size = Size)
    {
        string path = dir.File(name);
        VirtualDisk.CreateDynamic(path, size, new DiskCreateOptions { BlockSizeBytes = name.EndsWith(".vhdx", StringComparison.Ordinal) ? DiskFiles.MiB : null }).Dispose();
        DiskFiles.WriteRandom(path, new Random(seed), 12);
        return path;
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    [InlineData("qcow2")]
    [InlineData("vhd")]
    [InlineData("raw")]
    public void AConvertedCopyIsIdenticalAndOneChangedByteIsFoundWhereQemuFindsIt(string format)
    {
        using var dir = new TempFolder();
        string a = MakeDisk(dir, "a." + format, 1);
        string b = dir.File("b." + format);
        DiskOperations.Convert(a, b, null, null, null, null, CancellationToken.None);

        VmDiskComparison same = Compare(a, b);
        Assert.True(same.Identical);
        Assert.Equal(VmDiskDifference.None, same.Difference);
        Assert.Null(same.FirstDifferenceOffset);
        Assert.Equal(0, Qemu(a, b).Code);

        long at = 40L * DiskFiles.MiB + 4321;
        DiskFiles.Write(b, at, new byte[] { 0xA5 });
        VmDiskComparison differs = Compare(a, b);
        Assert.False(differs.Identical);
        Assert.Equal(VmDiskDifference.Content, differs.Difference);
        Assert.Equal(at, differs.FirstDifferenceOffset);
        var qemu = Qemu(a, b);
        Assert.Equal(1, qemu.Code);
        // qemu names the 512-byte sector that holds the first differing byte.
        Assert.Equal(at / 512 * 512, qemu.Offset);
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void DisksOfDifferentFormatsCompareByContent()
    {
        using var dir = new TempFolder();
        string a = MakeDisk(dir, "a.vhdx", 2);
        string b = dir.File("b.qcow2");
        DiskOperations.Convert(a, b, null, null, null, null, CancellationToken.None);
        Assert.True(Compare(a, b).Identical);
        Assert.True(Compare(b, a).Identical);
        Assert.Equal(0, Qemu(a, b).Code);

        long at = 7L * DiskFiles.MiB + 1;
        DiskFiles.Write(b, at, new byte[] { 0x5A });
        Assert.Equal(at, Compare(a, b).FirstDifferenceOffset);
        Assert.Equal(at / 512 * 512, Qemu(a, b).Offset);
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void ALargerDiskIsIdenticalWhenItsExtraRangeReadsAsZerosUnlessStrict()
    {
        using var dir = new TempFolder();
        string small = MakeDisk(dir, "small.qcow2", 3);
        string large = dir.File("large.qcow2");
        VirtualDisk.CreateDynamic(large, Size + 16 * DiskFiles.MiB).Dispose();
        using (VirtualDisk from = VirtualDisk.Open(small, FileAccess.Read))
        using (VirtualDisk to = VirtualDisk.Open(large, FileAccess.ReadWrite))
            from.Content.CopyTo(to.Content);

        VmDiskComparison loose = Compare(small, large);
        Assert.True(loose.Identical);
        Assert.Equal(Size, loose.Size);
        Assert.Equal(Size + 16 * DiskFiles.MiB, loose.DifferenceSize);
        Assert.Equal(0, Qemu(small, large).Code);

        VmDiskComparison strict = Compare(small, large, strict: true);
        Assert.False(strict.Identical);
        Assert.Equal(VmDiskDifference.Size, strict.Difference);
        Assert.Null(strict.FirstDifferenceOffset);
        Assert.Equal(1, Qemu(small, large, strict: true).Code);

        long at = Size + 5 * DiskFiles.MiB + 77;
        DiskFiles.Write(large, at, new byte[] { 1 });
        VmDiskComparison extra = Compare(large, small);
        Assert.Equal(VmDiskDifference.Content, extra.Difference);
        Assert.Equal(at, extra.FirstDifferenceOffset);
        Assert.Equal(at / 512 * 512, Qemu(large, small).Offset);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void StrictComparisonFindsZerosStoredAsDataWhereTheOtherDiskHasNothing()
    {
        using var dir = new TempFolder();
        string a = dir.File("a.qcow2"), b = dir.File("b.qcow2");
        foreach (string p in new[] { a, b })
        {
            Oracle.Run("qemu-img", $"create -f qcow2 \"{p}\" 64M");
            // Data in the last cluster too: qemu's block status flags a run that reaches the end
            // of the image (EOF), and -s would call two unallocated runs different for that alone.
            Oracle.Run("qemu-io", $"-c \"write -P 7 8M 64k\" -c \"write -P 7 63M 1M\" \"{p}\"");
        }
        // 64 KiB of zeros written as data into a only, and a zero cluster into b only.
        Oracle.Run("qemu-io", $"-c \"write -P 0 1M 64k\" \"{a}\"");
        Oracle.Run("qemu-io", $"-c \"write -z 20M 64k\" \"{b}\"");

        Assert.True(Compare(a, b).Identical);
        Assert.Equal(0, Qemu(a, b).Code);

        VmDiskComparison strict = Compare(a, b, strict: true);
        Assert.False(strict.Identical);
        Assert.Equal(VmDiskDifference.Allocation, strict.Difference);
        Assert.Equal(DiskFiles.MiB, strict.FirstDifferenceOffset);
        var qemu = Qemu(a, b, strict: true);
        Assert.Equal(1, qemu.Code);
        Assert.Equal(DiskFiles.MiB, qemu.Offset);

        // A stated zero cluster against an unallocated one is an allocation difference too.
        string d = dir.File("d.qcow2");
        Oracle.Run("qemu-img", $"create -f qcow2 \"{d}\" 64M");
        Oracle.Run("qemu-io", $"-c \"write -P 7 8M 64k\" -c \"write -P 7 63M 1M\" \"{d}\"");
        Assert.True(Compare(b, d).Identical);
        VmDiskComparison zero = Compare(b, d, strict: true);
        Assert.Equal(VmDiskDifference.Allocation, zero.Difference);
        Assert.Equal(20 * DiskFiles.MiB, zero.FirstDifferenceOffset);
        Assert.Equal(20 * DiskFiles.MiB, Qemu(b, d, strict: true).Offset);
    }

    [Fact]
    public void RangesBothDisksTakeFromTheSameBaseAreNotRead()
    {
        using var dir = new TempFolder();
        string b = dir.File("base.vhdx"), c = dir.File("child.vhdx");
        VirtualDisk.CreateDynamic(b, Size, new DiskCreateOptions { BlockSizeBytes = DiskFiles.MiB }).Dispose();
        using (VirtualDisk disk = VirtualDisk.Open(b, FileAccess.ReadWrite))
        {
            byte[] data = DiskFiles.Random(4, 32 << 20);
            disk.Content.Write(data, 0, data.Length);
        }
        VirtualDisk.CreateDifferencing(c, b).Dispose();

        VmDiskComparison same = Compare(c, b);
        Assert.True(same.Identical);
        Assert.Equal(0, same.BytesRead);

        // The child stores the byte it had: still identical, and only what the child stores is read.
        byte[] was = new byte[1];
        using (VirtualDisk disk = VirtualDisk.Open(b, FileAccess.Read))
        {
            disk.Content.Position = 3 * DiskFiles.MiB + 10;
            disk.Content.ReadExactly(was, 0, 1);
        }
        DiskFiles.Write(c, 3 * DiskFiles.MiB + 10, was);
        VmDiskComparison after = Compare(c, b);
        Assert.True(after.Identical);
        Assert.InRange(after.BytesRead, 1, 2 * 2 * DiskFiles.MiB);
    }

    [Fact]
    public void MemoryStaysBoundedWhateverTheDataSize()
    {
        using var dir = new TempFolder();
        string a = dir.File("a.qcow2"), b = dir.File("b.qcow2");
        byte[] data = DiskFiles.Random(5, 48 << 20);
        foreach (string p in new[] { a, b })
        {
            VirtualDisk.CreateDynamic(p, Size).Dispose();
            using VirtualDisk disk = VirtualDisk.Open(p, FileAccess.ReadWrite);
            disk.Content.Write(data, 0, data.Length);
        }
        data = Array.Empty<byte>();
        Compare(a, b); // warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        VmDiskComparison result = Compare(a, b);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(result.Identical);
        Assert.Equal(2 * (48L << 20), result.BytesRead);
        // 96 MiB read through two 1 MiB buffers; a whole-disk read would allocate 128 MiB.
        Assert.True(allocated < 12L << 20, $"comparing allocated {allocated} bytes");
    }
}
