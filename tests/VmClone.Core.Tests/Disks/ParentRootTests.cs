using System;
using System.IO;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

/// <summary>
/// Disk commands given an allowed parent root (as inside a store) never follow a chain out of it:
/// a link inside the root whose target lies outside is outside.
/// </summary>
public class ParentRootTests
{
    private const long Size = 16L << 20;

    /// <summary>
    /// root/mid.vhdx is a child of root/link.vhdx, a symbolic link to a disk outside the root;
    /// root/base.vhdx is a plain disk inside. Returns the outside disk's path.
    /// </summary>
    private static string ChainLeadingOut(TempFolder dir, out string root, out string mid, out string inside)
    {
        root = dir.File("root");
        Directory.CreateDirectory(root);
        string outside = dir.File("outside.vhdx");
        VirtualDisk.CreateDynamic(outside, Size).Dispose();
        DiskFiles.Write(outside, 0, DiskFiles.Random(7, 4096));
        string link = Path.Combine(root, "link.vhdx");
        File.CreateSymbolicLink(link, outside);
        mid = Path.Combine(root, "mid.vhdx");
        VirtualDisk.CreateDifferencing(mid, link).Dispose();
        inside = Path.Combine(root, "base.vhdx");
        VirtualDisk.CreateDynamic(inside, Size).Dispose();
        return outside;
    }

    [Fact]
    public void ANewChildOverAChainLeadingOutViaALinkIsRefusedAndNotCreated()
    {
        if (OperatingSystem.IsWindows())
            return;
        using var dir = new TempFolder();
        ChainLeadingOut(dir, out string root, out string mid, out _);
        string child = Path.Combine(root, "new.vhdx");
        var refused = Assert.Throws<DiskChainException>(() =>
            DiskOperations.Create(child, null, mid, new DiskCreateOptions(), new DiskOpenOptions { AllowedParentRoot = root }));
        Assert.Equal(ChainProblem.OutsideAllowedRoot, refused.Problem);
        Assert.False(File.Exists(child));
    }

    [Fact]
    public void AMergeOfAChainLeadingOutViaALinkIsRefusedAndWritesNothing()
    {
        if (OperatingSystem.IsWindows())
            return;
        using var dir = new TempFolder();
        string outside = ChainLeadingOut(dir, out string root, out string mid, out _);
        string before = Hashing.Sha256File(outside);
        var refused = Assert.Throws<DiskChainException>(() =>
            DiskOperations.Merge(mid, null, force: true, new DiskOpenOptions { AllowedParentRoot = root }, null, CancellationToken.None));
        Assert.Equal(ChainProblem.OutsideAllowedRoot, refused.Problem);
        Assert.Equal(before, Hashing.Sha256File(outside));
        Assert.True(File.Exists(mid));
    }

    [Fact]
    public void AReparentOntoAChainLeadingOutViaALinkIsRefusedAndLeavesTheChild()
    {
        if (OperatingSystem.IsWindows())
            return;
        using var dir = new TempFolder();
        ChainLeadingOut(dir, out string root, out string mid, out string inside);
        string child = Path.Combine(root, "child.vhdx");
        VirtualDisk.CreateDifferencing(child, inside).Dispose();
        string before = Hashing.Sha256File(child);
        var refused = Assert.Throws<DiskChainException>(() =>
            DiskOperations.SetParent(child, mid, preserveContent: true, ignoreIdMismatch: true, new DiskOpenOptions { AllowedParentRoot = root }, null, CancellationToken.None));
        Assert.Equal(ChainProblem.OutsideAllowedRoot, refused.Problem);
        Assert.Equal(before, Hashing.Sha256File(child));
    }
}
