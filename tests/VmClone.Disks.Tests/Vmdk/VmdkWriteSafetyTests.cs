using System;
using System.Buffers.Binary;
using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vmdk;

/// <summary>
/// A sparse extent is written only where its own structures say it may be: the metadata a write
/// updates (header, embedded descriptor, both grain directories, every table they name) lies
/// inside the file and overlaps nothing else, every grain lies inside the file and on no
/// metadata, and new grains go at the real end of the file. A file that breaks this is refused
/// for writing with a DiskFormatException naming it, before anything is written.
/// </summary>
public class VmdkWriteSafetyTests
{
    private const long Size = 4L << 20;

    // Header fields (VMware "Virtual Disk Format", SparseExtentHeader).
    private const int OffDescriptorSize = 36;
    private const int OffRgdOffset = 48;
    private const int OffGdOffset = 56;
    private const int OffOverHead = 64;

    /// <summary>A 4 MiB monolithicSparse made by the engine, with the first and the last grain written.</summary>
    private static string MakeWritten(TempFolder dir)
    {
        string path = dir.File("disk.vmdk");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(path, Size))
        {
            byte[] data = new byte[4096];
            new Random(3).NextBytes(data);
            d.Content.Position = 0;
            d.Content.Write(data, 0, data.Length);
            d.Content.Position = Size - data.Length;
            d.Content.Write(data, 0, data.Length);
        }
        return path;
    }

    private static ulong U64(byte[] b, int off) => BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(off));

    private static uint U32(byte[] b, long off) => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan((int)off));

    private static void Patch(string path, Action<byte[]> change)
    {
        byte[] bytes = File.ReadAllBytes(path);
        change(bytes);
        File.WriteAllBytes(path, bytes);
    }

    private static void SetU64(byte[] b, int off, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(off), v);

    private static void SetU32(byte[] b, long off, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)off), v);

    /// <summary>Sector of the primary grain table 0.</summary>
    private static uint Gt0(byte[] b) => U32(b, (long)U64(b, OffGdOffset) * 512);

    /// <summary>
    /// Opening read-write and writing three sectors (start, middle, end) is refused with a
    /// DiskFormatException naming the file and <paramref name="structure"/>; the file is
    /// unchanged, byte for byte, and did not grow.
    /// </summary>
    private static DiskFormatException ExpectWriteRefused(string path, string structure)
    {
        string before = Hashing.Sha256File(path);
        long length = new FileInfo(path).Length;
        var ex = Assert.Throws<DiskFormatException>(() =>
        {
            using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
            byte[] sector = new byte[512];
            sector.AsSpan().Fill(0xA5);
            foreach (long at in new[] { 0L, Size / 2, Size - 512 })
            {
                disk.Content.Position = at;
                disk.Content.Write(sector, 0, sector.Length);
            }
            disk.Content.Flush();
        });
        Assert.Contains(path, ex.Message);
        Assert.Contains(structure, ex.Message);
        Assert.Equal(length, new FileInfo(path).Length);
        Assert.Equal(before, Hashing.Sha256File(path));
        return ex;
    }

    /// <summary>The file still reads read-only (nothing in it is broken for a reader).</summary>
    private static void StillReads(string path)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        Hashing.Sha256Stream(disk.Content);
    }

    [Fact]
    public void AnEmbeddedDescriptorAreaCoveringTheDirectoriesIsRefusedForWriting()
    {
        using var dir = new TempFolder();
        string path = MakeWritten(dir);
        // The descriptor (sector 1) claims 40 sectors: over the redundant directory and tables.
        Patch(path, b => SetU64(b, OffDescriptorSize, 40));
        ExpectWriteRefused(path, "descriptor");
        StillReads(path);
    }

    [Fact]
    public void GrainDirectoriesOverlappingEachOtherAreRefusedForWriting()
    {
        using var dir = new TempFolder();
        string path = MakeWritten(dir);
        // The redundant directory's table 0 is placed on the primary directory's sector.
        Patch(path, b => SetU32(b, (long)U64(b, OffRgdOffset) * 512, (uint)U64(b, OffGdOffset)));
        ExpectWriteRefused(path, "grain directory");
        StillReads(path);
    }

    [Fact]
    public void AGrainTableOnItsOwnDirectoryIsRefusedForWriting()
    {
        using var dir = new TempFolder();
        string path = MakeWritten(dir);
        Patch(path, b => SetU32(b, (long)U64(b, OffGdOffset) * 512, (uint)U64(b, OffGdOffset)));
        ExpectWriteRefused(path, "grain directory");
    }

    [Fact]
    public void AnOverHeadPastTheEndOfTheFileIsRefusedForWriting()
    {
        using var dir = new TempFolder();
        string path = MakeWritten(dir);
        // 100 GiB past a file of a few hundred KiB: appending there grew the file to 100 GiB.
        Patch(path, b => SetU64(b, OffOverHead, 100UL << 21));
        ExpectWriteRefused(path, "overHead");
        StillReads(path);
    }

    [Fact]
    public void ARedundantTablePastTheEndOfTheFileIsRefusedForWriting()
    {
        using var dir = new TempFolder();
        string path = MakeWritten(dir);
        Patch(path, b => SetU32(b, (long)U64(b, OffRgdOffset) * 512, 3_000_000));
        ExpectWriteRefused(path, "redundant grain directory");
        StillReads(path);
    }

    [Fact]
    public void AGrainRunningPastTheEndOfTheFileIsRefusedForWriting()
    {
        using var dir = new TempFolder();
        string path = MakeWritten(dir);
        // Grain 1 starts in the last sector of the file: the next grain appended would overlap it.
        Patch(path, b => SetU32(b, (long)Gt0(b) * 512 + 4, (uint)(b.Length / 512 - 1)));
        ExpectWriteRefused(path, "grain table");
    }

    [Fact]
    public void AGrainOnTheEmbeddedDescriptorIsRefusedForWriting()
    {
        using var dir = new TempFolder();
        string path = MakeWritten(dir);
        // Grain 32 (the middle of the disk) names sector 1, the descriptor.
        Patch(path, b => SetU32(b, (long)Gt0(b) * 512 + 32 * 4, 1));
        ExpectWriteRefused(path, "grain table");
        StillReads(path);
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void AFreshFileIsStillWrittenAndReadBack()
    {
        using var dir = new TempFolder();
        string path = MakeWritten(dir);
        byte[] sector = new byte[512];
        sector.AsSpan().Fill(0x3C);
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
        {
            disk.Content.Position = Size / 2;
            disk.Content.Write(sector, 0, sector.Length);
        }
        Assert.True(new FileInfo(path).Length < 1 << 20);
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read))
        {
            byte[] back = new byte[512];
            disk.Content.Position = Size / 2;
            disk.Content.ReadExactly(back, 0, back.Length);
            Assert.Equal(sector, back);
        }
        // An independent reader agrees: the file is consistent and reads what we wrote.
        var (code, output) = VmdkOracle.QemuCheck(path);
        Assert.True(code == 0, output);
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read))
            Assert.Equal(Hashing.Sha256Stream(disk.Content), Oracle.QemuRawSha256(path, "vmdk"));
    }
}
