using System;
using System.Collections.Generic;
using System.IO;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;
using Xunit.Abstractions;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// How often an operation opens a clone's data volume: each open reads and checks the file's
/// headers again, and a fleet command does it for every clone.
/// </summary>
public class OpenCountTests
{
    private readonly ITestOutputHelper _output;

    public OpenCountTests(ITestOutputHelper output) => _output = output;

    private static void NewBase(TestStore t, string name)
    {
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk($"{name}-system.vhdx", $"{name} operating system") },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            new() { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk($"{name}-data.vhdx", $"{name} shared data") },
        };
        t.Store.Execute(t.Store.PlanNewBase(name, specs));
    }

    /// <summary>Opens of <paramref name="path"/> (by the engine, any access) while <paramref name="work"/> runs.</summary>
    private static int OpensOf(string path, Action work)
    {
        string full = Path.GetFullPath(path);
        int count = 0;
        Action<string>? before = FileAccessor.OpenObserver;
        FileAccessor.OpenObserver = p =>
        {
            if (string.Equals(p, full, StringComparison.Ordinal))
                count++;
        };
        try
        {
            work();
        }
        finally
        {
            FileAccessor.OpenObserver = before;
        }
        return count;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ARebaseOpensTheDataVolumeOnlyAsOftenAsItsWorkNeeds(bool rememberBases)
    {
        using var t = new TestStore(rememberBases);
        NewBase(t, "v1");
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        t.Store.Execute(t.Store.PlanNewClone("source", "v1"));
        TestStore.Write(t.Volume("source", "system"), 5 << 20, "update 2026-11");
        t.Store.Execute(t.Store.PlanNewBaseFromClone("v2", "source"));
        string data = t.Volume("lab", "data");
        TestStore.Write(data, 3 << 20, "lab user documents");
        string before = TestStore.Hash(data, t.Store.OpenOptions);

        int opens = OpensOf(data, () => t.Store.Execute(t.Store.PlanRebase("lab", "v2"), describeResult: false));

        _output.WriteLine($"data volume opened {opens} times by a rebase");
        Assert.Equal(before, TestStore.Hash(data, t.Store.OpenOptions));
        Assert.Equal("v2", t.Store.GetClone("lab").Base);
        Assert.Equal(rememberBases ? RebaseOpensRemembering : RebaseOpens, opens);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ARestoreOpensTheDataVolumeAtMostOnce(bool rememberBases)
    {
        using var t = new TestStore(rememberBases);
        NewBase(t, "v1");
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        string data = t.Volume("lab", "data");
        TestStore.Write(data, 3 << 20, "lab user documents");

        int opens = OpensOf(data, () => t.Store.Execute(t.Store.PlanRestore("lab"), describeResult: false));

        _output.WriteLine($"data volume opened {opens} times by a restore");
        Assert.Equal("lab user documents", TestStore.Read(data, 3 << 20, 18));
        Assert.Equal(RestoreOpens, opens);
    }

    // Planning reads it once (its layer; then its chain, unless the base volume it depends on is
    // remembered, to check the link): the outline, its health and its step all come from that
    // reading. Re-parenting opens it once more, to write. (Before: 6 and 5, the outline, the
    // health check and the step each opening it, and the re-parent opening it again to describe it.)
    private const int RebaseOpens = 3;

    private const int RebaseOpensRemembering = 2;

    // A restore keeps data volumes without reading them.
    private const int RestoreOpens = 0;
}
