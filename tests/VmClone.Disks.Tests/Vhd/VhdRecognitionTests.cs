using System;
using System.IO;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhd;
using Xunit;

namespace VmClone.Disks.Tests.Vhd;

/// <summary>A fixed VHD has its footer only at the end: recognised there by its name or when nothing else names it.</summary>
public class VhdRecognitionTests
{
    private static string Fixed(TempFolder dir, string name)
    {
        string path = dir.File(name);
        var bytes = new byte[(1 << 20) + 512];
        new Random(5).NextBytes(bytes.AsSpan(0, 1 << 20));
        VhdFooter.Create(VhdDiskType.Fixed, 1 << 20, ulong.MaxValue, Guid.NewGuid(), 0).Raw.CopyTo(bytes, 1 << 20);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Theory]
    [InlineData("disk.vhd", DiskFormat.Vhd)]
    [InlineData("disk.AVHD", DiskFormat.Vhd)]
    [InlineData("disk", DiskFormat.Vhd)]
    [InlineData("disk.img", DiskFormat.Raw)]
    public void AFixedVhdIsRecognisedByTheFooterAtItsEnd(string name, DiskFormat expected)
    {
        using var dir = new TempFolder();
        string path = Fixed(dir, name);
        Assert.Equal(expected, VirtualDisk.DetectFormat(path));
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        Assert.Equal(expected == DiskFormat.Vhd ? 1L << 20 : (1L << 20) + 512, disk.Capacity);
    }

    [Fact]
    public void ADynamicVhdNamedVhdxIsRefusedNamingBothFormats()
    {
        using var dir = new TempFolder();
        var b = new VhdBuilder();
        string path = b.WriteTo(dir.File("disk.vhdx"));
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.DetectFormat(path));
        Assert.Equal(DiskFormat.Vhd, ex.FormatFound);
        Assert.Contains(".vhd", ex.Message);
    }
}
