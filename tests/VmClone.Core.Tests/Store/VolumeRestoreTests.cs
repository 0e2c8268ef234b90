using System;
using System.Collections.Generic;
using System.Linq;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>Restoring some volumes of a clone only: the named ones and those of the given types go back to the base, every other volume keeps every byte.</summary>
public class VolumeRestoreTests
{
    private static void NewBase(TestStore t, string name, DiskFormat format = DiskFormat.Vhdx)
    {
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk($"{name}-system.vhdx", $"{name} operating system") },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            new() { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk($"{name}-data.vhdx", $"{name} shared data") },
        };
        t.Store.Execute(t.Store.PlanNewBase(name, specs, format));
    }

    /// <summary>A clone of v1 whose every volume the guest wrote to; returns each volume's hash.</summary>
    private static Dictionary<string, string> WrittenClone(TestStore t, DiskFormat format = DiskFormat.Vhdx)
    {
        NewBase(t, "v1", format);
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        TestStore.Write(t.Volume("lab", "system"), 1 << 20, "lab installed an app");
        TestStore.Write(t.Volume("lab", "temp"), 2 << 20, "lab pagefile");
        TestStore.Write(t.Volume("lab", "data"), 3 << 20, "lab user documents");
        return new[] { "system", "temp", "data" }.ToDictionary(v => v, v => TestStore.Hash(t.Volume("lab", v)));
    }

    private static string BaseHash(TestStore t, string volume) => TestStore.Hash(t.BaseVolume("v1", volume));

    [Theory]
    [InlineData(DiskFormat.Vhdx)]
    [InlineData(DiskFormat.Vmdk)]
    [InlineData(DiskFormat.Qcow2)]
    public void RestoringTheSystemVolumeKeepsTheTemporaryAndDataVolumesByteForByte(DiskFormat format)
    {
        using var t = new TestStore();
        Dictionary<string, string> before = WrittenClone(t, format);
        StorePlan plan = t.Store.PlanRestore("lab", new[] { "SYSTEM" });
        Assert.Equal(new[] { "system" }, plan.Changes.Select(v => v.Volume));
        Assert.Contains("only volume(s) system", plan.Describe());
        t.Store.Execute(plan);
        Assert.Equal(BaseHash(t, "system"), TestStore.Hash(t.Volume("lab", "system")));
        Assert.Equal(before["temp"], TestStore.Hash(t.Volume("lab", "temp")));
        Assert.Equal(before["data"], TestStore.Hash(t.Volume("lab", "data")));
        Assert.NotNull(t.Store.LoadClone("lab").LastRestored);
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    [Fact]
    public void RestoringByTypeTakesOnlyThatTypeBack()
    {
        using var t = new TestStore();
        Dictionary<string, string> before = WrittenClone(t);
        t.Store.Execute(t.Store.PlanRestore("lab", null, new[] { VolumeType.Temporary }));
        Assert.Equal(before["system"], TestStore.Hash(t.Volume("lab", "system")));
        Assert.Equal(BaseHash(t, "temp"), TestStore.Hash(t.Volume("lab", "temp")));
        Assert.Equal(before["data"], TestStore.Hash(t.Volume("lab", "data")));
    }

    [Fact]
    public void ANamedDataVolumeGoesBackToTheBaseAndThePlanSaysItsContentIsDiscarded()
    {
        using var t = new TestStore();
        Dictionary<string, string> before = WrittenClone(t);
        StorePlan plan = t.Store.PlanRestore("lab", new[] { "data" });
        PlannedVolume step = plan.Volumes.Single(v => v.Volume == "data");
        Assert.True(step.DiscardsData);
        Assert.Contains("data (Data): replace by a child of 'bases/v1/data.vhdx' — its content is discarded", plan.Describe());
        Assert.All(plan.Volumes.Where(v => v.Volume != "data"), v => Assert.Equal(VolumeAction.Keep, v.Action));
        t.Store.Execute(plan);
        Assert.Equal(BaseHash(t, "data"), TestStore.Hash(t.Volume("lab", "data")));
        Assert.NotEqual(before["data"], TestStore.Hash(t.Volume("lab", "data")));
        Assert.Equal(before["system"], TestStore.Hash(t.Volume("lab", "system")));
        Assert.Equal(before["temp"], TestStore.Hash(t.Volume("lab", "temp")));
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    [Fact]
    public void AWholeRestoreStillNeverTouchesData()
    {
        using var t = new TestStore();
        Dictionary<string, string> before = WrittenClone(t);
        StorePlan plan = t.Store.PlanRestore("lab");
        Assert.DoesNotContain(plan.Volumes, v => v.DiscardsData);
        t.Store.Execute(plan);
        Assert.Equal(before["data"], TestStore.Hash(t.Volume("lab", "data")));
    }

    [Fact]
    public void AnUnknownVolumeIsRefusedNamingTheCloneAndItsVolumes()
    {
        using var t = new TestStore();
        WrittenClone(t);
        string snapshot = t.Snapshot();
        StoreException e = Assert.Throws<StoreException>(() => t.Store.PlanRestore("lab", new[] { "system", "users" }));
        Assert.Equal(StoreErrorIds.VolumeNotFound, e.ErrorId);
        Assert.Contains("'lab'", e.Message);
        Assert.Contains("'users'", e.Message);
        Assert.Contains("system (System), temp (Temporary), data (Data)", e.Message);
        Assert.Equal(snapshot, t.Snapshot());
    }

    [Fact]
    public void DataIsNeverRestoredByItsType()
    {
        using var t = new TestStore();
        WrittenClone(t);
        StoreException e = Assert.Throws<StoreException>(() => t.Store.PlanRestore("lab", null, new[] { VolumeType.Data }));
        Assert.Equal(StoreErrorIds.InvalidArgument, e.ErrorId);
    }

    [Fact]
    public void ARestoreOfSomeVolumesCutOffAndFinishedByRecoveryRestoresTheSameVolumes()
    {
        using var t = new TestStore();
        Dictionary<string, string> before = WrittenClone(t);
        FaultPoint.Hook = p => { if (p == "committing") throw new SimulatedCrash(p); };
        try
        {
            Assert.ThrowsAny<SimulatedCrash>(() => t.Store.Execute(t.Store.PlanRestore("lab", new[] { "temp" })));
        }
        finally
        {
            FaultPoint.Hook = null;
        }
        // Planned again before recovery ran, the same restore is made again for what recovery left: still the temporary volume only.
        t.Store.Execute(t.Store.PlanRestore("lab", new[] { "temp" }));
        Assert.Equal(before["system"], TestStore.Hash(t.Volume("lab", "system")));
        Assert.Equal(before["data"], TestStore.Hash(t.Volume("lab", "data")));
        Assert.Equal(BaseHash(t, "temp"), TestStore.Hash(t.Volume("lab", "temp")));
    }
}
