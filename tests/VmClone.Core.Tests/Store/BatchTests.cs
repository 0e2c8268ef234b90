using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using VmClone.Core.Store;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// Parallel operations in one process: without a batch every Execute takes the store lock in
/// turn; inside a batch the lock is held once and operations on different clones run side by
/// side, while two on the same clone still wait for each other.
/// </summary>
public class BatchTests
{
    private static void NewFleet(TestStore t, int clones)
    {
        string system = t.SourceDisk("system.vhdx", "operating system");
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = system },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            new() { Name = "data", Type = VolumeType.Data, SizeBytes = TestStore.VolumeSize },
        };
        t.Store.Execute(t.Store.PlanNewBase("win11", specs, VmClone.Disks.DiskFormat.Vhdx));
        for (int i = 1; i <= clones; i++)
            t.Store.Execute(t.Store.PlanNewClone($"lab-{i:d2}", "win11"));
    }

    [Fact]
    public void InsideABatchExecuteDoesNotWaitForTheLockTheBatchHolds()
    {
        using var t = new TestStore();
        NewFleet(t, 1);
        var watch = Stopwatch.StartNew();
        using (t.Store.BeginBatch())
        {
            // Were the file lock taken again, this would wait 30 s and fail with StoreBusy.
            t.Store.Execute(t.Store.PlanRestore("lab-01"));
            using (VmStore.At(t.Root).BeginBatch())
                t.Store.Execute(t.Store.PlanClearTemporary("lab-01"));
        }
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
        // Released: an operation outside any batch takes the lock again.
        t.Store.Execute(t.Store.PlanRestore("lab-01"));
    }

    [Fact]
    public void ClonesRestoredFromManyThreadsInABatchAreAllRestoredAndHealthy()
    {
        using var t = new TestStore();
        NewFleet(t, 8);
        var names = t.Store.CloneNames();
        foreach (string n in names)
            TestStore.Write(t.Volume(n, "system"), 0, "scratch of " + n);
        var plans = names.Select(n => t.Store.PlanRestore(n)).ToList();
        using (t.Store.BeginBatch())
            Parallel.ForEach(plans, new ParallelOptions { MaxDegreeOfParallelism = 8 }, p => t.Store.Execute(p));
        foreach (string n in names)
            Assert.Equal("operating system", TestStore.Read(t.Volume(n, "system"), 0, 16));
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    [Fact]
    public void WithoutABatchThreadsTakeTheStoreLockInTurn()
    {
        using var t = new TestStore();
        NewFleet(t, 4);
        var plans = t.Store.CloneNames().Select(n => t.Store.PlanClearTemporary(n)).ToList();
        Parallel.ForEach(plans, new ParallelOptions { MaxDegreeOfParallelism = 4 }, p => VmStore.At(t.Root).Execute(p));
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    [Fact]
    public void TwoOperationsOnOneCloneInABatchWaitForEachOther()
    {
        using var t = new TestStore();
        NewFleet(t, 1);
        // Both planned before either runs: the second finds the clone changed and does nothing.
        var plans = new[] { t.Store.PlanRestore("lab-01"), t.Store.PlanRestore("lab-01") };
        var outcomes = new string[2];
        using (t.Store.BeginBatch())
        {
            Parallel.For(0, 2, i =>
            {
                try
                {
                    t.Store.Execute(plans[i]);
                    outcomes[i] = "done";
                }
                catch (StoreException ex)
                {
                    outcomes[i] = ex.ErrorId;
                }
            });
        }
        Assert.Equal(new[] { "CloneChanged", "done" }, outcomes.OrderBy(o => o, StringComparer.Ordinal));
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    [Fact]
    public void ARefusalNamesTheProcessAndOperationHoldingTheLock()
    {
        using var t = new TestStore();
        NewFleet(t, 2);
        int self = Process.GetCurrentProcess().Id;
        using (StoreLocks.Acquire(t.Root, new[] { new LockRequest("clone", "lab-01", exclusive: true), new LockRequest("base", "win11", exclusive: false) }, "Restore clone 'lab-01'", default))
        {
            // Another operation on the same clone is refused and told who holds it; one on another clone is not.
            var busy = Assert.Throws<StoreException>(() =>
                StoreLocks.Acquire(t.Root, new[] { new LockRequest("clone", "LAB-01", exclusive: true) }, "Rebase", default, TimeSpan.Zero));
            Assert.Equal("CloneBusy", busy.ErrorId);
            Assert.Contains($"process {self}", busy.Message);
            Assert.Contains("Restore clone 'lab-01'", busy.Message);
            var baseBusy = Assert.Throws<StoreException>(() =>
                StoreLocks.Acquire(t.Root, new[] { new LockRequest("base", "win11", exclusive: true) }, "Remove base", default, TimeSpan.Zero));
            Assert.Contains("Restore clone 'lab-01'", baseBusy.Message);
            StoreLocks.Acquire(t.Root, new[] { new LockRequest("clone", "lab-02", exclusive: true) }, "Restore clone 'lab-02'", default, TimeSpan.Zero).Dispose();
        }
        // Released with the operation: no owner file names it any more (emptied ones are kept for reuse).
        Assert.All(System.IO.Directory.GetFiles(System.IO.Path.Combine(t.Root, StoreLocks.FolderName), "*.owner"),
            f => Assert.Equal(0, new System.IO.FileInfo(f).Length));
        Assert.Equal("another VmClone command", StoreLocks.DescribeHolders(System.IO.Path.Combine(t.Root, StoreLocks.FolderName), "clone-lab-01"));
        StoreLocks.Acquire(t.Root, new[] { new LockRequest("clone", "lab-01", exclusive: true) }, "Rebase", default, TimeSpan.Zero).Dispose();
    }
}
