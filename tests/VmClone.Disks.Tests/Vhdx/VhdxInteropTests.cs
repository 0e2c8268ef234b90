using System;
using System.Collections.Generic;
using System.IO;
using System.Text.Json;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhdx;
using Xunit;

namespace VmClone.Disks.Tests.Vhdx;

/// <summary>Our files judged by qemu-img and libvhdi, and their files read by us.</summary>
public class VhdxInteropTests
{
    private const long MiB = 1024 * 1024;

    /// <summary>Random writes (unaligned, block-spanning) mirrored into a model.</summary>
    private static void RandomWrites(VirtualDisk disk, byte[] model, Random rng, int count, int maxLength)
    {
        for (int i = 0; i < count; i++)
        {
            int len = rng.Next(1, maxLength);
            long at = rng.NextInt64(0, model.Length - len);
            var data = new byte[len];
            rng.NextBytes(data);
            disk.Content.Position = at;
            disk.Content.Write(data, 0, len);
            Array.Copy(data, 0, model, at, len);
        }
    }

    [OracleTheory(tools: new[] { "qemu-img", "vhdiinfo" }, python: new[] { "pyvhdi" })]
    [InlineData(512, 1 * MiB, 48 * MiB + 512)]
    [InlineData(512, 32 * MiB, 100 * MiB)]
    [InlineData(4096, 1 * MiB, 40 * MiB)]
    [InlineData(4096, 8 * MiB, 64 * MiB + 4096)]
    public void DynamicDiskWeWriteReadsTheSameInQemuAndLibvhdi(int sectorSize, long blockSize, long size)
    {
        using var dir = new TempFolder();
        string path = dir.File("ours.vhdx");
        var model = new byte[size];
        using (VirtualDisk disk = VirtualDisk.CreateDynamic(path, size, new DiskCreateOptions { BlockSizeBytes = blockSize, LogicalSectorSizeBytes = sectorSize }))
            RandomWrites(disk, model, new Random(sectorSize + (int)(blockSize / MiB)), 25, 3 * (int)MiB);
        string expected = Hashing.Sha256Bytes(model);
        Assert.Equal(expected, VhdxFixture.Sha256OfDisk(path));

        var (code, stdout, stderr) = Oracle.Run("qemu-img", $"check -f vhdx \"{path}\"", throwOnError: false);
        if (sectorSize == 512)
        {
            Assert.True(code == 0, stdout + stderr);
            using (JsonDocument info = JsonDocument.Parse(Oracle.Run("qemu-img", $"info -f vhdx --output=json \"{path}\"").StdOut))
                Assert.Equal(size, info.RootElement.GetProperty("virtual-size").GetInt64());
            Assert.Equal(expected, Oracle.QemuRawSha256(path, "vhdx"));
        }
        else
        {
            // qemu 7.2 implements 512-byte logical sectors only and says so; libvhdi is the oracle here.
            Assert.Contains("not supported", stderr, StringComparison.OrdinalIgnoreCase);
        }

        var vhdiinfo = Oracle.Run("vhdiinfo", $"\"{path}\"");
        Assert.Contains($"Bytes per sector\t: {sectorSize} bytes", vhdiinfo.StdOut);
        Assert.Equal($"{size} {expected}", Oracle.RunPython(PyVhdiChainHash, path));
    }

    [OracleTheory(tools: new[] { "qemu-img", "qemu-io" })]
    [InlineData("1M")]
    [InlineData("8M")]
    public void DynamicDiskQemuWroteReadsIdenticallyAndStaysValidAfterWeWrite(string qemuBlockSize)
    {
        using var dir = new TempFolder();
        string path = dir.File("qemu.vhdx");
        Oracle.Run("qemu-img", $"create -f vhdx -o block_size={qemuBlockSize} \"{path}\" 64M");
        foreach (string cmd in new[] { "write -P 0x5a 0 3M", "write -P 0x17 10M 700k", "write -P 0xc3 33M 12345", "write -z 1M 1M", "discard 10M 1M" })
            Oracle.Run("qemu-io", $"-f vhdx -c \"{cmd}\" \"{path}\"");
        string qemuSha = Oracle.QemuRawSha256(path, "vhdx");
        string before = Hashing.Sha256File(path);
        Assert.Equal(qemuSha, VhdxFixture.Sha256OfDisk(path));
        Assert.Equal(before, Hashing.Sha256File(path));

        byte[] model;
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            model = VhdxFixture.ReadAll(disk);
            Assert.Empty(disk.Top.Check());
            RandomWrites(disk, model, new Random(11), 15, (int)MiB);
        }
        var (code, stdout, stderr) = Oracle.Run("qemu-img", $"check -f vhdx \"{path}\"", throwOnError: false);
        Assert.True(code == 0, stdout + stderr);
        Assert.Equal(Hashing.Sha256Bytes(model), Oracle.QemuRawSha256(path, "vhdx"));
    }

    private const string PyVhdiChainHash = @"
import sys, hashlib, pyvhdi
files = []
for p in sys.argv[1:]:
    f = pyvhdi.file()
    f.open(p)
    files.append(f)
for i in range(1, len(files)):
    files[i].set_parent(files[i - 1])
top = files[-1]
size = top.get_media_size()
h = hashlib.sha256()
off = 0
while off < size:
    n = min(16 << 20, size - off)
    h.update(top.read_buffer_at_offset(n, off))
    off += n
print(size, h.hexdigest())
";

    [OracleTheory(tools: new[] { "vhdiinfo" }, python: new[] { "pyvhdi" })]
    [InlineData(512)]
    [InlineData(4096)]
    public void DifferencingChainOfDepthFourReadsTheSameInLibvhdi(int sectorSize)
    {
        using var dir = new TempFolder();
        const long size = 24 * MiB + 8192;
        var model = new byte[size];
        var rng = new Random(sectorSize);
        var paths = new List<string> { dir.File("base.vhdx") };
        using (VirtualDisk disk = VirtualDisk.CreateDynamic(paths[0], size, new DiskCreateOptions { BlockSizeBytes = 2 * MiB, LogicalSectorSizeBytes = sectorSize }))
            RandomWrites(disk, model, rng, 10, (int)(3 * MiB));
        for (int level = 1; level <= 3; level++)
        {
            string child = dir.File($"child{level}.avhdx");
            using (VirtualDisk disk = VirtualDisk.CreateDifferencing(child, paths[^1], new DiskCreateOptions { BlockSizeBytes = MiB }))
            {
                RandomWrites(disk, model, rng, 12, 300_000);
                RandomWrites(disk, model, rng, 40, 3000); // small, unaligned writes into partial blocks
                Assert.Empty(disk.Top.Check());
            }
            paths.Add(child);
            var (code, stdout, stderr) = Oracle.Run("vhdiinfo", $"\"{child}\"", throwOnError: false);
            Assert.True(code == 0, stdout + stderr);
            Assert.Contains("Parent identifier", stdout);
        }
        string expected = Hashing.Sha256Bytes(model);
        using (VirtualDisk disk = VirtualDisk.Open(paths[^1], FileAccess.Read))
        {
            Assert.Equal(4, disk.Layers.Count);
            Assert.Equal(expected, Hashing.Sha256Stream(disk.Content));
            Assert.Contains(disk.Layers, l => ((VhdxLayer)l).Bat.Payload(0).State == BatState.PartiallyPresent ||
                                               ((VhdxLayer)l).Bat.Payload(1).State == BatState.PartiallyPresent ||
                                               ((VhdxLayer)l).Bat.Payload(2).State == BatState.PartiallyPresent);
        }
        string py = Oracle.RunPython(PyVhdiChainHash, paths.ToArray());
        Assert.Equal($"{size} {expected}", py);
    }
}
