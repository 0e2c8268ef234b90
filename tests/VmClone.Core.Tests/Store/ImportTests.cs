using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;
using VmClone.Disks.Tests.Contract;
using VmClone.Disks.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// Importing differencing disks made elsewhere (by qemu-img, or by the engine over the base's
/// volume file or over an equal copy of it) as a clone: what was written before reads back
/// after, as our reader and the format's oracle see it; -Copy keeps the originals; every
/// refusal changes nothing.
/// </summary>
public class ImportTests
{
    private const long Size = 8L << 20;
    private readonly ITestOutputHelper _output;

    public ImportTests(ITestOutputHelper output) => _output = output;

    public static IEnumerable<object[]> Formats() => new[] { DiskFormat.Vhdx, DiskFormat.Vmdk, DiskFormat.Qcow2, DiskFormat.Vhd }.Select(f => new object[] { f });

    private static string Ext(DiskFormat f) => StoreLayout.Extension(f);

    /// <summary>v1 in <paramref name="format"/>: system and data holding data, an empty temp.</summary>
    private static void MakeBase(TestStore t, DiskFormat format, string name = "v1", long size = Size)
    {
        var specs = new[]
        {
            new VolumeSpec { Name = "system", Type = VolumeType.System, Path = t.SourceDisk($"{name}-system.vhdx", $"{name} system", size) },
            new VolumeSpec { Name = "temp", Type = VolumeType.Temporary, SizeBytes = size },
            new VolumeSpec { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk($"{name}-data.vhdx", $"{name} data", size) },
        };
        t.Store.Execute(t.Store.PlanNewBase(name, specs, format));
    }

    /// <summary>A folder outside the store, where other tools made their disks.</summary>
    private static string Outside(TestStore t)
    {
        string dir = t.File("elsewhere");
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>A child of <paramref name="parent"/> made by the engine, with writes of its own.</summary>
    private static string EngineChild(string path, string parent, string text)
    {
        VirtualDisk.CreateDifferencing(path, parent).Dispose();
        TestStore.Write(path, 1 << 20, text);
        TestStore.Write(path, 5 << 20, text + " (later)");
        return path;
    }

    private static string Hash(string path, DiskOpenOptions? options = null) => TestStore.Hash(path, options);

    private static string[] Chain(string path, DiskOpenOptions options)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, options);
        return disk.Layers.Select(l => l.Path).Reverse().ToArray();
    }

    /// <summary>Our reader and the format's oracle read the imported volume as the file read before.</summary>
    private static void AssertReadsAsBefore(TestStore t, DiskFormat format, string clone, string volume, string before)
    {
        string file = t.Volume(clone, volume);
        Assert.Equal(before, Hash(file, t.Store.OpenOptions));
        if (Oracle.SkipReason(ContractFormats.OracleTools, ContractFormats.OraclePython) is null)
        {
            string? oracle = ContractFormats.OracleSha256(format, Chain(file, t.Store.OpenOptions));
            Assert.True(string.Equals(before, oracle, StringComparison.OrdinalIgnoreCase), $"{format}: the oracle reads {file} otherwise");
        }
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void ChildrenTheEngineMadeOverTheBaseVolumesAreMovedInAndReadAsBefore(DiskFormat format)
    {
        using var t = new TestStore();
        MakeBase(t, format);
        string dir = Outside(t);
        string system = EngineChild(Path.Combine(dir, "system" + Ext(format)), t.BaseVolume("v1", "system"), "guest system");
        string data = EngineChild(Path.Combine(dir, "disk2" + Ext(format)), t.BaseVolume("v1", "data"), "guest documents");
        string systemBefore = Hash(system), dataBefore = Hash(data);

        StorePlan plan = t.Store.PlanImportClone("adopted", "v1", new[]
        {
            new ImportVolumeSpec { Name = "system", Path = system },
            new ImportVolumeSpec { Name = "data", Path = data },
        });
        string described = plan.Describe();
        _output.WriteLine(described);
        Assert.Contains("Import clone 'adopted' on base 'v1'", described);
        Assert.Contains($"import from '{system}' (moved), parent link re-pointed to 'bases/v1/system{Ext(format)}'", described);
        Assert.Contains($"create as a child of 'bases/v1/temp{Ext(format)}'", described);

        var info = (VmCloneInfo)t.Store.Execute(plan)!;
        Assert.Equal("adopted", info.Name);
        Assert.Equal("v1", info.Base);
        Assert.Equal(CloneState.Ready, info.State);
        Assert.False(File.Exists(system));
        Assert.False(File.Exists(data));
        Assert.False(File.Exists(Path.Combine(t.Store.CloneFolder("adopted"), StoreLayout.PlanFile)));
        Assert.Equal("guest system", TestStore.Read(t.Volume("adopted", "system"), 1 << 20, 12));
        AssertReadsAsBefore(t, format, "adopted", "system", systemBefore);
        AssertReadsAsBefore(t, format, "adopted", "data", dataBefore);
        Assert.Equal(Hash(t.BaseVolume("v1", "temp")), Hash(t.Volume("adopted", "temp"), t.Store.OpenOptions));
        VmStoreReport report = t.Store.Check(repair: false);
        Assert.True(report.IsHealthy && report.Problems.Count == 0, string.Join("; ", report.Problems.Select(p => p.Description)));

        // The clone is then like any other: a restore brings the base's system back and keeps its data.
        t.Store.Execute(t.Store.PlanRestore("adopted"));
        Assert.Equal(Hash(t.BaseVolume("v1", "system")), Hash(t.Volume("adopted", "system"), t.Store.OpenOptions));
        Assert.Equal(dataBefore, Hash(t.Volume("adopted", "data"), t.Store.OpenOptions));
    }

    [Theory]
    [InlineData(DiskFormat.Qcow2, "qcow2")]
    [InlineData(DiskFormat.Vmdk, "vmdk")]
    public void ChildrenQemuImgMadeAreImportedAndRebased(DiskFormat format, string qemuFormat)
    {
        if (Oracle.SkipReason(new[] { "qemu-img", "qemu-io" }, Array.Empty<string>()) is string skip)
        {
            _output.WriteLine(skip);
            return;
        }
        using var t = new TestStore();
        MakeBase(t, format);
        string dir = Outside(t);
        string child = Path.Combine(dir, "vm-disk." + qemuFormat);
        Oracle.Run("qemu-img", $"create -f {qemuFormat} -F {qemuFormat} -b \"{t.BaseVolume("v1", "system")}\" \"{child}\"");
        Oracle.Run("qemu-io", $"-f {qemuFormat} -c \"write -P 0x5a 1M 64k\" -c \"write -P 0xa5 6M 4k\" \"{child}\"");
        string before = Oracle.QemuRawSha256(child, qemuFormat);
        Assert.Equal(before, Hash(child).ToLowerInvariant());

        t.Store.Execute(t.Store.PlanImportClone("qemu", "v1", new[] { new ImportVolumeSpec { Name = "system", Path = child } }));
        Assert.False(File.Exists(child));
        AssertReadsAsBefore(t, format, "qemu", "system", before.ToUpperInvariant());
        var (code, stdout, stderr) = Oracle.Run("qemu-img", $"check -f {qemuFormat} \"{t.Volume("qemu", "system")}\"", throwOnError: false);
        Assert.True(code == 0, stdout + stderr);

        // Invoke-VmRebase works on it: a base made from it, the clone moved onto that.
        t.Store.Execute(t.Store.PlanNewBaseFromClone("v2", "qemu"));
        t.Store.Execute(t.Store.PlanRebase("qemu", "v2"));
        Assert.Equal("v2", t.Store.LoadClone("qemu").Base);
        Assert.Equal(before, Hash(t.Volume("qemu", "system"), t.Store.OpenOptions).ToLowerInvariant());
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void CopyLeavesTheOriginalsByteForByte(DiskFormat format)
    {
        using var t = new TestStore();
        MakeBase(t, format);
        string system = EngineChild(Path.Combine(Outside(t), "system" + Ext(format)), t.BaseVolume("v1", "system"), "guest system");
        string bytes = Hashing.Sha256File(system);
        string before = Hash(system);
        StorePlan plan = t.Store.PlanImportClone("copied", "v1", new[] { new ImportVolumeSpec { Name = "system", Path = system } }, copy: true);
        Assert.Contains($"import from '{system}' (copied)", plan.Describe());
        t.Store.Execute(plan);
        Assert.Equal(bytes, Hashing.Sha256File(system));
        Assert.Equal(before, Hash(system));
        AssertReadsAsBefore(t, format, "copied", "system", before);
        // The copy keeps the holes of the original: it stores no more than it did.
        Assert.True(new FileInfo(t.Volume("copied", "system")).Length <= new FileInfo(system).Length + (1 << 20));
    }

    [Fact]
    public void ACopyCountsWhatItWritesAndIsRefusedUpFrontWhenItDoesNotFitWhileAMoveCopiesNothing()
    {
        using var t = new TestStore();
        MakeBase(t, DiskFormat.Vhdx);
        string system = EngineChild(Path.Combine(Outside(t), "system.vhdx"), t.BaseVolume("v1", "system"), "guest system");
        string bytes = Hashing.Sha256File(system);
        var volumes = new[] { new ImportVolumeSpec { Name = "system", Path = system } };
        StorePlan moved = t.Store.PlanImportClone("moved", "v1", volumes);
        Assert.Equal(0, moved.BytesToCopy);
        Assert.Contains("in all: copies nothing", moved.Describe());
        StorePlan copied = t.Store.PlanImportClone("copied", "v1", volumes, copy: true);
        long held = new FileInfo(system).Length;
        Assert.InRange(copied.BytesToCopy, 1, held + (1 << 20));
        Assert.Contains("(copied)", copied.Describe());
        Assert.Contains("copies at most", copied.Describe());
        using (FreeSpace.Pretend(_ => copied.BytesToCopy))
        {
            var ex = Assert.Throws<StoreException>(() => t.Store.Execute(copied));
            Assert.Equal(StoreErrorIds.DiskFull, ex.ErrorId);
            Assert.Equal(copied.BytesToCopy + FreeSpace.Margin, (long)ex.Data["BytesNeeded"]!);
        }
        Assert.False(t.Store.CloneExists("copied"));
        Assert.Empty(Directory.GetDirectories(t.Store.Layout.ClonesFolder, ".staging-*"));
        Assert.Equal(bytes, Hashing.Sha256File(system));
        t.Store.Execute(copied);
        Assert.True(t.Store.CloneExists("copied"));
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void AChildOfAnEqualCopyIsRefusedByIdentityAndReparentedKeepingItsContent(DiskFormat format)
    {
        using var t = new TestStore();
        MakeBase(t, format);
        string dir = Outside(t);
        // An equal copy, of its own identity (converted, not copied byte for byte), that differs in one run.
        string copy = Path.Combine(dir, "golden" + Ext(format));
        DiskOperations.Convert(t.BaseVolume("v1", "system"), copy, format, null, null, null, default);
        TestStore.Write(copy, 3 << 20, "only in the copy");
        string child = EngineChild(Path.Combine(dir, "child" + Ext(format)), copy, "guest system");
        string before = Hash(child);
        string snapshot = t.Snapshot();

        var e = Assert.Throws<StoreException>(() => t.Store.PlanImportClone("lab", "v1", new[] { new ImportVolumeSpec { Name = "system", Path = child } }));
        Assert.Equal(StoreErrorIds.ImportParentMismatch, e.ErrorId);
        Assert.Equal(snapshot, t.Snapshot());

        StorePlan plan = t.Store.PlanImportClone("lab", "v1", new[] { new ImportVolumeSpec { Name = "system", Path = child } }, preserveContent: true);
        Assert.Contains($"keeping its content (what differs from its parent '{copy}' is copied into it first)", plan.Describe());
        t.Store.Execute(plan);
        Assert.False(File.Exists(child));
        Assert.True(File.Exists(copy));
        AssertReadsAsBefore(t, format, "lab", "system", before);
        Assert.Equal("only in the copy", TestStore.Read(t.Volume("lab", "system"), 3 << 20, 16));
        using (VirtualDisk disk = VirtualDisk.Open(t.Volume("lab", "system"), FileAccess.Read, t.Store.OpenOptions))
            Assert.Equal(t.BaseVolume("v1", "system"), disk.Layers[1].Path);
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    [Fact]
    public void APreservedChildWhoseParentCannotBeOpenedIsRefusedNamingIt()
    {
        using var t = new TestStore();
        MakeBase(t, DiskFormat.Vhdx);
        string dir = Outside(t);
        string copy = Path.Combine(dir, "golden.vhdx");
        DiskOperations.Convert(t.BaseVolume("v1", "system"), copy, DiskFormat.Vhdx, null, null, null, default);
        string child = EngineChild(Path.Combine(dir, "child.vhdx"), copy, "guest");
        File.Delete(copy);
        string snapshot = t.Snapshot();
        var e = Assert.Throws<StoreException>(() => t.Store.PlanImportClone("lab", "v1", new[] { new ImportVolumeSpec { Name = "system", Path = child } }, preserveContent: true));
        Assert.Equal(StoreErrorIds.ImportParentNotFound, e.ErrorId);
        Assert.Contains("golden.vhdx", e.Message);
        Assert.Equal(snapshot, t.Snapshot());
    }

    [Fact]
    public void EveryRefusalHasItsIdAndChangesNothing()
    {
        using var t = new TestStore();
        MakeBase(t, DiskFormat.Vhdx);
        MakeBase(t, DiskFormat.Vhdx, "other");
        MakeBase(t, DiskFormat.Vhdx, "big", 2 * Size);
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        string dir = Outside(t);
        string good = EngineChild(Path.Combine(dir, "good.vhdx"), t.BaseVolume("v1", "system"), "guest");
        string ofOther = EngineChild(Path.Combine(dir, "of-other.vhdx"), t.BaseVolume("other", "system"), "guest");
        string ofBig = EngineChild(Path.Combine(dir, "of-big.vhdx"), t.BaseVolume("big", "system"), "guest");
        string standalone = t.SourceDisk("elsewhere/standalone.vhdx", "alone", Size);
        string vmdk = Path.Combine(dir, "child.vmdk");
        VirtualDisk.CreateDynamic(vmdk, Size).Dispose();
        string inStore = Path.Combine(t.Root, "stray.vhdx");
        File.Copy(good, inStore);
        string link = Path.Combine(dir, "link.vhdx");
        File.CreateSymbolicLink(link, good);
        string snapshot = t.Snapshot();

        void Refused(string id, string name, params (string Volume, string Path)[] volumes)
        {
            var e = Assert.ThrowsAny<VmCloneException>(() =>
                t.Store.Execute(t.Store.PlanImportClone(name, "v1", volumes.Select(v => new ImportVolumeSpec { Name = v.Volume, Path = v.Path }).ToList())));
            Assert.True(id == e.ErrorId, $"{id} expected, got {e.ErrorId}: {e.Message}");
            _output.WriteLine($"{id}: {e.Message}");
            Assert.Equal(snapshot, t.Snapshot());
        }

        Refused(StoreErrorIds.VolumeNotFound, "new", ("swap", good));
        Refused(StoreErrorIds.InvalidVolumeSpec, "new", ("system", good), ("SYSTEM", good));
        Refused(StoreErrorIds.ImportSourceInStore, "new", ("system", inStore));
        Refused(StoreErrorIds.ImportFormatMismatch, "new", ("system", vmdk));
        Refused(StoreErrorIds.ImportSizeMismatch, "new", ("system", ofBig));
        Refused(StoreErrorIds.ImportParentMismatch, "new", ("system", standalone));
        Refused(StoreErrorIds.ImportParentMismatch, "new", ("system", ofOther));
        Refused(StoreErrorIds.CloneExists, "LAB", ("system", good));
        Refused(StoreErrorIds.VolumeSourceNotFound, "new", ("system", Path.Combine(dir, "missing.vhdx")));
        Refused(StoreErrorIds.ImportSourceNotRegularFile, "new", ("system", link));
        Refused(StoreErrorIds.InvalidName, "../new", ("system", good));
    }

    [Fact]
    public void AFifoIsRefusedWithoutBeingOpened()
    {
        if (OperatingSystem.IsWindows())
            return;
        using var t = new TestStore();
        MakeBase(t, DiskFormat.Vhdx);
        string fifo = Path.Combine(Outside(t), "pipe.vhdx");
        Oracle.Run("mkfifo", $"\"{fifo}\"");
        var e = Assert.Throws<StoreException>(() => t.Store.PlanImportClone("new", "v1", new[] { new ImportVolumeSpec { Name = "system", Path = fifo } }));
        Assert.Equal(StoreErrorIds.ImportSourceNotRegularFile, e.ErrorId);
    }

    [Fact]
    public void AFileInALinkedFolderIsMovedFromWhereItReallyIs()
    {
        using var t = new TestStore();
        MakeBase(t, DiskFormat.Vhdx);
        string dir = Outside(t);
        string child = EngineChild(Path.Combine(dir, "system.vhdx"), t.BaseVolume("v1", "system"), "guest");
        string linked = t.File("linked");
        Directory.CreateSymbolicLink(linked, dir);
        string before = Hash(child);
        StorePlan plan = t.Store.PlanImportClone("lab", "v1", new[] { new ImportVolumeSpec { Name = "system", Path = Path.Combine(linked, "system.vhdx") } });
        Assert.Equal(child, plan.Volumes.Single(v => v.Action == VolumeAction.Adopt).AdoptedFrom);
        t.Store.Execute(plan);
        Assert.False(File.Exists(child));
        Assert.Equal(before, Hash(t.Volume("lab", "system"), t.Store.OpenOptions));
    }

    [Fact]
    public void AnImportCutOffAfterItsFilesMovedIsReportedThenFinishedByTheNextCommandOrARerun()
    {
        foreach (string how in new[] { "repair", "rerun" })
        {
            using var t = new TestStore();
            MakeBase(t, DiskFormat.Vhdx);
            string system = EngineChild(Path.Combine(Outside(t), "system.vhdx"), t.BaseVolume("v1", "system"), "guest");
            string before = Hash(system);
            var specs = new[] { new ImportVolumeSpec { Name = "system", Path = system } };
            StorePlan plan = t.Store.PlanImportClone("lab", "v1", specs);
            FaultPoint.Hook = p => { if (p == "re-pointed system") throw new SimulatedCrash(p); };
            try
            {
                Assert.ThrowsAny<SimulatedCrash>(() => t.Store.Execute(plan));
            }
            finally
            {
                FaultPoint.Hook = null;
            }
            Assert.False(File.Exists(system));
            VmStoreReport report = t.Store.Check(repair: false);
            VmStoreProblem p = Assert.Single(report.Problems);
            Assert.Equal(StoreProblemKind.InterruptedOperation, p.Kind);
            Assert.Contains("importing clone 'lab' on base 'v1' was cut off after its files were moved", p.Description);
            if (how == "repair")
                Assert.True(t.Store.Check(repair: true).IsHealthy);
            else
                Assert.Equal("lab", ((VmCloneInfo)t.Store.Execute(t.Store.PlanImportClone("lab", "v1", specs))!).Name);
            Assert.Equal(before, Hash(t.Volume("lab", "system"), t.Store.OpenOptions));
            Assert.True(t.Store.Check(repair: false).Problems.Count == 0);
        }
    }

    [Fact]
    public void AnImportJournalThatWouldTakeInAStoreFileOrPointOutsideIsNotActedOn()
    {
        using var t = new TestStore();
        MakeBase(t, DiskFormat.Vhdx);
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        string system = EngineChild(Path.Combine(Outside(t), "system.vhdx"), t.BaseVolume("v1", "system"), "guest");
        StorePlan plan = t.Store.PlanImportClone("adopted", "v1", new[] { new ImportVolumeSpec { Name = "system", Path = system } });
        string staging = Path.Combine(t.Store.ClonesFolder, ".staging-adopted");
        Directory.CreateDirectory(staging);
        // A planted journal: it would "import" another clone's volume, and move it in.
        PlannedVolume step = plan.Volumes.Single(v => v.Action == VolumeAction.Adopt);
        step.AdoptedFrom = t.Volume("lab", "system");
        File.WriteAllText(Path.Combine(staging, StoreLayout.PlanFile), Manifest.Serialize(plan));
        File.Copy(system, Path.Combine(staging, "system.vhdx"));
        string snapshot = t.Snapshot();
        VmStoreReport report = t.Store.Check(repair: true);
        VmStoreProblem p = Assert.Single(report.Problems);
        Assert.Equal(StoreProblemKind.ManifestInvalid, p.Kind);
        Assert.Contains("cannot be trusted", p.Description);
        Assert.Equal(snapshot, t.Snapshot());
        Assert.False(t.Store.CloneExists("adopted"));
    }

    [Fact]
    public void AParentLinkLeadingToAFifoIsRefusedWithoutHanging()
    {
        if (OperatingSystem.IsWindows())
            return;
        using var t = new TestStore();
        MakeBase(t, DiskFormat.Vhdx);
        string dir = Outside(t);
        string copy = Path.Combine(dir, "golden.vhdx");
        DiskOperations.Convert(t.BaseVolume("v1", "system"), copy, DiskFormat.Vhdx, null, null, null, default);
        string child = EngineChild(Path.Combine(dir, "child.vhdx"), copy, "guest");
        File.Delete(copy);
        Oracle.Run("mkfifo", $"\"{copy}\"");
        string snapshot = t.Snapshot();
        var e = Assert.Throws<StoreException>(() => t.Store.PlanImportClone("lab", "v1", new[] { new ImportVolumeSpec { Name = "system", Path = child } }, preserveContent: true));
        Assert.Equal(StoreErrorIds.ImportParentNotFound, e.ErrorId);
        Assert.Contains("golden.vhdx", e.Message);
        Assert.Equal(snapshot, t.Snapshot());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("copied in system")]
    [InlineData("deleted original system")]
    public void AMoveAcrossFileSystemsCopiesThenDeletesTheOriginalAndACutOffOneIsFinished(string? cutAt)
    {
        using var t = new TestStore();
        MakeBase(t, DiskFormat.Vhdx);
        string system = EngineChild(Path.Combine(Outside(t), "system.vhdx"), t.BaseVolume("v1", "system"), "guest");
        string before = Hash(system);
        StorePlan plan = t.Store.PlanImportClone("lab", "v1", new[] { new ImportVolumeSpec { Name = "system", Path = system } });
        ImportSteps.MovesCrossFileSystems = true;
        FaultPoint.Hook = p => { if (p == cutAt) throw new SimulatedCrash(p); };
        try
        {
            if (cutAt is null)
                t.Store.Execute(plan);
            else
                Assert.ThrowsAny<SimulatedCrash>(() => t.Store.Execute(plan));
        }
        finally
        {
            FaultPoint.Hook = null;
            ImportSteps.MovesCrossFileSystems = false;
        }
        if (cutAt is not null)
        {
            // Cut off once the copy was whole: finished, and the original (still byte for byte what came in) deleted.
            Assert.Contains(t.Store.Check(repair: false).Problems, p => p.Kind == StoreProblemKind.InterruptedOperation);
            Assert.True(t.Store.Check(repair: true).IsHealthy);
        }
        Assert.False(File.Exists(system));
        Assert.Equal(before, Hash(t.Volume("lab", "system"), t.Store.OpenOptions));
        Assert.Empty(t.Store.Check(repair: false).Problems);
    }
}
