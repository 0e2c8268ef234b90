using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vmdk;

/// <summary>Files made by qemu read identically in ours; files we make read identically in qemu and libvmdk.</summary>
public class VmdkInteropTests
{
    private const long Size = 384L << 20; // large enough for several grain tables, only a few MiB written

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void QemuChainOfFourWithRandomWritesReadsIdentically()
    {
        using var dir = new TempFolder();
        var rng = new Random(4242);
        var chain = new List<string>();
        for (int level = 0; level < 4; level++)
        {
            string path = dir.File($"q{level}.vmdk");
            VmdkOracle.QemuCreate(path, Size, level == 0 ? null : Path.GetFileName(chain[^1]), level == 2 ? "zeroed_grain=on" : null);
            var cmds = new List<string>();
            for (int i = 0; i < 12; i++)
            {
                long off = rng.Next(0, 64) * 65536L * 7 + rng.Next(0, 200_000); // spread, unaligned
                int len = rng.Next(1, 150_000);
                if (i % 4 == 0)
                    off = Size - len - rng.Next(0, 1000); // near the end of the disk too
                cmds.Add($"write -P 0x{rng.Next(1, 255):x2} {off} {len}");
            }
            if (level == 2)
                cmds.Add("write -z 65536 131072"); // zero write over the parent's data
            VmdkOracle.QemuIo(path, cmds.ToArray());
            chain.Add(path);
        }

        string top = chain[^1];
        string expected = Oracle.QemuRawSha256(top, "vmdk");
        using (VirtualDisk disk = VirtualDisk.Open(top, FileAccess.Read))
        {
            Assert.Equal(4, disk.Layers.Count);
            Assert.All(disk.Layers, l => Assert.Equal(DiskFormat.Vmdk, l.Format));
            Assert.Equal(DiskType.Differencing, disk.Type);
            Assert.Equal(Size, disk.Capacity);
            Assert.Equal(expected, Hashing.Sha256Stream(disk.Content));
            foreach (DiskLayer layer in disk.Layers)
                Assert.Empty(layer.Check());
        }
        // Every level, not only the top.
        for (int i = 0; i < chain.Count - 1; i++)
            Assert.Equal(Oracle.QemuRawSha256(chain[i], "vmdk"), VmdkTestData.Sha256(chain[i]));
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io", "vmdkinfo" }, python: new[] { "pyvmdk" })]
    public void OurChainOfThreeWithRandomWritesIsAcceptedByQemuAndLibvmdk()
    {
        using var dir = new TempFolder();
        var rng = new Random(777);
        var chain = new List<string>();
        var model = new byte[8 << 20]; // writes stay in the first 8 MiB plus a tail region
        var tail = new byte[1 << 20];
        long tailStart = Size - tail.Length;
        for (int level = 0; level < 3; level++)
        {
            string path = dir.File($"disk{level}.vmdk");
            using (VirtualDisk disk = level == 0
                       ? VirtualDisk.CreateDynamic(path, Size)
                       : VirtualDisk.CreateDifferencing(path, chain[^1]))
            {
                Assert.Equal(DiskFormat.Vmdk, disk.Format);
                for (int i = 0; i < 15; i++)
                {
                    bool atTail = i % 5 == 0;
                    byte[] target = atTail ? tail : model;
                    int len = rng.Next(1, 200_000);
                    int off = rng.Next(0, target.Length - len);
                    byte[] data = new byte[len];
                    rng.NextBytes(data);
                    disk.Content.Position = (atTail ? tailStart : 0) + off;
                    disk.Content.Write(data, 0, len);
                    Buffer.BlockCopy(data, 0, target, off, len);
                }
            }
            chain.Add(path);
        }

        byte[] expectedFull = new byte[0];
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        sha.AppendData(model);
        byte[] zeros = new byte[1 << 20];
        for (long p = model.Length; p < tailStart; p += zeros.Length)
            sha.AppendData(zeros, 0, (int)Math.Min(zeros.Length, tailStart - p));
        sha.AppendData(tail);
        string modelSha = Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();

        string top = chain[^1];
        Assert.Equal(modelSha, VmdkTestData.Sha256(top));
        foreach (string layer in chain)
        {
            var (code, output) = VmdkOracle.QemuCheck(layer);
            Assert.True(code == 0, $"qemu-img check {layer}: {output}");
            Assert.Contains("No errors", output);
            string info = VmdkOracle.VmdkInfo(layer);
            Assert.Contains("Media size", info);
        }
        Assert.Equal(modelSha, Oracle.QemuRawSha256(top, "vmdk"));
        Assert.Equal(modelSha, VmdkOracle.PyvmdkSha256(chain.AsEnumerable().Reverse().ToList()));
        string qemuInfo = VmdkOracle.QemuInfo(top);
        Assert.Contains("backing file: disk1.vmdk", qemuInfo);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void QemuWritesIntoOurFilesAndWeReadTheResult()
    {
        // Clones made by VmClone are run by QEMU/KVM: qemu must be able to write to them.
        using var dir = new TempFolder();
        string basePath = dir.File("base.vmdk");
        string child = dir.File("child.vmdk");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(basePath, 256L << 20))
        {
            d.Content.Position = 12345;
            d.Content.Write(Enumerable.Repeat((byte)0x42, 100_000).ToArray(), 0, 100_000);
        }
        VirtualDisk.CreateDifferencing(child, basePath).Dispose();
        VmdkOracle.QemuIo(child, "write -P 0x99 70000 5000", "write -P 0x77 200000000 65536");
        Assert.Equal(0, VmdkOracle.QemuCheck(child).Code);
        Assert.Equal(Oracle.QemuRawSha256(child, "vmdk"), VmdkTestData.Sha256(child));
    }

    public static IEnumerable<object[]> Subformats => new[]
    {
        new object[] { "streamOptimized" },
        new object[] { "twoGbMaxExtentSparse" },
        new object[] { "monolithicFlat" },
        new object[] { "twoGbMaxExtentFlat" },
        new object[] { "monolithicSparse" },
    };

    [OracleTheory(tools: new[] { "qemu-img" })]
    [MemberData(nameof(Subformats))]
    public void QemuSubformatsOfRandomDataReadIdentically(string subformat)
    {
        using var dir = new TempFolder();
        string raw = dir.File("source.raw");
        // The twoGbMax types get just over 2 GiB so they really have several extents; the others
        // 100 MiB. Not a multiple of the grain either way. Data in a few places.
        bool split = subformat.StartsWith("twoGb", StringComparison.Ordinal);
        long size = (split ? (2L << 30) + (1 << 20) : 100L << 20) + 3 * 512;
        using (var fs = File.Create(raw))
        {
            fs.SetLength(size);
            foreach (long at in new[] { 0L, 12_345_678L, split ? (2L << 30) - 70_000 : 50_000_000L, size - 300_000 })
            {
                byte[] chunk = VmdkTestData.RandomImage((int)(at % 1000) + 1, 300_000);
                fs.Position = at;
                fs.Write(chunk, 0, chunk.Length);
            }
        }
        string vmdk = dir.File("converted.vmdk");
        VmdkOracle.QemuConvert(raw, vmdk, "vmdk", "subformat=" + subformat);
        string expected = Hashing.Sha256File(raw);
        if (!split) // qemu's own read-back (skipped for the big ones to keep the suite fast)
            Assert.Equal(expected, Oracle.QemuRawSha256(vmdk, "vmdk"));
        using VirtualDisk disk = VirtualDisk.Open(vmdk, FileAccess.Read);
        Assert.Equal(size, disk.Capacity);
        Assert.Equal(subformat, disk.Top.Details["CreateType"]);
        Assert.Equal(expected, Hashing.Sha256Stream(disk.Content));
        Assert.Empty(disk.Top.Check());
        if (split)
            Assert.True(Directory.GetFiles(dir.Path, "converted-*.vmdk").Length >= 2);
        Assert.Equal(subformat.EndsWith("Flat", StringComparison.Ordinal) ? DiskType.Fixed : DiskType.Dynamic, disk.Type);
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData("twoGbMaxExtentSparse")]
    [InlineData("monolithicFlat")]
    [InlineData("twoGbMaxExtentFlat")]
    public void WritesToDescriptorBasedTypesAreSeenByQemu(string subformat)
    {
        using var dir = new TempFolder();
        string path = dir.File("multi.vmdk");
        long size = subformat.StartsWith("twoGb", StringComparison.Ordinal) ? (2L << 30) + (1 << 20) : 64L << 20;
        VmdkOracle.QemuCreate(path, size, options: "subformat=" + subformat);
        string cidBefore = VmdkOracle.QemuCid(path);
        var rng = new Random(9);
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            foreach (long at in new[] { 1000L, size > (2L << 30) ? (2L << 30) - 5000 : 3_000_000L, size - 70_000 }) // across the 2 GiB extent boundary
            {
                byte[] data = new byte[20_000];
                rng.NextBytes(data);
                disk.Content.Position = at;
                disk.Content.Write(data, 0, data.Length);
            }
        }
        Assert.NotEqual(cidBefore, VmdkOracle.QemuCid(path));
        Assert.Equal(0, VmdkOracle.QemuCheck(path).Code);
        Assert.Equal(Oracle.QemuRawSha256(path, "vmdk"), VmdkTestData.Sha256(path));
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void StreamOptimizedDeltaOverQemuParentReads()
    {
        // A streamOptimized child (qemu can make one with -b) over a monolithicSparse parent.
        using var dir = new TempFolder();
        string parent = dir.File("p.vmdk");
        VmdkOracle.QemuCreate(parent, 64L << 20);
        VmdkOracle.QemuIo(parent, "write -P 0x31 0 3000000");
        string child = dir.File("c.vmdk");
        VmdkOracle.QemuCreate(child, 64L << 20, "p.vmdk", "subformat=streamOptimized");
        using (VirtualDisk disk = VirtualDisk.Open(child, FileAccess.Read))
        {
            Assert.Equal(2, disk.Layers.Count);
            Assert.Equal(Oracle.QemuRawSha256(child, "vmdk"), Hashing.Sha256Stream(disk.Content));
        }
        var ex = Assert.Throws<VirtualDiskException>(() => VirtualDisk.Open(child, FileAccess.ReadWrite));
        Assert.Contains("streamOptimized", ex.Message);
    }
}
