using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

/// <summary>
/// Convert-VmDisk -DestinationFormat Vhd -Fixed: an Azure-ready fixed VHD, judged by its footer
/// bytes against what the VHD spec and Azure require, by qemu-img (-f vpc) and libvhdi reading
/// the same content as the source, and by the footer qemu-img writes for the same disk.
/// </summary>
public class AzureVhdTests
{
    private const long MiB = 1L << 20;

    private static readonly DiskCreateOptions Fixed = new() { Fixed = true };

    /// <summary>A dynamic VHDX of <paramref name="size"/> bytes with a few runs of data, the rest never written.</summary>
    private static string Source(TempFolder dir, long size, int seed = 1)
    {
        string path = dir.File("source.vhdx");
        using VirtualDisk disk = VirtualDisk.CreateDynamic(path, size, new DiskCreateOptions { BlockSizeBytes = MiB });
        DiskFiles.WriteRandom(disk, new Random(seed), 12, maxLength: 200_000);
        disk.Content.Position = size - 4096;
        disk.Content.Write(DiskFiles.Random(seed + 1, 4096), 0, 4096);
        return path;
    }

    private static byte[] Footer(string path)
    {
        using var fs = File.OpenRead(path);
        byte[] footer = new byte[512];
        fs.Position = fs.Length - 512;
        fs.ReadExactly(footer);
        return footer;
    }

    private static uint Checksum(byte[] footer)
    {
        uint sum = 0;
        for (int i = 0; i < 512; i++)
        {
            if (i < 64 || i >= 68)
                sum += footer[i];
        }
        return ~sum;
    }

    [Fact]
    public void TheFixedVhdIsTheDataThenAFooterAsAzureRequires()
    {
        using var dir = new TempFolder();
        const long size = 24 * MiB;
        string source = Source(dir, size);
        string target = dir.File("azure.vhd");

        VmDiskInfo info = DiskOperations.Convert(source, target, DiskFormat.Vhd, Fixed, null, null, CancellationToken.None);

        Assert.Equal(DiskType.Fixed, info.Type);
        Assert.Equal(size, info.VirtualSize);
        Assert.Equal(size + 512, new FileInfo(target).Length);
        byte[] f = Footer(target);
        Assert.Equal("conectix", Encoding.ASCII.GetString(f, 0, 8));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(8)));           // features: reserved bit
        Assert.Equal(0x00010000u, BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(12)));  // version 1.0
        Assert.Equal(ulong.MaxValue, BinaryPrimitives.ReadUInt64BigEndian(f.AsSpan(16))); // no dynamic header
        Assert.Equal("win ", Encoding.ASCII.GetString(f, 28, 4));
        Assert.Equal("Wi2k", Encoding.ASCII.GetString(f, 36, 4));
        Assert.Equal((ulong)size, BinaryPrimitives.ReadUInt64BigEndian(f.AsSpan(40)));  // original size
        Assert.Equal((ulong)size, BinaryPrimitives.ReadUInt64BigEndian(f.AsSpan(48)));  // current size
        // The spec's CHS for 49152 sectors: 17 sectors per track, 4 heads, 722 cylinders.
        Assert.Equal(722, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(56)));
        Assert.Equal(4, f[58]);
        Assert.Equal(17, f[59]);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(60)));           // fixed
        Assert.Equal(Checksum(f), BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(64)));
        Assert.NotEqual(Guid.Empty, new Guid(f.AsSpan(68, 16)));
        Assert.Equal(0, f[84]);                                                          // no saved state
        // The file starts with the disk's first sector, not a footer copy or a dynamic header.
        using (VirtualDisk src = VirtualDisk.Open(source, FileAccess.Read))
        {
            byte[] first = new byte[1024];
            src.Content.ReadExactly(first);
            Assert.Equal(first, File.ReadAllBytes(target).AsSpan(0, 1024).ToArray());
        }
        Assert.Equal(DiskFiles.ContentHash(source), DiskFiles.ContentHash(target));
    }

    [Fact]
    public void HolesOfTheSourceStayHolesOfTheFixedFile()
    {
        using var dir = new TempFolder();
        const long size = 256 * MiB;
        string source = Source(dir, size);
        string target = dir.File("azure.vhd");

        VmDiskInfo info = DiskOperations.Convert(source, target, DiskFormat.Vhd, Fixed, null, null, CancellationToken.None);

        Assert.Equal(size + 512, info.FileSize);
        Assert.True(info.SizeOnDisk < 16 * MiB, $"a 256 MiB disk holding ~2.5 MB of data takes {info.SizeOnDisk} bytes on disk");
    }

    [OracleFact(tools: new[] { "qemu-img" }, python: new[] { "pyvhdi" })]
    public void QemuAndLibvhdiReadTheFixedVhdAsTheSource()
    {
        using var dir = new TempFolder();
        const long size = 40 * MiB;
        string source = Source(dir, size, seed: 3);
        string target = dir.File("azure.vhd");
        DiskOperations.Convert(source, target, DiskFormat.Vhd, Fixed, null, null, CancellationToken.None);

        using JsonDocument qemu = JsonDocument.Parse(Oracle.Run("qemu-img", $"info -f vpc --output json \"{target}\"").StdOut);
        Assert.Equal(size, qemu.RootElement.GetProperty("virtual-size").GetInt64());
        Assert.Equal("vpc", qemu.RootElement.GetProperty("format").GetString());
        Assert.Equal(0, Oracle.Run("qemu-img", $"compare -f vpc -F vhdx \"{target}\" \"{source}\"", throwOnError: false).ExitCode);
        string expected = DiskFiles.ContentHash(source);
        Assert.Equal(expected, Oracle.QemuRawSha256(target, "vpc"));
        Assert.Equal(expected, Oracle.LibvhdiSha256(target));
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void TheFooterMatchesTheOneQemuWritesForAnAzureDisk()
    {
        using var dir = new TempFolder();
        const long size = 30 * MiB;
        string source = Source(dir, size, seed: 4);
        string ours = dir.File("ours.vhd");
        DiskOperations.Convert(source, ours, DiskFormat.Vhd, Fixed, null, null, CancellationToken.None);
        string theirs = dir.File("qemu.vhd");
        Oracle.Run("qemu-img", $"convert -f vhdx -O vpc -o subformat=fixed,force_size \"{source}\" \"{theirs}\"");

        Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);
        byte[] a = Footer(ours), b = Footer(theirs);
        // Cookie, features, version, data offset; original and current size; disk type: the same bytes.
        Assert.Equal(b.AsSpan(0, 24).ToArray(), a.AsSpan(0, 24).ToArray());
        Assert.Equal(b.AsSpan(40, 16).ToArray(), a.AsSpan(40, 16).ToArray());
        Assert.Equal(b.AsSpan(60, 4).ToArray(), a.AsSpan(60, 4).ToArray());
        // With force_size qemu writes the largest geometry (65535/16/255) so that no reader sizes
        // the disk by it. Hyper-V writes the spec's geometry for the size, rounded down (the
        // corpus's Windows-made fat-differential.vhd: 4 MiB with 120/4/17), and so does VmClone;
        // its creator "win " makes qemu and Azure take the current size. 30 MiB: 903/4/17.
        Assert.Equal(new byte[] { 65535 >> 8, 65535 & 0xFF, 16, 255 }, b.AsSpan(56, 4).ToArray());
        Assert.Equal(new byte[] { 903 >> 8, 903 & 0xFF, 4, 17 }, a.AsSpan(56, 4).ToArray());
        Assert.Equal(Oracle.QemuRawSha256(theirs, "vpc"), Oracle.QemuRawSha256(ours, "vpc"));
    }

    [Theory]
    [InlineData(24 * MiB + 512, 25 * MiB)]    // not a whole MiB
    [InlineData(4 * MiB, 20 * MiB)]           // below the smallest disk Azure takes
    public void ASizeAzureRejectsIsRefusedUpFrontNamingTheSizeItWouldTake(long size, long wouldTake)
    {
        using var dir = new TempFolder();
        string source = Source(dir, size);
        string target = dir.File("azure.vhd");

        var ex = Assert.Throws<VmCloneException>(() => DiskOperations.Convert(source, target, DiskFormat.Vhd, Fixed, null, null, CancellationToken.None));

        Assert.Equal(StoreErrorIds.AzureVhdSizeRejected, ex.ErrorId);
        Assert.Contains($"{wouldTake:N0}", ex.Message);
        Assert.Contains("-RoundUpToMiB", ex.Message);
        Assert.False(File.Exists(target));
        Assert.Empty(Directory.GetDirectories(dir.Path));
    }

    [Fact]
    public void RoundingUpGivesTheNextWholeMiBWithTheAddedRangeReadingZeros()
    {
        using var dir = new TempFolder();
        const long size = 24 * MiB + 512;
        string source = Source(dir, size);
        string target = dir.File("azure.vhd");

        VmDiskInfo info = DiskOperations.Convert(source, target, DiskFormat.Vhd, Fixed, null, roundUpToWholeMiB: true, null, CancellationToken.None);

        Assert.Equal(25 * MiB, info.VirtualSize);
        using VirtualDisk src = VirtualDisk.Open(source, FileAccess.Read);
        using VirtualDisk dst = VirtualDisk.Open(target, FileAccess.Read);
        byte[] a = new byte[size], b = new byte[25 * MiB];
        src.Content.ReadExactly(a);
        dst.Content.ReadExactly(b);
        Assert.True(a.AsSpan().SequenceEqual(b.AsSpan(0, (int)size)));
        Assert.True(b.AsSpan((int)size).IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void ADiskLargerThanAVhdHoldsIsRefusedWithoutWritingAnything()
    {
        using var dir = new TempFolder();
        string source = dir.File("huge.vhdx");
        VirtualDisk.CreateDynamic(source, 3L << 40).Dispose();
        string target = dir.File("azure.vhd");

        var ex = Assert.Throws<VmCloneException>(() => DiskOperations.Convert(source, target, DiskFormat.Vhd, Fixed, null, roundUpToWholeMiB: true, null, CancellationToken.None));

        Assert.Equal(StoreErrorIds.AzureVhdSizeRejected, ex.ErrorId);
        Assert.Contains("2040 GiB", ex.Message);
        Assert.False(File.Exists(target));
    }
}
