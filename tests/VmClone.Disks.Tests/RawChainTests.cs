using System;
using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

public class RawChainTests
{
    [Fact]
    public void RawImageReadsAndWritesThroughContent()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.raw");
        using (VirtualDisk disk = VirtualDisk.CreateDynamic(path, 1 << 20))
        {
            Assert.Equal(DiskFormat.Raw, disk.Format);
            byte[] data = new byte[1000];
            new Random(1).NextBytes(data);
            disk.Content.Position = 4000;
            disk.Content.Write(data, 0, data.Length);
            disk.Content.Position = 4000;
            byte[] back = new byte[1000];
            Assert.Equal(1000, disk.Content.Read(back, 0, back.Length));
            Assert.Equal(data, back);
        }
        Assert.Equal(1 << 20, new FileInfo(path).Length);
    }

    [Fact]
    public void UnknownFileIsRefusedWithItsName()
    {
        using var dir = new TempFolder();
        string path = dir.File("notes.txt");
        File.WriteAllText(path, "hello");
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(path, FileAccess.Read));
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void Crc32CMatchesTheStandardTestVector()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
    }
}
