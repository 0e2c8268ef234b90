using System;
using System.IO;
using System.Linq;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>
/// CreateDifferencing opens the parent chain once and links the new child to those layers:
/// the result must be the chain a fresh open finds, and refusals must leave no file behind.
/// </summary>
public class CreateChildTests
{
    private const long MiB = 1024 * 1024;

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    public void TheNewChildIsLinkedToTheChainAFreshOpenFinds(string ext)
    {
        using var dir = new TempFolder();
        string b = dir.File("base." + ext), m = dir.File("sub/mid." + ext), t = dir.File("top." + ext);
        Directory.CreateDirectory(Path.GetDirectoryName(m)!);
        byte[] data = new byte[70_000];
        new Random(9).NextBytes(data);
        using (VirtualDisk d = VirtualDisk.CreateDynamic(b, 40 * MiB))
        {
            d.Content.Position = 5 * MiB + 100;
            d.Content.Write(data, 0, data.Length);
        }
        VirtualDisk.CreateDifferencing(m, b).Dispose();
        using (VirtualDisk top = VirtualDisk.CreateDifferencing(t, m))
        {
            Assert.Equal(new[] { t, m, b }, top.Layers.Select(l => l.Path));
            Assert.Same(top.Layers[1], top.Layers[0].Parent);
            Assert.Same(top.Layers[2], top.Layers[1].Parent);
            Assert.True(top.CanWrite);
            Assert.False(top.Layers[1].CanWrite);
            var read = new byte[data.Length];
            top.Content.Position = 5 * MiB + 100;
            top.Content.ReadExactly(read, 0, read.Length);
            Assert.Equal(data, read);
            top.Content.Position = 0;
            top.Content.Write(data, 0, 1000);
        }
        using VirtualDisk fresh = VirtualDisk.Open(t, FileAccess.Read);
        Assert.Equal(new[] { t, m, b }, fresh.Layers.Select(l => l.Path));
        Assert.True(fresh.Layers[0].ParentReference!.Accepts(fresh.Layers[1].Identity));
        var head = new byte[1000];
        fresh.Content.ReadExactly(head, 0, head.Length);
        Assert.Equal(data.AsSpan(0, 1000).ToArray(), head);
    }

    [Fact]
    public void AParentChainAtTheDepthLimitIsRefusedBeforeAnyFileIsMade()
    {
        using var dir = new TempFolder();
        string previous = dir.File("l0.vhdx");
        VirtualDisk.CreateDynamic(previous, 8 * MiB).Dispose();
        for (int i = 1; i < DiskOpenOptions.DefaultMaxChainDepth; i++)
        {
            string next = dir.File($"l{i}.vhdx");
            VirtualDisk.CreateDifferencing(next, previous).Dispose();
            previous = next;
        }
        string tooDeep = dir.File("too-deep.vhdx");
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.CreateDifferencing(tooDeep, previous));
        Assert.Equal(ChainProblem.TooDeep, ex.Problem);
        Assert.False(File.Exists(tooDeep));
    }

    [Fact]
    public void AParentWhoseOwnParentChangedIsRefusedAndNoChildIsLeft()
    {
        using var dir = new TempFolder();
        string b = dir.File("base.vhdx"), m = dir.File("mid.vhdx"), t = dir.File("top.vhdx");
        VirtualDisk.CreateDynamic(b, 8 * MiB).Dispose();
        VirtualDisk.CreateDifferencing(m, b).Dispose();
        using (VirtualDisk d = VirtualDisk.Open(b, FileAccess.ReadWrite))
            d.Content.Write(new byte[512], 0, 512); // new DataWriteGuid: mid no longer matches
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.CreateDifferencing(t, m));
        Assert.Equal(ChainProblem.ParentModified, ex.Problem);
        Assert.False(File.Exists(t));
    }
    /// <summary>
    /// CreateDifferencingFile (a fleet's many children of one base): created over one open parent
    /// from several threads at once, every child opens by its own recorded paths as a child of
    /// that parent, reads exactly the parent's content, and the oracles agree.
    /// </summary>
    [OracleTheory(tools: new[] { "qemu-img", "vhdiinfo" }, python: new[] { "pyvhdi" })]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    public void ChildrenMadeOverOneOpenParentFromSeveralThreadsAreItsChildren(string ext)
    {
        using var dir = new TempFolder();
        string b = dir.File("base." + ext);
        using (VirtualDisk d = VirtualDisk.CreateDynamic(b, 40 * MiB))
        {
            var data = new byte[3 * MiB];
            new Random(4).NextBytes(data);
            d.Content.Position = 7 * MiB + 512;
            d.Content.Write(data, 0, data.Length);
        }
        string expected = VhdxFixture.Sha256OfDisk(b);
        Directory.CreateDirectory(dir.File("clones"));
        string[] children = Enumerable.Range(0, 40).Select(i => dir.File($"clones/c{i}.{ext}")).ToArray();
        using (VirtualDisk parent = VirtualDisk.Open(b, FileAccess.Read))
        {
            System.Threading.Tasks.Parallel.ForEach(children, new System.Threading.Tasks.ParallelOptions { MaxDegreeOfParallelism = 4 },
                c => VirtualDisk.CreateDifferencingFile(c, parent));
        }
        foreach (string c in children)
        {
            using VirtualDisk child = VirtualDisk.Open(c, FileAccess.Read);
            Assert.Equal(new[] { c, b }, child.Layers.Select(l => l.Path));
            Assert.Empty(child.Top.Check());
            Assert.Equal(0, child.Top.AllocatedBytes);
        }
        Assert.Equal(expected, VhdxFixture.Sha256OfDisk(children[17]));
        if (ext == "vmdk")
        {
            Assert.Contains("base.vmdk", Oracle.Run("qemu-img", $"info \"{children[3]}\"").StdOut);
            Assert.Equal(expected, Oracle.QemuRawSha256(children[3], "vmdk"));
        }
        else
        {
            Assert.Contains("base.vhdx", Oracle.Run("vhdiinfo", $"\"{children[3]}\"").StdOut);
            Oracle.PrepareEmptyVhdxChildForLibvhdi(children[3], 20 * MiB);
            expected = VhdxFixture.Sha256OfDisk(children[3]);
            Assert.Equal(expected, Oracle.LibvhdiSha256(b, children[3]), ignoreCase: true);
        }
    }

    [Fact]
    public void CreatingAChildOverAnOpenParentRefusesWhatCreateDifferencingRefuses()
    {
        using var dir = new TempFolder();
        string b = dir.File("base.vhdx");
        VirtualDisk.CreateDynamic(b, 8 * MiB, new DiskCreateOptions { LogicalSectorSizeBytes = 4096 }).Dispose();
        using VirtualDisk parent = VirtualDisk.Open(b, FileAccess.Read);
        Assert.Throws<VirtualDiskException>(() => VirtualDisk.CreateDifferencingFile(b, parent));
        string wrongSectors = dir.File("c512.vhdx");
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.CreateDifferencingFile(wrongSectors, parent, new DiskCreateOptions { LogicalSectorSizeBytes = 512 }));
        Assert.Equal(ChainProblem.Incompatible, ex.Problem);
        Assert.False(File.Exists(wrongSectors));
        string existing = dir.File("exists.vhdx");
        File.WriteAllText(existing, "not a disk");
        Assert.Throws<VirtualDiskException>(() => VirtualDisk.CreateDifferencingFile(existing, parent));
        Assert.Equal("not a disk", File.ReadAllText(existing));
    }
}
