using System;
using System.IO;
using System.Linq;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhdx;
using Xunit;

namespace VmClone.Disks.Tests.Vhdx;

/// <summary>Real VHDX files from Hyper-V (see shared/corpus/MANIFEST.md), read in place.</summary>
public class VhdxCorpusTests
{
    public const string LogReplayImage = "discutils/vhdx-log-replay.vhdx.gz";
    public const string LogReplayedSha = "3ba3b309425b7ff5e8e0199edceed95226250f880c53b24e8eae93865f3fad5e";
    public const string ZerosOneGiBSha = "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14";

    /// <summary>Opens read-only, hashes the whole content, and proves the file did not change.</summary>
    internal static void AssertManifestContent(string image, long size, string sha)
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract(image, dir);
        string before = Hashing.Sha256File(path);
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read))
        {
            Assert.Equal(DiskFormat.Vhdx, disk.Format);
            Assert.Equal(size, disk.Capacity);
            Assert.Equal(512, disk.LogicalSectorSize);
            Assert.Equal(4096, disk.Top.PhysicalSectorSize);
            Assert.Equal(sha, Hashing.Sha256Stream(disk.Content));
            var problems = disk.Top.Check();
            if (image == LogReplayImage)
                Assert.Contains(problems, p => p.Contains("not been replayed"));
            else
                Assert.Empty(problems);
        }
        Assert.Equal(before, Hashing.Sha256File(path));
    }

    [CorpusTheory]
    [InlineData(LogReplayImage, 1L << 30, LogReplayedSha)]
    [InlineData("discutils/btrfs.vhdx.gz", 1L << 30, "0b959f9cb4e18348ad8b646f152178282542c8304f02fddf765e3fd1a1de6864")]
    [InlineData("dissect.hypervisor/dynamic.vhdx.gz", 10L << 20, "8e2b5e9265d694b42b81819e3bff29770eff4ed0f4f9f311693ff3dbdc93efac")]
    [InlineData("dissect.hypervisor/fixed.vhdx.gz", 10L << 20, "bc0be4623b15aa84216fb31ba24e3b621ec7f1c72d198c990ac0eced222d9f62")]
    [InlineData("coreos-hyperv/config2_base.vhdx.bz2", 100L << 20, "afce9cca367ebfa91a673d612bcb6fc32b12a80211207f7a7b1cd3aed3cac19d")]
    public void SmallImageReadsTheManifestContentAndStaysUntouched(string image, long size, string sha) =>
        AssertManifestContent(image, size, sha);

    [CorpusFact]
    public void FixedImageIsReportedFixedWithTwoMiBBlocks()
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract("dissect.hypervisor/fixed.vhdx.gz", dir);
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        Assert.Equal(DiskType.Fixed, layer.Type);
        Assert.Equal(2L << 20, layer.BlockSize);
        Assert.Equal(10L << 20, layer.AllocatedBytes);
        Assert.Equal("Microsoft Windows 10.0.18363.0", layer.Details["Creator"]);
    }

    [CorpusFact]
    public void UnmappedBlocksOfLvm2ReadAsZeroExtents()
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract("discutils/lvm2.vhdx.gz", dir);
        using var layer = (VhdxLayer)VirtualDisk.OpenLayer(path, FileAccess.Read);
        long unmapped = Enumerable.Range(0, (int)layer.Bat.DataBlocks).Count(b => layer.Bat.Payload(b).State == BatState.Unmapped);
        Assert.Equal(25, unmapped);
        long first = Enumerable.Range(0, (int)layer.Bat.DataBlocks).First(b => layer.Bat.Payload(b).State == BatState.Unmapped);
        LayerExtent extent = layer.GetExtent(first * layer.BlockSize, layer.BlockSize);
        Assert.Equal(ExtentKind.Zero, extent.Kind);
    }

    [CorpusFact]
    public void DirtyLogIsReplayedInMemoryOnReadOnlyOpenWithoutTouchingTheFile()
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract(LogReplayImage, dir);
        string before = Hashing.Sha256File(path);
        using (var layer = (VhdxLayer)VirtualDisk.OpenLayer(path, FileAccess.Read))
        {
            Assert.Equal(new Guid("e6fc743c-81ed-4fe8-bf54-698ed57ba0b8"), layer.LogGuid);
            Assert.Contains("in memory", layer.Details["Log"]);
        }
        Assert.Equal(LogReplayedSha, VhdxFixture.Sha256OfDisk(path));
        Assert.Equal(before, Hashing.Sha256File(path));
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void DirtyLogIsReplayedIntoTheFileOnReadWriteOpen()
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract(LogReplayImage, dir);
        // qemu refuses the dirty file: proof the oracle would notice a log left behind.
        Assert.NotEqual(0, Oracle.Run("qemu-img", $"check \"{path}\"", throwOnError: false).ExitCode);
        Guid dataWriteGuid;
        using (var layer = (VhdxLayer)VirtualDisk.OpenLayer(path, FileAccess.ReadWrite))
        {
            Assert.Equal(Guid.Empty, layer.LogGuid);
            Assert.Contains("into the file", layer.Details["Log"]);
            dataWriteGuid = layer.DataWriteGuid;
        }
        using (var layer = (VhdxLayer)VirtualDisk.OpenLayer(path, FileAccess.Read))
        {
            Assert.Equal(Guid.Empty, layer.LogGuid);
            Assert.Equal("clean", layer.Details["Log"]);
            Assert.Equal(dataWriteGuid, layer.DataWriteGuid); // replay is not a user-visible change
            Assert.Empty(layer.Check());
        }
        Assert.Equal(LogReplayedSha, VhdxFixture.Sha256OfDisk(path));
        var (code, stdout, stderr) = Oracle.Run("qemu-img", $"check \"{path}\"", throwOnError: false);
        Assert.True(code == 0, stdout + stderr);
        Assert.Equal(LogReplayedSha, Oracle.QemuRawSha256(path, "vhdx"));
    }

    [CorpusFact]
    public void DifferencingImageWithoutItsParentNamesTheMissingParent()
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract("dissect.hypervisor/differencing.avhdx.gz", dir);
        string before = Hashing.Sha256File(path);
        var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(path, FileAccess.Read));
        Assert.Equal(ChainProblem.ParentMissing, ex.Problem);
        Assert.Contains("Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx", ex.Message);
        Assert.Contains(path, ex.Message);
        Assert.Equal(before, Hashing.Sha256File(path));
    }

    [CorpusFact]
    public void DifferencingImageLocatorAndBatParseAsTheManifestSays()
    {
        using var dir = new TempFolder();
        string path = Corpus.Extract("dissect.hypervisor/differencing.avhdx.gz", dir);
        using var layer = (VhdxLayer)VirtualDisk.OpenLayer(path, FileAccess.Read);
        Assert.Equal(DiskType.Differencing, layer.Type);
        Assert.Equal(8L << 30, layer.VirtualSize);
        Assert.Equal(2L << 20, layer.BlockSize);
        ParentLocator locator = layer.Locator!;
        Assert.Equal(ParentLocator.VhdxLocatorType, locator.LocatorType);
        Assert.Equal("{ff34003b-11ed-4cf8-a166-b2be05e20b80}", locator["parent_linkage"]!.ToLowerInvariant());
        Assert.Equal(Guid.Empty, Guid.Parse(locator["parent_linkage2"]!));
        Assert.Equal(@".\Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx", locator["relative_path"]);
        Assert.StartsWith(@"\\?\Volume{", locator["volume_path"]);
        Assert.EndsWith(@"\Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx", locator["absolute_win32_path"]);

        ParentReference reference = layer.ParentReference!;
        Assert.Equal("{ff34003b-11ed-4cf8-a166-b2be05e20b80}", reference.ExpectedIdentity);
        Assert.Null(reference.AlternateIdentity);
        Assert.Equal(new[] { ParentPathKind.Relative, ParentPathKind.Volume, ParentPathKind.Absolute }, reference.Candidates.Select(c => c.Kind));
        Assert.True(reference.Accepts("{FF34003B-11ED-4CF8-A166-B2BE05E20B80}"));

        Assert.Equal(2048, layer.Bat.ChunkRatio);
        Assert.Equal(BatState.FullyPresent, layer.Bat[2048].State);
        Assert.Equal(BatState.FullyPresent, layer.Bat[4097].State);
        Assert.Equal(32, Enumerable.Range(0, (int)layer.Bat.DataBlocks).Count(b => layer.Bat.Payload(b).State == BatState.PartiallyPresent));
        Assert.Equal(32L * (2 << 20), layer.AllocatedBytes);
        Assert.Empty(layer.Check());
    }

    [CorpusFact]
    public void DifferencingImageReadsItsOwnSectorsOverAStandInParent()
    {
        // A zero-filled stand-in parent of the right size and identity: clear bits read its zeros,
        // set bits this file's sectors, so the content is defined and stable.
        using var dir = new TempFolder();
        string path = Corpus.Extract("dissect.hypervisor/differencing.avhdx.gz", dir);
        string parent = dir.File("stand-in.vhdx");
        VirtualDisk.CreateDynamic(parent, 8L << 30).Dispose();
        VhdxFixture.EditHeaders(parent, h => h.DataWriteGuid = new Guid("ff34003b-11ed-4cf8-a166-b2be05e20b80"));
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, new DiskOpenOptions { ParentPathOverride = parent });
        Assert.Equal(2, disk.Layers.Count);
        using var layer = (VhdxLayer)VirtualDisk.OpenLayer(path, FileAccess.Read);
        long block = Enumerable.Range(0, (int)layer.Bat.DataBlocks).First(b => layer.Bat.Payload(b).State == BatState.PartiallyPresent);
        long start = block * layer.BlockSize;
        long dataBytes = 0;
        for (long pos = start; pos < start + layer.BlockSize;)
        {
            LayerExtent e = layer.GetExtent(pos, start + layer.BlockSize - pos);
            Assert.True(e.Length % 512 == 0);
            if (e.Kind == ExtentKind.Data)
                dataBytes += e.Length;
            else
                Assert.Equal(ExtentKind.Parent, e.Kind);
            pos += e.Length;
        }
        Assert.InRange(dataBytes, 512, layer.BlockSize - 1);
    }
}

/// <summary>The 10 GiB corpus images, split in two classes so they hash on two cores in parallel.</summary>
public class VhdxCorpusLargeImagesA
{
    [CorpusTheory]
    [InlineData("discutils/swap.vhdx.gz", 10L << 30, "60dd30b4c74361427d1089510cabb36e2eeda0cc4747f467ea43173acd358c49")]
    [InlineData("discutils/lvm2.vhdx.gz", 10L << 30, "f7dc6812a3b12a35f3ec895ce981bd59ff4558270fc80cd812c9cd522bff1295")]
    public void LargeImageReadsTheManifestContentAndStaysUntouched(string image, long size, string sha) =>
        VhdxCorpusTests.AssertManifestContent(image, size, sha);
}

/// <summary>See <see cref="VhdxCorpusLargeImagesA"/>.</summary>
public class VhdxCorpusLargeImagesB
{
    [CorpusTheory]
    [InlineData("discutils/xfs.vhdx.gz", 10L << 30, "8ca2bd2d91f1c6ada47128fc2f8d38587e73954ede5a664fe2bb09c19606060e")]
    [InlineData("discutils/xfs5.vhdx.gz", 10L << 30, "edc5d630b2da0ddb08992afb58ded06ffb56b884e184b4974fda16e31b7e6817")]
    public void LargeImageReadsTheManifestContentAndStaysUntouched(string image, long size, string sha) =>
        VhdxCorpusTests.AssertManifestContent(image, size, sha);
}
