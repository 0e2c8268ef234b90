using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;
using System.Threading.Tasks;
using VmClone.Core.Store;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// Files a store record names (manifests, plans, volumes probed for use) may be swapped by
/// someone who can write the clone folder at any instant, also between a check of the path and
/// its open: a FIFO there must not make a command wait forever, a huge file must not be read.
/// </summary>
public class RecordFileTests
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(20);

    private static TestStore NewStoreWithClone()
    {
        var t = new TestStore();
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk("b1-system.vhdx", "b1 operating system") },
            new() { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk("b1-data.vhdx", "shared data") },
        };
        t.Store.Execute(t.Store.PlanNewBase("b1", specs));
        t.Store.Execute(t.Store.PlanNewClone("c1", "b1"));
        return t;
    }

    private static string CloneJson(TestStore t) => Path.Combine(t.Store.CloneFolder("c1"), "clone.json");

    private static void MakeFifo(string path)
    {
        using Process p = Process.Start(new ProcessStartInfo("mkfifo", $"\"{path}\"") { UseShellExecute = false })!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    /// <summary>Runs <paramref name="work"/> with a hang guard; a reader left waiting on <paramref name="fifo"/> is let go by opening it for writing.</summary>
    private static Exception? BoundedThrows(Action work, string fifo) => BoundedThrows(work, () => fifo);

    private static Exception? BoundedThrows(Action work, Func<string?> fifoOf)
    {
        Task task = Task.Run(work);
        bool ended = task.Wait(TimeSpan.Zero) || WaitQuietly(task);
        if (!ended)
        {
            string fifo = fifoOf() ?? "";
            using (new FileStream(fifo, FileMode.Open, FileAccess.Write))
            {
            }
            Assert.Fail($"did not end within {HangGuard.TotalSeconds} s: it waited on the FIFO '{fifo}'");
        }
        return task.Exception?.InnerException;
    }

    private static bool WaitQuietly(Task task)
    {
        try
        {
            return task.Wait(HangGuard);
        }
        catch (AggregateException)
        {
            return true;
        }
    }

    [Fact]
    public void TheInUseProbeOnAFifoEndsAndFindsNoHolder()
    {
        if (OperatingSystem.IsWindows())
            return;
        using var t = new TestStore();
        string fifo = t.File("volume.vhdx");
        MakeFifo(fifo);
        string? holder = "not run";
        Assert.Null(BoundedThrows(() => holder = FileInUse.Holder(fifo), fifo));
        Assert.Null(holder);
    }

    [Fact]
    public void AManifestSwappedForAFifoJustBeforeItIsOpenedIsRefusedInBoundedTime()
    {
        if (OperatingSystem.IsWindows())
            return;
        using TestStore t = NewStoreWithClone();
        string json = CloneJson(t);
        Exception? refused = BoundedThrows(() =>
        {
            RecordFile.BeforeOpen = path =>
            {
                if (path == json)
                {
                    File.Delete(json);
                    MakeFifo(json);
                }
            };
            t.Store.LoadClone("c1");
        }, json);
        Assert.Equal(StoreErrorIds.ManifestInvalid, Assert.IsType<StoreException>(refused).ErrorId);
        Assert.Contains(json, refused!.Message);
    }

    [Fact]
    public void AManifestSwappedForAHugeFileJustBeforeItIsOpenedIsRefusedWithoutReadingIt()
    {
        if (OperatingSystem.IsWindows())
            return;
        using TestStore t = NewStoreWithClone();
        string json = CloneJson(t);
        long allocated = 0;
        Exception? refused = BoundedThrows(() =>
        {
            RecordFile.BeforeOpen = path =>
            {
                if (path != json)
                    return;
                // Sparse: 200 MiB claimed, nothing stored; reading it all would cost hundreds of MiB of strings.
                using var fs = new FileStream(json + ".huge", FileMode.Create, FileAccess.Write);
                fs.SetLength(200L << 20);
                fs.Dispose();
                File.Move(json + ".huge", json, overwrite: true);
            };
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                t.Store.LoadClone("c1");
            }
            finally
            {
                allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            }
        }, json);
        Assert.Equal(StoreErrorIds.ManifestInvalid, Assert.IsType<StoreException>(refused).ErrorId);
        Assert.True(allocated < 8L << 20, $"refusing a 200 MiB manifest allocated {allocated >> 20} MiB");
    }

    [Fact]
    public void AManifestOverOneMiBIsRefusedEvenWhenItIsValidJson()
    {
        using TestStore t = NewStoreWithClone();
        string json = CloneJson(t);
        string text = File.ReadAllText(json).TrimEnd();
        // Valid JSON, padded with whitespace inside the object to 2 MiB: no store writes such a record.
        File.WriteAllText(json, text.Substring(0, text.Length - 1) + new string(' ', 2 << 20) + "}", new UTF8Encoding(false));
        var refused = Assert.Throws<StoreException>(() => t.Store.LoadClone("c1"));
        Assert.Equal(StoreErrorIds.ManifestInvalid, refused.ErrorId);
    }

    [Fact]
    public void APlanSwappedForAFifoJustBeforeRecoveryReadsItEndsInBoundedTime()
    {
        if (OperatingSystem.IsWindows())
            return;
        using TestStore t = NewStoreWithClone();
        FaultPoint.Hook = p => { if (p == "committing") throw new SimulatedCrash(p); };
        try
        {
            Assert.Throws<SimulatedCrash>(() => t.Store.Execute(t.Store.PlanRestore("c1")));
        }
        finally
        {
            FaultPoint.Hook = null;
        }
        string? fifo = null;
        Exception? failed = BoundedThrows(() =>
        {
            RecordFile.BeforeOpen = path =>
            {
                if (Path.GetFileName(path) != "plan.json")
                    return;
                fifo = path;
                File.Delete(path);
                MakeFifo(path);
            };
            t.Store.Check(repair: true);
        }, () => fifo);
        Assert.Null(failed);
        Assert.NotNull(fifo);
        Assert.True(t.Store.Check(repair: false).IsHealthy);
        Assert.Equal(CloneState.Ready, t.Store.GetClone("c1").State);
    }
}
