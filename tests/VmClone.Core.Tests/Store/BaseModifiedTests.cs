using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// A base modified behind VmClone's back, as an administrator meets it: its clones are
/// BaseModified (never Broken), each refusal names the clone it befell, and what Test-VmStore
/// advises is what actually recovers.
/// </summary>
public class BaseModifiedTests
{
    /// <summary>How the base's system file was changed.</summary>
    public enum Tampering
    {
        /// <summary>Written through a disk engine, which renews the file's identity: the child's parent check catches it.</summary>
        IdentityRenewed,
        /// <summary>Written with a new identity, then the children re-linked to accept it: only the identity the base recorded catches it.</summary>
        ChildrenRelinked,
    }

    private const string Marker = "the base's own operating system";

    private static void MakeBase(TestStore t, string name, DiskFormat format)
    {
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk($"{name}-system.vhdx", Marker) },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            new() { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk($"{name}-data.vhdx", "shared data") },
        };
        t.Store.Execute(t.Store.PlanNewBase(name, specs, format));
    }

    /// <summary>Changes the base's system file as <paramref name="how"/> says.</summary>
    private static void Tamper(TestStore t, string baseName, Tampering how)
    {
        string system = t.BaseVolume(baseName, "system");
        ReadOnlyFile.Mark(system, readOnly: false);
        if (how == Tampering.IdentityRenewed)
        {
            TestStore.Write(system, 0, "tampered");
            return;
        }
        // Written through the engine (a new identity), then the clones' links re-pointed at it
        // metadata-only, as Set-VmDisk -ParentPath -IgnoreIdMismatch would: each child accepts
        // its parent again, and only the identity the base recorded when it was made tells.
        TestStore.Write(system, 0, "tampered");
        foreach (string clone in t.Store.CloneNames())
            DiskOperations.SetParent(t.Volume(clone, "system"), system, preserveContent: false, ignoreIdMismatch: true, t.Store.OpenOptions, null, default);
    }

    public static IEnumerable<object[]> Cases() =>
        from f in new[] { DiskFormat.Vhdx, DiskFormat.Vmdk, DiskFormat.Vhd }
        from h in new[] { Tampering.IdentityRenewed, Tampering.ChildrenRelinked }
        from r in new[] { false, true }
        select new object[] { f, h, r };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ClonesOfAModifiedBaseAreBaseModifiedAndEachRefusalNamesTheClone(DiskFormat format, Tampering how, bool rememberBases)
    {
        using var t = new TestStore(rememberBases);
        MakeBase(t, "v1", format);
        t.Store.Execute(t.Store.PlanNewClone("lab-01", "v1"));
        t.Store.Execute(t.Store.PlanNewClone("lab-02", "v1"));
        Tamper(t, "v1", how);

        Assert.True(t.Store.GetBase("v1").IsModified);
        foreach (VmCloneInfo c in t.Store.GetClones())
            Assert.Equal(CloneState.BaseModified, c.State);
        Assert.Equal(CloneState.BaseModified, t.Store.GetClone("lab-02").State);
        if (how == Tampering.IdentityRenewed)
        {
            // The problem travels as a type beside its words.
            VmVolumeInfo system = t.Store.GetClone("lab-01").Volumes.Single(v => v.Name == "system");
            Assert.Equal(ChainProblem.ParentModified, system.ChainProblem);
            Assert.NotNull(system.Problem);
        }

        foreach (string clone in new[] { "lab-01", "lab-02" })
        {
            foreach (Func<StorePlan> plan in new Func<StorePlan>[] { () => t.Store.PlanRestore(clone), () => t.Store.PlanClearTemporary(clone) })
            {
                StoreException e = Assert.Throws<StoreException>(plan);
                Assert.Equal("BaseModified", e.ErrorId);
                Assert.Equal(clone, e.Target);
                Assert.Contains("Invoke-VmRebase", e.Message);
                Assert.Contains("backup", e.Message);
            }
        }
    }

    [Theory]
    [InlineData(DiskFormat.Vhdx, Tampering.IdentityRenewed)]
    [InlineData(DiskFormat.Vhdx, Tampering.ChildrenRelinked)]
    [InlineData(DiskFormat.Vmdk, Tampering.IdentityRenewed)]
    [InlineData(DiskFormat.Vmdk, Tampering.ChildrenRelinked)]
    [InlineData(DiskFormat.Vhd, Tampering.IdentityRenewed)]
    [InlineData(DiskFormat.Vhd, Tampering.ChildrenRelinked)]
    public void WhatTestVmStoreAdvisesRecoversTheClones(DiskFormat format, Tampering how)
    {
        using var t = new TestStore();
        MakeBase(t, "v1", format);
        t.Store.Execute(t.Store.PlanNewClone("lab-01", "v1"));
        string data = t.Volume("lab-01", "data");
        TestStore.Write(data, 1 << 20, "the user's files");
        string dataHash = TestStore.Hash(data, t.Store.OpenOptions);
        Tamper(t, "v1", how);

        VmStoreReport report = t.Store.Check(repair: false);
        VmStoreProblem clone = Assert.Single(report.Problems, p => p.Kind == StoreProblemKind.BaseModified && p.Subject == "clone lab-01");
        VmStoreProblem baseProblem = Assert.Single(report.Problems, p => p.Kind == StoreProblemKind.BaseModified && p.Subject == "base v1");
        foreach (VmStoreProblem p in new[] { clone, baseProblem })
        {
            Assert.DoesNotContain("Restore-VmClone", p.Repair);
            Assert.Contains("New-VmBase", p.Repair);
            Assert.Contains("Invoke-VmRebase", p.Repair);
            Assert.Contains("backup", p.Repair);
        }

        // The advice, followed: the changed content becomes a new base, the clone moves onto it.
        VmBaseInfo modified = t.Store.GetBase("v1");
        var specs = modified.Volumes.Select(v => new VolumeSpec { Name = v.Name, Type = v.Type, Path = v.Path }).ToList();
        t.Store.Execute(t.Store.PlanNewBase("v1-accepted", specs, format));
        var rebased = (VmCloneInfo)t.Store.Execute(t.Store.PlanRebase("lab-01", "v1-accepted"))!;
        Assert.Equal(CloneState.Ready, rebased.State);
        Assert.Equal(dataHash, TestStore.Hash(t.Volume("lab-01", "data"), t.Store.OpenOptions));
        t.Store.Execute(t.Store.PlanRemoveBase("v1"));
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }
}
