using System.IO;
using System.Linq;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vhd;

/// <summary>Real VHD files from Windows and qemu (see shared/corpus/MANIFEST.md), read in place.</summary>
public class VhdCorpusTests
{
    private const string PlasoSha = "c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25";

    [CorpusTheory]
    [InlineData("dissect.hypervisor/dynamic.vhd.gz", 10L << 20, DiskType.Dynamic, "ecff2ef6615a3cddc6a6885f1c6d9cf13a232697e1dc6575f2c2f01f57247784")]
    [InlineData("dissect.hypervisor/fixed.vhd.gz", 10L << 20, DiskType.Fixed, "459325ab1fcd1d5ec9854cba790ee26378317cda177ffc1072008a1df88e6463")]
    [InlineData("plaso/image.vhd", 104_448L, DiskType.Dynamic, PlasoSha)]
    [InlineData("dfvfs/ext2.vhd", 4_212_736L, DiskType.Dynamic, "870be7ae16c1fa8faab05c6eb9205dc9a7ae35c5f552c5cf8a267c0bc6a5cb99")]
    public void ImageReadsTheManifestContentAndStaysUntouched(string image, long size, DiskType type, string sha)
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract(image, dir);
        string before = Hashing.Sha256File(path);
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read))
        {
            Assert.Equal(DiskFormat.Vhd, disk.Format);
            Assert.Equal(type, disk.Type);
            Assert.Equal(size, disk.Capacity);
            Assert.Equal(sha, Hashing.Sha256Stream(disk.Content));
            Assert.Empty(disk.Top.Check());
        }
        Assert.Equal(before, Hashing.Sha256File(path));
    }

    [CorpusFact]
    public void AWindowsDynamicDiskWithBlocksOutOfFileOrderReportsItsCreatorAndBlockSize()
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract("dissect.hypervisor/dynamic.vhd.gz", dir);
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        Assert.Equal("win", layer.Details["Creator"]);
        Assert.Equal(2L << 20, layer.BlockSize);
        Assert.Equal(3 * (2L << 20), layer.AllocatedBytes);
        Assert.Equal("current size", layer.Details["SizeFrom"]);
    }

    [CorpusFact]
    public void AQemuDynamicDiskIsSizedByItsGeometry()
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract("plaso/image.vhd", dir);
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        Assert.Equal("geometry", layer.Details["SizeFrom"]);
        Assert.Equal("3/4/17", layer.Details["Geometry"]);
    }

    [CorpusTheory]
    [InlineData("dfvfs/image.vhd")]
    [InlineData("dfvfs/image-differential.vhd")]
    public void ABadChecksumIsRefusedNamingTheFileAndTheChecksum(string image)
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract(image, dir);
        string before = Hashing.Sha256File(path);
        var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(path, FileAccess.Read).Dispose());
        Assert.Contains("checksum", ex.Structure);
        Assert.Contains(path, ex.Message);
        Assert.Contains("checksum", ex.Message);
        Assert.Equal(before, Hashing.Sha256File(path));
    }

    [CorpusFact]
    public void ABadChecksumFileIsReadOnlyWhenBadChecksumsAreAccepted()
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract("dfvfs/image.vhd", dir);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, new DiskOpenOptions { AcceptBadChecksums = true });
        Assert.Equal(104_448L, disk.Capacity);
        Assert.Equal(PlasoSha, Hashing.Sha256Stream(disk.Content));
        Assert.Contains(disk.Top.Check(), p => p.Contains("checksum"));
    }

    [CorpusFact]
    public void ADifferencingDiskWithoutLocatorsFindsItsParentByNameWhenBadChecksumsAreAccepted()
    {
        using var dir = new TempFolder();
        Corpus.Extract("dfvfs/image.vhd", dir);
        string child = Corpus.Extract("dfvfs/image-differential.vhd", dir);
        using VirtualDisk disk = VirtualDisk.Open(child, FileAccess.Read, new DiskOpenOptions { AcceptBadChecksums = true });
        Assert.Equal(DiskType.Differencing, disk.Type);
        Assert.Equal(2, disk.Layers.Count);
        Assert.Equal(dir.File("image.vhd"), disk.Layers[1].Path);
        Assert.Equal(PlasoSha, Hashing.Sha256Stream(disk.Content));
    }

    [CorpusFact]
    public void AWindowsDifferencingDiskWithoutItsParentFailsNamingTheParent()
    {
        using var dir = new TempFolder();
        string child = Corpus.Extract("dfvfs/fat-differential.vhd", dir);
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child, FileAccess.Read).Dispose());
        Assert.Equal(ChainProblem.ParentMissing, ex.Problem);
        Assert.Contains("fat-parent.vhd", ex.Message);
        Assert.Contains(child, ex.Message);
    }

    [CorpusFact]
    public void AWindowsDifferencingDiskIsSizedByItsCurrentSizeAndRecordsBothLocators()
    {
        using var dir = new TempFolder();
        string child = Corpus.Extract("dfvfs/fat-differential.vhd", dir);
        using DiskLayer layer = VirtualDisk.OpenLayer(child, FileAccess.Read);
        Assert.Equal(DiskType.Differencing, layer.Type);
        Assert.Equal(4L << 20, layer.VirtualSize);
        ParentPathCandidate[] candidates = layer.ParentReference!.Candidates.ToArray();
        Assert.Equal(ParentPathKind.Relative, candidates[0].Kind);
        Assert.Equal(".\\fat-parent.vhd", candidates[0].StoredPath);
        Assert.Contains(candidates, c => c.Kind == ParentPathKind.Absolute && c.StoredPath == "C:\\Projects\\dfvfs\\test_data\\fat-parent.vhd");
    }

    [CorpusFact]
    public void AParentWhoseUniqueIdDiffersIsRefusedAsModified()
    {
        using var dir = new TempFolder();
        string child = Corpus.Extract("dfvfs/fat-differential.vhd", dir);
        File.Copy(Corpus.Extract("dfvfs/ext2.vhd", dir), dir.File("fat-parent.vhd"));
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child, FileAccess.Read).Dispose());
        Assert.Equal(ChainProblem.ParentModified, ex.Problem);
        Assert.Contains("fat-parent.vhd", ex.Message);
    }
}
