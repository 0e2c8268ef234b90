using System;
using System.IO;
using System.Linq;
using System.Text;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>
/// A VMDK descriptor names its extents, and whoever wrote it may be hostile: every extent is a
/// regular file in the descriptor's own folder (links resolved), named once. Anything else is
/// refused with an error naming the descriptor and the extent, before a byte of it is read.
/// </summary>
public class HostilePathTests
{
    private const string Header = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"custom\"\n";

    private static string Marker() => "TOP-SECRET-" + Guid.NewGuid().ToString("N");

    /// <summary>A file of <paramref name="bytes"/> bytes repeating <paramref name="marker"/>: what an attacker wants copied into an image.</summary>
    private static void WriteSecret(string path, string marker, int bytes = 8192)
    {
        var sb = new StringBuilder();
        while (sb.Length < bytes)
            sb.Append(marker).Append('\n');
        File.WriteAllText(path, sb.ToString(0, bytes));
    }

    /// <summary>Opens the descriptor and copies its content out, as a conversion would; returns the refusal, and checks that nothing of the secret got out.</summary>
    private static DiskFormatException RefusedWithoutLeaking(string descriptor, string output, string marker)
    {
        var ex = Assert.Throws<DiskFormatException>(() =>
        {
            using VirtualDisk disk = VirtualDisk.Open(descriptor, FileAccess.Read);
            using FileStream copy = File.Create(output);
            disk.Content.CopyTo(copy);
        });
        Assert.Equal(descriptor, ex.Path);
        Assert.DoesNotContain(marker, ex.ToString());
        Assert.True(!File.Exists(output) || !File.ReadAllText(output).Contains(marker), "the secret was copied out");
        return ex;
    }

    [UnixTheory]
    [InlineData("FLAT")]
    [InlineData("SPARSE")]
    public void ALinkBesideTheDescriptorIsNeverReadAsItsExtent(string type)
    {
        using var dir = new TempFolder();
        string marker = Marker();
        string secret = dir.File("secret.txt");
        if (type == "FLAT")
        {
            WriteSecret(secret, marker);
        }
        else
        {
            // Someone else's disk, outside: its data must not be copied in either.
            secret = dir.File("secret.vmdk");
            using VirtualDisk other = VirtualDisk.CreateDynamic(secret, 4L << 20);
            byte[] data = Encoding.ASCII.GetBytes(marker);
            other.Content.Write(data, 0, data.Length);
        }
        Directory.CreateDirectory(dir.File("d"));
        string descriptor = dir.File("d/disk.vmdk");
        File.WriteAllText(descriptor, Header + $"RW {(type == "FLAT" ? 16 : 8192)} {type} \"disk-s001.vmdk\"\n");
        File.CreateSymbolicLink(dir.File("d/disk-s001.vmdk"), secret);

        DiskFormatException ex = RefusedWithoutLeaking(descriptor, dir.File("out.raw"), marker);
        Assert.Equal(FileKind.SymbolicLink, ex.FileKind);
        Assert.Contains("extent file 'disk-s001.vmdk'", ex.Message);
        Assert.Contains("is a symbolic link", ex.Message);
    }

    [UnixFact]
    public void ALinkToAFileInTheSameFolderIsStillNotAnExtent()
    {
        using var dir = new TempFolder();
        string marker = Marker();
        WriteSecret(dir.File("notes.txt"), marker);
        string descriptor = dir.File("disk.vmdk");
        File.WriteAllText(descriptor, Header + "RW 16 FLAT \"disk-flat.vmdk\" 0\n");
        File.CreateSymbolicLink(dir.File("disk-flat.vmdk"), "notes.txt");
        DiskFormatException ex = RefusedWithoutLeaking(descriptor, dir.File("out.raw"), marker);
        Assert.Equal(FileKind.SymbolicLink, ex.FileKind);
        Assert.Contains("extent file 'disk-flat.vmdk'", ex.Message);
    }

    [UnixFact]
    public void AnExtentThroughALinkedFolderIsRefusedAndOneInARealSubfolderIsRead()
    {
        using var dir = new TempFolder();
        string marker = Marker();
        Directory.CreateDirectory(dir.File("elsewhere"));
        WriteSecret(dir.File("elsewhere/disk-flat.vmdk"), marker);
        Directory.CreateDirectory(dir.File("d"));
        Directory.CreateSymbolicLink(dir.File("d/sub"), dir.File("elsewhere"));
        string descriptor = dir.File("d/disk.vmdk");
        File.WriteAllText(descriptor, Header + "RW 16 FLAT \"sub/disk-flat.vmdk\" 0\n");
        DiskFormatException ex = RefusedWithoutLeaking(descriptor, dir.File("out.raw"), marker);
        Assert.Contains("extent file 'sub/disk-flat.vmdk'", ex.Message);
        Assert.Contains("linked folder", ex.Message);
        Assert.Contains(dir.File("elsewhere"), ex.Message);

        // A real folder beside the descriptor is the descriptor's folder still.
        Directory.CreateDirectory(dir.File("d/real"));
        File.WriteAllBytes(dir.File("d/real/disk-flat.vmdk"), Enumerable.Repeat((byte)7, 8192).ToArray());
        File.WriteAllText(descriptor, Header + "RW 16 FLAT \"real/disk-flat.vmdk\" 0\n");
        using VirtualDisk ok = VirtualDisk.Open(descriptor, FileAccess.Read);
        Assert.Equal(8192, ok.Capacity);
    }

    [Theory]
    [InlineData(".")]
    [InlineData("./")]
    [InlineData("sub/..")]
    public void AnExtentNamingTheFolderItselfHasItsOwnMessage(string name)
    {
        using var dir = new TempFolder();
        Directory.CreateDirectory(dir.File("sub"));
        string descriptor = dir.File("disk.vmdk");
        File.WriteAllText(descriptor, Header + $"RW 16 FLAT \"{name}\" 0\n");
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(descriptor, FileAccess.Read).Dispose());
        Assert.Equal(descriptor, ex.Path);
        Assert.Contains($"extent file '{name}' names the descriptor's folder itself, not a file", ex.Message);
    }

    /// <summary>A 100 KiB descriptor naming one sparse extent 4096 times: refused at the second naming, in memory that does not grow with the count.</summary>
    [Fact]
    public void AnExtentNamedTwiceIsRefusedInBoundedMemory()
    {
        using var dir = new TempFolder();
        VirtualDisk.CreateDynamic(dir.File("a.vmdk"), 4L << 20).Dispose();
        string descriptor = dir.File("disk.vmdk");
        var sb = new StringBuilder(Header);
        for (int i = 0; i < 4096; i++)
            sb.Append("RW 8192 SPARSE \"a.vmdk\"\n");
        File.WriteAllText(descriptor, sb.ToString());
        Assert.True(new FileInfo(descriptor).Length < 110 * 1024);

        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(descriptor, FileAccess.Read).Dispose());
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 8L << 20, $"refusing took {allocated} bytes");
        Assert.Equal(descriptor, ex.Path);
        Assert.Contains("extent file 'a.vmdk' is named twice", ex.Message);

        // A flat file named twice, at two offsets, is the same file twice too.
        File.WriteAllBytes(dir.File("f.bin"), new byte[16384]);
        File.WriteAllText(descriptor, Header + "RW 16 FLAT \"f.bin\" 0\nRW 16 FLAT \"f.bin\" 16\n");
        Assert.Contains("extent file 'f.bin' is named twice",
            Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(descriptor, FileAccess.Read).Dispose()).Message);
    }

    [UnixFact]
    public void AnExtentHardLinkedToAnotherOrToTheDescriptorIsRefused()
    {
        using var dir = new TempFolder();
        File.WriteAllBytes(dir.File("a-flat.vmdk"), new byte[8192]);
        SpecialFiles.HardLink(dir.File("a-flat.vmdk"), dir.File("b-flat.vmdk"));
        string descriptor = dir.File("disk.vmdk");
        File.WriteAllText(descriptor, Header + "RW 16 FLAT \"a-flat.vmdk\" 0\nRW 16 FLAT \"b-flat.vmdk\" 0\n");
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(descriptor, FileAccess.Read).Dispose());
        Assert.Contains("extent file 'b-flat.vmdk' is the same file as extent 'a-flat.vmdk'", ex.Message);

        File.WriteAllText(descriptor, Header + "RW 1 FLAT \"self.vmdk\" 0\n");
        SpecialFiles.HardLink(descriptor, dir.File("self.vmdk"));
        ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(descriptor, FileAccess.Read).Dispose());
        Assert.Contains("extent file 'self.vmdk' is the descriptor file itself", ex.Message);
    }

    [Theory]
    [InlineData("big.vmdk", null)]
    [InlineData("big.descriptor", null)]
    [InlineData("big.bin", DiskFormat.Vmdk)]
    public void ADescriptorOverOneMiBIsRefusedBeforeItIsRead(string name, DiskFormat? format)
    {
        using var dir = new TempFolder();
        string descriptor = dir.File(name);
        File.WriteAllBytes(dir.File("f.bin"), new byte[8192]);
        var sb = new StringBuilder(Header + "RW 16 FLAT \"f.bin\" 0\n");
        while (sb.Length <= 1 << 20)
            sb.Append("# padding padding padding padding padding padding padding padding\n");
        File.WriteAllText(descriptor, sb.ToString());

        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(descriptor, FileAccess.Read, new DiskOpenOptions { Format = format }).Dispose());
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 256 * 1024, $"refusing took {allocated} bytes");
        Assert.Equal(descriptor, ex.Path);
        Assert.Contains($"a text descriptor of {new FileInfo(descriptor).Length} bytes, larger than the 1 MiB a descriptor may have; it was not read", ex.Message);
    }
}
