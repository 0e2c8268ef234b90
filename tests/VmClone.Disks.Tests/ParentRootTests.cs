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

    /// <summary>A new child's parent, and that parent's own chain, are held to the caller's root.</summary>
    [Fact]
    public void CreatingAChildKeepsTheCallersRoot()
    {
        var (folder, root, outside) = Layout();
        using (folder)
        {
            var options = new DiskOpenOptions { AllowedParentRoot = root };
            string link = Path.Combine(root, "base.vhdx");
            File.CreateSymbolicLink(link, outside);
            string mid = Path.Combine(root, "mid.vhdx");
            VirtualDisk.CreateDifferencing(mid, link).Dispose();

            foreach (string parent in new[] { mid, link, outside })
            {
                string child = Path.Combine(root, "new.vhdx");
                var ex = Assert.Throws<DiskChainException>(() => VirtualDisk.CreateDifferencing(child, parent, null, options).Dispose());
                Assert.Equal(ChainProblem.OutsideAllowedRoot, ex.Problem);
                Assert.False(File.Exists(child), $"a child of '{parent}' was made");
            }

            string real = Path.Combine(root, "real.vhdx");
            VirtualDisk.CreateDynamic(real, 4L << 20).Dispose();
            using VirtualDisk ok = VirtualDisk.CreateDifferencing(Path.Combine(root, "ok.vhdx"), real, null, options);
            Assert.Equal(2, ok.Layers.Count);
        }
    }

    /// <summary>A child made over a chain already open is held to the caller's root and depth, made new or rewritten in place.</summary>
    [Fact]
    public void CreatingAChildOfAnOpenChainKeepsTheCallersRootAndDepth()
    {
        var (folder, root, outside) = Layout();
        using (folder)
        {
            var options = new DiskOpenOptions { AllowedParentRoot = root };
            string real = Path.Combine(root, "real.vhdx");
            VirtualDisk.CreateDynamic(real, 4L << 20).Dispose();
            string existing = Path.Combine(root, "existing.vhdx");
            VirtualDisk.CreateDifferencing(existing, real).Dispose();
            string before = Hashing.Sha256File(existing);

            using (VirtualDisk opened = VirtualDisk.Open(outside, FileAccess.Read))
            {
                string child = Path.Combine(root, "c.vhdx");
                Assert.Equal(ChainProblem.OutsideAllowedRoot,
                    Assert.Throws<DiskChainException>(() => VirtualDisk.CreateDifferencingFile(child, opened, null, options)).Problem);
                Assert.False(File.Exists(child));
                Assert.Equal(ChainProblem.OutsideAllowedRoot,
                    Assert.Throws<DiskChainException>(() => VirtualDisk.TryRecreateDifferencingFile(existing, opened, null, options)).Problem);
                Assert.Equal(before, Hashing.Sha256File(existing));
            }

            using (VirtualDisk chain = VirtualDisk.Open(existing, FileAccess.Read))
            {
                string child = Path.Combine(root, "deep.vhdx");
                Assert.Equal(ChainProblem.TooDeep,
                    Assert.Throws<DiskChainException>(() => VirtualDisk.CreateDifferencingFile(child, chain, null, new DiskOpenOptions { MaxChainDepth = 2 })).Problem);
                Assert.False(File.Exists(child));
                VirtualDisk.CreateDifferencingFile(child, chain, null, options);
                using VirtualDisk made = VirtualDisk.Open(child, FileAccess.Read, options);
                Assert.Equal(3, made.Layers.Count);
            }
        }
    }

    /// <summary>Re-pointing a child at a parent outside the caller's root is refused before anything is written.</summary>
    [Fact]
    public void RePointingKeepsTheCallersRoot()
    {
        var (folder, root, outside) = Layout();
        using (folder)
        {
            var options = new DiskOpenOptions { AllowedParentRoot = root };
            string real = Path.Combine(root, "real.vhdx");
            VirtualDisk.CreateDynamic(real, 4L << 20).Dispose();
            string child = Path.Combine(root, "child.vhdx");
            VirtualDisk.CreateDifferencing(child, real).Dispose();
            string link = Path.Combine(root, "alias.vhdx");
            File.CreateSymbolicLink(link, outside);

            foreach (string target in new[] { outside, link })
            {
                using (DiskLayer parent = VirtualDisk.OpenLayer(target, FileAccess.Read))
                {
                    Assert.Equal(ChainProblem.OutsideAllowedRoot,
                        Assert.Throws<DiskChainException>(() => ParentLink.For(child, parent, options)).Problem);
                    using DiskLayer layer = VirtualDisk.OpenLayer(child, FileAccess.ReadWrite);
                    Assert.Equal(ChainProblem.OutsideAllowedRoot,
                        Assert.Throws<DiskChainException>(() => layer.SetParent(ParentLink.For(child, parent), options)).Problem);
                }
                using VirtualDisk still = VirtualDisk.Open(child, FileAccess.Read, options);
                Assert.Equal(real, still.Layers[1].Path);
            }
        }
    }
}
