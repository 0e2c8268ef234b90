using System.IO;
using System.Text.Json;
using VmClone.Disks.Qcow2;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Qcow2;

/// <summary>
/// Images and overlays VmClone creates, judged by qemu: `qemu-img check` clean (no corruption,
/// no leak), `qemu-img info` reporting what was asked, qemu-io able to write into them, and
/// the content qemu reads the content we read.
/// </summary>
public class Qcow2CreateTests
{
    private static JsonElement Info(string path) =>
        JsonDocument.Parse(Oracle.Run("qemu-img", $"info --output=json \"{path}\"").StdOut).RootElement;

    // With 512-byte clusters and an L1 table of many clusters, qemu places the refcount blocks
    // after the L1 table and we before it: both layouts are clean, so those are compared by
    // qemu-img check and info rather than byte for byte.

    /// <summary>qemu-img check: exit 0 and, in its JSON, no corruption and no leak.</summary>
    private static void AssertCheckClean(string path)
    {
        var (code, stdout, stderr) = Oracle.Run("qemu-img", $"check --output=json \"{path}\"", throwOnError: false);
        Assert.True(code == 0, $"qemu-img check exited {code}: {stdout} {stderr}");
        JsonElement check = JsonDocument.Parse(stdout).RootElement;
        Assert.False(check.TryGetProperty("corruptions", out JsonElement c) && c.GetInt64() != 0, stdout);
        Assert.False(check.TryGetProperty("leaks", out JsonElement l) && l.GetInt64() != 0, stdout);
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void StandaloneImageIsByteForByteWhatQemuImgCreates()
    {
        using var dir = new TempFolder();
        string ours = dir.File("ours.qcow2");
        Qcow2Layer.Create(ours, 1L << 30);
        string theirs = QemuImage.Create(dir.File("theirs.qcow2"), 1L << 30, "");
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
        AssertCheckClean(ours);
    }

    [OracleTheory(tools: new[] { "qemu-img" })]
    [InlineData(4096L, false, false, 16, "cluster_size=4k")]
    [InlineData(2097152L, false, false, 16, "cluster_size=2M")]
    [InlineData(131072L, true, false, 16, "cluster_size=128k,extended_l2=on")]
    [InlineData(65536L, false, true, 16, "compat=0.10")]
    [InlineData(65536L, false, false, 1, "refcount_bits=1")]
    [InlineData(65536L, false, false, 64, "refcount_bits=64")]
    public void OverlayWithOptionsIsByteForByteWhatQemuImgCreates(long cluster, bool extendedL2, bool version2, int refcountBits, string qemuOptions)
    {
        using var dir = new TempFolder();
        string baseImage = QemuImage.Create(dir.File("base.qcow2"), 3L << 30, "");
        string ours = dir.File("ours.qcow2");
        using (VirtualDisk parent = Qcow2Chain.Open(baseImage))
            Qcow2Layer.CreateChild(ours, parent.Top, new Qcow2CreateOptions { ClusterSize = cluster, ExtendedL2 = extendedL2, Version2 = version2, RefcountBits = refcountBits });
        string theirs = QemuImage.Create(dir.File("theirs.qcow2"), 0, qemuOptions, "base.qcow2", "qcow2");
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
        AssertCheckClean(ours);
    }

    [OracleTheory(tools: new[] { "qemu-img", "qemu-io" })]
    [InlineData(512L, false, false, 16, "cluster_size=512")]
    [InlineData(4096L, false, false, 16, "cluster_size=4k")]
    [InlineData(2097152L, false, false, 16, "cluster_size=2M")]
    [InlineData(16384L, true, false, 16, "cluster_size=16k,extended_l2=on")]
    [InlineData(131072L, true, false, 16, "cluster_size=128k,extended_l2=on")]
    [InlineData(65536L, false, true, 16, "compat=0.10")]
    [InlineData(65536L, false, false, 1, "refcount_bits=1")]
    [InlineData(65536L, false, false, 64, "refcount_bits=64")]
    [InlineData(512L, false, false, 64, "cluster_size=512,refcount_bits=64")]
    public void CreatedImageIsCleanAgreesWithInfoAndTakesQemuWrites(long cluster, bool extendedL2, bool version2, int refcountBits, string qemuOptions)
    {
        using var dir = new TempFolder();
        const long size = 40L * 1024 * 1024;
        string ours = dir.File("ours.qcow2");
        Qcow2Layer.Create(ours, size, new Qcow2CreateOptions { ClusterSize = cluster, ExtendedL2 = extendedL2, Version2 = version2, RefcountBits = refcountBits });
        AssertCheckClean(ours);
        JsonElement info = Info(ours);
        Assert.Equal(size, info.GetProperty("virtual-size").GetInt64());
        Assert.Equal(cluster, info.GetProperty("cluster-size").GetInt64());
        JsonElement specific = info.GetProperty("format-specific").GetProperty("data");
        Assert.Equal(version2 ? "0.10" : "1.1", specific.GetProperty("compat").GetString());
        Assert.Equal(refcountBits, specific.GetProperty("refcount-bits").GetInt32());
        if (!version2)
            Assert.Equal(extendedL2, specific.GetProperty("extended-l2").GetBoolean());
        // The same layout qemu makes for these options; with 512-byte clusters our refcount
        // table is larger than qemu's single cluster, sized for the image fully written.
        string theirs = QemuImage.Create(dir.File("theirs.qcow2"), size, qemuOptions);
        if (cluster >= 4096)
            Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);

        QemuImage.WriteRandom(ours, "qcow2", size, (int)cluster + refcountBits, 30);
        AssertCheckClean(ours);
        using VirtualDisk disk = Qcow2Chain.Open(ours);
        Assert.Equal(Oracle.QemuRawSha256(ours, "qcow2"), Hashing.Sha256Stream(disk.Content));
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void OverlayNamesItsBackingFileRelativelyWithItsFormatAndReadsAsIt()
    {
        using var dir = new TempFolder();
        Directory.CreateDirectory(dir.File("bases"));
        Directory.CreateDirectory(dir.File("clones"));
        const long size = 16L * 1024 * 1024;
        string baseImage = QemuImage.Create(dir.File("bases/base.qcow2"), size, "");
        QemuImage.WriteRandom(baseImage, "qcow2", size, 51, 30);
        string overlay = dir.File("clones/clone.qcow2");
        using (VirtualDisk parent = Qcow2Chain.Open(baseImage))
            Qcow2Layer.CreateChild(overlay, parent.Top);
        AssertCheckClean(overlay);
        JsonElement info = Info(overlay);
        Assert.Equal("../bases/base.qcow2", info.GetProperty("backing-filename").GetString());
        Assert.Equal("qcow2", info.GetProperty("backing-filename-format").GetString());
        Assert.Equal(size, info.GetProperty("virtual-size").GetInt64());
        Assert.Equal(0, Oracle.Run("qemu-img", $"compare -q \"{overlay}\" \"{baseImage}\"", throwOnError: false).ExitCode);

        QemuImage.WriteRandom(overlay, "qcow2", size, 52, 30, maxLength: 40 * 1024);
        AssertCheckClean(overlay);
        using VirtualDisk disk = Qcow2Chain.Open(overlay);
        Assert.Equal(2, disk.Layers.Count);
        Assert.Equal(Oracle.QemuRawSha256(overlay, "qcow2"), Hashing.Sha256Stream(disk.Content));
    }

    [OracleTheory(tools: new[] { "qemu-img", "qemu-io" })]
    [InlineData("raw", "base.raw")]
    [InlineData("vmdk", "base.vmdk")]
    [InlineData("vhdx", "base.vhdx")]
    public void OverlayOfAnotherFormatRecordsThatFormat(string format, string name)
    {
        using var dir = new TempFolder();
        const long size = 8L * 1024 * 1024;
        string baseImage = dir.File(name);
        Oracle.Run("qemu-img", $"create -q -f {format} \"{baseImage}\" {size}");
        QemuImage.WriteRandom(baseImage, format, size, 61, 20);
        string overlay = dir.File("clone.qcow2");
        using (DiskLayer parent = VirtualDisk.OpenLayer(baseImage, FileAccess.Read))
            Qcow2Layer.CreateChild(overlay, parent);
        AssertCheckClean(overlay);
        JsonElement info = Info(overlay);
        Assert.Equal(name, info.GetProperty("backing-filename").GetString());
        Assert.Equal(format, info.GetProperty("backing-filename-format").GetString());
        Assert.Equal(0, Oracle.Run("qemu-img", $"compare -q -F {format} \"{overlay}\" \"{baseImage}\"", throwOnError: false).ExitCode);
        using VirtualDisk disk = Qcow2Chain.Open(overlay);
        Assert.Equal(Oracle.QemuRawSha256(baseImage, format), Hashing.Sha256Stream(disk.Content));
    }

    [OracleFact(tools: new[] { "qemu-img" })]
    public void OverlayOfAParentOfAnotherSizeIsRefused()
    {
        using var dir = new TempFolder();
        string baseImage = QemuImage.Create(dir.File("base.qcow2"), 1 << 20, "");
        string overlay = dir.File("clone.qcow2");
        using VirtualDisk parent = Qcow2Chain.Open(baseImage);
        var ex = Assert.Throws<DiskChainException>(() => Qcow2Layer.CreateChild(overlay, parent.Top, virtualSize: 2 << 20));
        Assert.Equal(ChainProblem.Incompatible, ex.Problem);
        Assert.Contains("1048576", ex.Message);
        Assert.False(File.Exists(overlay));
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void OverlayRewrittenInPlaceIsEmptyAgainAndClean()
    {
        using var dir = new TempFolder();
        const long size = 8L * 1024 * 1024;
        string baseImage = QemuImage.Create(dir.File("base.qcow2"), size, "");
        QemuImage.WriteRandom(baseImage, "qcow2", size, 71, 20);
        string overlay = QemuImage.Create(dir.File("clone.qcow2"), 0, "cluster_size=4k", "base.qcow2", "qcow2");
        QemuImage.WriteRandom(overlay, "qcow2", size, 72, 40);
        Assert.NotEqual(0, Oracle.Run("qemu-img", $"compare -q \"{overlay}\" \"{baseImage}\"", throwOnError: false).ExitCode);
        using (VirtualDisk parent = Qcow2Chain.Open(baseImage))
        {
            if (!VirtualDisk.CanRecreateInPlace(overlay))
                return; // not Linux: the caller makes a new file instead
            Assert.True(Qcow2Layer.TryRecreateChild(overlay, parent.Top));
        }
        AssertCheckClean(overlay);
        Assert.Equal(0, Oracle.Run("qemu-img", $"compare -q \"{overlay}\" \"{baseImage}\"", throwOnError: false).ExitCode);
        Assert.Equal(65536, Info(overlay).GetProperty("cluster-size").GetInt64());
    }
}
