using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhdx;
using VmClone.Disks.Vmdk;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>
/// Small files whose tables claim far more than the file holds: opening, reading, checking and
/// mapping them (what a conversion copies) costs in proportion to the file, and what cannot be
/// trusted is refused with a DiskFormatException naming the file.
/// </summary>
public class ResourceBoundTests
{
    private const long KiB = 1024;
    private const long MiB = 1024 * 1024;
    private const long GiB = 1024 * MiB;
    private const long TiB = 1024 * GiB;

    /// <summary>Runs <paramref name="action"/> on this thread; returns managed bytes it allocated and its time.</summary>
    private static (long Bytes, TimeSpan Time) Measure(Action action)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var sw = Stopwatch.StartNew();
        action();
        sw.Stop();
        return (GC.GetAllocatedBytesForCurrentThread() - before, sw.Elapsed);
    }

    /// <summary>Bytes every mapped run of the whole disk reports as stored data (what a conversion would copy).</summary>
    private static long DataBytes(VirtualDisk disk)
    {
        long total = 0;
        for (long at = 0; at < disk.Capacity; at += 64 * GiB)
        {
            foreach (ChainExtent e in disk.MapExtents(at, Math.Min(64 * GiB, disk.Capacity - at)))
            {
                if (e.Kind == ExtentKind.Data)
                    total += e.Length;
            }
        }
        return total;
    }

    // ------------------------------------------------------------------ VMDK

    /// <summary>
    /// A monolithicSparse file built by hand: header, descriptor, grain directory (no redundant
    /// copy), the given tables (each naming the same <paramref name="grains"/> grains), then the
    /// grains. <paramref name="tableOfEntry"/> says which table each directory entry names.
    /// </summary>
    private static string SparseVmdk(TempFolder dir, string name, ulong capacitySectors, int tables, Func<long, int> tableOfEntry, int grains)
    {
        var header = new SparseExtentHeader
        {
            Flags = SparseExtentHeader.FlagValidNewlineTest,
            Capacity = capacitySectors,
            GrainSize = 128,
            NumGTEsPerGT = 512,
            DescriptorOffset = 1,
            DescriptorSize = 20,
            GdOffset = 21,
        };
        long gdEntries = (long)header.NumGdEntries;
        long gdSectors = (gdEntries * 4 + 511) / 512;
        long firstTable = 21 + gdSectors;
        long firstGrain = (firstTable + tables * 4 + 127) / 128 * 128;
        header.OverHead = (ulong)firstGrain;
        var file = new byte[(firstGrain + grains * 128) * 512];
        header.ToBytes().CopyTo(file, 0);
        byte[] text = Encoding.ASCII.GetBytes(Descriptor.CreateMonolithicSparse(0x1234abcd, Descriptor.NoParentCid, null, capacitySectors, name));
        text.CopyTo(file, 512);
        for (long i = 0; i < gdEntries; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan((int)(21 * 512 + i * 4)), (uint)(firstTable + tableOfEntry(i) * 4));
        for (int t = 0; t < tables; t++)
        {
            for (int g = 0; g < grains; g++)
                BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan((int)((firstTable + t * 4) * 512 + g * 4)), (uint)(firstGrain + g * 128));
        }
        new Random(3).NextBytes(file.AsSpan((int)(firstGrain * 512)));
        string path = dir.File(name);
        File.WriteAllBytes(path, file);
        return path;
    }

    [Fact]
    public void VmdkWhoseDirectoryNamesOneTableEverywhereIsRefusedInBoundedMemory()
    {
        using var dir = new TempFolder();
        // 4 TiB claimed by a file of well under 1 MiB: 131,072 directory entries, one table.
        string path = SparseVmdk(dir, "aliased-gd.vmdk", (ulong)(4 * TiB / 512), 1, _ => 0, 4);
        Assert.True(new FileInfo(path).Length < MiB);
        string before = Hashing.Sha256File(path);
        Exception? error = null;
        (long bytes, TimeSpan time) = Measure(() =>
        {
            error = Record.Exception(() =>
            {
                using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
                layer.Check();
            });
        });
        Assert.True(bytes < 16 * MiB, $"open and check allocated {bytes} bytes in {time}");
        Assert.True(time < TimeSpan.FromSeconds(10), $"open and check took {time}");
        var ex = Assert.IsType<DiskFormatException>(error);
        Assert.Contains(path, ex.Message);
        Assert.Equal("grain directory", ex.Structure);
        Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(path, FileAccess.ReadWrite).Dispose());
        Assert.Equal(before, Hashing.Sha256File(path));
    }

    [Fact]
    public void VmdkClaiming64TiBThroughOneTableIsRefusedAtOpen()
    {
        using var dir = new TempFolder();
        string path = SparseVmdk(dir, "aliased-64t.vmdk", SparseExtentHeader.MaxCapacitySectors, 1, _ => 0, 8);
        Exception? error = null;
        (long bytes, _) = Measure(() => error = Record.Exception(() => VirtualDisk.Open(path, FileAccess.Read).Dispose()));
        var ex = Assert.IsType<DiskFormatException>(error);
        Assert.Contains(path, ex.Message);
        Assert.True(bytes < 64 * MiB, $"open allocated {bytes} bytes");
    }

    [Fact]
    public void VmdkGrainClaimedByTwoTablesIsRefusedOnRead()
    {
        using var dir = new TempFolder();
        // Two distinct tables (64 MiB disk, two directory entries) naming the same four grains.
        string path = SparseVmdk(dir, "aliased-grain.vmdk", (ulong)(64 * MiB / 512), 2, i => (int)i, 4);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        var ex = Assert.Throws<DiskFormatException>(() => DataBytes(disk));
        Assert.Contains(path, ex.Message);
        Assert.Equal("grain table", ex.Structure);
        Assert.Contains(disk.Top.Check(), p => p.Contains("overlap"));
    }

    [Fact]
    public void FlatExtentReportsOnlyTheBytesItsFileHoldsAsData()
    {
        using var dir = new TempFolder();
        string flat = dir.File("big-flat.vmdk");
        using (var fs = new FileStream(flat, FileMode.CreateNew))
        {
            fs.SetLength(TiB);
            fs.Write(new byte[64 * KiB].AsSpan());
            fs.Position = 512 * GiB;
            byte[] written = new byte[64 * KiB];
            new Random(1).NextBytes(written);
            fs.Write(written, 0, written.Length);
        }
        string path = dir.File("big.vmdk");
        // A 2 TiB extent line over a 1 TiB file that is nearly all hole.
        File.WriteAllText(path, "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 4294967296 FLAT \"big-flat.vmdk\" 0\n");
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        long data = DataBytes(disk);
        Assert.True(data <= 8 * MiB, $"{data} bytes reported as data");
        var buffer = new byte[64 * KiB];
        disk.Content.Position = 512 * GiB;
        disk.Content.ReadExactly(buffer, 0, buffer.Length);
        var expected = new byte[64 * KiB];
        new Random(1).NextBytes(expected);
        Assert.Equal(expected, buffer);
        disk.Content.Position = 3 * TiB / 2;
        disk.Content.ReadExactly(buffer, 0, buffer.Length);
        Assert.True(Array.TrueForAll(buffer, b => b == 0));
    }

    // ------------------------------------------------------------------ VHDX: BAT aliases

    [Fact]
    public void VhdxBatAliasingOneBlockIsCheckedInBoundedMemoryAndRefusedOnRead()
    {
        using var dir = new TempFolder();
        string path = AliasedDisks.Vhdx(dir.File("aliased.vhdx"), TiB, 4096);
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        IReadOnlyList<string> problems = Array.Empty<string>();
        (long bytes, TimeSpan time) = Measure(() => problems = layer.Check());
        Assert.True(bytes < 16 * MiB, $"check allocated {bytes} bytes");
        Assert.True(time < TimeSpan.FromSeconds(10), $"check took {time}");
        Assert.Contains(problems, p => p.Contains("payload block 1 ") && p.Contains("overlaps the payload block 0"));
        var ex = Assert.Throws<DiskFormatException>(() => layer.GetExtent(5 * MiB, MiB));
        Assert.Contains(path, ex.Message);
        Assert.Equal("BAT", ex.Structure);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        Assert.Throws<DiskFormatException>(() => DataBytes(disk));
    }
}
