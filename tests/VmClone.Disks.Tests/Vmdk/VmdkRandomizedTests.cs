using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using CsCheck;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vmdk;

/// <summary>Random write/read sequences against an in-memory model, reopening the files between steps.</summary>
public class VmdkRandomizedTests
{
    private const int DiskSize = (3 << 20) + 7 * 512; // not a multiple of any grain

    private record struct WriteOp(int Offset, int Length, byte Seed);

    private static readonly Gen<WriteOp> GenWrite =
        Gen.Int[0, DiskSize - 1].SelectMany(off =>
            Gen.Int[1, Math.Min(150_000, DiskSize - off)].SelectMany(len =>
                Gen.Byte.Select(seed => new WriteOp(off, len, seed))));

    // Each layer: a list of writes done in one or more sessions (reopen between sessions).
    private static readonly Gen<WriteOp[][]> GenLayer = GenWrite.Array[1, 6].Array[1, 3];

    private static byte[] Data(WriteOp op)
    {
        var data = new byte[op.Length];
        new Random(op.Seed * 31 + op.Offset).NextBytes(data);
        if (op.Seed % 4 == 0)
            Array.Clear(data, 0, data.Length / 2); // zeros are data too
        return data;
    }

    private static void Verify(string path, byte[] model)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        Assert.Equal(model.Length, disk.Capacity);
        var actual = new byte[model.Length];
        disk.Content.Position = 0;
        disk.Content.ReadExactly(actual, 0, actual.Length);
        if (!actual.AsSpan().SequenceEqual(model))
        {
            int i = 0;
            while (actual[i] == model[i])
                i++;
            Assert.Fail($"content differs first at byte {i}: {actual[i]} instead of {model[i]}");
        }
        // Unaligned reads too.
        var rng = new Random(model.Length ^ actual[0]);
        for (int k = 0; k < 5; k++)
        {
            int off = rng.Next(model.Length);
            int len = rng.Next(1, Math.Min(70_000, model.Length - off) + 1);
            var part = new byte[len];
            disk.Content.Position = off;
            disk.Content.ReadExactly(part, 0, len);
            Assert.True(part.AsSpan().SequenceEqual(model.AsSpan(off, len)), $"read {off}+{len} differs");
        }
        foreach (DiskLayer layer in disk.Layers)
            Assert.Empty(layer.Check());
    }

    [Fact]
    public void RandomWritesOnAMonolithicSparseDiskMatchTheModel()
    {
        Gen.Select(GenLayer, Gen.Int[0, 2]).Sample((sessions, grainChoice) =>
        {
            using var dir = new TempFolder();
            string path = dir.File("disk.vmdk");
            long grain = new[] { 8192L, 65536L, 1L << 20 }[grainChoice];
            VirtualDisk.CreateDynamic(path, DiskSize, new DiskCreateOptions { BlockSizeBytes = grain }).Dispose();
            var model = new byte[DiskSize];
            foreach (WriteOp[] session in sessions)
            {
                using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
                {
                    foreach (WriteOp op in session)
                    {
                        byte[] data = Data(op);
                        disk.Content.Position = op.Offset;
                        disk.Content.Write(data, 0, data.Length);
                        Buffer.BlockCopy(data, 0, model, op.Offset, data.Length);
                    }
                }
                Verify(path, model);
            }
        }, iter: 40);
    }

    /// <summary>
    /// With <paramref name="batched"/> each session writes in one batch: new grains' tables are
    /// written when it ends, or when a read inside it (every fifth write is read back) commits it.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RandomWritesOnAChainMatchTheModel(bool batched)
    {
        GenLayer.Array[2, 3].Sample(layers =>
        {
            using var dir = new TempFolder();
            var model = new byte[DiskSize];
            string? previous = null;
            for (int level = 0; level < layers.Length; level++)
            {
                string path = dir.File($"l{level}.vmdk");
                (previous is null ? VirtualDisk.CreateDynamic(path, DiskSize) : VirtualDisk.CreateDifferencing(path, previous)).Dispose();
                foreach (WriteOp[] session in layers[level])
                {
                    using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite))
                    using (batched ? disk.Top.BeginBatch() : null)
                    {
                        Assert.Equal(level + 1, disk.Layers.Count);
                        foreach (WriteOp op in session)
                        {
                            byte[] data = Data(op);
                            disk.Content.Position = op.Offset;
                            disk.Content.Write(data, 0, data.Length);
                            Buffer.BlockCopy(data, 0, model, op.Offset, data.Length);
                            if (batched && op.Seed % 5 == 0)
                            {
                                var back = new byte[data.Length];
                                disk.Content.Position = op.Offset;
                                disk.Content.ReadExactly(back, 0, back.Length);
                                Assert.True(back.AsSpan().SequenceEqual(data), $"read back {op.Offset}+{op.Length} inside a batch");
                            }
                        }
                    }
                    Verify(path, model);
                }
                previous = path;
            }
        }, iter: 25);
    }
}
