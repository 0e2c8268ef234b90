using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Store;

public class OptimizeStoreTests
{
    private const int MiB = 1 << 20;

    /// <summary>
    /// A base of one system volume and a clone "lab" whose system volume rewrote 3 MiB with the
    /// base's own bytes, wrote 2 MiB of zeros over base zeros, and changed one small run.
    /// </summary>
    private static string MakeClone(TestStore t, DiskFormat format)
    {
        string source = t.SourceDisk("sys.vhdx", null);
        using (VirtualDisk disk = VirtualDisk.Open(source, FileAccess.ReadWrite))
        {
            disk.Content.Position = 0;
            disk.Content.Write(DiskFiles(1, 3 * MiB), 0, 3 * MiB);
        }
        t.Store.Execute(t.Store.PlanNewBase("b1", new[] { new VolumeSpec { Name = "system", Type = VolumeType.System, Path = source } }, format));
        t.Store.Execute(t.Store.PlanNewClone("lab", "b1"));
        string volume = t.Volume("lab", "system");
        using (VirtualDisk disk = VirtualDisk.Open(volume, FileAccess.ReadWrite, t.Store.OpenOptions))
        {
            disk.Content.Position = 0;
            disk.Content.Write(DiskFiles(1, 3 * MiB), 0, 3 * MiB);
            disk.Content.Position = 8 * MiB;
            disk.Content.Write(new byte[2 * MiB], 0, 2 * MiB);
        }
        TestStore.Write(volume, 20 * MiB, "lab installed an app");
        return volume;
    }

    private static byte[] DiskFiles(int seed, int length)
    {
        byte[] data = new byte[length];
        new System.Random(seed).NextBytes(data);
        return data;
    }

    private static long Stored(string path)
    {
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        return layer.AllocatedBytes;
    }

    [Theory]
    [InlineData(DiskFormat.Vhdx)]
    [InlineData(DiskFormat.Vmdk)]
    [InlineData(DiskFormat.Qcow2)]
    [InlineData(DiskFormat.Vhd)]
    public void AClonesVolumesAreOptimizedUnderItsLockAndReadTheSame(DiskFormat format)
    {
        using var t = new TestStore();
        string volume = MakeClone(t, format);
        string hash = TestStore.Hash(volume, t.Store.OpenOptions);
        long stored = Stored(volume);
        bool lockHeld = false;
        FaultPoint.Hook = p => { if (p == "optimize:copied") lockHeld = !StoreLocks.IsFree(t.Root, "clone", "lab"); };
        IReadOnlyList<VmDiskOptimization> results;
        try
        {
            results = t.Store.Optimize(t.Store.PlanOptimize("lab"));
        }
        finally
        {
            FaultPoint.Hook = null;
        }

        Assert.True(lockHeld, "the clone's lock was not held while its volume was rewritten");
        VmDiskOptimization r = Assert.Single(results);
        Assert.Equal(volume, r.Path);
        Assert.Equal(hash, TestStore.Hash(volume, t.Store.OpenOptions));
        Assert.True(Stored(volume) <= stored - 4L * MiB, $"{Stored(volume)} of {stored}");
        Assert.True(t.Store.Check(repair: false).IsHealthy);
        Assert.Equal("lab installed an app", TestStore.Read(volume, 20 * MiB, 20));
    }

    [Fact]
    public void AVolumeInUseIsRefusedAndNothingChanges()
    {
        using var t = new TestStore();
        string volume = MakeClone(t, DiskFormat.Vhdx);
        string bytes = Hashing.Sha256File(volume);
        OptimizePlan plan = t.Store.PlanOptimize("lab");
        using (new FileStream(volume, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            var ex = Assert.Throws<StoreException>(() => t.Store.Optimize(plan));
            Assert.Equal(StoreErrorIds.VolumeInUse, ex.ErrorId);
        }
        Assert.Equal(bytes, Hashing.Sha256File(volume));
        Assert.Empty(Directory.GetFileSystemEntries(t.Store.CloneFolder("lab"), ".vmclone-*"));
    }

    [Fact]
    public void AnUnknownVolumeIsRefusedWhenPlanning()
    {
        using var t = new TestStore();
        MakeClone(t, DiskFormat.Vhdx);
        var ex = Assert.Throws<StoreException>(() => t.Store.PlanOptimize("lab", new[] { "nosuch" }));
        Assert.Equal(StoreErrorIds.VolumeNotFound, ex.ErrorId);
    }

    [Fact]
    public void ACutOffOptimizesStagingFolderIsReportedAndRepairedOrCleanedByTheNextOptimize()
    {
        using var t = new TestStore();
        string volume = MakeClone(t, DiskFormat.Vhdx);
        string hash = TestStore.Hash(volume, t.Store.OpenOptions);
        void Crash()
        {
            FaultPoint.Hook = p => { if (p == "optimize:durable") throw new SimulatedCrash(p); };
            try
            {
                Assert.Throws<SimulatedCrash>(() => t.Store.Optimize(t.Store.PlanOptimize("lab")));
            }
            finally
            {
                FaultPoint.Hook = null;
            }
        }

        Crash();
        Assert.Equal(hash, TestStore.Hash(volume, t.Store.OpenOptions));
        VmStoreReport report = t.Store.Check(repair: false);
        Assert.False(report.IsHealthy);
        Assert.Equal(StoreProblemKind.InterruptedOperation, Assert.Single(report.Problems).Kind);
        t.Store.Check(repair: true);
        Assert.True(t.Store.Check(repair: false).IsHealthy);

        Crash();
        t.Store.Optimize(t.Store.PlanOptimize("lab"));
        Assert.Equal(hash, TestStore.Hash(volume, t.Store.OpenOptions));
        Assert.True(t.Store.Check(repair: false).IsHealthy);
        Assert.Empty(Directory.GetFileSystemEntries(t.Store.CloneFolder("lab"), ".vmclone-*"));
    }
}
