using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>
/// Fixed disks as New-VHD -Fixed and VMware's preallocated disks are: the whole virtual size
/// laid out in the file at creation and its space reserved, judged by qemu-img (check, info,
/// map), libvhdi and libvmdk, then written by VmClone and read back by them.
/// </summary>
public class FixedDiskTests
{
    private const long MiB = 1L << 20;
    private const long Size = 48 * MiB;

    private static DiskCreateOptions Fixed(DiskFormat format, long? blockSize = null) =>
        new() { Format = format, Fixed = true, ReserveSpace = true, BlockSizeBytes = blockSize };

    /// <summary>Writes a few recognisable runs (one unaligned) and returns the content's hash as VmClone reads it.</summary>
    private static string WriteSome(string path)
    {
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            var rnd = new Random(7);
            foreach (long at in new[] { 0L, 5 * MiB + 123, Size - 8192 })
            {
                byte[] data = new byte[8192];
                rnd.NextBytes(data);
                disk.Content.Position = at;
                disk.Content.Write(data, 0, data.Length);
            }
        }
        using VirtualDisk again = VirtualDisk.Open(path, FileAccess.Read);
        return Hashing.Sha256Stream(again.Content);
    }

    [Fact]
    public void AFixedVhdxHasEveryBlockPresentInTheFileAndItsSpaceReserved()
    {
        using var dir = new TempFolder();
        string path = dir.File("fixed.vhdx");
        VirtualDisk.CreateDynamic(path, Size, Fixed(DiskFormat.Vhdx, MiB)).Dispose();

        using (DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read))
        {
            Assert.Equal(DiskType.Fixed, layer.Type);
            Assert.Equal(Size, layer.AllocatedBytes);
            Assert.Empty(layer.Check());
            LayerExtent extent = layer.GetExtent(0, Size);
            Assert.Equal(ExtentKind.Data, extent.Kind);
            Assert.Equal(Size, extent.Length);
        }
        // Identifier, headers, log, metadata and BAT in the first 4 MiB, then the 48 blocks.
        Assert.Equal(4 * MiB + Size, new FileInfo(path).Length);
        if (OperatingSystem.IsLinux())
            Assert.True(DiskLayer.SizeOnDiskOf(path) >= Size, $"{DiskLayer.SizeOnDiskOf(path)} bytes reserved for a {Size}-byte fixed disk");
    }

    [OracleFact(tools: new[] { "qemu-img", "vhdiinfo" })]
    public void QemuAndLibvhdiReadTheFixedVhdxAndWhatVmCloneWroteIntoIt()
    {
        using var dir = new TempFolder();
        string path = dir.File("fixed.vhdx");
        VirtualDisk.CreateDynamic(path, Size, Fixed(DiskFormat.Vhdx)).Dispose();
        Oracle.Run("qemu-img", $"check -f vhdx \"{path}\"");
        using (JsonDocument map = JsonDocument.Parse(Oracle.Run("qemu-img", $"map -f vhdx --output=json \"{path}\"").StdOut))
            Assert.All(map.RootElement.EnumerateArray(), e => Assert.True(e.GetProperty("data").GetBoolean(), e.ToString()));
        Assert.Contains("Fixed", Oracle.Run("vhdiinfo", $"\"{path}\"").StdOut, StringComparison.OrdinalIgnoreCase);

        string expected = WriteSome(path);
        Oracle.Run("qemu-img", $"check -f vhdx \"{path}\"");
        Assert.Equal(expected, Oracle.QemuRawSha256(path, "vhdx"));
        Assert.Equal(expected, Oracle.LibvhdiSha256(path));
    }

    [Fact]
    public void AFixedVmdkIsAMonolithicFlatDescriptorAndItsFlatExtent()
    {
        using var dir = new TempFolder();
        string path = dir.File("thick.vmdk");
        VirtualDisk.CreateDynamic(path, Size, Fixed(DiskFormat.Vmdk)).Dispose();

        string descriptor = File.ReadAllText(path);
        Assert.Contains("createType=\"monolithicFlat\"", descriptor);
        Assert.Contains($"RW {Size / 512} FLAT \"thick-flat.vmdk\" 0", descriptor);
        string extent = dir.File("thick-flat.vmdk");
        Assert.Equal(Size, new FileInfo(extent).Length);
        if (OperatingSystem.IsLinux())
            Assert.True(DiskLayer.SizeOnDiskOf(extent) >= Size);
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        Assert.Equal(Size, layer.VirtualSize);
        Assert.Empty(layer.Check());
    }

    [OracleFact(tools: new[] { "qemu-img", "vmdkinfo" })]
    public void QemuAndLibvmdkReadTheFlatVmdkAndWhatVmCloneWroteIntoIt()
    {
        using var dir = new TempFolder();
        string path = dir.File("thick.vmdk");
        VirtualDisk.CreateDynamic(path, Size, Fixed(DiskFormat.Vmdk)).Dispose();
        using (JsonDocument info = JsonDocument.Parse(Oracle.Run("qemu-img", $"info -f vmdk --output=json \"{path}\"").StdOut))
        {
            Assert.Equal(Size, info.RootElement.GetProperty("virtual-size").GetInt64());
            Assert.Equal("monolithicFlat", info.RootElement.GetProperty("format-specific").GetProperty("data").GetProperty("create-type").GetString());
        }
        Oracle.Run("vmdkinfo", $"\"{path}\"");

        string expected = WriteSome(path);
        Assert.Equal(expected, Oracle.QemuRawSha256(path, "vmdk"));
        Assert.Equal(expected, Hashing.Sha256File(dir.File("thick-flat.vmdk")));
    }

    [OracleFact(tools: new[] { "qemu-img" }, python: new[] { "pyvhdi" })]
    public void AFixedVhdIsItsDataThenItsFooterAndQemuAndLibvhdiReadWhatVmCloneWrote()
    {
        using var dir = new TempFolder();
        string path = dir.File("fixed.vhd");
        VirtualDisk.CreateDynamic(path, Size, Fixed(DiskFormat.Vhd)).Dispose();
        Assert.Equal(Size + 512, new FileInfo(path).Length);
        if (OperatingSystem.IsLinux())
            Assert.True(DiskLayer.SizeOnDiskOf(path) >= Size);
        using (JsonDocument info = JsonDocument.Parse(Oracle.Run("qemu-img", $"info -f vpc --output=json \"{path}\"").StdOut))
            Assert.Equal(Size, info.RootElement.GetProperty("virtual-size").GetInt64());

        string expected = WriteSome(path);
        Assert.Equal(Size + 512, new FileInfo(path).Length);
        Assert.Equal(expected, Oracle.QemuRawSha256(path, "vpc"));
        Assert.Equal(expected, Oracle.LibvhdiSha256(path));
    }

    [Fact]
    public void Qcow2AndDifferencingDisksHaveNoFixedFormAndNothingIsWritten()
    {
        using var dir = new TempFolder();
        string qcow2 = dir.File("fixed.qcow2");
        var ex = Assert.Throws<VirtualDiskException>(() => VirtualDisk.CreateDynamic(qcow2, Size, Fixed(DiskFormat.Qcow2)));
        Assert.Contains("fixed.qcow2", ex.Message);
        Assert.False(File.Exists(qcow2));

        string parent = dir.File("parent.vhdx");
        VirtualDisk.CreateDynamic(parent, Size).Dispose();
        string child = dir.File("child.vhdx");
        Assert.Throws<DiskChainException>(() => VirtualDisk.CreateDifferencing(child, parent, new DiskCreateOptions { Fixed = true }));
        Assert.False(File.Exists(child));
        Assert.Equal(new[] { "parent.vhdx" }, Directory.GetFiles(dir.Path).Select(Path.GetFileName).ToArray());
    }
}
