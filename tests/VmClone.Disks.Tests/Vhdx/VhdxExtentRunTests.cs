using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhdx;
using Xunit;

namespace VmClone.Disks.Tests.Vhdx;

/// <summary>
/// GetExtent answers long runs straight from the in-memory BAT (whole pages of empty entries
/// at once). Its answers must equal the block-by-block reading of the same BAT: the longest
/// run of one kind from the position, on random layouts that cross BAT pages (8,192 entries),
/// chunks (sector bitmap entries) and the end of the disk.
/// </summary>
public class VhdxExtentRunTests
{
    private const long MiB = 1024 * 1024;

    private static ExtentKind KindOf(ulong raw) => (raw & 7) switch
    {
        0 => ExtentKind.Parent,
        1 or 2 or 3 or 5 => ExtentKind.Zero,
        6 => ExtentKind.Data,
        _ => throw new InvalidOperationException(),
    };

    [Theory]
    [InlineData(1, 512)]
    [InlineData(2, 4096)]
    [InlineData(3, 512)]
    public void RunsEqualTheBlockByBlockAnswerOnRandomLayouts(int seed, int sectorSize)
    {
        using var dir = new TempFolder();
        string path = dir.File("layout.vhdx");
        // 1 MiB blocks: 512-byte sectors give 4,096 blocks per chunk, so 10 GiB crosses two
        // chunk boundaries and a BAT page; the odd tail makes the last block short.
        long size = 10 * 1024 * MiB + 7 * (long)sectorSize;
        using (VirtualDisk d = VirtualDisk.CreateDynamic(path, size, new DiskCreateOptions { BlockSizeBytes = MiB, LogicalSectorSizeBytes = sectorSize }))
        {
            d.Content.Write(new byte[MiB], 0, (int)MiB); // block 0 stored: a real offset for the Data entries below
        }
        ulong stored = VhdxFixture.ReadBatEntry(path, 0);
        Assert.Equal(6UL, stored & 7);
        long blockCount = (size + MiB - 1) / MiB;
        // Every Data entry below names its own block (a block belongs to one entry): the file
        // is extended, as a hole, over all of them.
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
            fs.SetLength(Math.Max(fs.Length, ((long)(stored >> 20) + blockCount + 1) * MiB));

        var rng = new Random(seed);
        long blocks = (size + MiB - 1) / MiB;
        long ratio = Bat.ComputeChunkRatio(MiB, sectorSize);
        var kinds = new ExtentKind[blocks];
        ulong[] states = { 0, 1, 2, 3, 5 };
        long batOffset = VhdxFixture.BatOffset(path);
        long entries = Bat.ComputeEntryCount(size, MiB, sectorSize, false);
        byte[] bat = VhdxFixture.ReadAt(path, batOffset, (int)(entries * 8));
        for (long b = 0; b < blocks;)
        {
            // Runs of random length, from single blocks to most of a page.
            long run = Math.Min(blocks - b, rng.Next(4) == 0 ? rng.Next(1, 9000) : rng.Next(1, 40));
            int pick = rng.Next(7);
            ulong raw = pick < 5 ? states[pick] : stored;
            // Half of the states without storage carry a stale file offset, as trimmed or
            // discarded blocks may: only the state bits decide.
            if (pick < 5 && rng.Next(2) == 0)
                raw |= (ulong)rng.Next(1, 4000) << 20;
            for (long i = b; i < b + run; i++)
            {
                long index = i + i / ratio;
                BinaryPrimitives.WriteUInt64LittleEndian(bat.AsSpan((int)(index * 8)), pick < 5 ? raw : stored + ((ulong)i << 20));
                kinds[i] = KindOf(raw);
            }
            b += run;
        }
        VhdxFixture.WriteAt(path, batOffset, bat);

        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        Assert.Equal(size, layer.VirtualSize);

        // The longest run of one kind from a position, read block by block from the model.
        long Expected(long position, long maxLength, out ExtentKind kind)
        {
            long block = position / MiB;
            kind = kinds[block];
            long end = block + 1;
            while (end < blocks && kinds[end] == kind)
                end++;
            return Math.Min(Math.Min(end * MiB, size) - position, maxLength);
        }

        // Whole walks from 0 (what divergence does), then random starts and lengths.
        long pos = 0;
        while (pos < size)
        {
            LayerExtent e = layer.GetExtent(pos, size - pos);
            long want = Expected(pos, size - pos, out ExtentKind k);
            Assert.Equal(k, e.Kind);
            Assert.Equal(want, e.Length);
            pos += e.Length;
        }
        for (int i = 0; i < 2000; i++)
        {
            long at = rng.Next(3) switch
            {
                0 => rng.NextInt64(0, blocks) * MiB,
                1 => rng.NextInt64(0, size / sectorSize) * sectorSize,
                _ => rng.NextInt64(0, size),
            };
            long max = rng.Next(2) == 0 ? size - at : Math.Min(size - at, rng.NextInt64(1, 3000 * MiB));
            LayerExtent e = layer.GetExtent(at, max);
            long want = Expected(at, max, out ExtentKind k);
            Assert.True(k == e.Kind && want == e.Length, $"at {at} max {max}: got {e.Kind} {e.Length}, expected {k} {want}");
        }

        long expectedAllocated = 0;
        foreach (ExtentKind k in kinds)
            expectedAllocated += k == ExtentKind.Data ? MiB : 0;
        Assert.Equal(expectedAllocated, layer.AllocatedBytes);
    }

    [Fact]
    public void ABatLargerThanOneReadKeepsEntriesBehindHoles()
    {
        // 3 TiB with 2 MiB blocks: 1.5 million entries, read in 8 MiB pieces. The first piece
        // stays a hole of the file (skipped without reading); entries in the last one must load.
        using var dir = new TempFolder();
        string parent = dir.File("parent.vhdx");
        string child = dir.File("child.vhdx");
        const long size = 3L * 1024 * 1024 * MiB;
        VirtualDisk.CreateDynamic(parent, size).Dispose();
        byte[] data = new byte[8192];
        new Random(8).NextBytes(data);
        using (VirtualDisk c = VirtualDisk.CreateDifferencing(child, parent))
        {
            c.Content.Position = size - 3 * MiB;
            c.Content.Write(data, 0, data.Length);
        }
        using VirtualDisk d = VirtualDisk.Open(child, FileAccess.Read);
        Assert.Equal(2 * MiB, d.Top.AllocatedBytes);
        LayerExtent first = d.Top.GetExtent(0, size);
        Assert.Equal((ExtentKind.Parent, size - 3 * MiB), (first.Kind, first.Length));
        Assert.Equal((ExtentKind.Data, (long)data.Length), (d.Top.GetExtent(size - 3 * MiB, size).Kind, d.Top.GetExtent(size - 3 * MiB, 3 * MiB).Length));
        var read = new byte[data.Length];
        d.Content.Position = size - 3 * MiB;
        d.Content.ReadExactly(read, 0, read.Length);
        Assert.Equal(data, read);
    }

    [Fact]
    public void AnEmptyChildIsOneParentRunAndWritesIntoEmptyPagesAreKept()
    {
        using var dir = new TempFolder();
        string parent = dir.File("parent.vhdx");
        string child = dir.File("child.vhdx");
        const long size = 20 * 1024 * MiB;
        VirtualDisk.CreateDynamic(parent, size).Dispose();
        using (VirtualDisk c = VirtualDisk.CreateDifferencing(child, parent))
        {
            LayerExtent all = c.Top.GetExtent(0, size);
            Assert.Equal(ExtentKind.Parent, all.Kind);
            Assert.Equal(size, all.Length);
            Assert.Equal(0, c.Top.AllocatedBytes);
            // Writes into two far-apart blocks (different BAT pages), then the runs around them.
            byte[] data = new byte[4096];
            new Random(5).NextBytes(data);
            foreach (long at in new[] { 3 * MiB + 512, 19 * 1024 * MiB })
            {
                c.Content.Position = at;
                c.Content.Write(data, 0, data.Length);
            }
        }
        using DiskLayer layer = VirtualDisk.OpenLayer(child, FileAccess.Read);
        var runs = new List<(ExtentKind, long, long)>();
        for (long pos = 0; pos < size;)
        {
            LayerExtent e = layer.GetExtent(pos, size - pos);
            runs.Add((e.Kind, pos, e.Length));
            pos += e.Length;
        }
        Assert.Equal(new List<(ExtentKind, long, long)>
        {
            (ExtentKind.Parent, 0, 3 * MiB + 512),
            (ExtentKind.Data, 3 * MiB + 512, 4096),
            (ExtentKind.Parent, 3 * MiB + 512 + 4096, 19 * 1024 * MiB - (3 * MiB + 512 + 4096)),
            (ExtentKind.Data, 19 * 1024 * MiB, 4096),
            (ExtentKind.Parent, 19 * 1024 * MiB + 4096, size - 19 * 1024 * MiB - 4096),
        }, runs);
        Assert.Equal(2 * 2 * MiB, layer.AllocatedBytes);
    }
}
