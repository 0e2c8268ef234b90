using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using VmClone.Core.Store;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// A clone's record gone wrong under it: its folder renamed (the manifest still names the old
/// name), or its clone.json unreadable. Each is shown for what it is, counted, reported by the
/// check, and mended by Test-VmStore -Repair without losing a data volume.
/// </summary>
public class CloneRecordTests
{
    private static readonly bool OnLinux = RuntimeInformation.IsOSPlatform(OSPlatform.Linux);
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    private static void NewBase(TestStore t, string name, DiskFormat format = DiskFormat.Vhdx, bool emptyData = false)
    {
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk($"{name}-system.vhdx", $"{name} operating system") },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            emptyData
                ? new() { Name = "data", Type = VolumeType.Data, SizeBytes = TestStore.VolumeSize }
                : new() { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk($"{name}-data.vhdx", $"{name} shared data") },
        };
        t.Store.Execute(t.Store.PlanNewBase(name, specs, format));
    }

    private static TestStore NewStore(DiskFormat format = DiskFormat.Vhdx, bool emptyData = false)
    {
        var t = new TestStore();
        NewBase(t, "b1", format, emptyData);
        t.Store.Execute(t.Store.PlanNewClone("c1", "b1"));
        TestStore.Write(t.Volume("c1", "data"), 1 << 20, "the user's own data");
        TestStore.Write(t.Volume("c1", "system"), 2 << 20, "an app the user installed");
        return t;
    }

    private static string CloneJson(TestStore t, string clone) => Path.Combine(t.Store.CloneFolder(clone), "clone.json");

    /// <summary>What <paramref name="work"/> throws, within the hang guard (null when it does not throw).</summary>
    private static Exception? BoundedThrows(Action work)
    {
        Task task = Task.Run(work);
        try
        {
            Assert.True(task.Wait(HangGuard), $"did not end within {HangGuard.TotalSeconds} s");
            return null;
        }
        catch (AggregateException ex)
        {
            return ex.InnerException;
        }
    }

    private static string Problems(VmStoreReport report) => string.Join("\n", report.Problems.Select(p => $"{p.Kind} {p.Subject}: {p.Description} [{p.Repair}]"));

    // ---- a renamed clone folder ----

    [Fact]
    public void ACloneWhoseFolderWasRenamedIsRenamedEverywhereAndEveryCommandRefusesAtOnceSayingHowToMendIt()
    {
        using var t = NewStore();
        NewBase(t, "b2", DiskFormat.Vhdx);
        Directory.Move(t.Store.CloneFolder("c1"), t.Store.CloneFolder("lab-02"));

        VmCloneInfo info = t.Store.GetClone("lab-02");
        Assert.Equal(CloneState.Renamed, info.State);
        Assert.Equal("lab-02", info.Name);
        Assert.Equal(CloneState.Renamed, t.Store.GetClones().Single().State);

        VmStoreReport report = t.Store.Check(repair: false);
        Assert.False(report.IsHealthy);
        VmStoreProblem p = Assert.Single(report.Problems, x => x.Kind == StoreProblemKind.CloneRenamed);
        Assert.Equal("clone lab-02", p.Subject);
        Assert.Contains("'lab-02'", p.Description);
        Assert.Contains("'c1'", p.Description);

        foreach (Func<StorePlan> plan in new Func<StorePlan>[]
                 {
                     () => t.Store.PlanRestore("lab-02"),
                     () => t.Store.PlanClearTemporary("lab-02"),
                     () => t.Store.PlanRebase("lab-02", "b2"),
                     () => t.Store.PlanNewBaseFromClone("b3", "lab-02"),
                 })
        {
            var ex = Assert.IsType<StoreException>(BoundedThrows(() => plan()));
            Assert.Equal(StoreErrorIds.CloneRenamed, ex.ErrorId);
            Assert.Contains("Test-VmStore -Repair", ex.Message);
            Assert.Contains("'c1'", ex.Message);
        }
    }

    [OracleTheory(tools: new[] { "qemu-img" }, python: new[] { "pyvhdi" })]
    [InlineData(DiskFormat.Vmdk)]
    [InlineData(DiskFormat.Vhdx)]
    [InlineData(DiskFormat.Vhd)]
    public void RepairAdoptsTheRenamedFoldersNameAndTheCloneThenRestoresOverItsBase(DiskFormat format)
    {
        using var t = NewStore(format);
        string data = TestStore.Hash(t.Volume("c1", "data"));
        Directory.Move(t.Store.CloneFolder("c1"), t.Store.CloneFolder("lab-02"));

        VmStoreReport repaired = t.Store.Check(repair: true);
        Assert.True(repaired.IsHealthy, Problems(repaired));
        Assert.Contains(repaired.Problems, p => p.Kind == StoreProblemKind.CloneRenamed && p.Repaired);
        Assert.Equal("lab-02", Manifest.Read<CloneManifest>(CloneJson(t, "lab-02")).Name);
        Assert.Equal(CloneState.Ready, t.Store.GetClone("lab-02").State);
        Assert.True(t.Store.Check(repair: false).IsHealthy);

        t.Store.Execute(t.Store.PlanRestore("lab-02"));
        string system = t.Volume("lab-02", "system");
        string baseSystem = TestStore.Hash(t.BaseVolume("b1", "system"));
        Assert.Equal(baseSystem, TestStore.Hash(system));
        Assert.Equal(data, TestStore.Hash(t.Volume("lab-02", "data")));
        // The independent readers follow the clone's own parent links, unchanged by the mend.
        if (format == DiskFormat.Vmdk)
        {
            Oracle.Run("qemu-img", $"check -f vmdk \"{system}\"");
            Assert.Equal(baseSystem, Oracle.QemuRawSha256(system, "vmdk"), ignoreCase: true);
            Assert.Equal(data, Oracle.QemuRawSha256(t.Volume("lab-02", "data"), "vmdk"), ignoreCase: true);
        }
        else if (format == DiskFormat.Vhd)
        {
            Assert.Equal(baseSystem, Oracle.LibvhdiSha256(t.BaseVolume("b1", "system"), system), ignoreCase: true);
            Assert.Equal(data, Oracle.LibvhdiSha256(t.BaseVolume("b1", "data"), t.Volume("lab-02", "data")), ignoreCase: true);
        }
        else
        {
            Oracle.PrepareEmptyVhdxChildForLibvhdi(system, 5 << 20);
            Assert.Equal(TestStore.Hash(system), Oracle.LibvhdiSha256(t.BaseVolume("b1", "system"), system), ignoreCase: true);
            Assert.Equal(data, Oracle.LibvhdiSha256(t.BaseVolume("b1", "data"), t.Volume("lab-02", "data")), ignoreCase: true);
        }
    }

    [Fact]
    public void RepairDoesNotAdoptAFolderNameAnotherCloneHasInAnotherCase()
    {
        if (!OnLinux)
            return; // needs a case-sensitive file system
        using var t = NewStore();
        t.Store.Execute(t.Store.PlanNewClone("c3", "b1"));
        Directory.Move(t.Store.CloneFolder("c1"), t.Store.CloneFolder("C3"));
        string before = File.ReadAllText(CloneJson(t, "C3"));

        VmStoreReport report = t.Store.Check(repair: true);

        VmStoreProblem p = Assert.Single(report.Problems, x => x.Kind == StoreProblemKind.CloneRenamed);
        Assert.False(p.Repaired);
        Assert.Contains("'c3'", p.Repair);
        Assert.Equal(before, File.ReadAllText(CloneJson(t, "C3")));
    }

    // ---- an unreadable clone.json ----

    public static IEnumerable<object[]> Damage() => new[]
    {
        new object[] { "garbage" },
        new object[] { "truncated" },
        new object[] { "empty" },
        new object[] { "newer" },
    };

    private static void Damage(TestStore t, string clone, string how)
    {
        string path = CloneJson(t, clone);
        string text = File.ReadAllText(path);
        File.WriteAllText(path, how switch
        {
            "garbage" => "\u0001\u0002 not json at all",
            "truncated" => text.Substring(0, text.Length / 2),
            "empty" => "",
            _ => text.Replace("\"formatVersion\": 1", "\"formatVersion\": 99"),
        });
    }

    [Theory]
    [MemberData(nameof(Damage))]
    public void ACloneWhoseManifestCannotBeReadIsListedUnreadableWithTheReasonAndCountedForItsBase(string how)
    {
        using var t = NewStore();
        t.Store.Execute(t.Store.PlanNewClone("c2", "b1"));
        Damage(t, "c1", how);

        VmCloneInfo listed = Assert.Single(t.Store.GetClones(), c => c.Name == "c1");
        Assert.Equal(CloneState.Unreadable, listed.State);
        Assert.Contains("clone.json", listed.Problem);
        Assert.Equal("b1", listed.Base);
        Assert.Equal(CloneState.Unreadable, t.Store.GetClone("c1").State);
        Assert.Contains(t.Store.GetClones(baseName: "b1"), c => c.Name == "c1");
        Assert.Equal(2, t.Store.GetBase("b1").CloneCount);
        Assert.Equal(2, t.Store.GetBases().Single().CloneCount);
        var inUse = Assert.IsType<StoreException>(Record.Exception(() => t.Store.PlanRemoveBase("b1")));
        Assert.Equal("BaseInUse", inUse.ErrorId);
        Assert.Contains("clone 'c1'", inUse.Message);

        VmStoreReport report = t.Store.Check(repair: false);
        Assert.False(report.IsHealthy);
        Assert.Contains(report.Problems, p => p.Subject == "clone c1" && p.Path == CloneJson(t, "c1"));

        // A command on it is refused, naming the clone and saying what mends it.
        var refused = Assert.IsType<StoreException>(Record.Exception(() => t.Store.PlanRestore("c1")));
        Assert.Equal("c1", refused.Target);
        if (how == "newer")
            Assert.Equal("StoreFormatUnsupported", refused.ErrorId);
        else
        {
            Assert.Equal(StoreErrorIds.ManifestInvalid, refused.ErrorId);
            Assert.Contains("Test-VmStore -Repair rebuilds it", refused.Message);
        }
    }

    [Theory]
    [InlineData("garbage", false)]
    [InlineData("truncated", false)]
    [InlineData("empty", true)]
    public void RepairRebuildsAnUnreadableManifestFromTheVolumesParentLinksAndKeepsEveryDataVolume(string how, bool emptyData)
    {
        using var t = NewStore(emptyData: emptyData);
        CloneManifest before = Manifest.Read<CloneManifest>(CloneJson(t, "c1"));
        string data = TestStore.Hash(t.Volume("c1", "data"));
        string system = TestStore.Hash(t.Volume("c1", "system"));
        string[] files = Directory.GetFiles(t.Store.CloneFolder("c1")).OrderBy(f => f, StringComparer.Ordinal).ToArray();
        Damage(t, "c1", how);

        VmStoreReport repaired = t.Store.Check(repair: true);

        Assert.True(repaired.IsHealthy, Problems(repaired));
        Assert.Contains(repaired.Problems, p => p.Subject == "clone c1" && p.Repaired);
        CloneManifest after = Manifest.Read<CloneManifest>(CloneJson(t, "c1"));
        Assert.Equal("c1", after.Name);
        Assert.Equal("b1", after.Base);
        Assert.Equal(before.Volumes.Select(v => (v.Name, v.Type, v.Format, v.File, v.Parent)), after.Volumes.Select(v => (v.Name, v.Type, v.Format, v.File, v.Parent)));
        Assert.Equal(emptyData, after.Volumes.Single(v => v.Name == "data").Parent is null);
        Assert.Equal(files, Directory.GetFiles(t.Store.CloneFolder("c1")).OrderBy(f => f, StringComparer.Ordinal).ToArray());
        Assert.Equal(CloneState.Ready, t.Store.GetClone("c1").State);
        Assert.Equal(data, TestStore.Hash(t.Volume("c1", "data")));
        Assert.Equal(system, TestStore.Hash(t.Volume("c1", "system")));

        t.Store.Execute(t.Store.PlanRestore("c1"));
        Assert.Equal(data, TestStore.Hash(t.Volume("c1", "data")));
    }

    [Theory]
    [InlineData("extra disk")]
    [InlineData("two children of one volume")]
    [InlineData("newer")]
    [InlineData("no base")]
    public void ARebuildThatIsNotUnambiguousIsRefusedWithTheReasonAndDeletesNothing(string how)
    {
        using var t = NewStore();
        string folder = t.Store.CloneFolder("c1");
        switch (how)
        {
            case "extra disk":
                VirtualDisk.CreateDynamic(Path.Combine(folder, "scratch.vhdx"), TestStore.VolumeSize).Dispose();
                break;
            case "two children of one volume":
                File.Copy(Path.Combine(folder, "system.vhdx"), Path.Combine(folder, "system2.vhdx"));
                break;
            case "no base":
                File.Delete(Path.Combine(folder, "system.vhdx"));
                File.Delete(Path.Combine(folder, "temp.vhdx"));
                File.Delete(Path.Combine(folder, "data.vhdx"));
                VirtualDisk.CreateDynamic(Path.Combine(folder, "data.vhdx"), TestStore.VolumeSize).Dispose();
                break;
        }
        Damage(t, "c1", how == "newer" ? "newer" : "garbage");
        string json = File.ReadAllText(CloneJson(t, "c1"));
        string snapshot = t.Snapshot();

        VmStoreReport report = t.Store.Check(repair: true);

        Assert.False(report.IsHealthy);
        VmStoreProblem p = Assert.Single(report.Problems, x => x.Subject == "clone c1" && x.Path == CloneJson(t, "c1"));
        Assert.False(p.Repaired);
        Assert.StartsWith("not repaired", p.Repair);
        Assert.Contains("nothing was deleted", p.Repair);
        Assert.Equal(json, File.ReadAllText(CloneJson(t, "c1")));
        Assert.Equal(snapshot, t.Snapshot());
        Assert.Equal(CloneState.Unreadable, t.Store.GetClone("c1").State);
    }
}
