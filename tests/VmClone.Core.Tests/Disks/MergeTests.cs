using System;
using System.IO;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

public class MergeTests
{
    private const long Size = 256L << 20;

    private static (string Base, string Child) MakePair(TempFolder dir, int seed, long size = Size, string ext = "vhdx")
    {
        var rng = new Random(seed);
        string b = dir.File($"base.{ext}"), c = dir.File($"child.{ext}");
        VirtualDisk.CreateDynamic(b, size, new DiskCreateOptions { BlockSizeBytes = ext == "vhdx" ? DiskFiles.MiB : 64 * 1024 }).Dispose();
        DiskFiles.WriteRandom(b, rng, 30);
        VirtualDisk.CreateDifferencing(c, b).Dispose();
        DiskFiles.WriteRandom(c, rng, 30);
        // A run of zeros written into the child must hide the base's data after the merge too.
        DiskFiles.Write(c, 1000, new byte[70_000]);
        return (b, c);
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    public void TheParentReadsWhatTheChildShowedAndTheChildIsGone(string ext)
    {
        using var dir = new TempFolder();
        var (b, c) = MakePair(dir, 11, Size, ext);
        string expected = DiskFiles.ContentHash(c);

        VmDiskInfo merged = DiskOperations.Merge(c, null, force: false, null, CancellationToken.None);

        Assert.Equal(b, merged.Path);
        Assert.Equal(expected, DiskFiles.ContentHash(b));
        Assert.False(File.Exists(c));
        Assert.True(DiskOperations.Check(b).IsHealthy);
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    public void AMergeRefusedBeforeItStartsLeavesNoMarkerAndChangesNothing(string ext)
    {
        using var dir = new TempFolder();
        var (b, c) = MakePair(dir, 14, Size, ext);
        ReadOnlyFile.Mark(b, readOnly: true); // a base's volume: never written
        string baseBytes = Hashing.Sha256File(b), childBytes = Hashing.Sha256File(c);

        Assert.ThrowsAny<VirtualDiskException>(() => DiskOperations.Merge(c, null, force: false, null, CancellationToken.None));

        Assert.Empty(Directory.GetFiles(dir.Path, "*.vmclone-merging"));
        Assert.Equal(baseBytes, Hashing.Sha256File(b));
        Assert.Equal(childBytes, Hashing.Sha256File(c));
        ReadOnlyFile.Mark(b, readOnly: false);
        // Nothing claims a merge in progress: the same merge simply runs once it can.
        string expected = DiskFiles.ContentHash(c);
        DiskOperations.Merge(c, null, force: false, null, CancellationToken.None);
        Assert.Equal(expected, DiskFiles.ContentHash(b));
    }

    [Fact]
    public void MergingTwoLevelsIntoTheGrandparent()
    {
        using var dir = new TempFolder();
        var (b, c) = MakePair(dir, 12);
        string g = dir.File("grandchild.vhdx");
        VirtualDisk.CreateDifferencing(g, c).Dispose();
        DiskFiles.WriteRandom(g, new Random(13), 20);
        string expected = DiskFiles.ContentHash(g);

        DiskOperations.Merge(g, b, force: false, null, CancellationToken.None);

        Assert.Equal(expected, DiskFiles.ContentHash(b));
        Assert.False(File.Exists(g));
        Assert.False(File.Exists(c));
    }

    [Fact]
    public void AParentWithOtherChildrenIsRefusedAndUntouched()
    {
        using var dir = new TempFolder();
        var (b, c) = MakePair(dir, 14);
        string sibling = dir.File("sibling.vhdx");
        VirtualDisk.CreateDifferencing(sibling, b).Dispose();
        string before = Hashing.Sha256File(b);

        var ex = Assert.Throws<VmCloneException>(() => DiskOperations.Merge(c, null, force: false, null, CancellationToken.None));
        Assert.Equal("MergeTargetHasChildren", ex.ErrorId);
        Assert.Contains("sibling.vhdx", ex.Message);
        Assert.Equal(before, Hashing.Sha256File(b));
        Assert.True(File.Exists(c));
    }

    [Fact]
    public void AMergeCutOffHalfwayIsFinishedByRunningItAgain()
    {
        using var dir = new TempFolder();
        // Three merge windows: cancelled after the first, two are left for the rerun.
        var (b, c) = MakePair(dir, 15, 3 * 256L << 20);
        string expected = DiskFiles.ContentHash(c);
        var cts = new CancellationTokenSource();
        // The first progress report comes after the first window has been written into the base.
        var progress = new SyncProgress(p => cts.Cancel());
        Assert.ThrowsAny<OperationCanceledException>(() => DiskOperations.Merge(c, null, false, progress, cts.Token));
        Assert.True(File.Exists(c));

        DiskOperations.Merge(c, null, false, null, CancellationToken.None);

        Assert.Equal(expected, DiskFiles.ContentHash(b));
        Assert.False(File.Exists(c));
    }

    [Fact]
    public void AFifoInPlaceOfTheMergeMarkerIsRefusedWithoutWaitingOnIt()
    {
        if (OperatingSystem.IsWindows())
            return;
        using var dir = new TempFolder();
        var (b, c) = MakePair(dir, 21, 64L << 20);
        string baseHash = DiskFiles.ContentHash(b);
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", c + ".vmclone-merging"))
            mkfifo.WaitForExit();
        var merge = System.Threading.Tasks.Task.Run(() => DiskOperations.Merge(c, null, force: false, null, CancellationToken.None));
        Assert.True(((IAsyncResult)merge).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(30)), "the merge waited on the FIFO");
        Assert.Equal("MergeMarkerInvalid", Assert.IsType<VmCloneException>(merge.Exception?.InnerException).ErrorId);
        Assert.Equal(baseHash, DiskFiles.ContentHash(b));
    }

    [Fact]
    public void AMergeMarkerThatIsALinkIsRefusedAndNothingIsMerged()
    {
        if (OperatingSystem.IsWindows())
            return;
        using var dir = new TempFolder();
        var (_, c) = MakePair(dir, 22, 64L << 20);
        string elsewhere = dir.File("elsewhere.txt");
        File.WriteAllText(elsewhere, dir.File("base.vhdx"));
        File.CreateSymbolicLink(c + ".vmclone-merging", elsewhere);
        var ex = Assert.Throws<VmCloneException>(() => DiskOperations.Merge(c, null, force: false, null, CancellationToken.None));
        Assert.Equal("MergeMarkerInvalid", ex.ErrorId);
        Assert.True(File.Exists(c), "nothing was merged");
    }
}
