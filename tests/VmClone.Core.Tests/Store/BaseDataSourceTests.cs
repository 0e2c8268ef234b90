using System.Collections.Generic;
using System.Linq;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>Where a base made from a clone takes its data volume: the old base's by default, the clone's, or none.</summary>
public class BaseDataSourceTests
{
    /// <summary>v1 with shared data; "prep", the clone an update was prepared in, wrote to its system and its data.</summary>
    private static TestStore PreparedClone()
    {
        var t = new TestStore();
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk("system.vhdx", "v1 operating system") },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            new() { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk("data.vhdx", "v1 shared data") },
        };
        t.Store.Execute(t.Store.PlanNewBase("v1", specs));
        t.Store.Execute(t.Store.PlanNewClone("prep", "v1"));
        TestStore.Write(t.Volume("prep", "system"), 1 << 20, "update 2026-11");
        TestStore.Write(t.Volume("prep", "data"), 2 << 20, "the admin's test files");
        return t;
    }

    [Fact]
    public void ByDefaultTheNewBaseTakesTheOldBasesDataNotWhatWasWrittenToTheClone()
    {
        using TestStore t = PreparedClone();
        StorePlan plan = t.Store.PlanNewBaseFromClone("v2", "prep");
        Assert.Equal(BaseDataSource.Base, plan.DataFrom);
        Assert.Contains("data volumes from the clone's base", plan.Describe());
        Assert.Contains("data (Data): import from 'bases/v1/data.vhdx' — the data of base 'v1'", plan.Describe());
        t.Store.Execute(plan);
        Assert.Equal(TestStore.Hash(t.BaseVolume("v1", "data")), TestStore.Hash(t.BaseVolume("v2", "data")));
        Assert.Equal("update 2026-11", TestStore.Read(t.BaseVolume("v2", "system"), 1 << 20, 14));
        // A new clone of v2 starts with what clones of v1 started with.
        t.Store.Execute(t.Store.PlanNewClone("lab", "v2"));
        Assert.Equal("", TestStore.Read(t.Volume("lab", "data"), 2 << 20, 22));
        Assert.Equal("v1 shared data", TestStore.Read(t.Volume("lab", "data"), 0, 14));
    }

    [Fact]
    public void DataFromCloneTakesTheClonesDataAsEarlierVersionsDid()
    {
        using TestStore t = PreparedClone();
        string prepData = TestStore.Hash(t.Volume("prep", "data"), t.Store.OpenOptions);
        StorePlan plan = t.Store.PlanNewBaseFromClone("v2", "prep", dataFrom: BaseDataSource.Clone);
        Assert.Contains("data volumes from the clone", plan.Describe());
        Assert.Contains("the clone's current data (-DataFrom Clone)", plan.Describe());
        t.Store.Execute(plan);
        Assert.Equal(prepData, TestStore.Hash(t.BaseVolume("v2", "data")));
    }

    [Fact]
    public void DataFromEmptyGivesAnEmptyDataVolumeOfTheSameSizeAndClonesAStandaloneOne()
    {
        using TestStore t = PreparedClone();
        StorePlan plan = t.Store.PlanNewBaseFromClone("v2", "prep", format: DiskFormat.Vmdk, dataFrom: BaseDataSource.Empty);
        PlannedVolume step = plan.Volumes.Single(v => v.Volume == "data");
        Assert.Equal(VolumeAction.CreateEmpty, step.Action);
        Assert.Contains("data volumes empty", plan.Describe());
        VmBaseInfo v2 = (VmBaseInfo)t.Store.Execute(plan)!;
        VmVolumeInfo data = v2.Volumes.Single(v => v.Name == "data");
        Assert.Equal(TestStore.VolumeSize, data.VirtualSize);
        Assert.Equal(DiskFormat.Vmdk, data.Format);
        Assert.False(t.Store.LoadBase("v2").Volumes.Single(v => v.Name == "data").HoldsData);
        StorePlan clone = t.Store.PlanNewClone("lab", "v2");
        Assert.Equal(VolumeAction.CreateEmpty, clone.Volumes.Single(v => v.Volume == "data").Action);
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }
}
