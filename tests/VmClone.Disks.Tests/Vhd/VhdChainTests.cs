using System;
using System.IO;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhd;
using Xunit;

namespace VmClone.Disks.Tests.Vhd;

/// <summary>Differencing VHD chains: locators, parent identity, sector bitmaps, containment, loops and depth.</summary>
public class VhdChainTests
{
    private const uint Block = 64 * 1024;

    /// <summary>A base with blocks 0 and 2, a child storing a few sectors of block 0 and all of block 1, a grandchild over both.</summary>
    private static (string[] Chain, byte[] Model) BuildChain(TempFolder dir, Func<VhdBuilder, string, VhdBuilder>? locate = null)
    {
        locate ??= (b, parent) =>
        {
            b.Locators.Add((ParentLocatorEntry.W2ru, ".\\" + parent, 4096, null));
            b.Locators.Add((ParentLocatorEntry.W2ku, "C:\\nowhere\\" + parent, 4096, null));
            return b;
        };
        var model = new byte[1L << 20];
        var bas = new VhdBuilder { BlockSize = Block };
        bas.Store(0, VhdBuilder.Pattern(10, (int)Block));
        bas.Store(2, VhdBuilder.Pattern(12, (int)Block));
        foreach (var (b, (_, d)) in bas.Blocks)
            d.CopyTo(model, b * Block);
        bas.WriteTo(dir.File("base.vhd"));

        var child = locate(new VhdBuilder { BlockSize = Block, Type = VhdDiskType.Differencing, ParentId = bas.Id, ParentName = "base.vhd" }, "base.vhd");
        var sectors = new bool[Block / 512];
        // Sectors 0-7 (byte 0 = 0xFF), 23 (byte 2 = 0x01) and 127 (byte 15 = 0x01): most significant
        // bit first, so a reader taking bits least significant first reads sectors 16 and 120
        // instead. Each set bit ends its byte or fills it: libvhdi 20210425 reads a set bit's
        // sector and every later one of its byte from the child.
        for (int s = 0; s < 8; s++)
            sectors[s] = true;
        sectors[23] = sectors[127] = true;
        byte[] c0 = VhdBuilder.Pattern(20, (int)Block);
        child.Store(0, c0, sectors);
        for (int s = 0; s < sectors.Length; s++)
            if (sectors[s])
                Array.Copy(c0, s * 512, model, s * 512, 512);
        byte[] c1 = VhdBuilder.Pattern(21, (int)Block);
        child.Store(1, c1);
        c1.CopyTo(model, Block);
        child.WriteTo(dir.File("child.vhd"));

        var grand = locate(new VhdBuilder { BlockSize = Block, Type = VhdDiskType.Differencing, ParentId = child.Id, ParentName = "child.vhd" }, "child.vhd");
        var g = new bool[Block / 512];
        for (int s = 64; s < 80; s++)
            g[s] = true;
        byte[] g2 = VhdBuilder.Pattern(30, (int)Block);
        grand.Store(2, g2, g);
        Array.Copy(g2, 64 * 512, model, 2 * Block + 64 * 512, 16 * 512);
        grand.WriteTo(dir.File("grand.vhd"));
        return (new[] { dir.File("base.vhd"), dir.File("child.vhd"), dir.File("grand.vhd") }, model);
    }

    private static byte[] ReadAll(VirtualDisk disk)
    {
        var all = new byte[disk.Capacity];
        disk.Content.ReadExactly(all, 0, all.Length);
        return all;
    }

    [Fact]
    public void AChainOfThreeReadsEachLayersSectorsAndTheParentElsewhere()
    {
        using var dir = new TempFolder();
        (string[] chain, byte[] model) = BuildChain(dir);
        using VirtualDisk disk = VirtualDisk.Open(chain[2], FileAccess.Read);
        Assert.Equal(3, disk.Layers.Count);
        Assert.Equal(model, ReadAll(disk));
    }

    [OracleFact(python: new[] { "pyvhdi" })]
    public void LibvhdiReadsTheChainAsVmCloneDoes()
    {
        using var dir = new TempFolder();
        (string[] chain, byte[] model) = BuildChain(dir);
        using VirtualDisk disk = VirtualDisk.Open(chain[2], FileAccess.Read);
        string ours = Hashing.Sha256Stream(disk.Content);
        Assert.Equal(Oracle.LibvhdiSha256(chain), ours);
        Assert.Equal(Hashing.Sha256Bytes(model), ours);
    }

    [Fact]
    public void AnAbsoluteLocatorIsTriedWhenTheRelativeOneLeadsNowhere()
    {
        using var dir = new TempFolder();
        (string[] chain, byte[] model) = BuildChain(dir, (b, parent) =>
        {
            b.Locators.Add((ParentLocatorEntry.W2ru, ".\\missing\\" + parent, 4096, null));
            b.Locators.Add((ParentLocatorEntry.W2ku, dir.File(parent), 4096, null));
            return b;
        });
        using VirtualDisk disk = VirtualDisk.Open(chain[2], FileAccess.Read);
        Assert.Equal(model, ReadAll(disk));
    }

    [Fact]
    public void AMacXLocatorWithDataSpaceInSectorsIsRead()
    {
        using var dir = new TempFolder();
        (string[] chain, byte[] model) = BuildChain(dir, (b, parent) =>
        {
            b.Locators.Add((ParentLocatorEntry.MacX, "./" + parent, 1, null));
            return b;
        });
        using VirtualDisk disk = VirtualDisk.Open(chain[2], FileAccess.Read);
        Assert.Equal(model, ReadAll(disk));
    }

    [Fact]
    public void WithoutLocatorsTheParentNameFieldFindsTheParent()
    {
        using var dir = new TempFolder();
        (string[] chain, byte[] model) = BuildChain(dir, (b, _) => b);
        using VirtualDisk disk = VirtualDisk.Open(chain[2], FileAccess.Read);
        Assert.Equal(model, ReadAll(disk));
    }

    [Fact]
    public void AParentOutsideTheAllowedRootIsNotOpened()
    {
        using var dir = new TempFolder();
        (string[] chain, _) = BuildChain(dir);
        Directory.CreateDirectory(dir.File("root"));
        string child = dir.File("root/child.vhd");
        File.Move(chain[1], child);
        // The child now names its parent by the relative "..\base.vhd" only through the name field fallback; give it a locator that leads out.
        var b = new VhdBuilder { BlockSize = Block, Type = VhdDiskType.Differencing, ParentId = GetId(chain[0]) };
        b.Locators.Add((ParentLocatorEntry.W2ru, "..\\base.vhd", 4096, null));
        b.WriteTo(child.Replace("child.vhd", "c.vhd"));
        var ex = Assert.Throws<DiskChainException>(() =>
            VirtualDisk.Open(dir.File("root/c.vhd"), FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = dir.File("root") }).Dispose());
        Assert.Equal(ChainProblem.OutsideAllowedRoot, ex.Problem);
        Assert.Contains("base.vhd", ex.Message);
    }

    [Fact]
    public async System.Threading.Tasks.Task AChildNamingItselfAsParentIsALoop()
    {
        using var dir = new TempFolder();
        var b = new VhdBuilder { BlockSize = Block, Type = VhdDiskType.Differencing };
        b.ParentId = b.Id;
        b.Locators.Add((ParentLocatorEntry.W2ru, ".\\self.vhd", 4096, null));
        string path = b.WriteTo(dir.File("self.vhd"));
        var task = System.Threading.Tasks.Task.Run(() => Assert.Throws<DiskChainException>(() => VirtualDisk.Open(path, FileAccess.Read).Dispose()));
        Assert.True(await System.Threading.Tasks.Task.WhenAny(task, System.Threading.Tasks.Task.Delay(TimeSpan.FromSeconds(30))) == task, "a loop hung the open");
        Assert.Equal(ChainProblem.Loop, (await task).Problem);
    }

    [Fact]
    public void AChainDeeperThanTheLimitIsReported()
    {
        using var dir = new TempFolder();
        (string[] chain, _) = BuildChain(dir);
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(chain[2], FileAccess.Read, new DiskOpenOptions { MaxChainDepth = 2 }).Dispose());
        Assert.Equal(ChainProblem.TooDeep, ex.Problem);
    }

    [Fact]
    public void TheChildReportsItsParentIdentityAndLocators()
    {
        using var dir = new TempFolder();
        (string[] chain, _) = BuildChain(dir);
        using DiskLayer child = VirtualDisk.OpenLayer(chain[1], FileAccess.Read);
        using DiskLayer parent = VirtualDisk.OpenLayer(chain[0], FileAccess.Read);
        Assert.Equal(DiskType.Differencing, child.Type);
        Assert.Equal(parent.Identity, child.ParentReference!.ExpectedIdentity);
        Assert.Equal(parent.Identity, child.Details["ParentUniqueId"]);
        Assert.Equal("base.vhd", child.Details["ParentName"]);
        Assert.Equal(".\\base.vhd", child.ParentReference.Candidates[0].StoredPath);
    }

    private static Guid GetId(string path)
    {
        using var layer = (VhdLayer)VirtualDisk.OpenLayer(path, FileAccess.Read);
        return layer.Footer.UniqueId;
    }
}
