using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using CsCheck;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Contract;

/// <summary>
/// The chain contract: what every writable format with a parent must do, run for each row of
/// the format registry (<see cref="ContractFormats.WithParent"/>). Merge and conversion, which
/// live in Core, are in VmClone.Core.Tests (Disks/ChainContractTests); crash points in
/// <see cref="CrashConsistencyTests"/>, whose variants come from the same rows.
/// </summary>
public class ChainContractTests
{
    private const int Size = (4 << 20) + 3 * 512; // not a multiple of any block or grain

    private static byte[] ReadAll(string path)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        var all = new byte[disk.Capacity];
        disk.Content.Position = 0;
        disk.Content.ReadExactly(all, 0, all.Length);
        return all;
    }

    private static void Write(string path, long at, byte[] data)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
        disk.Content.Position = at;
        disk.Content.Write(data, 0, data.Length);
    }

    private static byte[] Pattern(int seed, int length)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Theory]
    [MemberData(nameof(ContractFormats.WithParent), MemberType = typeof(ContractFormats))]
    public void AStandaloneDiskIsCreatedEmptyOpensAgainAndChecksClean(DiskFormat format)
    {
        using var dir = new TempFolder();
        string path = dir.File("disk" + ContractFormats.Extension(format));
        using (VirtualDisk disk = VirtualDisk.CreateDynamic(path, Size, ContractFormats.Create(format)))
        {
            Assert.Equal(format, disk.Format);
            Assert.Equal(DiskType.Dynamic, disk.Type);
            Assert.True(disk.CanWrite);
        }
        Assert.Equal(format, VirtualDisk.DetectFormat(path));
        Assert.True(ReadAll(path).All(b => b == 0));
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        Assert.Null(layer.ParentReference);
        Assert.Empty(layer.Check());
    }

    [Theory]
    [MemberData(nameof(ContractFormats.WithParent), MemberType = typeof(ContractFormats))]
    public void AChildShowsItsParentAndKeepsItsOwnWritesToItself(DiskFormat format)
    {
        using var dir = new TempFolder();
        string ext = ContractFormats.Extension(format);
        string parent = dir.File("base" + ext), child = dir.File("child" + ext);
        VirtualDisk.CreateDynamic(parent, Size, ContractFormats.Create(format)).Dispose();
        byte[] model = new byte[Size];
        byte[] a = Pattern(1, 300_000);
        Write(parent, 70_000, a);
        a.CopyTo(model, 70_000);
        string parentHash = Hashing.Sha256File(parent);

        using (VirtualDisk disk = VirtualDisk.CreateDifferencing(child, parent, ContractFormats.Create(format)))
        {
            Assert.Equal(DiskType.Differencing, disk.Type);
            Assert.Equal(2, disk.Layers.Count);
            Assert.Equal(Size, disk.Capacity);
        }
        Assert.Equal(model, ReadAll(child));
        byte[] b = Pattern(2, 123_457);
        Write(child, 200_001, b);
        b.CopyTo(model, 200_001);
        Assert.Equal(model, ReadAll(child));
        Assert.Equal(parentHash, Hashing.Sha256File(parent));
        using VirtualDisk reopened = VirtualDisk.Open(child, FileAccess.Read);
        Assert.All(reopened.Layers, l => Assert.Empty(l.Check()));
    }

    private record struct WriteOp(int Offset, int Length, byte Seed);

    private static readonly Gen<WriteOp> GenWrite =
        Gen.Int[0, Size - 1].SelectMany(off =>
            Gen.Int[1, Math.Min(150_000, Size - off)].SelectMany(len =>
                Gen.Byte.Select(seed => new WriteOp(off, len, seed))));

    // A base and a child, each written in one or two sessions (the file reopened between them).
    private static readonly Gen<WriteOp[][][]> GenChain = GenWrite.Array[1, 5].Array[1, 2].Array[2];

    [Theory]
    [MemberData(nameof(ContractFormats.WithParent), MemberType = typeof(ContractFormats))]
    public void RandomWritesIntoABaseAndItsChildReadAsTheModel(DiskFormat format)
    {
        string ext = ContractFormats.Extension(format);
        GenChain.Sample(layers =>
        {
            using var dir = new TempFolder();
            var model = new byte[Size];
            var chain = new List<string>();
            for (int level = 0; level < layers.Length; level++)
            {
                string path = dir.File($"l{level}{ext}");
                if (level == 0)
                    VirtualDisk.CreateDynamic(path, Size, ContractFormats.Create(format)).Dispose();
                else
                    VirtualDisk.CreateDifferencing(path, chain[^1], ContractFormats.Create(format)).Dispose();
                chain.Add(path);
                foreach (WriteOp[] session in layers[level])
                {
                    using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
                    foreach (WriteOp op in session)
                    {
                        byte[] data = Pattern(op.Seed * 31 + op.Offset, op.Length);
                        if (op.Seed % 4 == 0)
                            Array.Clear(data, 0, data.Length / 2); // zeros are data too
                        disk.Content.Position = op.Offset;
                        disk.Content.Write(data, 0, data.Length);
                        data.CopyTo(model, op.Offset);
                    }
                }
                byte[] actual = ReadAll(path);
                Assert.True(actual.AsSpan().SequenceEqual(model), $"{format} level {level} differs from the model");
            }
            using VirtualDisk top = VirtualDisk.Open(chain[^1], FileAccess.Read);
            Assert.All(top.Layers, l => Assert.Empty(l.Check()));
        }, iter: 12, threads: 1);
    }

    [Theory]
    [MemberData(nameof(ContractFormats.WithParent), MemberType = typeof(ContractFormats))]
    public void AChildRepointedAtACopyOfItsParentOpensOverTheCopy(DiskFormat format)
    {
        using var dir = new TempFolder();
        string ext = ContractFormats.Extension(format);
        string parent = dir.File("base" + ext), child = dir.File("child" + ext);
        Directory.CreateDirectory(dir.File("moved"));
        string copy = dir.File("moved/base" + ext);
        VirtualDisk.CreateDynamic(parent, Size, ContractFormats.Create(format)).Dispose();
        Write(parent, 4096, Pattern(3, 90_000));
        VirtualDisk.CreateDifferencing(child, parent, ContractFormats.Create(format)).Dispose();
        Write(child, 1_000_000, Pattern(4, 50_000));
        byte[] expected = ReadAll(child);
        File.Copy(parent, copy);

        using (DiskLayer top = VirtualDisk.OpenLayer(child, FileAccess.ReadWrite))
        using (DiskLayer target = VirtualDisk.OpenLayer(copy, FileAccess.Read))
            top.SetParent(ParentLink.For(child, target));
        File.Delete(parent);

        using VirtualDisk disk = VirtualDisk.Open(child, FileAccess.Read);
        Assert.True(PathUtil.SamePath(copy, disk.Layers[1].Path), disk.Layers[1].Path);
        Assert.Equal(expected, ReadAll(child));
        Assert.All(disk.Layers, l => Assert.Empty(l.Check()));
    }

    [Theory]
    [MemberData(nameof(ContractFormats.WithParent), MemberType = typeof(ContractFormats))]
    public void AParentChangedAfterItsChildWasMadeIsRefused(DiskFormat format)
    {
        using var dir = new TempFolder();
        string ext = ContractFormats.Extension(format);
        string parent = dir.File("base" + ext), child = dir.File("child" + ext);
        VirtualDisk.CreateDynamic(parent, Size, ContractFormats.Create(format)).Dispose();
        VirtualDisk.CreateDifferencing(child, parent, ContractFormats.Create(format)).Dispose();
        bool recordsIdentity;
        using (DiskLayer layer = VirtualDisk.OpenLayer(child, FileAccess.Read))
            recordsIdentity = layer.ParentReference!.ExpectedIdentity.Length > 0;
        Write(parent, 0, Pattern(5, 4096));
        if (!recordsIdentity)
        {
            // qcow2 records nothing of its backing file but its name: the engine cannot tell a
            // changed parent, and says so by an empty expected identity (the store's records of
            // its base volumes' identities detect it instead).
            Assert.Equal(DiskFormat.Qcow2, format);
            using VirtualDisk opened = VirtualDisk.Open(child, FileAccess.Read);
            Assert.Equal(2, opened.Layers.Count);
            return;
        }
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child, FileAccess.Read).Dispose());
        Assert.Contains(child, ex.Message);
    }

    public static IEnumerable<object[]> Truncations() =>
        ContractFormats.WithParent().SelectMany(f => new[] { 0.0, 0.001, 0.02, 0.5 }.Select(cut => new object[] { f[0], cut }));

    [Theory]
    [MemberData(nameof(Truncations))]
    public void ATruncatedChildIsRefusedNamingTheFileAndLeftUnchanged(DiskFormat format, double keep)
    {
        using var dir = new TempFolder();
        string ext = ContractFormats.Extension(format);
        string parent = dir.File("base" + ext), child = dir.File("child" + ext);
        VirtualDisk.CreateDynamic(parent, Size, ContractFormats.Create(format)).Dispose();
        VirtualDisk.CreateDifferencing(child, parent, ContractFormats.Create(format)).Dispose();
        Write(child, 0, Pattern(6, Size / 2));
        long length = new FileInfo(child).Length;
        using (var fs = new FileStream(child, FileMode.Open, FileAccess.Write))
            fs.SetLength(Math.Max(1, (long)(length * keep)));
        string before = Hashing.Sha256File(child);
        var ex = Assert.ThrowsAny<VirtualDiskException>(() =>
        {
            using VirtualDisk disk = VirtualDisk.Open(child, FileAccess.Read);
            var all = new byte[disk.Capacity];
            disk.Content.Position = 0;
            disk.Content.ReadExactly(all, 0, all.Length);
        });
        Assert.Contains(Path.GetFileName(child), ex.Message);
        Assert.Equal(before, Hashing.Sha256File(child));
    }

    [Theory]
    [MemberData(nameof(ContractFormats.WithParent), MemberType = typeof(ContractFormats))]
    public void AGarbageHeaderIsRefusedNamingTheFileAndLeftUnchanged(DiskFormat format)
    {
        using var dir = new TempFolder();
        string path = dir.File("disk" + ContractFormats.Extension(format));
        VirtualDisk.CreateDynamic(path, Size, ContractFormats.Create(format)).Dispose();
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write))
            fs.Write(Pattern(7, 4096), 0, 4096);
        string before = Hashing.Sha256File(path);
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(path, FileAccess.ReadWrite).Dispose());
        Assert.Equal(path, ex.Path);
        Assert.Equal(before, Hashing.Sha256File(path));
    }

    [OracleTheory(tools: new[] { "qemu-img" }, python: new[] { "pyvhdi" })]
    [MemberData(nameof(ContractFormats.WithParent), MemberType = typeof(ContractFormats))]
    public void TheFormatsOracleReadsTheChainAsVmCloneDoes(DiskFormat format)
    {
        using var dir = new TempFolder();
        string ext = ContractFormats.Extension(format);
        string parent = dir.File("base" + ext), child = dir.File("child" + ext);
        VirtualDisk.CreateDynamic(parent, Size, ContractFormats.Create(format)).Dispose();
        Write(parent, 12_345, Pattern(8, 700_000));
        VirtualDisk.CreateDifferencing(child, parent, ContractFormats.Create(format)).Dispose();
        Write(child, 500_001, Pattern(9, 333_333));
        Write(child, Size - 10_000, Pattern(10, 10_000));
        string? parentSha = ContractFormats.OracleSha256(format, new[] { parent });
        string? childSha = ContractFormats.OracleSha256(format, new[] { parent, child });
        if (parentSha is null || childSha is null)
            return; // a format without an oracle is judged by the other contract tests alone
        Assert.Equal(Hashing.Sha256Bytes(ReadAll(parent)), parentSha);
        Assert.Equal(Hashing.Sha256Bytes(ReadAll(child)), childSha);
    }
}
