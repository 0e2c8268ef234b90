using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>
/// TryRecreateDifferencingFile (what a restore or rebase does to a system volume): a used child
/// is rewritten in place as a new, empty child of another parent. The same file must then read
/// exactly the new parent, hold nothing of what was written to it, take no more room than a new
/// child, and satisfy the oracles; anything that cannot be rewritten in place is left untouched.
/// </summary>
public class RecreateInPlaceTests
{
    private const long MiB = 1024 * 1024;
    private static readonly bool OnLinux = RuntimeInformation.IsOSPlatform(OSPlatform.Linux);

    /// <summary>Two bases of different content, and a child of the first with data of its own all over it.</summary>
    private static (string Old, string New, string Child) UsedChild(TempFolder dir, string ext)
    {
        string oldBase = dir.File("old." + ext), newBase = dir.File("new." + ext), child = dir.File("child." + ext);
        VhdxFixture.CreateWritten(oldBase, 40 * MiB, seed: 1);
        using (VirtualDisk d = VirtualDisk.CreateDynamic(newBase, 40 * MiB))
        {
            var data = new byte[5 * MiB];
            new Random(2).NextBytes(data);
            d.Content.Position = 3 * MiB + 512;
            d.Content.Write(data, 0, data.Length);
        }
        using (VirtualDisk c = VirtualDisk.CreateDifferencing(child, oldBase))
        {
            var rnd = new Random(3);
            for (int i = 0; i < 30; i++)
            {
                var data = new byte[rnd.Next(1, 600_000)];
                rnd.NextBytes(data);
                c.Content.Position = rnd.Next(0, (int)(40 * MiB - data.Length)) / 512 * 512L;
                c.Content.Write(data, 0, data.Length);
            }
        }
        return (oldBase, newBase, child);
    }

    private static long Inode(string path) => long.Parse(Oracle.Run("stat", $"-c %i \"{path}\"").StdOut.Trim());

    private static long AllocatedBytes(string path) => long.Parse(Oracle.Run("stat", $"-c %b \"{path}\"").StdOut.Trim()) * 512;

    [OracleTheory(tools: new[] { "qemu-img", "vhdiinfo", "stat" }, python: new[] { "pyvhdi" })]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    [InlineData("vhd")]
    public void AUsedChildRewrittenInPlaceIsANewChildOfTheOtherParentInTheSameFile(string ext)
    {
        using var dir = new TempFolder();
        (string oldBase, string newBase, string child) = UsedChild(dir, ext);
        Assert.NotEqual(VhdxFixture.Sha256OfDisk(newBase), VhdxFixture.Sha256OfDisk(child));
        string fresh = dir.File("fresh." + ext);
        using (VirtualDisk parent = VirtualDisk.Open(newBase, FileAccess.Read))
        {
            if (!OnLinux)
            {
                Assert.False(VirtualDisk.TryRecreateDifferencingFile(child, parent));
                return;
            }
            long inode = Inode(child);
            long usedBefore = AllocatedBytes(child);
            Assert.True(VirtualDisk.TryRecreateDifferencingFile(child, parent));
            Assert.Equal(inode, Inode(child));
            VirtualDisk.CreateDifferencingFile(fresh, parent);
            Assert.True(AllocatedBytes(child) <= Math.Max(AllocatedBytes(fresh), 64 * 1024) && AllocatedBytes(child) < usedBefore,
                $"rewritten child holds {AllocatedBytes(child)} bytes, a new one {AllocatedBytes(fresh)}, before {usedBefore}");
            Assert.Equal(new FileInfo(fresh).Length, new FileInfo(child).Length);
        }

        string expected = VhdxFixture.Sha256OfDisk(newBase);
        using (VirtualDisk opened = VirtualDisk.Open(child, FileAccess.Read))
        {
            Assert.Equal(new[] { child, newBase }, opened.Layers.Select(l => l.Path));
            Assert.Equal(0, opened.Top.AllocatedBytes);
            Assert.Empty(opened.Top.Check());
        }
        Assert.Equal(expected, VhdxFixture.Sha256OfDisk(child));
        if (ext == "vmdk")
        {
            Assert.Equal(0, VmdkOracle.QemuCheck(child).Code);
            Assert.Contains("new.vmdk", VmdkOracle.QemuInfo(child));
            Assert.Equal(expected, Oracle.QemuRawSha256(child, "vmdk"));
        }
        else
        {
            Assert.Contains("new." + ext, Oracle.Run("vhdiinfo", $"\"{child}\"").StdOut);
            Oracle.PrepareEmptyVhdxChildForLibvhdi(child, 30 * MiB);
            Assert.Equal(VhdxFixture.Sha256OfDisk(child), Oracle.LibvhdiSha256(newBase, child), ignoreCase: true);
        }
        Assert.NotEqual(VhdxFixture.Sha256OfDisk(oldBase), VhdxFixture.Sha256OfDisk(child));
    }

    /// <summary>
    /// Not atomic by design: cut off at any write, resize or flush, the file is neither disk, and
    /// doing it again (as the store's journal does) gives the new child all the same.
    /// </summary>
    [Theory]
    [InlineData("vhdx")]
    [InlineData("vmdk")]
    [InlineData("vhd")]
    public void ARewriteCutOffAnywhereIsCompletedByDoingItAgain(string ext)
    {
        if (!OnLinux)
            return;
        using var dir = new TempFolder();
        (_, string newBase, string used) = UsedChild(dir, ext);
        string expected = VhdxFixture.Sha256OfDisk(newBase);
        using VirtualDisk parent = VirtualDisk.Open(newBase, FileAccess.Read);
        var counter = new CutAt(int.MaxValue);
        string copy = dir.File("count." + ext);
        File.Copy(used, copy);
        FileAccessor.Observer = counter;
        try
        {
            Assert.True(VirtualDisk.TryRecreateDifferencingFile(copy, parent));
        }
        finally
        {
            FileAccessor.Observer = null;
        }
        Assert.True(counter.Ops > 5, $"only {counter.Ops} file operations");
        for (int k = 1; k <= counter.Ops; k++)
        {
            string child = dir.File($"cut{k}." + ext);
            File.Copy(used, child);
            FileAccessor.Observer = new CutAt(k);
            try
            {
                Assert.Throws<CutAt.Cut>(() => VirtualDisk.TryRecreateDifferencingFile(child, parent));
            }
            finally
            {
                FileAccessor.Observer = null;
            }
            Assert.True(VirtualDisk.TryRecreateDifferencingFile(child, parent), $"cut at {k}: not rewritten again");
            Assert.Equal(expected, VhdxFixture.Sha256OfDisk(child));
            using VirtualDisk opened = VirtualDisk.Open(child, FileAccess.Read);
            Assert.Equal(0, opened.Top.AllocatedBytes);
            Assert.Empty(opened.Top.Check());
        }
    }

    private sealed class CutAt : IFileWriteObserver
    {
        public sealed class Cut : Exception
        {
        }

        private readonly int _at;

        public CutAt(int at) => _at = at;

        public int Ops { get; private set; }

        private void Step()
        {
            if (++Ops == _at)
                throw new Cut();
        }

        public void BeforeWrite(string path, long position, byte[] buffer, int offset, int count) => Step();

        public void BeforeSetLength(string path, long length) => Step();

        public void BeforeFlush(string path) => Step();

        public void AfterFlush(string path)
        {
        }
    }

    public static IEnumerable<object[]> Refusals() => new[]
    {
        new object[] { "hard link" },
        new object[] { "symbolic link" },
        new object[] { "other format" },
        new object[] { "VMDK of several files" },
        new object[] { "missing" },
        new object[] { "held by another program" },
    };

    /// <summary>What cannot be rewritten in place is refused before anything is written: the caller then makes a new file.</summary>
    [OracleTheory(tools: new[] { "qemu-img", "ln" })]
    [MemberData(nameof(Refusals))]
    public void WhatCannotBeRewrittenInPlaceIsLeftUntouched(string what)
    {
        using var dir = new TempFolder();
        string ext = what.StartsWith("VMDK", StringComparison.Ordinal) ? "vmdk" : "vhdx";
        (_, string newBase, string used) = UsedChild(dir, ext);
        string target = dir.File("target." + ext);
        switch (what)
        {
            case "hard link":
                Oracle.Run("ln", $"\"{used}\" \"{target}\"");
                break;
            case "symbolic link":
                File.CreateSymbolicLink(target, used);
                break;
            case "other format":
                File.WriteAllText(target, "not a disk, but named like one");
                break;
            case "VMDK of several files":
                Oracle.Run("qemu-img", $"create -q -f vmdk -o subformat=twoGbMaxExtentSparse \"{target}\" 40M");
                break;
            case "held by another program":
                File.Copy(used, target);
                break;
        }
        var before = Directory.GetFiles(dir.Path).ToDictionary(f => f, Hashing.Sha256File);
        using (FileStream? holder = what == "held by another program" ? new FileStream(target, FileMode.Open, FileAccess.ReadWrite, FileShare.None) : null)
        using (VirtualDisk parent = VirtualDisk.Open(newBase, FileAccess.Read))
            Assert.False(VirtualDisk.TryRecreateDifferencingFile(target, parent));
        Assert.Equal(before, Directory.GetFiles(dir.Path).ToDictionary(f => f, Hashing.Sha256File));
    }
}
