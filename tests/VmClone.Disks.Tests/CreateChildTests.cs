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
}
