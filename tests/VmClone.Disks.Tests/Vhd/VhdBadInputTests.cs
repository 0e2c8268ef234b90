using System;
using System.Buffers.Binary;
using System.IO;
using System.Threading.Tasks;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhd;
using Xunit;

namespace VmClone.Disks.Tests.Vhd;

/// <summary>Damaged and hostile VHDs: a clear error naming file, structure and offset; nothing written; no hang; memory bounded.</summary>
public class VhdBadInputTests
{
    private static VhdBuilder Dynamic()
    {
        var b = new VhdBuilder();
        b.Store(0, VhdBuilder.Pattern(1, 64 * 1024));
        b.Store(3, VhdBuilder.Pattern(2, 64 * 1024));
        return b;
    }

    private static byte[] Expected(VhdBuilder b)
    {
        var all = new byte[b.Size];
        foreach (var (block, (_, data)) in b.Blocks)
            data.CopyTo(all, block * b.BlockSize);
        return all;
    }

    private static byte[] ReadAll(string path, DiskOpenOptions? options = null)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, options);
        var all = new byte[disk.Capacity];
        disk.Content.ReadExactly(all, 0, all.Length);
        return all;
    }

    private static DiskFormatException Refused(string path, DiskOpenOptions? options = null)
    {
        string before = Hashing.Sha256File(path);
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(path, FileAccess.Read, options).Dispose());
        Assert.Contains(path, ex.Message);
        Assert.Equal(before, Hashing.Sha256File(path));
        return ex;
    }

    [Fact]
    public void ADynamicDiskWithBlocksOutOfFileOrderReadsWhatItStores()
    {
        using var dir = new TempFolder();
        VhdBuilder b = Dynamic();
        string path = b.WriteTo(dir.File("d.vhd"));
        Assert.Equal(Expected(b), ReadAll(path));
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        Assert.Equal(DiskFormat.Vhd, layer.Format);
        Assert.Equal(64 * 1024, layer.BlockSize);
        Assert.Empty(layer.Check());
    }

    [Fact]
    public void AFooterCopyWithABadChecksumIsPassedOverForTheGoodOne()
    {
        using var dir = new TempFolder();
        VhdBuilder b = Dynamic();
        b.Tamper = bytes => bytes[64] ^= 0x01; // the copy at offset 0
        string head = b.WriteTo(dir.File("head.vhd"));
        Assert.Equal(Expected(b), ReadAll(head));
        using (DiskLayer layer = VirtualDisk.OpenLayer(head, FileAccess.Read))
            Assert.Contains(layer.Check(), p => p.Contains("copy at offset 0 has a bad checksum"));

        b.Tamper = bytes => bytes[bytes.Length - 512 + 64] ^= 0x01; // the footer at the end
        string tail = b.WriteTo(dir.File("tail.vhd"));
        Assert.Equal(Expected(b), ReadAll(tail));
    }

    [Fact]
    public void BothFooterChecksumsBadIsRefusedUnlessAccepted()
    {
        using var dir = new TempFolder();
        VhdBuilder b = Dynamic();
        b.Tamper = bytes =>
        {
            bytes[64] ^= 0x01;
            bytes[bytes.Length - 512 + 64] ^= 0x01;
        };
        string path = b.WriteTo(dir.File("d.vhd"));
        DiskFormatException ex = Refused(path);
        Assert.Equal("footer checksum", ex.Structure);
        Assert.Contains("both copies", ex.Message);
        Assert.Equal(Expected(b), ReadAll(path, new DiskOpenOptions { AcceptBadChecksums = true }));
        var write = Assert.ThrowsAny<VirtualDiskException>(() => VirtualDisk.Open(path, FileAccess.ReadWrite, new DiskOpenOptions { AcceptBadChecksums = true }).Dispose());
        Assert.Contains("bad checksum", write.Message);
        Assert.Equal(Hashing.Sha256Bytes(b.Build()), Hashing.Sha256File(path));
    }

    [Fact]
    public void ADynamicHeaderWithABadChecksumIsRefusedUnlessAccepted()
    {
        using var dir = new TempFolder();
        VhdBuilder b = Dynamic();
        b.Tamper = bytes => bytes[VhdBuilder.HeaderAt + 36] ^= 0x10;
        string path = b.WriteTo(dir.File("d.vhd"));
        DiskFormatException ex = Refused(path);
        Assert.Equal("dynamic disk header checksum", ex.Structure);
        Assert.Equal(VhdBuilder.HeaderAt, ex.Offset);
        Assert.Equal(Expected(b), ReadAll(path, new DiskOpenOptions { AcceptBadChecksums = true }));
    }

    [Fact]
    public void ABatPastTheEndOfTheFileIsRefused()
    {
        using var dir = new TempFolder();
        VhdBuilder b = Dynamic();
        b.Tamper = bytes => VhdBuilder.PatchHeader(bytes, h => BinaryPrimitives.WriteUInt64BigEndian(h.AsSpan(16), (ulong)bytes.Length - 8));
        DiskFormatException ex = Refused(b.WriteTo(dir.File("d.vhd")));
        Assert.Equal("BAT", ex.Structure);
        Assert.Contains("beyond the end of the file", ex.Message);
    }

    [Fact]
    public void ABatOverTheDynamicHeaderIsRefused()
    {
        using var dir = new TempFolder();
        VhdBuilder b = Dynamic();
        b.Tamper = bytes => VhdBuilder.PatchHeader(bytes, h => BinaryPrimitives.WriteUInt64BigEndian(h.AsSpan(16), VhdBuilder.HeaderAt + 512));
        DiskFormatException ex = Refused(b.WriteTo(dir.File("d.vhd")));
        Assert.Equal("BAT", ex.Structure);
        Assert.Contains("overlaps the dynamic disk header", ex.Message);
    }

    [Fact]
    public void ABlockSizeThatIsNoPowerOfTwoIsRefused()
    {
        using var dir = new TempFolder();
        VhdBuilder b = Dynamic();
        b.Tamper = bytes => VhdBuilder.PatchHeader(bytes, h => BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(32), 3 * 1024 * 1024));
        DiskFormatException ex = Refused(b.WriteTo(dir.File("d.vhd")));
        Assert.Equal("dynamic disk header", ex.Structure);
        Assert.Contains("block size 3145728 is not a power of two", ex.Message);
    }

    [Fact]
    public void ABlockTwoEntriesNameIsRefused()
    {
        using var dir = new TempFolder();
        VhdBuilder b = Dynamic();
        b.Tamper = bytes => Array.Copy(bytes, VhdBuilder.BatAt, bytes, VhdBuilder.BatAt + 4, 4);
        DiskFormatException ex = Refused(b.WriteTo(dir.File("d.vhd")));
        Assert.Equal("BAT", ex.Structure);
        Assert.Contains("overlaps block", ex.Message);
    }

    [Fact]
    public void ABlockPastTheEndOfTheFileIsRefused()
    {
        using var dir = new TempFolder();
        VhdBuilder b = Dynamic();
        b.Tamper = bytes => BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(VhdBuilder.BatAt + 8), 0x00FFFFFF);
        DiskFormatException ex = Refused(b.WriteTo(dir.File("d.vhd")));
        Assert.Equal("BAT", ex.Structure);
        Assert.Equal(VhdBuilder.BatAt + 8, ex.Offset);
    }

    [Fact]
    public async Task ATinyFileClaimingTwoTebibytesIsRefusedQuicklyWithLittleMemory()
    {
        using var dir = new TempFolder();
        var b = new VhdBuilder { Size = 4L << 20, BlockSize = 2 << 20 };
        b.Tamper = bytes =>
        {
            VhdBuilder.PatchFooters(bytes, f => BinaryPrimitives.WriteUInt64BigEndian(f.AsSpan(48), 2040UL << 30));
            VhdBuilder.PatchHeader(bytes, h => BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(28), 1u << 20));
        };
        string path = b.WriteTo(dir.File("big.vhd"));
        Assert.True(new FileInfo(path).Length < 8192);
        var task = Task.Run(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            DiskFormatException ex = Refused(path);
            return (ex, GC.GetAllocatedBytesForCurrentThread() - before);
        });
        Assert.True(await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(30))) == task, "opening the file hung");
        (DiskFormatException error, long allocated) = await task;
        Assert.Equal("BAT", error.Structure);
        Assert.True(allocated < 1L << 20, $"{allocated} bytes allocated for a {new FileInfo(path).Length}-byte file");
    }

    [Fact]
    public void ALocatorPointingOutsideTheFileIsRefused()
    {
        using var dir = new TempFolder();
        var b = new VhdBuilder { Type = VhdDiskType.Differencing, ParentId = Guid.NewGuid() };
        b.Locators.Add((ParentLocatorEntry.W2ru, ".\\parent.vhd", null, 1UL << 40));
        DiskFormatException ex = Refused(b.WriteTo(dir.File("child.vhd")));
        Assert.Equal("parent locator", ex.Structure);
        Assert.Contains("outside the file", ex.Message);
    }

    [Fact]
    public void AFixedDiskClaimingMoreThanItHoldsIsRefused()
    {
        using var dir = new TempFolder();
        string path = dir.File("f.vhd");
        var footer = VhdFooter.Create(VhdDiskType.Fixed, 1L << 20, ulong.MaxValue, Guid.NewGuid(), 0);
        var bytes = new byte[(64 * 1024) + 512];
        footer.Raw.CopyTo(bytes, 64 * 1024);
        File.WriteAllBytes(path, bytes);
        DiskFormatException ex = Refused(path);
        Assert.Equal("footer", ex.Structure);
        Assert.Equal(64 * 1024, ex.Offset);
    }
}
