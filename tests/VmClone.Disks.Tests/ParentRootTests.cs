using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>Parent locators are untrusted: a parent outside the allowed root is never opened, however the path gets there.</summary>
public class ParentRootTests
{
    private static (TempFolder Folder, string Root, string Outside) Layout()
    {
        var folder = new TempFolder();
        string root = folder.File("store");
        Directory.CreateDirectory(root);
        string outside = folder.File("outside.vhdx");
        VirtualDisk.CreateDynamic(outside, 4L << 20).Dispose();
        return (folder, root, outside);
    }

    [Fact]
    public void AParentBehindASymbolicLinkInsideTheRootIsJudgedByItsRealPath()
    {
        var (folder, root, outside) = Layout();
        using (folder)
        {
            string link = Path.Combine(root, "base.vhdx");
            File.CreateSymbolicLink(link, outside);
            string child = Path.Combine(root, "child.vhdx");
            VirtualDisk.CreateDifferencing(child, link).Dispose();
            var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = root }));
            Assert.Equal(ChainProblem.OutsideAllowedRoot, ex.Problem);
            Assert.Contains("symbolic link", ex.Message);
            Assert.Contains(outside, ex.Message);

            // A linked folder leads outside just the same.
            string linkedDir = Path.Combine(root, "bases");
            Directory.CreateSymbolicLink(linkedDir, folder.Path);
            string child2 = Path.Combine(root, "child2.vhdx");
            VirtualDisk.CreateDifferencing(child2, Path.Combine(linkedDir, "outside.vhdx")).Dispose();
            Assert.Equal(ChainProblem.OutsideAllowedRoot,
                Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child2, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = root })).Problem);

            // Without a root the user opened the file themselves and the link is followed.
            using VirtualDisk ok = VirtualDisk.Open(child, FileAccess.Read);
            Assert.Equal(2, ok.Layers.Count);
        }
    }

    [Fact]
    public void ALinkThatStaysInsideTheRootIsFollowedAndLinkLoopsAreRefused()
    {
        var (folder, root, _) = Layout();
        using (folder)
        {
            string real = Path.Combine(root, "real.vhdx");
            VirtualDisk.CreateDynamic(real, 4L << 20).Dispose();
            string link = Path.Combine(root, "alias.vhdx");
            File.CreateSymbolicLink(link, real);
            string child = Path.Combine(root, "child.vhdx");
            VirtualDisk.CreateDifferencing(child, link).Dispose();
            using (VirtualDisk ok = VirtualDisk.Open(child, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = root }))
                Assert.Equal(2, ok.Layers.Count);

            string a = Path.Combine(root, "a"), b = Path.Combine(root, "b");
            File.CreateSymbolicLink(a, b);
            File.CreateSymbolicLink(b, a);
            Assert.Null(PathUtil.RealPath(Path.Combine(a, "x.vhdx")));
            Assert.False(PathUtil.IsReallyUnder(Path.Combine(a, "x.vhdx"), root));
        }
    }

    [Theory]
    [InlineData("../outside.vhdx")]
    [InlineData("sub/../../outside.vhdx")]
    public void DotDotEscapesAreRefused(string relative)
    {
        var (folder, root, outside) = Layout();
        using (folder)
        {
            string child = Path.Combine(root, "child.vhdx");
            VirtualDisk.CreateDifferencing(child, outside).Dispose();
            var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.Open(child, FileAccess.Read,
                new DiskOpenOptions { AllowedParentRoot = root, ParentPathOverride = Path.Combine(root, relative) }));
            Assert.Equal(ChainProblem.OutsideAllowedRoot, ex.Problem);
        }
    }
}
