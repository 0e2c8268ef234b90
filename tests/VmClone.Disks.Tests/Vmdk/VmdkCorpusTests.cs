using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vmdk;

/// <summary>Real VMDK files from other writers (qemu, VirtualBox, ESXi) against the manifest's digests.</summary>
public class VmdkCorpusTests
{
    [CorpusTheory]
    [InlineData("dfvfs/ext2.vmdk", 4194304L, "a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80", "monolithicSparse")]
    [InlineData("dfvfs/image.vmdk", 102400L, "854c3db1c4a07a241e2ed9fbd8892adf2adc662c7862a75deed26f3483f414c9", "monolithicSparse")]
    [InlineData("xo-vmdk-to-vhd/test.vmdk", 4194304L, "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8", "streamOptimized")]
    public void CorpusImageMatchesManifest(string relative, long size, string sha256, string createType)
    {
        string source = Corpus.Source(relative);
        string before = Hashing.Sha256File(source);
        using (VirtualDisk disk = VirtualDisk.Open(source, FileAccess.Read))
        {
            Assert.Equal(DiskFormat.Vmdk, disk.Format);
            Assert.Single(disk.Layers);
            Assert.Equal(size, disk.Capacity);
            Assert.Equal(createType, disk.Top.Details["CreateType"]);
            Assert.Equal(sha256, Hashing.Sha256Stream(disk.Content));
            Assert.Empty(disk.Top.Check());
            Assert.Matches("^[0-9a-f]{8}$", disk.Top.Identity);
        }
        Assert.Equal(before, Hashing.Sha256File(source));
    }

    [CorpusFact]
    public void RenamedStreamOptimizedImageStillOpens()
    {
        // The embedded descriptor names test-disk1.vmdk; single-file images ignore that name.
        using var dir = new TempFolder();
        string copy = Corpus.Extract("xo-vmdk-to-vhd/test.vmdk", dir);
        string renamed = dir.File("renamed.vmdk");
        File.Move(copy, renamed);
        Assert.Equal("bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8", VmdkTestData.Sha256(renamed));
    }

    [CorpusFact]
    public void StreamOptimizedCorpusImageRefusesWriteAccess()
    {
        using var dir = new TempFolder();
        string copy = Corpus.Extract("xo-vmdk-to-vhd/test.vmdk", dir);
        string before = Hashing.Sha256File(copy);
        var ex = Assert.Throws<VirtualDiskException>(() => VirtualDisk.Open(copy, FileAccess.ReadWrite));
        Assert.Contains("streamOptimized", ex.Message);
        Assert.Contains(copy, ex.Message);
        Assert.Equal(before, Hashing.Sha256File(copy));
    }

    [CorpusFact]
    public void SesparseExtentIsRefusedByName()
    {
        using var dir = new TempFolder();
        string extent = Corpus.Extract("dissect.hypervisor/sesparse.vmdk.gz", dir);
        string before = Hashing.Sha256File(extent);
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(extent, FileAccess.Read));
        Assert.Contains("SESparse", ex.Message);
        Assert.Contains(extent, ex.Message);
        var direct = Assert.Throws<DiskFormatException>(() => VirtualDisk.OpenLayer(extent, FileAccess.Read, DiskFormat.Vmdk));
        Assert.Contains("SESparse", direct.Message);

        // Through a descriptor, as qemu opens it (MANIFEST's wrapper).
        string wrapper = dir.File("wrapper.vmdk");
        File.WriteAllText(wrapper, "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"seSparse\"\n\n# Extent description\nRW 1048576 SESPARSE \"sesparse.vmdk\"\n");
        var viaDescriptor = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(wrapper, FileAccess.Read));
        Assert.Contains("SESparse", viaDescriptor.Message);
        Assert.Equal(before, Hashing.Sha256File(extent));
    }

    [CorpusFact]
    public void ReadWriteOpenWithoutWritingLeavesTheFileByteIdentical()
    {
        using var dir = new TempFolder();
        string copy = Corpus.Extract("dfvfs/ext2.vmdk", dir);
        string before = Hashing.Sha256File(copy);
        using (VirtualDisk disk = VirtualDisk.Open(copy, FileAccess.ReadWrite))
            Hashing.Sha256Stream(disk.Content);
        Assert.Equal(before, Hashing.Sha256File(copy));
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void WritingIntoAQemuMadeCorpusImageKeepsItValidForQemu()
    {
        using var dir = new TempFolder();
        string copy = Corpus.Extract("dfvfs/image.vmdk", dir); // 200 sectors: last grain clipped
        using (VirtualDisk disk = VirtualDisk.Open(copy, FileAccess.ReadWrite))
        {
            byte[] data = new byte[40_000];
            new System.Random(3).NextBytes(data);
            disk.Content.Position = 102400 - 40_000;
            disk.Content.Write(data, 0, data.Length);
        }
        var (code, output) = VmdkOracle.QemuCheck(copy);
        Assert.True(code == 0, output);
        Assert.Equal(Oracle.QemuRawSha256(copy, "vmdk"), VmdkTestData.Sha256(copy));
    }
}
