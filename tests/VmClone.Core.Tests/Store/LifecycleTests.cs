using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Store;

using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

public class LifecycleTests
{
    private static VmBaseInfo NewBase(TestStore t, string name, bool dataHoldsData = true, DiskFormat format = DiskFormat.Vhdx)
    {
        string system = t.SourceDisk($"{name}-system.vhdx", $"{name} operating system");
        string data = t.SourceDisk($"{name}-data.vhdx", dataHoldsData ? $"{name} shared data" : null);
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = system },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            new() { Name = "data", Type = VolumeType.Data, Path = data },
        };
        return (VmBaseInfo)t.Store.Execute(t.Store.PlanNewBase(name, specs, format))!;
    }

    private static VmCloneInfo NewClone(TestStore t, string name, string baseName) =>
        (VmCloneInfo)t.Store.Execute(t.Store.PlanNewClone(name, baseName))!;

    [Fact]
    public void ANewCloneWhoseNameDiffersOnlyInCaseFromAnExistingOneIsRefusedNamingIt()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        NewClone(t, "lab-01", "v1");
        // In the next command (a store instance of its own), as an admin would type it.
        var next = VmStore.At(t.Store.Root);
        var ex = Assert.Throws<StoreException>(() => next.PlanNewClone("LAB-01", "v1"));
        Assert.Equal(StoreErrorIds.CloneExists, ex.ErrorId);
        Assert.Contains("'lab-01'", ex.Message);
        Assert.False(Directory.Exists(next.CloneFolder("LAB-01")));
        // Once lab-01 is gone, the name is free in any case, also for the instance that listed it.
        next.Execute(next.PlanRemoveClone("lab-01"));
        Assert.Equal("LAB-01", ((VmCloneInfo)next.Execute(next.PlanNewClone("LAB-01", "v1"))!).Name);
    }

    [Fact]
    public void NewBaseCopiesSparseMarksReadOnlyAndRecordsTheOutline()
    {
        using var t = new TestStore();
        VmBaseInfo b = NewBase(t, "win11");
        Assert.True(t.Store.Exists);
        Assert.Equal(new[] { "system", "temp", "data" }, b.Volumes.Select(v => v.Name));
        Assert.All(b.Volumes, v => Assert.True(ReadOnlyFile.IsMarked(v.Path)));
        Assert.All(b.Volumes, v => Assert.Equal(TestStore.VolumeSize, v.VirtualSize));
        Assert.Equal("win11 operating system", TestStore.Read(b.Volumes[0].Path, 0, 22));
        Assert.True(b.SizeOnDisk < 3 * TestStore.VolumeSize, $"a sparse copy, not {b.SizeOnDisk} bytes");
        Assert.Throws<VirtualDiskException>(() => VirtualDisk.Open(b.Volumes[0].Path, FileAccess.ReadWrite));
        Assert.Empty(Directory.GetDirectories(t.Store.BasesFolder, ".*"));
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    [Theory]
    [InlineData(DiskFormat.Vhdx)]
    [InlineData(DiskFormat.Vmdk)]
    [InlineData(DiskFormat.Vhd)]
    public void WholeLifeCycleKeepsDataAndResetsTheRest(DiskFormat format)
    {
        using var t = new TestStore();
        NewBase(t, "v1", format: format);
        string[] clones = { "lab-01", "lab-02", "lab-03" };
        foreach (string c in clones)
        {
            VmCloneInfo info = NewClone(t, c, "v1");
            Assert.Equal(CloneState.Ready, info.State);
            Assert.All(info.Volumes, v => Assert.Equal(format, v.Format));
            Assert.All(info.Volumes, v => Assert.True(v.SizeOnDisk < 8L << 20, "a clone copies no data"));
        }
        string baseSystem = TestStore.Hash(t.BaseVolume("v1", "system"));
        string baseTemp = TestStore.Hash(t.BaseVolume("v1", "temp"));
        var data = new Dictionary<string, string>();
        foreach (string c in clones)
        {
            TestStore.Write(t.Volume(c, "system"), 1 << 20, $"{c} installed an app");
            TestStore.Write(t.Volume(c, "temp"), 2 << 20, $"{c} pagefile");
            TestStore.Write(t.Volume(c, "data"), 3 << 20, $"{c} user documents");
            data[c] = TestStore.Hash(t.Volume(c, "data"));
        }
        VmCloneInfo before = t.Store.GetClone("lab-01");
        Assert.True(before.DivergedBytes > 0);
        Assert.True(before.Volumes.Single(v => v.Name == "data").DivergedBytes > 0);

        // Shutdown: only temporary goes back.
        t.Store.Execute(t.Store.PlanClearTemporary("lab-02"));
        Assert.Equal(baseTemp, TestStore.Hash(t.Volume("lab-02", "temp")));
        Assert.Equal("lab-02 installed an app", TestStore.Read(t.Volume("lab-02", "system"), 1 << 20, 23));
        Assert.Equal(data["lab-02"], TestStore.Hash(t.Volume("lab-02", "data")));

        // Restore: system and temporary back to the base, data kept.
        VmCloneInfo restored = (VmCloneInfo)t.Store.Execute(t.Store.PlanRestore("lab-01"))!;
        Assert.NotNull(restored.LastRestored);
        Assert.Equal(baseSystem, TestStore.Hash(t.Volume("lab-01", "system")));
        Assert.Equal(baseTemp, TestStore.Hash(t.Volume("lab-01", "temp")));
        Assert.Equal(data["lab-01"], TestStore.Hash(t.Volume("lab-01", "data")));
        Assert.Equal(0, restored.DivergedBytes);

        // A new base from lab-03, then every clone onto it.
        TestStore.Write(t.Volume("lab-03", "system"), 5 << 20, "update 2026-11");
        VmBaseInfo v2 = (VmBaseInfo)t.Store.Execute(t.Store.PlanNewBaseFromClone("v2", "lab-03"))!;
        Assert.Equal("clone lab-03", v2.Source);
        Assert.Equal(baseTemp, TestStore.Hash(t.BaseVolume("v2", "temp")));
        string v2System = TestStore.Hash(t.BaseVolume("v2", "system"));
        string v2Temp = TestStore.Hash(t.BaseVolume("v2", "temp"));
        foreach (string c in clones)
        {
            StorePlan plan = t.Store.PlanRebase(c, "v2");
            Assert.Equal(VolumeAction.Replace, plan.Volumes[0].Action);
            Assert.Equal(VolumeAction.Reset, plan.Volumes[1].Action);
            Assert.Equal(VolumeAction.Reparent, plan.Volumes[2].Action);
            VmCloneInfo rebased = (VmCloneInfo)t.Store.Execute(plan)!;
            Assert.Equal("v2", rebased.Base);
            Assert.NotNull(rebased.LastRebased);
            Assert.Equal(CloneState.Ready, rebased.State);
        }
        Assert.Empty(t.Store.FindDependents("v1"));
        t.Store.Execute(t.Store.PlanRemoveBase("v1"));
        Assert.False(Directory.Exists(t.Store.BaseFolder("v1")));
        foreach (string c in clones)
        {
            Assert.Equal(v2System, TestStore.Hash(t.Volume(c, "system")));
            Assert.Equal(v2Temp, TestStore.Hash(t.Volume(c, "temp")));
            Assert.Equal(data[c], TestStore.Hash(t.Volume(c, "data")));
        }
        VmStoreReport report = t.Store.Check(repair: false);
        Assert.True(report.IsHealthy, string.Join("\n", report.Problems));
        Assert.Equal(1, report.BaseCount);
        Assert.Equal(3, report.CloneCount);
    }

    [Fact]
    public void EmptyBaseDataGivesStandaloneDataVolumesThatRebaseByFlatteningOrKeeping()
    {
        using var t = new TestStore();
        NewBase(t, "empty-data", dataHoldsData: false);
        NewBase(t, "full-data", dataHoldsData: true);
        NewClone(t, "a", "empty-data");
        NewClone(t, "b", "full-data");
        Assert.Null(t.Store.GetClone("a").Volumes.Single(v => v.Name == "data").ParentPath);
        Assert.NotNull(t.Store.GetClone("b").Volumes.Single(v => v.Name == "data").ParentPath);
        TestStore.Write(t.Volume("a", "data"), 0, "a's files");
        TestStore.Write(t.Volume("b", "data"), 0, "b's files");
        string ha = TestStore.Hash(t.Volume("a", "data"));
        string hb = TestStore.Hash(t.Volume("b", "data"));

        StorePlan pa = t.Store.PlanRebase("a", "full-data");
        Assert.Equal(VolumeAction.Keep, pa.Volumes[2].Action);
        t.Store.Execute(pa);
        StorePlan pb = t.Store.PlanRebase("b", "empty-data");
        Assert.Equal(VolumeAction.Flatten, pb.Volumes[2].Action);
        t.Store.Execute(pb);

        Assert.Equal(ha, TestStore.Hash(t.Volume("a", "data")));
        Assert.Equal(hb, TestStore.Hash(t.Volume("b", "data")));
        Assert.Null(t.Store.GetClone("b").Volumes.Single(v => v.Name == "data").ParentPath);
        Assert.DoesNotContain(t.Store.FindDependents("full-data"), d => d.Contains("'b'"));
        Assert.True(t.Store.Check(false).IsHealthy);
    }

    [Fact]
    public void PlansTouchNothing()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        NewBase(t, "v2");
        NewClone(t, "lab", "v1");
        string before = t.Snapshot();
        t.Store.PlanNewClone("other", "v1");
        t.Store.PlanRestore("lab");
        t.Store.PlanClearTemporary("lab");
        t.Store.PlanRebase("lab", "v2");
        t.Store.PlanRemoveClone("lab");
        t.Store.PlanNewBaseFromClone("v3", "lab");
        Assert.Throws<StoreException>(() => t.Store.PlanRemoveBase("v1"));
        Assert.Equal(before, t.Snapshot());
    }

    [Fact]
    public void RefusalsNameTheProblemAndLeaveNothingBehind()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        NewClone(t, "lab", "v1");
        var small = new List<VolumeSpec> { new() { Name = "system", Type = VolumeType.System, SizeBytes = 32L << 20 } };
        t.Store.Execute(t.Store.PlanNewBase("other", small));
        string before = t.Snapshot();

        Assert.Equal("OutlineMismatch", Assert.Throws<StoreException>(() => t.Store.PlanRebase("lab", "other")).ErrorId);
        Assert.Equal("BaseNotFound", Assert.Throws<StoreException>(() => t.Store.PlanNewClone("x", "nope")).ErrorId);
        Assert.Equal("CloneExists", Assert.Throws<StoreException>(() => t.Store.PlanNewClone("lab", "v1")).ErrorId);
        Assert.Equal("CloneNotFound", Assert.Throws<StoreException>(() => t.Store.PlanRestore("nope")).ErrorId);
        Assert.Equal("BaseExists", Assert.Throws<StoreException>(() => t.Store.PlanNewBase("v1", small)).ErrorId);
        Assert.Equal("InvalidName", Assert.Throws<StoreException>(() => t.Store.PlanNewClone("../evil", "v1")).ErrorId);
        Assert.Equal("InvalidName", Assert.Throws<StoreException>(() => t.Store.PlanNewBase("NUL", small)).ErrorId);
        var ex = Assert.Throws<StoreException>(() => t.Store.PlanRemoveBase("v1"));
        Assert.Equal("BaseInUse", ex.ErrorId);
        Assert.Contains("'lab'", ex.Message);
        Assert.Equal("InvalidVolumeSpec", Assert.Throws<StoreException>(() => t.Store.PlanNewBase("y",
            new List<VolumeSpec> { new() { Name = "s", Type = VolumeType.System } })).ErrorId);
        Assert.Equal(before, t.Snapshot());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ABaseModifiedBehindOurBackIsDetectedAndNotBuiltUpon(bool rememberBases)
    {
        using var t = new TestStore(rememberBases);
        NewBase(t, "v1");
        NewClone(t, "lab", "v1");
        string system = t.BaseVolume("v1", "system");
        ReadOnlyFile.Mark(system, readOnly: false);
        TestStore.Write(system, 0, "tampered");

        Assert.Equal(CloneState.BaseModified, t.Store.GetClone("lab").State);
        Assert.True(t.Store.GetBase("v1").IsModified);
        Assert.Equal("BaseModified", Assert.Throws<StoreException>(() => t.Store.PlanNewClone("lab-2", "v1")).ErrorId);
        Assert.Equal("BaseModified", Assert.Throws<StoreException>(() => t.Store.PlanRestore("lab")).ErrorId);
        VmStoreReport report = t.Store.Check(repair: true);
        Assert.False(report.IsHealthy);
        Assert.Contains(report.Problems, p => p.Kind == StoreProblemKind.BaseModified && p.Subject == "base v1" && !p.Repaired);
        Assert.Contains(report.Problems, p => p.Kind == StoreProblemKind.BaseModified && p.Subject == "clone lab");
        Assert.Contains(report.Problems, p => p.Kind == StoreProblemKind.BaseNotReadOnly && p.Repaired);
        Assert.True(ReadOnlyFile.IsMarked(system));
    }

    /// <summary>
    /// A fleet command's store (rememberBases) opens each base volume its new volumes are made
    /// over once, and closes it when disposed: after the command no base file is held.
    /// </summary>
    [Fact]
    public void AFleetCommandsStoreHoldsItsBasesOpenOnlyUntilDisposed()
    {
        if (!OperatingSystem.IsLinux())
            return; // open files are listed through /proc
        using var t = new TestStore(rememberBases: true);
        NewBase(t, "v1");
        string[] baseFiles = Directory.GetFiles(t.Store.BaseFolder("v1"), "*.vhdx");
        static string[] Open(string[] files) => Directory.GetFiles("/proc/self/fd")
            .Select(fd => { try { return new FileInfo(fd).LinkTarget; } catch (IOException) { return null; } })
            .Where(target => target is not null && files.Contains(target)).Select(target => target!).Distinct().ToArray();
        for (int i = 0; i < 4; i++)
            NewClone(t, $"lab-{i}", "v1");
        Assert.Equal(baseFiles.OrderBy(f => f), Open(baseFiles).OrderBy(f => f));
        foreach (string clone in new[] { "lab-0", "lab-3" })
            Assert.All(t.Store.GetClone(clone).Volumes, v => Assert.Null(v.Problem));
        t.Store.Dispose();
        Assert.Empty(Open(baseFiles));
        // Still usable, without keeping anything open.
        NewClone(t, "lab-9", "v1");
        Assert.Empty(Open(baseFiles));
        Assert.All(t.Store.GetClone("lab-9").Volumes, v => Assert.Null(v.Problem));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AMovedStoreKeepsEveryChainWorking(bool rememberBases)
    {
        using var t = new TestStore(rememberBases);
        NewBase(t, "v1");
        NewClone(t, "lab", "v1");
        TestStore.Write(t.Volume("lab", "data"), 0, "my files");
        string hash = TestStore.Hash(t.Volume("lab", "data"));
        string moved = Path.Combine(t.Folder, "elsewhere");
        Directory.Move(t.Root, moved);
        t.Moved(moved);

        VmCloneInfo lab = t.Store.GetClone("lab");
        Assert.Equal(CloneState.Ready, lab.State);
        Assert.StartsWith(moved, lab.Volumes[0].ParentPath);
        Assert.Equal(hash, TestStore.Hash(t.Volume("lab", "data"), t.Store.OpenOptions));
        t.Store.Execute(t.Store.PlanRestore("lab"));
        Assert.True(t.Store.Check(false).IsHealthy);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AParentOutsideTheStoreIsNotFollowed(bool rememberBases)
    {
        using var t = new TestStore(rememberBases);
        NewBase(t, "v1");
        NewClone(t, "lab", "v1");
        // A copy of the store whose bases are gone: the clones' absolute paths lead back into the original.
        string copy = Path.Combine(t.Folder, "copy");
        CopyFolder(t.Root, copy);
        Directory.Delete(Path.Combine(copy, "bases"), recursive: true);
        Directory.CreateDirectory(Path.Combine(copy, "bases"));
        var other = VmStore.At(copy, rememberBases);
        Assert.Equal(CloneState.Broken, other.GetClone("lab").State);
        Assert.Contains(other.Check(false).Problems, p => p.Kind == StoreProblemKind.ChainBroken && p.Description.Contains("outside"));
    }

    [Fact]
    public void CutOffOperationsAreFinishedOrUndoneByRepair()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        NewClone(t, "lab", "v1");
        TestStore.Write(t.Volume("lab", "system"), 0, "changed");
        // An operation cut off while building: only its staging folder exists.
        string stale = Path.Combine(t.Store.ClonesFolder, ".staging-lab");
        Directory.CreateDirectory(stale);
        File.WriteAllText(Path.Combine(stale, "system.vhdx"), "half written");
        Assert.Equal(CloneState.Interrupted, t.Store.GetClone("lab").State);
        VmStoreReport report = t.Store.Check(repair: true);
        Assert.True(report.IsHealthy, string.Join("\n", report.Problems));
        Assert.Contains(report.Problems, p => p.Kind == StoreProblemKind.InterruptedOperation && p.Repaired);
        Assert.False(Directory.Exists(stale));
        Assert.Equal("changed", TestStore.Read(t.Volume("lab", "system"), 0, 7));

        // A removal cut off after its rename.
        string removing = Path.Combine(t.Store.ClonesFolder, ".removing-gone");
        Directory.CreateDirectory(removing);
        Assert.True(t.Store.Check(repair: true).IsHealthy);
        Assert.False(Directory.Exists(removing));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ManifestThatDisagreesWithTheDisksIsReportedAndRewrittenFromThem(bool rememberBases)
    {
        using var t = new TestStore(rememberBases);
        NewBase(t, "v1");
        NewBase(t, "v2");
        NewClone(t, "lab", "v1");
        // What a rebase cut off between re-parenting and the manifest leaves.
        string manifestPath = Path.Combine(t.Store.CloneFolder("lab"), "clone.json");
        string before = File.ReadAllText(manifestPath);
        t.Store.Execute(t.Store.PlanRebase("lab", "v2"));
        File.WriteAllText(manifestPath, before);
        // The disk's own link is what is shown, whatever the manifest says (and v1, which the
        // manifest names, may be remembered as sound).
        t.Store.PlanNewClone("probe", "v1");
        Assert.Equal(t.BaseVolume("v2", "system"), t.Store.GetClone("lab").Volumes.Single(v => v.Name == "system").ParentPath);
        VmStoreReport report = t.Store.Check(repair: false);
        Assert.Contains(report.Problems, p => p.Kind == StoreProblemKind.ManifestMismatch);
        Assert.True(t.Store.Check(repair: true).IsHealthy);
        Assert.Equal("v2", t.Store.GetClone("lab").Base);
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    [Fact]
    public void OrphanedFilesAreReported()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        File.WriteAllText(Path.Combine(t.Store.BaseFolder("v1"), "stray.vhdx"), "x");
        Directory.CreateDirectory(Path.Combine(t.Store.ClonesFolder, "no-manifest"));
        VmStoreReport report = t.Store.Check(repair: true);
        Assert.False(report.IsHealthy);
        Assert.Equal(2, report.Problems.Count(p => p.Kind == StoreProblemKind.OrphanedFile && !p.Repaired));
    }

    [Fact]
    public void RemoveCloneLeavesNoTrace()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        NewClone(t, "lab", "v1");
        t.Store.Execute(t.Store.PlanRemoveClone("lab"));
        Assert.Empty(Directory.EnumerateFileSystemEntries(t.Store.ClonesFolder));
        Assert.Empty(t.Store.GetClones());
        t.Store.Execute(t.Store.PlanRemoveBase("v1"));
        Assert.Empty(t.Store.GetBases());
    }

    [Fact]
    public void ANonEmptyFolderIsNotTurnedIntoAStore()
    {
        using var t = new TestStore();
        Directory.CreateDirectory(t.Root);
        File.WriteAllText(Path.Combine(t.Root, "notes.txt"), "mine");
        var specs = new List<VolumeSpec> { new() { Name = "s", Type = VolumeType.System, SizeBytes = 1 << 20 } };
        var ex = Assert.Throws<StoreException>(() => t.Store.Execute(t.Store.PlanNewBase("b", specs)));
        Assert.Equal("NotAStore", ex.ErrorId);
        Assert.Equal(new[] { "notes.txt" }, Directory.GetFileSystemEntries(t.Root).Select(Path.GetFileName));
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string f in Directory.GetFiles(from))
            File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (string d in Directory.GetDirectories(from))
            CopyFolder(d, Path.Combine(to, Path.GetFileName(d)));
    }
}
