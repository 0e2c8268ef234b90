using System;
using System.IO;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>
/// Only regular files are disks, extents or parents. A named pipe, a device, a socket or a
/// folder, named by the caller or by a file, is refused at once with an error naming it and
/// saying what it is; opening never waits on a pipe.
/// </summary>
public class SpecialFileTests
{
    [UnixTheory]
    [InlineData(FileAccess.Read, null)]
    [InlineData(FileAccess.ReadWrite, null)]
    [InlineData(FileAccess.Read, DiskFormat.Raw)]
    [InlineData(FileAccess.Read, DiskFormat.Vmdk)]
    public void ANamedPipeNamedAsTheDiskIsRefusedWithoutWaiting(FileAccess access, DiskFormat? format)
    {
        using var dir = new TempFolder();
        string fifo = dir.File("disk.vhdx");
        SpecialFiles.MakeFifo(fifo);
        var ex = SpecialFiles.ThrowsWithin<DiskFormatException>(
            () => VirtualDisk.Open(fifo, access, new DiskOpenOptions { Format = format }).Dispose(), fifo);
        Assert.Equal(FileKind.NamedPipe, ex.FileKind);
        Assert.Equal(fifo, ex.Path);
        Assert.Contains($"'{fifo}' is a named pipe (FIFO), not a disk file", ex.Message);

        // Recognising the format opens the file too.
        Assert.Equal(FileKind.NamedPipe, SpecialFiles.ThrowsWithin<DiskFormatException>(() => VirtualDisk.DetectFormat(fifo), fifo).FileKind);
    }

    [UnixTheory]
    [InlineData("FLAT")]
    [InlineData("SPARSE")]
    public void ANamedPipeAsAnExtentIsRefusedWithoutWaiting(string type)
    {
        using var dir = new TempFolder();
        string descriptor = dir.File("disk.vmdk");
        File.WriteAllText(descriptor, "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"custom\"\n" +
            $"RW 8192 {type} \"disk-s001.vmdk\"\n");
        string fifo = dir.File("disk-s001.vmdk");
        SpecialFiles.MakeFifo(fifo);
        var ex = SpecialFiles.ThrowsWithin<DiskFormatException>(() => VirtualDisk.Open(descriptor, FileAccess.Read).Dispose(), fifo);
        Assert.Equal(descriptor, ex.Path);
        Assert.Equal(FileKind.NamedPipe, ex.FileKind);
        Assert.Contains("extent file 'disk-s001.vmdk'", ex.Message);
        Assert.Contains("is a named pipe (FIFO), not a disk file", ex.Message);
    }

    [UnixTheory]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    public void ANamedPipeAsAParentIsRefusedWithoutWaiting(string ext)
    {
        using var dir = new TempFolder();
        string parent = dir.File("base." + ext);
        string child = dir.File("child." + ext);
        VirtualDisk.CreateDynamic(parent, 4L << 20).Dispose();
        VirtualDisk.CreateDifferencing(child, parent).Dispose();
        File.Delete(parent);
        SpecialFiles.MakeFifo(parent);

        foreach (DiskOpenOptions options in new[] { new DiskOpenOptions(), new DiskOpenOptions { AllowedParentRoot = dir.Path } })
        {
            var ex = SpecialFiles.ThrowsWithin<DiskFormatException>(() => VirtualDisk.Open(child, FileAccess.Read, options).Dispose(), parent);
            Assert.Equal(FileKind.NamedPipe, ex.FileKind);
            Assert.Equal(parent, ex.Path);
            Assert.Contains($"'{parent}', the parent of '{child}', is a named pipe (FIFO), not a disk file", ex.Message);
        }

        // Named as the parent of a new child, it is refused just the same, and no child is made.
        string another = dir.File("another." + ext);
        Assert.Equal(FileKind.NamedPipe,
            SpecialFiles.ThrowsWithin<DiskFormatException>(() => VirtualDisk.CreateDifferencing(another, parent).Dispose(), parent).FileKind);
        Assert.False(File.Exists(another));
    }

    /// <summary>
    /// An attacker swaps the disk file for a named pipe and back, as fast as the system renames,
    /// while the file is opened again and again: every open ends, with the disk or with the
    /// pipe's refusal, because the type is judged on the descriptor the open returned.
    /// </summary>
    [LinuxFact]
    public void ADiskSwappedForANamedPipeDuringOpensNeverMakesOneWait()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vhdx");
        string disk = dir.File("real.vhdx");
        string fifo = dir.File("pipe");
        VirtualDisk.CreateDynamic(disk, 1 << 24).Dispose();
        SpecialFiles.MakeFifo(fifo);
        using var stop = new CancellationTokenSource();
        var swapper = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                SpecialFiles.Rename(disk, path);
                SpecialFiles.Rename(path, disk);
                SpecialFiles.Rename(fifo, path);
                SpecialFiles.Rename(path, fifo);
            }
        });
        int opened = 0, refused = 0;
        try
        {
            SpecialFiles.EndsWithin(() =>
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                while ((refused < 20 || opened == 0) && clock.Elapsed < TimeSpan.FromSeconds(5))
                {
                    try
                    {
                        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
                        opened++;
                    }
                    catch (DiskFormatException ex) when (ex.FileKind == FileKind.NamedPipe)
                    {
                        refused++;
                    }
                    catch (VirtualDiskException ex) when (ex.Message.Contains("does not exist"))
                    {
                        // Caught between two renames.
                    }
                }
            }, path, fifo);
        }
        finally
        {
            stop.Cancel();
            swapper.Wait();
        }
        Assert.True(refused > 0, $"the pipe was never met ({opened} opens of the disk)");
    }

    [UnixTheory]
    [InlineData("/dev/null", null)]
    [InlineData("/dev/zero", null)]
    [InlineData("/dev/zero", DiskFormat.Raw)]
    public void ADeviceNamedDirectlyIsRefused(string device, DiskFormat? format)
    {
        var ex = SpecialFiles.ThrowsWithin<DiskFormatException>(
            () => VirtualDisk.Open(device, FileAccess.Read, new DiskOpenOptions { Format = format }).Dispose());
        Assert.Equal(FileKind.CharacterDevice, ex.FileKind);
        Assert.Contains($"'{device}' is a character device, not a disk file", ex.Message);
    }

    [UnixTheory]
    [InlineData("/dev/zero", "disk.raw")]
    [InlineData("/dev/null", "disk.vmdk")]
    [InlineData("/dev/zero", "disk")]
    public void ADeviceBehindASymbolicLinkIsRefusedAsSuch(string device, string name)
    {
        using var dir = new TempFolder();
        string link = dir.File(name);
        File.CreateSymbolicLink(link, device);
        var ex = SpecialFiles.ThrowsWithin<DiskFormatException>(
            () => VirtualDisk.Open(link, FileAccess.Read, new DiskOpenOptions { Format = name == "disk" ? DiskFormat.Raw : null }).Dispose());
        Assert.Equal(FileKind.CharacterDevice, ex.FileKind);
        Assert.Equal(link, ex.Path);
        Assert.Contains($"'{link}' is a symbolic link to '{device}', which is a character device, not a disk file", ex.Message);
    }

    [Theory]
    [InlineData(FileAccess.Read)]
    [InlineData(FileAccess.ReadWrite)]
    public void AFolderNamedAsADiskIsRefused(FileAccess access)
    {
        using var dir = new TempFolder();
        string folder = dir.File("disk.vhdx");
        Directory.CreateDirectory(folder);
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(folder, access).Dispose());
        Assert.Equal(FileKind.Folder, ex.FileKind);
        Assert.Contains($"'{folder}' is a folder, not a disk file", ex.Message);
    }

    [UnixFact]
    public void ASocketNamedAsADiskIsRefused()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vhdx");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        var ex = SpecialFiles.ThrowsWithin<DiskFormatException>(() => VirtualDisk.Open(path, FileAccess.Read).Dispose());
        Assert.Equal(FileKind.Socket, ex.FileKind);
        Assert.Contains($"'{path}' is a socket, not a disk file", ex.Message);
    }

    /// <summary>
    /// The locks other programs see stay what they were: an open layer, read or written, makes
    /// an exclusive open (another command's in-use probe) fail; readers share with each other;
    /// and a file another program holds exclusively is reported as in use.
    /// </summary>
    [Fact]
    public void AnOpenLayerStillShowsAsInUseAndSharesWithReaders()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vhdx");
        VirtualDisk.CreateDynamic(path, 1 << 24).Dispose();
        foreach (FileAccess access in new[] { FileAccess.Read, FileAccess.ReadWrite })
        {
            using DiskLayer layer = VirtualDisk.OpenLayer(path, access);
            Assert.ThrowsAny<IOException>(() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None).Dispose());
            if (access == FileAccess.Read)
            {
                using DiskLayer second = VirtualDisk.OpenLayer(path, FileAccess.Read);
                Assert.Equal(1 << 24, second.VirtualSize);
            }
        }
        using (new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None))
        {
            foreach (FileAccess access in new[] { FileAccess.Read, FileAccess.ReadWrite })
                Assert.Contains("cannot be opened", Assert.Throws<VirtualDiskException>(() => VirtualDisk.OpenLayer(path, access)).Message);
        }
    }
}
