using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// What a plan copies ("copies at most", per step and in all) and the free-space check every
/// command that copies makes before it writes anything (DiskFull up front, with the numbers).
/// A nearly full disk is pretended (<see cref="FreeSpace.Pretend"/>), never made.
/// </summary>
public class SpaceTests
{
    private const long MiB = 1L << 20;

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

    /// <summary>v1, clones lab and build, and v2 made from build (its data the clone's, -DataFrom Clone): a rebase of lab onto v2 re-parents its data volume.</summary>
    private static void TwoBases(TestStore t, BaseDataSource dataFrom = BaseDataSource.Clone)
    {
        NewBase(t, "v1");
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        t.Store.Execute(t.Store.PlanNewClone("build", "v1"));
        TestStore.Write(t.Volume("build", "system"), 5 * MiB, "update 2026-11");
        TestStore.Write(t.Volume("build", "data"), 7 * MiB, "build data");
        t.Store.Execute(t.Store.PlanNewBaseFromClone("v2", "build", dataFrom: dataFrom));
        TestStore.Write(t.Volume("lab", "data"), 3 * MiB, "lab user documents");
    }

    /// <summary>Bytes the file system gives <paramref name="path"/> (0 for no file).</summary>
    private static long Allocated(string path) =>
        File.Exists(path) ? RegularFile.AllocatedBytes(path) ?? new FileInfo(path).Length : 0;

    /// <summary>Every file under the folder but the store's lock files, with its length and write time.</summary>
    private static string Snapshot(TestStore t) => string.Join("\n", t.Snapshot().Split('\n').Where(l => !l.Contains($"{Path.DirectorySeparatorChar}.locks")));

    /// <summary>What the chain of <paramref name="path"/> stores as data (whole allocated blocks, as its maps tell): what a copy reads.</summary>
    private static long SourceData(string path, DiskOpenOptions? options = null) =>
        DiskOperations.Measure(path, null, null, options, CancellationToken.None).DataBytes;

    /// <summary>
    /// A step's bound holds what it wrote, and is not far above the content it copies: the
    /// source's stored data, at most one destination unit (32 MiB, a VHDX block) more per run, and the metadata.
    /// </summary>
    private static void AssertBound(PlannedVolume step, long written, long sourceData)
    {
        Assert.True(written <= step.BytesToCopy, $"{step.Volume}: {written} bytes written, {step.BytesToCopy} planned");
        Assert.True(step.BytesToCopy <= sourceData + 40 * MiB, $"{step.Volume}: {step.BytesToCopy} bytes planned for {sourceData} bytes of data");
    }

    [Theory]
    [InlineData(DiskFormat.Vhdx)]
    [InlineData(DiskFormat.Vmdk)]
    [InlineData(DiskFormat.Qcow2)]
    [InlineData(DiskFormat.Vhd)]
    public void AnImportCopiesAtMostWhatItsPlanSaysAndAnEmptyVolumeNothing(DiskFormat format)
    {
        using var t = new TestStore();
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk("system.vhdx", "operating system") },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
        };
        StorePlan plan = t.Store.PlanNewBase("v1", specs, format);
        PlannedVolume system = plan.Volumes[0], temp = plan.Volumes[1];
        Assert.Equal(0, temp.BytesToCopy);
        Assert.True(system.BytesToCopy > 0);
        Assert.Equal(system.BytesToCopy, plan.BytesToCopy);

        string described = plan.Describe();
        Assert.Contains($"system (System): import from '{specs[0].Path}' (copies at most {Format.Bytes(system.BytesToCopy)})", described);
        Assert.Contains("temp (Temporary): create empty (64 MiB) (copies nothing)", described);
        Assert.EndsWith($"\n  in all: copies at most {Format.Bytes(plan.BytesToCopy)}", described.Replace("\r\n", "\n"));

        t.Store.Execute(plan);
        AssertBound(system, Allocated(t.BaseVolume("v1", "system")), SourceData(specs[0].Path!));
    }

    [Fact]
    public void CommandsThatMakeChildrenCopyNothingAndSaySo()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        var plans = new List<StorePlan> { t.Store.PlanNewClone("lab", "v1") };
        t.Store.Execute(plans[0]);
        plans.Add(t.Store.PlanRestore("lab"));
        plans.Add(t.Store.PlanClearTemporary("lab"));
        plans.Add(t.Store.PlanRenameClone("lab", "lab-2"));
        plans.Add(t.Store.PlanRemoveClone("lab"));
        foreach (StorePlan plan in plans)
        {
            Assert.All(plan.Volumes, v => Assert.Equal(0, v.BytesToCopy));
            Assert.Equal(0, plan.BytesToCopy);
            string[] lines = plan.Describe().Replace("\r\n", "\n").Split('\n');
            Assert.All(lines.Skip(1).Where(l => l.Contains("): ")), l => Assert.EndsWith("(copies nothing)", l));
            Assert.Equal("  in all: copies nothing", lines[^1]);
        }
    }

    [Fact]
    public void AChildIsMadeWithoutAskingTheFileSystemForSpace()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        using (FreeSpace.Pretend(_ => throw new InvalidOperationException("a plan that copies nothing asked for the free space")))
        {
            t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
            t.Store.Execute(t.Store.PlanRestore("lab"));
        }
        Assert.Equal(CloneState.Ready, t.Store.GetClone("lab").State);
    }

    [Fact]
    public void ARebaseReparentCopiesAtMostWhatItsPlanSays()
    {
        using var t = new TestStore();
        TwoBases(t);
        string data = t.Volume("lab", "data");
        string before = TestStore.Hash(data, t.Store.OpenOptions);
        long allocatedBefore = Allocated(data);

        StorePlan plan = t.Store.PlanRebase("lab", "v2");
        PlannedVolume step = plan.Volumes.Single(v => v.Volume == "data");
        Assert.Equal(VolumeAction.Reparent, step.Action);
        Assert.All(plan.Volumes.Where(v => v.Action != VolumeAction.Reparent), v => Assert.Equal(0, v.BytesToCopy));
        Assert.True(step.BytesToCopy > 0);
        // Never more than every unit of the disk and its metadata.
        Assert.True(step.BytesToCopy <= TestStore.VolumeSize + 32 * MiB + 2 * MiB, $"{step.BytesToCopy} bytes planned");
        Assert.Contains($"(copies at most {Format.Bytes(step.BytesToCopy)})", plan.Describe());

        t.Store.Execute(plan);
        Assert.Equal(before, TestStore.Hash(data, t.Store.OpenOptions));
        long grew = Allocated(data) - allocatedBefore;
        Assert.True(grew > 0, "the differences were copied into the child");
        Assert.True(grew <= step.BytesToCopy, $"the child grew by {grew} bytes, {step.BytesToCopy} planned");
    }

    [Fact]
    public void ARebaseFlattenCopiesAtMostWhatItsPlanSays()
    {
        using var t = new TestStore();
        TwoBases(t, BaseDataSource.Empty);
        StorePlan plan = t.Store.PlanRebase("lab", "v2");
        PlannedVolume step = plan.Volumes.Single(v => v.Volume == "data");
        Assert.Equal(VolumeAction.Flatten, step.Action);
        Assert.True(step.BytesToCopy > 0);
        long sourceData = SourceData(step.Source!, t.Store.OpenOptions);

        t.Store.Execute(plan);
        AssertBound(step, Allocated(t.Volume("lab", "data")), sourceData);
    }

    [Fact]
    public void ANewBaseFromACloneCopiesAtMostWhatItsPlanSays()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        t.Store.Execute(t.Store.PlanNewClone("build", "v1"));
        TestStore.Write(t.Volume("build", "system"), 9 * MiB, "update");
        StorePlan plan = t.Store.PlanNewBaseFromClone("v2", "build", dataFrom: BaseDataSource.Clone);
        Assert.All(plan.Volumes, v => Assert.True(v.BytesToCopy > 0, v.Volume));
        Dictionary<string, long> sourceData = plan.Volumes.ToDictionary(v => v.Volume, v => SourceData(v.Source!, t.Store.OpenOptions));
        t.Store.Execute(plan);
        foreach (PlannedVolume step in plan.Volumes)
            AssertBound(step, Allocated(t.BaseVolume("v2", step.Volume)), sourceData[step.Volume]);
    }

    [Fact]
    public void AnExportCopiesAtMostWhatItsPlanSays()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        TestStore.Write(t.Volume("lab", "data"), 8192, "lab data");
        string destination = t.File("export");
        ExportPlan plan = t.Store.PlanExport("lab", destination);
        string described = plan.Describe().Replace("\r\n", "\n");
        Assert.EndsWith($"\n  in all: copies at most {Format.Bytes(plan.BytesToCopy)}", described);
        t.Store.Export(plan);
        foreach (ExportStep step in plan.Volumes)
        {
            Assert.Contains($"(copies at most {Format.Bytes(step.BytesToCopy)})", described);
            long allocated = Allocated(step.File);
            Assert.True(allocated <= step.BytesToCopy, $"{step.Volume}: {allocated} written, {step.BytesToCopy} planned");
            Assert.True(step.BytesToCopy <= SourceData(step.Source, t.Store.OpenOptions) + 40 * MiB, $"{step.Volume}: {step.BytesToCopy} planned");
        }
    }

    /// <summary>A DiskFull refusal: the id, the folder, what was needed and what was free, in the message and in Data.</summary>
    private static void AssertDiskFull(VmCloneException ex, long needed, long free, string folder)
    {
        Assert.Equal(StoreErrorIds.DiskFull, ex.ErrorId);
        Assert.Equal(folder, ex.Data["Folder"]);
        Assert.Equal(needed, ex.Data["BytesNeeded"]);
        Assert.Equal(free, ex.Data["BytesFree"]);
        Assert.Contains($"'{folder}'", ex.Message);
        Assert.Contains($"{needed} bytes", ex.Message);
        Assert.Contains($"{free} bytes", ex.Message);
        Assert.Contains("not enough free space", ex.Message);
    }

    [Fact]
    public void ANewBaseThatDoesNotFitIsRefusedBeforeAnythingIsWritten()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        var specs = new List<VolumeSpec> { new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk("big.vhdx", "big") } };
        StorePlan plan = t.Store.PlanNewBase("v2", specs);
        string before = Snapshot(t);
        long free = plan.BytesToCopy + FreeSpace.Margin - 1;
        using (FreeSpace.Pretend(_ => free))
        {
            var ex = Assert.Throws<StoreException>(() => t.Store.Execute(plan));
            AssertDiskFull(ex, plan.BytesToCopy + FreeSpace.Margin, free, Path.Combine(t.Root, "bases"));
        }
        Assert.Equal(before, Snapshot(t));
        Assert.False(t.Store.BaseExists("v2"));
        // Exactly enough is enough.
        using (FreeSpace.Pretend(_ => free + 1))
            t.Store.Execute(plan);
        Assert.True(t.Store.BaseExists("v2"));
    }

    [Theory]
    [InlineData(BaseDataSource.Clone)] // re-parent
    [InlineData(BaseDataSource.Empty)] // flatten
    public void ARebaseThatDoesNotFitIsRefusedBeforeAnythingIsWritten(BaseDataSource dataFrom)
    {
        using var t = new TestStore();
        TwoBases(t, dataFrom);
        StorePlan plan = t.Store.PlanRebase("lab", "v2");
        string before = Snapshot(t);
        using (FreeSpace.Pretend(_ => 3 * MiB))
        {
            var ex = Assert.Throws<StoreException>(() => t.Store.Execute(plan));
            AssertDiskFull(ex, plan.BytesToCopy + FreeSpace.Margin, 3 * MiB, t.Store.CloneFolder("lab"));
        }
        Assert.Equal(before, Snapshot(t));
        Assert.Equal("v1", t.Store.GetClone("lab").Base);
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    [Fact]
    public void AnExportThatDoesNotFitIsRefusedBeforeAnythingIsWritten()
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        string destination = Path.Combine(t.File("exports"), "lab");
        ExportPlan plan = t.Store.PlanExport("lab", destination);
        string before = Snapshot(t);
        using (FreeSpace.Pretend(_ => MiB))
        {
            var ex = Assert.Throws<StoreException>(() => t.Store.Export(plan));
            AssertDiskFull(ex, plan.BytesToCopy + FreeSpace.Margin, MiB, t.File("exports"));
        }
        Assert.Equal(before, Snapshot(t));
        Assert.False(Directory.Exists(t.File("exports")));
    }

    [Fact]
    public void TwoCommandsRunningSideBySideDoNotCountOnTheSameFreeSpace()
    {
        using var t = new TestStore();
        TwoBases(t);
        t.Store.Execute(t.Store.PlanNewClone("lab-2", "v1"));
        StorePlan first = t.Store.PlanRebase("lab", "v2"), second = t.Store.PlanRebase("lab-2", "v2");
        long need = first.BytesToCopy + FreeSpace.Margin;
        // Room for one of them, not for both.
        using (FreeSpace.Pretend(_ => need + need / 2))
        {
            // The first holds its share while it runs (here: while the reservation a running rebase takes is held).
            using (IDisposable running = FreeSpace.Reserve(t.Store.CloneFolder("lab"), need, s => new InvalidOperationException(s.Numbers)))
            {
                var ex = Assert.Throws<StoreException>(() => t.Store.Execute(second));
                Assert.Equal(StoreErrorIds.DiskFull, ex.ErrorId);
                Assert.Equal(need / 2, ex.Data["BytesFree"]);
                Assert.Contains("set aside for other commands running", ex.Message);
            }
            // Once it ended, the other fits.
            t.Store.Execute(second);
        }
        Assert.Equal("v2", t.Store.GetClone("lab-2").Base);
    }

    [Fact]
    public void ParallelRebasesEachPassOrAreRefusedNeverBothOnTheSameSpace()
    {
        using var t = new TestStore();
        TwoBases(t);
        t.Store.Execute(t.Store.PlanNewClone("lab-2", "v1"));
        TestStore.Write(t.Volume("lab-2", "data"), 3 * MiB, "lab-2 documents");
        var plans = new[] { t.Store.PlanRebase("lab", "v2"), t.Store.PlanRebase("lab-2", "v2") };
        long need = plans.Max(p => p.BytesToCopy) + FreeSpace.Margin;
        using var bothStarted = new Barrier(2);
        var results = new Exception?[2];
        // The free space never changes here: only reservations can refuse the second.
        using (FreeSpace.Pretend(_ => need + need / 2))
        {
            var threads = Enumerable.Range(0, 2).Select(i => new Thread(() =>
            {
                try
                {
                    bothStarted.SignalAndWait();
                    t.Store.Execute(plans[i]);
                }
                catch (Exception ex)
                {
                    results[i] = ex;
                }
            })).ToList();
            threads.ForEach(th => th.Start());
            threads.ForEach(th => th.Join());
        }
        // Either one after the other (both done) or side by side (one refused up front, untouched).
        foreach ((Exception? ex, int i) in results.Select((e, i) => (e, i)))
        {
            string clone = i == 0 ? "lab" : "lab-2";
            if (ex is null)
                Assert.Equal("v2", t.Store.GetClone(clone).Base);
            else
            {
                Assert.Equal(StoreErrorIds.DiskFull, Assert.IsType<StoreException>(ex).ErrorId);
                Assert.Equal("v1", t.Store.GetClone(clone).Base);
            }
        }
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    [Fact]
    public void ConvertMergeAndResizeAreRefusedBeforeTheyWrite()
    {
        using var t = new TestStore();
        string source = t.SourceDisk("disk.vhdx", "content");
        string copy = t.File("copy.qcow2");
        using (FreeSpace.Pretend(_ => 0))
        {
            var ex = Assert.Throws<VmCloneException>(() => DiskOperations.Convert(source, copy, DiskFormat.Qcow2, null, null, null, CancellationToken.None));
            Assert.Equal(StoreErrorIds.DiskFull, ex.ErrorId);
            Assert.Equal(t.Folder, ex.Data["Folder"]);
            Assert.Equal(0L, ex.Data["BytesFree"]);
            Assert.False(File.Exists(copy));
            Assert.Empty(Directory.EnumerateDirectories(t.Folder, ".vmclone-staging-*"));

            string child = t.File("child.vhdx");
            VirtualDisk.CreateDifferencing(child, source).Dispose();
            TestStore.Write(child, 0, "child content");
            string before = t.Snapshot();
            ex = Assert.Throws<VmCloneException>(() => DiskOperations.Merge(child, null, false, null, CancellationToken.None));
            Assert.Equal(StoreErrorIds.DiskFull, ex.ErrorId);
            Assert.Equal(before, t.Snapshot());

            string raw = t.File("disk.img");
            File.WriteAllBytes(raw, new byte[1 << 20]);
            ex = Assert.Throws<VmCloneException>(() => DiskOperations.Resize(raw, 64 * MiB, toMinimum: false));
            Assert.Equal(StoreErrorIds.DiskFull, ex.ErrorId);
            Assert.Equal(1L << 20, new FileInfo(raw).Length);
            // A sparse disk grows its tables only: nothing is asked.
            DiskOperations.Resize(source, 2 * TestStore.VolumeSize, toMinimum: false);
        }
        // With room, the same copy is made and fits its bound.
        DiskOperations.Convert(source, copy, DiskFormat.Qcow2, null, null, null, CancellationToken.None);
        using VirtualDisk opened = VirtualDisk.Open(source, FileAccess.Read);
        Assert.True(Allocated(copy) <= DiskOperations.CopyBound(opened, DiskFormat.Qcow2, null, isFixed: false, CancellationToken.None));
    }

    [Fact]
    public void TheFreeSpaceIsThatOfTheFileSystemHoldingTheFolder()
    {
        using var t = new TestStore();
        long free = FreeSpace.Available(t.Folder);
        Assert.True(free > 0);
        // A folder not made yet is asked through its nearest existing ancestor.
        long notYet = FreeSpace.Available(Path.Combine(t.Folder, "not", "yet"));
        Assert.InRange(notYet, free - 64 * MiB, free + 64 * MiB);
        Assert.Equal(new DriveInfo(t.Folder).AvailableFreeSpace, FreeSpace.Available(t.Folder), (double)(64 * MiB));
    }
}
