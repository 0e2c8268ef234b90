using System;
using System.Collections.Generic;
using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vmdk;

/// <summary>
/// A large sparse VMDK's grain tables are classified without reading them where the file
/// system reports a hole. Whatever the file system says, sizes and extents must equal a model
/// of what was written, including tables written next to holes and tables spanning both.
/// </summary>
public class VmdkSparseTableTests
{
    private const long MiB = 1024 * 1024;
    private const long Grain = 64 * 1024;

    [Fact]
    public void HoleQueriesNeverClaimDataAsHole()
    {
        using var dir = new TempFolder();
        string path = dir.File("holes.bin");
        var rng = new Random(3);
        var written = new List<long>();
        using (var fs = new FileStream(path, FileMode.CreateNew))
        {
            fs.SetLength(64 * MiB);
            byte[] one = { 1 };
            for (int i = 0; i < 20; i++)
            {
                long at = rng.NextInt64(0, 64 * MiB);
                fs.Position = at;
                fs.Write(one, 0, 1);
                written.Add(at);
            }
        }
        written.Sort();
        using FileAccessor file = FileAccessor.Open(path, FileAccess.Read);
        for (int i = 0; i < 500; i++)
        {
            long from = rng.NextInt64(0, 64 * MiB);
            long firstWritten = 64 * MiB;
            foreach (long w in written)
            {
                if (w >= from)
                {
                    firstWritten = w;
                    break;
                }
            }
            if (file.NextData(from) is long data)
                Assert.InRange(data, from, firstWritten); // never past a written byte
            if (file.NextHole(from) is long hole)
                Assert.InRange(hole, from, 64 * MiB);
        }
    }

    [Fact]
    public void WritesAfterTablesWereFoundEmptyAreSeenByTheSameOpenLayer()
    {
        using var dir = new TempFolder();
        string path = dir.File("grow.vmdk");
        const long size = 100L * 1024 * MiB;
        using VirtualDisk d = VirtualDisk.CreateDynamic(path, size);
        Assert.Equal((ExtentKind.Parent, size), (d.Top.GetExtent(0, size).Kind, d.Top.GetExtent(0, size).Length));
        var data = new byte[4096];
        new Random(4).NextBytes(data);
        long[] places = { 70L * 1024 * MiB, 10 * MiB, 70L * 1024 * MiB + 40 * MiB };
        long lowest = size;
        foreach (long at in places)
        {
            lowest = Math.Min(lowest, at / Grain * Grain);
            d.Content.Position = at;
            d.Content.Write(data, 0, data.Length);
            // The table just written lay in a hole a moment ago: mapping must see it now.
            LayerExtent before = d.Top.GetExtent(0, size);
            Assert.Equal(ExtentKind.Parent, before.Kind);
            Assert.Equal(lowest, before.Length);
            LayerExtent e = d.Top.GetExtent(at / Grain * Grain, Grain);
            Assert.Equal(ExtentKind.Data, e.Kind);
        }
        long pos = 0, dataRuns = 0;
        while (pos < size)
        {
            LayerExtent e = d.Top.GetExtent(pos, size - pos);
            dataRuns += e.Kind == ExtentKind.Data ? 1 : 0;
            pos += e.Length;
        }
        Assert.Equal(places.Length, dataRuns);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void SizesAndExtentsOfALargeSparseDiskMatchWhatWasWritten(int seed)
    {
        using var dir = new TempFolder();
        string path = dir.File("big.vmdk");
        const long size = 100L * 1024 * MiB;
        var rng = new Random(seed);
        var grains = new SortedSet<long>();
        using (VirtualDisk d = VirtualDisk.CreateDynamic(path, size))
        {
            Assert.Equal(0, d.Top.AllocatedBytes);
            LayerExtent empty = d.Top.GetExtent(0, size);
            Assert.Equal((ExtentKind.Parent, size), (empty.Kind, empty.Length));
            byte[] data = new byte[3 * Grain];
            rng.NextBytes(data);
            for (int i = 0; i < 40; i++)
            {
                // Clusters (neighbouring grain tables), far apart ones, and the last grain.
                long at = i switch
                {
                    0 => size - 512,
                    < 20 => rng.NextInt64(0, 64 * MiB / 512) * 512,
                    _ => rng.NextInt64(0, size / 512) * 512,
                };
                int length = (int)Math.Min(rng.Next(1, data.Length), size - at);
                d.Content.Position = at;
                d.Content.Write(data, 0, length);
                for (long g = at / Grain; g <= (at + length - 1) / Grain; g++)
                    grains.Add(g);
            }
        }

        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        long lastGrain = (size - 1) / Grain;
        long expectedBytes = 0;
        foreach (long g in grains)
            expectedBytes += Math.Min(Grain, size - g * Grain);
        Assert.Equal(expectedBytes, layer.AllocatedBytes);

        // Walk with a fresh layer too, so classification happens during the walk, not before.
        foreach (bool fresh in new[] { false, true })
        {
            using DiskLayer? own = fresh ? VirtualDisk.OpenLayer(path, FileAccess.Read) : null;
            DiskLayer walker = own ?? layer;
            long pos = 0;
            while (pos < size)
            {
                LayerExtent e = walker.GetExtent(pos, size - pos);
                long grain = pos / Grain;
                bool stored = grains.Contains(grain);
                Assert.Equal(stored ? ExtentKind.Data : ExtentKind.Parent, e.Kind);
                long end = grain;
                while (end <= lastGrain && grains.Contains(end) == stored)
                    end++;
                long expected = Math.Min(end * Grain, size) - pos;
                // Stored runs stop where the grains are no longer contiguous in the file.
                if (stored)
                    Assert.InRange(e.Length, 1, expected);
                else
                    Assert.Equal(expected, e.Length);
                pos += e.Length;
            }
        }
    }
}
