using System;
using System.IO;
using CsCheck;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vhdx;

/// <summary>
/// Random sequences of writes, reads and reopen-and-compare against an in-memory model, on a
/// dynamic disk and on the top of a differencing chain (whose parents hold data of their own).
/// </summary>
public class VhdxRandomizedTests
{
    private const long MiB = 1024 * 1024;
    private const long Size = 6 * MiB + 3 * 4096;

    /// <summary>
    /// kind 0..5 write, 6..7 read, 8 reopen, 9 begin or end a write batch (inside one, odd seeds
    /// write whole sectors, which the batch defers); offsets biased towards block and sector edges.
    /// </summary>
    private static readonly Gen<(int Kind, long Offset, int Length, int Seed)> Operation =
        Gen.Select(Gen.Int[0, 9], Gen.Int[0, 3], Gen.Long[0, Size - 1], Gen.Int[1, 3 * (int)MiB / 2], Gen.Int, (kind, bias, offset, length, seed) =>
        {
            long at = bias switch
            {
                0 => offset / MiB * MiB - Math.Min(offset % 700, offset / MiB * MiB), // just before a block edge
                1 => offset / 512 * 512,
                _ => offset,
            };
            at = Math.Clamp(at, 0, Size - 1);
            int len = (int)Math.Min(bias == 2 ? length % 5000 + 1 : length, Size - at);
            return (kind, at, len, seed);
        });

    private static void Run((int Kind, long Offset, int Length, int Seed)[] ops, Func<TempFolder, (string Path, byte[] Model)> setup)
    {
        using var dir = new TempFolder();
        var (path, model) = setup(dir);
        VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
        IDisposable? batch = null;
        try
        {
            foreach (var (kind, offset0, length0, seed) in ops)
            {
                long offset = offset0;
                int length = length0;
                if (kind == 9)
                {
                    if (batch is null)
                    {
                        batch = disk.Top.BeginBatch();
                    }
                    else
                    {
                        batch.Dispose();
                        batch = null;
                    }
                }
                else if (kind <= 5)
                {
                    int sector = disk.LogicalSectorSize;
                    if (batch is not null && seed % 2 != 0)
                    {
                        offset = offset / sector * sector;
                        length = (int)Math.Max(sector, Math.Min((length + sector - 1) / sector * sector, (Size - offset) / sector * sector));
                    }
                    var data = new byte[length];
                    new Random(seed).NextBytes(data);
                    disk.Content.Position = offset;
                    disk.Content.Write(data, 0, length);
                    Array.Copy(data, 0, model, offset, length);
                }
                else if (kind <= 7)
                {
                    var buffer = new byte[length];
                    disk.Content.Position = offset;
                    Assert.Equal(length, disk.Content.Read(buffer, 0, length));
                    Assert.True(model.AsSpan((int)offset, length).SequenceEqual(buffer), $"read {length} at {offset} differs from the model");
                }
                else
                {
                    batch = null; // disposing the disk commits it
                    disk.Dispose();
                    disk = VirtualDisk.Open(path, FileAccess.Read);
                    Assert.True(model.AsSpan().SequenceEqual(VhdxFixture.ReadAll(disk)), "content after reopen differs from the model");
                    Assert.Empty(disk.Top.Check());
                    disk.Dispose();
                    disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
                }
            }
        }
        finally
        {
            batch?.Dispose();
            disk.Dispose();
        }
        using VirtualDisk final = VirtualDisk.Open(path, FileAccess.Read);
        Assert.True(model.AsSpan().SequenceEqual(VhdxFixture.ReadAll(final)), "final content differs from the model");
        Assert.Empty(final.Top.Check());
    }

    [Theory]
    [InlineData(512)]
    [InlineData(4096)]
    public void DynamicDiskMatchesTheModel(int sectorSize) =>
        Operation.Array[1, 12].Sample(ops => Run(ops, dir =>
        {
            string path = dir.File("dynamic.vhdx");
            VirtualDisk.CreateDynamic(path, Size, new DiskCreateOptions { BlockSizeBytes = MiB, LogicalSectorSizeBytes = sectorSize }).Dispose();
            return (path, new byte[Size]);
        }), iter: 25, threads: 1);

    [Theory]
    [InlineData(512)]
    [InlineData(4096)]
    public void DifferencingChainMatchesTheModel(int sectorSize) =>
        Operation.Array[1, 12].Sample(ops => Run(ops, dir =>
        {
            string basePath = dir.File("base.vhdx");
            string middle = dir.File("middle.avhdx");
            string top = dir.File("top.avhdx");
            var model = new byte[Size];
            var rng = new Random(sectorSize);
            using (VirtualDisk b = VirtualDisk.CreateDynamic(basePath, Size, new DiskCreateOptions { BlockSizeBytes = 2 * MiB, LogicalSectorSizeBytes = sectorSize }))
                Fill(b, model, rng, 0, Size);
            using (VirtualDisk m = VirtualDisk.CreateDifferencing(middle, basePath, new DiskCreateOptions { BlockSizeBytes = MiB }))
            {
                Fill(m, model, rng, MiB + 1000, 50_000);
                Fill(m, model, rng, 4 * MiB - 333, 700);
            }
            VirtualDisk.CreateDifferencing(top, middle, new DiskCreateOptions { BlockSizeBytes = MiB }).Dispose();
            return (top, model);
        }), iter: 15, threads: 1);

    private static void Fill(VirtualDisk disk, byte[] model, Random rng, long at, long length)
    {
        var data = new byte[length];
        rng.NextBytes(data);
        disk.Content.Position = at;
        disk.Content.Write(data, 0, data.Length);
        Array.Copy(data, 0, model, at, length);
    }
}
