using System;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

/// <summary>Convert-VmDisk -Fixed into the formats other than VHD: a fixed VHDX, a flat VMDK (two files), raw; qcow2 refused.</summary>
public class ConvertFixedTests
{
    private const long MiB = 1L << 20;

    private static string Source(TempFolder dir)
    {
        string path = dir.File("source.vhdx");
        using VirtualDisk disk = VirtualDisk.CreateDynamic(path, 64 * MiB, new DiskCreateOptions { BlockSizeBytes = MiB });
        DiskFiles.WriteRandom(disk, new Random(5), 10, maxLength: 100_000);
        return path;
    }

    [Theory]
    [InlineData("fixed.vhdx", DiskFormat.Vhdx)]
    [InlineData("thick.vmdk", DiskFormat.Vmdk)]
    [InlineData("disk.raw", DiskFormat.Raw)]
    public void TheFixedCopyReadsAsTheSourceAndKeepsItsHoles(string name, DiskFormat format)
    {
        using var dir = new TempFolder();
        string source = Source(dir);
        string target = dir.File(name);

        VmDiskInfo info = DiskOperations.Convert(source, target, format, new DiskCreateOptions { Fixed = true, BlockSizeBytes = format == DiskFormat.Vhdx ? MiB : null }, null, null, CancellationToken.None);

        Assert.Equal(DiskType.Fixed, info.Type);
        Assert.Equal(DiskFiles.ContentHash(source), DiskFiles.ContentHash(target));
        if (format == DiskFormat.Vmdk)
            Assert.Equal(64 * MiB, new FileInfo(dir.File("thick-flat.vmdk")).Length);
        // Every extent in place, nothing left in a staging folder, the source's holes still holes.
        Assert.Empty(Directory.GetDirectories(dir.Path));
        long onDisk = Directory.GetFiles(dir.Path).Where(f => !f.EndsWith("source.vhdx", StringComparison.Ordinal)).Sum(f => DiskLayer.SizeOnDiskOf(f));
        Assert.True(onDisk < 16 * MiB, $"{onDisk} bytes on disk for ~1 MB of data");
    }

    [Fact]
    public void AFlatExtentInTheWayIsRefusedAndLeftAsItWas()
    {
        using var dir = new TempFolder();
        string source = Source(dir);
        File.WriteAllText(dir.File("thick-flat.vmdk"), "mine");

        Assert.ThrowsAny<Exception>(() => DiskOperations.Convert(source, dir.File("thick.vmdk"), DiskFormat.Vmdk, new DiskCreateOptions { Fixed = true }, null, null, CancellationToken.None));

        Assert.Equal("mine", File.ReadAllText(dir.File("thick-flat.vmdk")));
        Assert.False(File.Exists(dir.File("thick.vmdk")));
        Assert.Empty(Directory.GetDirectories(dir.Path));
    }

    [Fact]
    public void Qcow2IsRefusedWithFixedNotSupported()
    {
        using var dir = new TempFolder();
        string source = Source(dir);
        var ex = Assert.Throws<VmCloneException>(() => DiskOperations.Convert(source, dir.File("x.qcow2"), DiskFormat.Qcow2, new DiskCreateOptions { Fixed = true }, null, null, CancellationToken.None));
        Assert.Equal(StoreErrorIds.FixedNotSupported, ex.ErrorId);
        Assert.Contains("Raw", ex.Message);
        Assert.False(File.Exists(dir.File("x.qcow2")));
    }

    [Fact]
    public void NewFixedDiskIsRefusedForQcow2AndForAChildWithFixedNotSupported()
    {
        using var dir = new TempFolder();
        var fixedDisk = new DiskCreateOptions { Fixed = true, ReserveSpace = true };
        var ex = Assert.Throws<VmCloneException>(() => DiskOperations.Create(dir.File("x.qcow2"), 64 * MiB, null, fixedDisk));
        Assert.Equal(StoreErrorIds.FixedNotSupported, ex.ErrorId);
        Assert.False(File.Exists(dir.File("x.qcow2")));

        string source = Source(dir);
        ex = Assert.Throws<VmCloneException>(() => DiskOperations.Create(dir.File("child.vhdx"), null, source, fixedDisk));
        Assert.Equal(StoreErrorIds.FixedNotSupported, ex.ErrorId);
        Assert.False(File.Exists(dir.File("child.vhdx")));

        VmDiskInfo made = DiskOperations.Create(dir.File("fixed.vhdx"), 64 * MiB, null, fixedDisk);
        Assert.Equal(DiskType.Fixed, made.Type);
        Assert.Equal(64 * MiB, made.AllocatedSize);
    }
}
