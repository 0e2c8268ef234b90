using System;
using System.IO;
using System.Text.Json;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>
/// Growing and shrinking every format VmClone writes, judged by qemu-img (check, info, compare
/// against a raw file of the expected content) and, for VHDX and VHD, by libvhdi: the old
/// content stays, the added range reads as zeros, the tables that must grow do (VHDX BAT, VMDK
/// grain directory, qcow2 L1, VHD BAT).
/// </summary>
public class ResizeTests
{
    private const long MiB = 1 << 20;

    /// <summary>A disk of <paramref name="kind"/> at <paramref name="path"/>, <paramref name="size"/> bytes, and qemu's name for its format.</summary>
    private static string Make(string kind, string path, long size)
    {
        switch (kind)
        {
            case "vhdx":
                VirtualDisk.CreateDynamic(path, size, new DiskCreateOptions { Format = DiskFormat.Vhdx, BlockSizeBytes = MiB }).Dispose();
                return "vhdx";
            case "vmdk":
                // 8 KiB grains: one grain directory sector maps 512 MiB.
                VirtualDisk.CreateDynamic(path, size, new DiskCreateOptions { Format = DiskFormat.Vmdk, BlockSizeBytes = 8192 }).Dispose();
                return "vmdk";
            case "qcow2":
                // 1 KiB clusters: one L1 cluster maps 16 MiB, so growing past it moves the L1 table.
                Oracle.Run("qemu-img", $"create -q -f qcow2 -o cluster_size=1024 \"{path}\" {size}");
                return "qcow2";
            case "vhd":
                // 512 KiB blocks: one BAT sector maps 64 MiB.
                VirtualDisk.CreateDynamic(path, size, new DiskCreateOptions { Format = DiskFormat.Vhd, BlockSizeBytes = 512 * 1024 }).Dispose();
                return "vpc";
            case "vhdfixed":
                Oracle.Run("qemu-img", $"create -q -f vpc -o subformat=fixed,force_size=on \"{path}\" {size}");
                return "vpc";
            case "raw":
                using (var f = File.Create(path))
                    f.SetLength(size);
                return "raw";
            default:
                throw new ArgumentException(kind);
        }
    }

    private static string Extension(string kind) => kind switch { "vhdfixed" => ".vhd", _ => "." + kind };

    /// <summary>Three runs of a pattern: the start, the middle, and the last 4 KiB (inside the last block).</summary>
    private static void WritePatterns(string path, long size, string kind, string reference)
    {
        using var raw = File.Create(reference);
        raw.SetLength(size);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite, kind == "raw" ? new DiskOpenOptions { Format = DiskFormat.Raw } : null);
        foreach ((long at, byte value) in new[] { (0L, (byte)0x5a), (size / 2 + 1024, (byte)0xa5), (size - 4096, (byte)0x3c) })
        {
            var data = new byte[4096];
            for (int i = 0; i < data.Length; i++)
                data[i] = (byte)(value ^ i);
            disk.Content.Position = at;
            disk.Content.Write(data, 0, data.Length);
            raw.Position = at;
            raw.Write(data, 0, data.Length);
        }
    }

    private static long QemuSize(string path, string format)
    {
        string json = Oracle.Run("qemu-img", $"info -f {format} --output=json \"{path}\"").StdOut;
        return JsonDocument.Parse(json).RootElement.GetProperty("virtual-size").GetInt64();
    }

    private static void AssertQemuReads(string path, string format, string reference, long size)
    {
        if (format is "qcow2" or "vmdk" or "vhdx")
        {
            var (code, stdout, stderr) = Oracle.Run("qemu-img", $"check -f {format} \"{path}\"", throwOnError: false);
            Assert.True(code == 0, $"qemu-img check: exit {code}\n{stdout}{stderr}");
        }
        Assert.Equal(size, QemuSize(path, format));
        using (var r = new FileStream(reference, FileMode.Open))
            r.SetLength(size);
        var cmp = Oracle.Run("qemu-img", $"compare -f {format} -F raw \"{path}\" \"{reference}\"", throwOnError: false);
        Assert.True(cmp.ExitCode == 0, $"qemu-img compare: {cmp.StdOut}{cmp.StdErr}");
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, format == "raw" ? new DiskOpenOptions { Format = DiskFormat.Raw } : null);
        Assert.Equal(size, disk.Capacity);
        Assert.Equal(Hashing.Sha256File(reference), Hashing.Sha256Stream(disk.Content));
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData("vhdx", 48 * MiB, 80 * MiB)]
    [InlineData("vmdk", 100 * MiB, 600 * MiB)]     // 25 grain directory entries to 150: the directories move
    [InlineData("vmdk", 100 * MiB, 300 * MiB)]     // within the directories' last sector
    [InlineData("qcow2", 10 * MiB, 40 * MiB)]      // L1 of 80 entries to 320: a new L1 table
    [InlineData("qcow2", 10 * MiB, 16 * MiB)]      // within the L1 table's cluster
    [InlineData("vhd", 20 * MiB, 100 * MiB)]       // 40 BAT entries to 200: the BAT moves to the end
    [InlineData("vhd", 20 * MiB, 60 * MiB)]        // within the BAT's sectors
    [InlineData("vhdfixed", 10 * MiB, 30 * MiB)]
    [InlineData("raw", 10 * MiB, 30 * MiB)]
    public void AGrownDiskKeepsItsContentAndReadsZerosPastTheOldEndAsQemuReadsIt(string kind, long size, long newSize)
    {
        using var dir = new TempFolder();
        string path = dir.File("disk" + Extension(kind));
        string reference = dir.File("expected.raw");
        string format = Make(kind, path, size);
        WritePatterns(path, size, kind, reference);

        DiskResizeResult result = DiskResize.Resize(path, newSize, kind == "raw" ? new DiskOpenOptions { Format = DiskFormat.Raw } : null);

        Assert.Equal(size, result.OldSize);
        Assert.Equal(newSize, result.NewSize);
        AssertQemuReads(path, format, reference, newSize);
    }

    [OracleTheory(tools: new[] { "qemu-img" }, python: new[] { "pyvhdi" })]
    [InlineData("vhdx", 48 * MiB, 80 * MiB)]
    [InlineData("vhd", 20 * MiB, 100 * MiB)]
    [InlineData("vhdfixed", 10 * MiB, 30 * MiB)]
    public void LibvhdiReadsAGrownVhdxOrVhdAsVmCloneWroteIt(string kind, long size, long newSize)
    {
        using var dir = new TempFolder();
        string path = dir.File("disk" + Extension(kind));
        string reference = dir.File("expected.raw");
        Make(kind, path, size);
        WritePatterns(path, size, kind, reference);

        DiskResize.Resize(path, newSize);

        using (var r = new FileStream(reference, FileMode.Open))
            r.SetLength(newSize);
        string media = Oracle.RunPython("import sys, pyvhdi\nf = pyvhdi.file(); f.open(sys.argv[1]); print(f.get_media_size())\n", path);
        Assert.Equal(newSize.ToString(System.Globalization.CultureInfo.InvariantCulture), media);
        Assert.Equal(Hashing.Sha256File(reference), Oracle.LibvhdiSha256(path));
    }

    /// <summary>
    /// A VHDX whose BAT region is full (1 MiB blocks, 1 MiB of BAT maps about 127 GiB) grown to
    /// 200 GiB: the BAT moves to a larger region at the end and both region tables point at it.
    /// Read back at a few places (the whole disk is too large to compare).
    /// </summary>
    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void AVhdxGrownPastItsBatRegionGetsALargerBat()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vhdx");
        long size = 100L << 30, newSize = 200L << 30;
        VirtualDisk.CreateDynamic(path, size, new DiskCreateOptions { BlockSizeBytes = MiB }).Dispose();
        long batBefore = VhdxFixture.BatOffset(path);
        var data = new byte[4096];
        Array.Fill(data, (byte)0x77);
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            disk.Content.Position = size - 4096;
            disk.Content.Write(data, 0, data.Length);
        }

        DiskResize.Resize(path, newSize);

        Assert.NotEqual(batBefore, VhdxFixture.BatOffset(path));
        Oracle.Run("qemu-img", $"check -f vhdx \"{path}\"");
        Assert.Equal(newSize, QemuSize(path, "vhdx"));
        Oracle.Run("qemu-io", $"-f vhdx -c \"read -P 0x77 {size - 4096} 4096\" -c \"read -P 0 {size} 1048576\" -c \"read -P 0 {newSize - 1048576} 1048576\" \"{path}\"");
        // A write past the old end lands in a block the moved BAT names.
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            disk.Content.Position = newSize - 4096;
            disk.Content.Write(data, 0, data.Length);
        }
        string read = Oracle.Run("qemu-io", $"-f vhdx -c \"read -P 0x77 {newSize - 4096} 4096\" \"{path}\"").StdOut;
        Assert.DoesNotContain("Pattern verification failed", read);
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    [InlineData("qcow2")]
    [InlineData("vhd")]
    [InlineData("vhdfixed")]
    [InlineData("raw")]
    public void AShrinkPastStoredDataIsRefusedWithTheMinimumAndAShrinkToItKeepsTheContent(string kind)
    {
        using var dir = new TempFolder();
        string path = dir.File("disk" + Extension(kind));
        string reference = dir.File("expected.raw");
        long size = 64 * MiB;
        string format = Make(kind, path, size);
        DiskOpenOptions? options = kind == "raw" ? new DiskOpenOptions { Format = DiskFormat.Raw } : null;
        using (var raw = File.Create(reference))
        {
            raw.SetLength(size);
            using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite, options);
            var data = new byte[8192];
            Array.Fill(data, (byte)0xc3);
            disk.Content.Position = 20 * MiB;
            disk.Content.Write(data, 0, data.Length);
            raw.Position = 20 * MiB;
            raw.Write(data, 0, data.Length);
        }
        byte[] before = File.ReadAllBytes(path);
        long minimum = DiskResize.MinimumSize(path, options);
        Assert.InRange(minimum, 20 * MiB + 8192, 24 * MiB);

        var refused = Assert.Throws<DiskResizeException>(() => DiskResize.Resize(path, 10 * MiB, options));
        Assert.Equal(ResizeProblem.DataPastEnd, refused.Problem);
        Assert.Equal(minimum, refused.MinimumSize);
        Assert.Contains(minimum.ToString(System.Globalization.CultureInfo.InvariantCulture), refused.Message);
        Assert.Equal(before, File.ReadAllBytes(path));

        DiskResize.Resize(path, minimum, options);
        AssertQemuReads(path, format, reference, minimum);
    }

    [OracleTheory(tools: new[] { "qemu-img" }, python: new[] { "pyvhdi" })]
    [InlineData("vmdk")]
    [InlineData("vhdx")]
    public void AChildGrowsOnlyAfterItsParentAndThenReadsTheOldContentAndZeros(string kind)
    {
        using var dir = new TempFolder();
        string parent = dir.File("parent." + kind), child = dir.File("child." + kind), reference = dir.File("expected.raw");
        long size = 40 * MiB, newSize = 72 * MiB;
        Make(kind, parent, size);
        WritePatterns(parent, size, kind, reference);
        VirtualDisk.CreateDifferencing(child, parent).Dispose();

        var refused = Assert.Throws<DiskResizeException>(() => DiskResize.Resize(child, newSize));
        Assert.Equal(ResizeProblem.PastParent, refused.Problem);
        Assert.Equal(size, refused.ParentSize);
        Assert.Contains(parent, refused.Message);

        DiskResize.Resize(parent, newSize);
        DiskResize.Resize(child, newSize);

        if (kind == "vmdk")
        {
            // qemu follows the child's parentFileNameHint; the chain reads the old content, then zeros.
            AssertQemuReads(child, "vmdk", reference, newSize);
            return;
        }
        // qemu does not open VHDX differencing disks: libvhdi judges the chain.
        using (var r = new FileStream(reference, FileMode.Open))
            r.SetLength(newSize);
        Oracle.PrepareEmptyVhdxChildForLibvhdi(child, 0);
        WriteSame(child, reference, 0);
        Assert.Equal(Hashing.Sha256File(reference), Oracle.LibvhdiSha256(parent, child));
        using VirtualDisk disk = VirtualDisk.Open(child, FileAccess.Read);
        Assert.Equal(Hashing.Sha256File(reference), Hashing.Sha256Stream(disk.Content));
    }

    /// <summary>The reference file gets what <see cref="Oracle.PrepareEmptyVhdxChildForLibvhdi"/> wrote to the child.</summary>
    private static void WriteSame(string child, string reference, long at)
    {
        using var r = new FileStream(reference, FileMode.Open);
        r.Position = at;
        r.Write(new byte[4096], 0, 4096);
    }

    [Fact]
    public void ASizeThatIsNoWholeSectorIsRefusedAndNothingIsWritten()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vhdx");
        VirtualDisk.CreateDynamic(path, 8 * MiB).Dispose();
        byte[] before = File.ReadAllBytes(path);
        var refused = Assert.Throws<DiskResizeException>(() => DiskResize.Resize(path, 8 * MiB + 100));
        Assert.Equal(ResizeProblem.InvalidSize, refused.Problem);
        Assert.Equal(before, File.ReadAllBytes(path));
    }
}
