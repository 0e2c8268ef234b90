using System.IO;
using VmClone.Disks.Qcow2;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Qcow2;

/// <summary>Every qcow2 image of the shared corpus (qemu-made, versions 2 and 3) against the manifest's content digests.</summary>
public class Qcow2CorpusTests
{
    [CorpusTheory]
    [InlineData("dissect.hypervisor/basic.qcow2.gz", 536870912L, "3c86a52ad19ebbe34acffb812d276817ddca56522eb72de2b984d70ffb20582f", 3)]
    [InlineData("dissect.hypervisor/basic-zstd.qcow2.gz", 536870912L, "3c86a52ad19ebbe34acffb812d276817ddca56522eb72de2b984d70ffb20582f", 3)]
    [InlineData("dissect.hypervisor/backing-chain-3.qcow2.gz", 536870912L, "4a57a3a5c273c7c1144743ecafc7b23181f6e23c8abad104493a63a3599bd276", 3)]
    [InlineData("dissect.hypervisor/snapshot.qcow2.gz", 536870912L, "9acca8e8c22201155389f65abbf6bc9723edc7384ead80503839f49dcc56d767", 3)]
    [InlineData("plaso/image.qcow2", 102400L, "a9c0220b1dadd1812fc4bbe137f495d2c3b88c7b33b5a4de545d201fd31b3bc0", 2)]
    [InlineData("plaso/vsstest.qcow2", 1073741824L, "5cba558cfac0916cae697d2231dc1e17874aa262f2890f5236fb9c90b9610d0a", 2)]
    [InlineData("dfvfs/ext2.qcow2", 4194304L, "a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80", 3)]
    [InlineData("dfvfs/windows_volume.qcow2", 35913728L, "44abe9deca9658f331a2bdba2deb53192d04f35d157a1fb3ba0597b03f0524f2", 3)]
    [InlineData("qcow2-rs/test.qcow2", 1048576000L, "a3ffecd2207bd29b9d1b4c59fc4ff68f24c9242b62b3a813417cb7d0c670e3fc", 3)]
    public void CorpusImageMatchesManifest(string relative, long size, string sha256, int version)
    {
        using var dir = new TempFolder();
        string image = Corpus.Extract(relative, dir);
        string before = Hashing.Sha256File(image);
        using (VirtualDisk disk = Qcow2Chain.Open(image))
        {
            var top = Assert.IsType<Qcow2Layer>(disk.Top);
            Assert.Equal(DiskFormat.Qcow2, disk.Format);
            Assert.Single(disk.Layers);
            Assert.Equal(size, disk.Capacity);
            Assert.Equal(version, top.Version);
            Assert.Equal(sha256, Hashing.Sha256Stream(disk.Content));
            Assert.Empty(top.Check());
        }
        Assert.Equal(before, Hashing.Sha256File(image));
    }

    [CorpusFact]
    public void SnapshotImageReadsItsActiveLayer()
    {
        using var dir = new TempFolder();
        string image = Corpus.Extract("dissect.hypervisor/snapshot.qcow2.gz", dir);
        using VirtualDisk disk = Qcow2Chain.Open(image);
        Assert.Equal(2, ((Qcow2Layer)disk.Top).SnapshotCount);
        Assert.Equal("2", disk.Top.Details["Snapshots"]);
    }

    [CorpusFact]
    public void DepthThreeBackingChainReadsThroughEveryLayer()
    {
        using var dir = new TempFolder();
        foreach (int i in new[] { 1, 2, 3 })
            Corpus.Extract($"dissect.hypervisor/backing-chain-{i}.qcow2.gz", dir);
        string top = dir.File("backing-chain-1.qcow2");
        using (VirtualDisk disk = Qcow2Chain.Open(top))
        {
            Assert.Equal(3, disk.Layers.Count);
            Assert.Equal(DiskType.Differencing, disk.Type);
            Assert.Equal("backing-chain-2.qcow2", ((Qcow2Layer)disk.Top).BackingFileName);
            Assert.Equal("qcow2", ((Qcow2Layer)disk.Top).BackingFormat);
            Assert.Equal(dir.File("backing-chain-3.qcow2"), disk.Layers[2].Path);
            Assert.Equal("186334af67c1acb54b08ded0b6a419571000755d4c810c8b768a30281e2ab074", Hashing.Sha256Stream(disk.Content));
        }
        using (VirtualDisk middle = Qcow2Chain.Open(dir.File("backing-chain-2.qcow2")))
            Assert.Equal("8e2e850f2a31828f6f053f70f1fbfa71a42ce0571c6d8cd2a7ca0e21e1db8341", Hashing.Sha256Stream(middle.Content));
    }

    [CorpusFact]
    public void ExternalDataFileIsRefusedNamingItUnlessAllowed()
    {
        using var dir = new TempFolder();
        string image = Corpus.Extract("dissect.hypervisor/data-file.qcow2.gz", dir);
        Corpus.Extract("dissect.hypervisor/data-file.bin.gz", dir);
        var ex = Assert.Throws<DiskFormatException>(() => Qcow2Layer.Open(image, false));
        Assert.Contains("data-file.bin", ex.Message);
        Assert.Contains(image, ex.Message);
        Assert.Contains("external data file", ex.Message);

        using VirtualDisk disk = Qcow2Chain.Open(image, new DiskOpenOptions { AllowExternalDataFile = true });
        Assert.Equal("3c86a52ad19ebbe34acffb812d276817ddca56522eb72de2b984d70ffb20582f", Hashing.Sha256Stream(disk.Content));
    }
}
