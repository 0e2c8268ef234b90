using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// Export of a clone: standalone disks that read as the clone, written so that an export cut
/// off anywhere leaves no destination (only the hidden folder the next export replaces) and
/// never touches the store.
/// </summary>
public class ExportTests
{
    private static void NewFleet(TestStore t, DiskFormat format = DiskFormat.Vhdx)
    {
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk("system.vhdx", "operating system") },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            new() { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk("data.vhdx", "shared data") },
        };
        t.Store.Execute(t.Store.PlanNewBase("v1", specs, format));
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        TestStore.Write(t.Volume("lab", "system"), 4096, "lab system");
        TestStore.Write(t.Volume("lab", "data"), 8192, "lab data");
        TestStore.Write(t.Volume("lab", "temp"), 0, "scratch");
    }

    /// <summary>Counts disk writes, resizes and flushes, and throws <see cref="SimulatedCrash"/> at the chosen one.</summary>
    private sealed class Cutter : IFileWriteObserver
    {
        public int Hits;
        public int CrashAt = -1;

        public void Hit(string what)
        {
            if (++Hits == CrashAt)
                throw new SimulatedCrash(what);
        }

        public void BeforeWrite(string path, long position, byte[] buffer, int offset, int count) => Hit("write");

        public void BeforeSetLength(string path, long length) => Hit("resize");

        public void BeforeFlush(string path) => Hit("flush");

        public void AfterFlush(string path)
        {
        }
    }

    [Theory]
    [InlineData(DiskFormat.Vhdx, null)]
    [InlineData(DiskFormat.Vmdk, DiskFormat.Qcow2)]
    public void EveryVolumeReadsAsTheCloneAndTheStoreIsOnlyRead(DiskFormat format, DiskFormat? to)
    {
        using var t = new TestStore();
        NewFleet(t, format);
        string before = string.Join("\n", t.Snapshot().Split('\n').Where(l => !l.Contains("/.locks/")));
        string destination = t.File("out/lab");
        VmCloneExport export = t.Store.Export(t.Store.PlanExport("lab", destination, to));

        Assert.Equal(new[] { "system", "temp", "data" }, export.Volumes.Select(v => v.Name));
        Assert.Equal(TestStore.Hash(t.Volume("lab", "system"), t.Store.OpenOptions), TestStore.Hash(export.Volumes[0].Path));
        Assert.Equal(TestStore.Hash(t.BaseVolume("v1", "temp"), t.Store.OpenOptions), TestStore.Hash(export.Volumes[1].Path));
        Assert.Equal(TestStore.Hash(t.Volume("lab", "data"), t.Store.OpenOptions), TestStore.Hash(export.Volumes[2].Path));
        Assert.All(export.Volumes, v =>
        {
            using DiskLayer layer = VirtualDisk.OpenLayer(v.Path, FileAccess.Read);
            Assert.Null(layer.ParentReference);
            Assert.Equal(to ?? format, layer.Format);
        });
        ExportManifest manifest = Manifest.Read<ExportManifest>(Path.Combine(destination, ExportManifest.FileName));
        Assert.Equal("lab", manifest.Name);
        Assert.Equal(new[] { VolumeType.System, VolumeType.Temporary, VolumeType.Data }, manifest.Volumes.Select(v => v.Type));
        Assert.Equal(before, string.Join("\n", t.Snapshot().Split('\n').Where(l => !l.Contains("/.locks/") && !l.Contains("/out"))));
    }

    [Fact]
    public void CutOffAtAnyWriteLeavesNoDestinationAndTheNextExportCompletes()
    {
        using var t = new TestStore();
        NewFleet(t);
        string destination = t.File("out/lab");
        string expected = TestStore.Hash(t.Volume("lab", "data"), t.Store.OpenOptions);

        var counter = new Cutter();
        FileAccessor.Observer = counter;
        try { t.Store.Export(t.Store.PlanExport("lab", t.File("count/lab"))); }
        finally { FileAccessor.Observer = null; }
        Assert.True(counter.Hits > 3, $"only {counter.Hits} crash points");

        // An evenly spread sample of the crash points, the first and the last included.
        int[] points = Enumerable.Range(0, 8).Select(i => 1 + (int)((long)i * (counter.Hits - 1) / 7)).Distinct().ToArray();
        foreach (int point in points)
        {
            var cutter = new Cutter { CrashAt = point };
            FileAccessor.Observer = cutter;
            try
            {
                Assert.ThrowsAny<SimulatedCrash>(() => t.Store.Export(t.Store.PlanExport("lab", destination)));
            }
            finally
            {
                FileAccessor.Observer = null;
            }
            Assert.False(Directory.Exists(destination), $"cut at point {point} of {counter.Hits}: no destination until the export is whole");
        }

        // The last step too: everything written, the folder not yet moved into place.
        FaultPoint.Hook = p => { if (p == "export written") throw new SimulatedCrash(p); };
        try { Assert.ThrowsAny<SimulatedCrash>(() => t.Store.Export(t.Store.PlanExport("lab", destination))); }
        finally { FaultPoint.Hook = null; }
        Assert.False(Directory.Exists(destination));

        VmCloneExport export = t.Store.Export(t.Store.PlanExport("lab", destination));
        Assert.Equal(expected, TestStore.Hash(export.Volumes[2].Path));
        // The hidden folders the cut-off exports left were replaced by the one that completed.
        Assert.Equal(new[] { "lab" }, Directory.GetFileSystemEntries(t.File("out")).Select(Path.GetFileName));
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    [Fact]
    public void AnExportPlannedBeforeAnotherCommandChangedTheCloneIsRefused()
    {
        using var t = new TestStore();
        NewFleet(t);
        ExportPlan plan = t.Store.PlanExport("lab", t.File("out/lab"));
        t.Store.Execute(t.Store.PlanRestore("lab"));
        StoreException e = Assert.Throws<StoreException>(() => t.Store.Export(plan));
        Assert.Equal(StoreErrorIds.CloneChanged, e.ErrorId);
        Assert.False(Directory.Exists(t.File("out/lab")));
    }

    [Fact]
    public void ADestinationInsideTheStoreOrOneThatExistsIsRefusedBeforeAnythingIsRead()
    {
        using var t = new TestStore();
        NewFleet(t);
        StoreException inside = Assert.Throws<StoreException>(() => t.Store.PlanExport("lab", Path.Combine(t.Store.Root, "exports", "lab")));
        Assert.Equal(StoreErrorIds.ExportInsideStore, inside.ErrorId);
        Directory.CreateDirectory(t.File("out/lab"));
        StoreException exists = Assert.Throws<StoreException>(() => t.Store.PlanExport("lab", t.File("out/lab")));
        Assert.Equal(StoreErrorIds.DestinationExists, exists.ErrorId);
        Assert.Contains(t.File("out/lab"), exists.Message);
    }
}
