using System;
using System.IO;
using System.Linq;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// A fleet rebased onto a base whose system and data volumes grew: each clone's system is a child
/// of the larger system, its data reads as before over the old length and as zeros after it
/// (whatever the larger base's data holds there), and the old base can be removed. A base with a
/// smaller volume stays refused.
/// </summary>
public class GrownOutlineTests
{
    private const long Size = 8L << 20;

    private static VolumeSpec[] Specs(TestStore t, string prefix, long size, bool data) => new[]
    {
        new VolumeSpec { Name = "system", Type = VolumeType.System, Path = t.SourceDisk($"{prefix}-system.vhdx", $"{prefix} system", size) },
        new VolumeSpec { Name = "temp", Type = VolumeType.Temporary, SizeBytes = size },
        new VolumeSpec { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk($"{prefix}-data.vhdx", data ? $"{prefix} data" : null, size) },
    };

    private static string Volume(VmStore s, string clone, string volume) => s.GetClone(clone).Volumes.Single(v => v.Name == volume).Path;

    /// <summary>The data's first <see cref="Size"/> bytes hashed, and whether the rest is zeros.</summary>
    private static string Prefix(VmStore s, string clone)
    {
        using VirtualDisk disk = VirtualDisk.Open(Volume(s, clone, "data"), FileAccess.Read, s.OpenOptions);
        var head = new byte[Size];
        int read = 0;
        while (read < head.Length && disk.Content.Read(head, read, head.Length - read) is int n && n > 0)
            read += n;
        var rest = new byte[1 << 20];
        bool zeros = true;
        while (disk.Content.Read(rest, 0, rest.Length) is int m && m > 0)
            zeros &= rest.AsSpan(0, m).IndexOfAnyExcept((byte)0) < 0;
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(head)) + (zeros ? " then zeros" : " then data");
    }

    [Fact]
    public void AFleetMovesOntoLargerVolumesWithItsDataKeptAndZerosAddedAndTheOldBaseGoes()
    {
        using var t = new TestStore();
        VmStore s = t.Store;
        s.Execute(s.PlanNewBase("v1", Specs(t, "v1", Size, data: true)));
        s.Execute(s.PlanNewBase("v1-empty", Specs(t, "v1e", Size, data: false)));
        VolumeSpec[] big = Specs(t, "big", 2 * Size, data: true);
        // The larger base holds data past the clones' old end: a clone must not show it.
        TestStore.Write(big[2].Path!, Size + 4096, "base data past the old end");
        s.Execute(s.PlanNewBase("big", big));
        s.Execute(s.PlanNewClone("lab-01", "v1"));
        s.Execute(s.PlanNewClone("lab-02", "v1-empty"));
        TestStore.Write(Volume(s, "lab-01", "data"), Size - 4096, "lab-01 at its end");
        TestStore.Write(Volume(s, "lab-02", "data"), 4096, "lab-02 standalone");
        string one = Prefix(s, "lab-01"), two = Prefix(s, "lab-02");
        string twoFile = Volume(s, "lab-02", "data");

        StorePlan plan = s.PlanRebase("lab-01", "big");
        PlannedVolume data = plan.Volumes.Single(v => v.Volume == "data");
        Assert.Equal(2 * Size, data.GrowTo);
        Assert.Contains("grow from 8 MiB to 16 MiB", data.Describe());
        s.Execute(plan);
        s.Execute(s.PlanRebase("lab-02", "big"));

        Assert.Equal(one, Prefix(s, "lab-01"));
        Assert.Equal(two, Prefix(s, "lab-02"));
        Assert.EndsWith(" then zeros", one);
        Assert.Equal(twoFile, Volume(s, "lab-02", "data")); // a standalone data volume grew in place
        foreach (string c in new[] { "lab-01", "lab-02" })
        {
            using VirtualDisk system = VirtualDisk.Open(Volume(s, c, "system"), FileAccess.Read, s.OpenOptions);
            Assert.Equal(2 * Size, system.Capacity);
            Assert.Equal("big system", TestStore.Read(Volume(s, c, "system"), 0, 10));
            Assert.Equal("big", s.LoadClone(c).Base);
        }
        Assert.True(s.Check(repair: false).IsHealthy);
        s.Execute(s.PlanRemoveBase("v1"));
        Assert.False(s.BaseExists("v1"));
        Assert.Equal(one, Prefix(s, "lab-01"));
    }

    [Fact]
    public void ABaseWithASmallerVolumeIsRefusedWithOutlineMismatchAndAdviceThatCanWork()
    {
        using var t = new TestStore();
        VmStore s = t.Store;
        s.Execute(s.PlanNewBase("v1", Specs(t, "v1", Size, data: true)));
        VolumeSpec[] small = Specs(t, "small", Size, data: true);
        small[2] = new VolumeSpec { Name = "data", Type = VolumeType.Data, SizeBytes = Size / 2 };
        s.Execute(s.PlanNewBase("small", small));
        s.Execute(s.PlanNewClone("lab", "v1"));
        var refused = Assert.Throws<StoreException>(() => s.PlanRebase("lab", "small"));
        Assert.Equal(StoreErrorIds.OutlineMismatch, refused.ErrorId);
        Assert.Contains("never shrinks", refused.Message);
        Assert.Contains("or larger", refused.Message);
    }
}
