using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using VmClone.Core.Store;
using VmClone.Disks;
using VmClone.Disks.Tests.Contract;
using VmClone.Disks.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// Renaming a clone (its folder and manifest) and a base (its folder and manifest, and every
/// clone's parent links and manifest): every clone reads as before, as our reader and the
/// format's oracle see it; a rename cut off at any of its steps is undone or finished.
/// </summary>
public class RenameTests
{
    private const long Size = 8L << 20;
    private readonly ITestOutputHelper _output;

    public RenameTests(ITestOutputHelper output) => _output = output;

    /// <summary>v1 (system, temp, data holding data) in <paramref name="format"/>; lab-01 and lab-02 on it, each with writes of its own.</summary>
    private static void Fleet(VmStore s, TestStore t, DiskFormat format = DiskFormat.Vhdx)
    {
        var specs = new[]
        {
            new VolumeSpec { Name = "system", Type = VolumeType.System, Path = t.SourceDisk("system.vhdx", "v1 system", Size) },
            new VolumeSpec { Name = "temp", Type = VolumeType.Temporary, SizeBytes = Size },
            new VolumeSpec { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk("data.vhdx", "v1 data", Size) },
        };
        s.Execute(s.PlanNewBase("v1", specs, format));
        foreach (string c in new[] { "lab-01", "lab-02" })
        {
            s.Execute(s.PlanNewClone(c, "v1"));
            TestStore.Write(Volume(s, c, "system"), 1 << 20, $"{c} system");
            TestStore.Write(Volume(s, c, "data"), 3 << 20, $"{c} documents");
            // Not an empty child: libvhdi misreads one (see Oracle.PrepareEmptyVhdxChildForLibvhdi).
            TestStore.Write(Volume(s, c, "temp"), 2 << 20, $"{c} pagefile");
        }
    }

    private static string Volume(VmStore s, string clone, string volume) => s.GetClone(clone).Volumes.Single(v => v.Name == volume).Path;

    /// <summary>Every volume of every clone, as our reader shows it, by clone and volume.</summary>
    private static Dictionary<string, string> Reads(VmStore s) =>
        s.CloneNames().SelectMany(c => s.LoadClone(c).Volumes.Select(v => (c, v)))
            .ToDictionary(x => x.v.Name + "|" + x.c, x => TestStore.Hash(Path.Combine(s.CloneFolder(x.c), x.v.File), s.OpenOptions));

    private static string FileBytes(string path)
    {
        using SHA256 sha = SHA256.Create();
        using FileStream fs = File.OpenRead(path);
        return Convert.ToHexString(sha.ComputeHash(fs));
    }

    [Fact]
    public void ARenamedCloneKeepsEveryVolumeAndItsBase()
    {
        using var t = new TestStore();
        Fleet(t.Store, t);
        Dictionary<string, string> before = Reads(t.Store);
        StorePlan plan = t.Store.PlanRenameClone("lab-01", "lab-99");
        string described = plan.Describe();
        Assert.Contains("Rename clone 'lab-01' to 'lab-99'", described);
        Assert.Contains("clones/lab-01 -> clones/lab-99", described);
        Assert.Contains("clones/lab-99/clone.json", described);
        foreach (string v in new[] { "system", "temp", "data" })
            Assert.Contains($"moved from 'clones/lab-01/{v}.vhdx'", described);
        var info = (VmCloneInfo)t.Store.Execute(plan)!;
        Assert.Equal("lab-99", info.Name);
        Assert.Equal(CloneState.Ready, info.State);
        Assert.Equal("v1", info.Base);
        Assert.False(t.Store.CloneExists("lab-01"));
        Assert.False(Directory.Exists(t.Store.CloneFolder("lab-01")));
        Assert.Equal("lab-99", t.Store.LoadClone("lab-99").Name);
        Dictionary<string, string> after = Reads(t.Store);
        Assert.Equal(before.Where(k => k.Key.EndsWith("|lab-01")).Select(k => k.Value), after.Where(k => k.Key.EndsWith("|lab-99")).Select(k => k.Value));
        VmStoreReport report = t.Store.Check(repair: false);
        Assert.True(report.IsHealthy && report.Problems.Count == 0, string.Join("; ", report.Problems.Select(p => p.Description)));
        Assert.Empty(Directory.GetDirectories(t.Store.ClonesFolder, ".*"));
        // The clone works under its new name.
        t.Store.Execute(t.Store.PlanRestore("lab-99"));
        Assert.Equal(before["data|lab-01"], TestStore.Hash(Volume(t.Store, "lab-99", "data"), t.Store.OpenOptions));
    }

    [Theory]
    [InlineData(DiskFormat.Vhdx)]
    [InlineData(DiskFormat.Vmdk)]
    [InlineData(DiskFormat.Qcow2)]
    public void ARenamedBaseKeepsItsFilesAndEveryCloneReadsAsBeforeAsTheOracleSeesIt(DiskFormat format)
    {
        using var t = new TestStore();
        Fleet(t.Store, t, format);
        Dictionary<string, string> before = Reads(t.Store);
        var baseFiles = t.Store.LoadBase("v1").Volumes.ToDictionary(v => v.File, v => FileBytes(Path.Combine(t.Store.BaseFolder("v1"), v.File)));
        Dictionary<string, string?> oracleBefore = OracleReads(t.Store, format);

        StorePlan plan = t.Store.PlanRenameBase("v1", "v9");
        string described = plan.Describe();
        Assert.Contains("bases/v1 -> bases/v9", described);
        Assert.Contains("bases/v9/base.json", described);
        Assert.Contains("clones/lab-01/clone.json: its base becomes 'v9'", described);
        string ext = StoreLayout.Extension(format);
        Assert.Contains($"clone 'lab-02' system (System): parent link re-pointed to 'bases/v9/system{ext}'", described);
        var info = (VmBaseInfo)t.Store.Execute(plan)!;
        Assert.Equal("v9", info.Name);

        Assert.False(t.Store.BaseExists("v1"));
        Assert.Equal(new[] { "lab-01", "lab-02" }, t.Store.GetClones(null, "v9").Select(c => c.Name));
        Assert.All(t.Store.GetClones(), c => Assert.Equal(CloneState.Ready, c.State));
        Assert.All(t.Store.LoadClone("lab-01").Volumes.Where(v => v.Parent is not null), v => Assert.StartsWith("bases/v9/", v.Parent));
        Assert.Equal(before, Reads(t.Store));
        // Not a byte of the base was written: its identities are what its manifest recorded.
        foreach (KeyValuePair<string, string> f in baseFiles)
            Assert.Equal(f.Value, FileBytes(Path.Combine(t.Store.BaseFolder("v9"), f.Key)));
        VmStoreReport report = t.Store.Check(repair: false);
        Assert.True(report.IsHealthy && report.Problems.Count == 0, string.Join("; ", report.Problems.Select(p => p.Description)));
        Assert.Equal(oracleBefore, OracleReads(t.Store, format));
        // The clones work on the renamed base.
        t.Store.Execute(t.Store.PlanRestore("lab-01"));
        t.Store.Execute(t.Store.PlanNewClone("lab-03", "v9"));
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    /// <summary>Each clone volume's content as the format's oracle reads its chain (null without the oracles).</summary>
    private static Dictionary<string, string?> OracleReads(VmStore s, DiskFormat format)
    {
        var result = new Dictionary<string, string?>();
        if (Oracle.SkipReason(ContractFormats.OracleTools, ContractFormats.OraclePython) is not null)
            return result;
        foreach (string c in s.CloneNames())
        {
            foreach (CloneVolumeManifest v in s.LoadClone(c).Volumes)
            {
                string file = Path.Combine(s.CloneFolder(c), v.File);
                using VirtualDisk disk = VirtualDisk.Open(file, FileAccess.Read, s.OpenOptions);
                string[] chain = disk.Layers.Reverse().Select(l => l.Path).ToArray();
                result[v.Name + "|" + c] = ContractFormats.OracleSha256(format, chain);
            }
        }
        return result;
    }

    [Theory]
    [InlineData("clone", "lab-02", "CloneExists")]
    [InlineData("clone", "LAB-02", "CloneExists")]
    [InlineData("clone", "../x", "InvalidName")]
    [InlineData("base", "v1", "BaseExists")]
    [InlineData("base", "con", "InvalidName")]
    public void ATakenOrInvalidNewNameIsRefusedAndNothingChanges(string kind, string newName, string id)
    {
        using var t = new TestStore();
        Fleet(t.Store, t);
        if (kind == "base")
            t.Store.Execute(t.Store.PlanNewBase("v2", new[] { new VolumeSpec { Name = "system", Type = VolumeType.System, SizeBytes = Size } }));
        string snapshot = t.Snapshot();
        StoreException e = Assert.Throws<StoreException>(() => kind == "clone" ? t.Store.PlanRenameClone("lab-01", newName) : t.Store.PlanRenameBase("v2", newName));
        Assert.Equal(id, e.ErrorId);
        Assert.Equal(snapshot, t.Snapshot());
    }

    [Fact]
    public void ABaseWithAFileNoCloneManifestAccountsForIsNotRenamed()
    {
        using var t = new TestStore();
        Fleet(t.Store, t);
        // A disk someone made by hand in a folder of the store, over the base's system volume.
        Directory.CreateDirectory(t.Store.CloneFolder("by-hand"));
        string stray = Path.Combine(t.Store.CloneFolder("by-hand"), "extra.vhdx");
        VirtualDisk.CreateDifferencing(stray, Path.Combine(t.Store.BaseFolder("v1"), "system.vhdx")).Dispose();
        StoreException e = Assert.Throws<StoreException>(() => t.Store.PlanRenameBase("v1", "v9"));
        Assert.Equal(StoreErrorIds.BaseInUse, e.ErrorId);
        Assert.Contains("extra.vhdx", e.Message);
    }

    /// <summary>Counts hits, and throws <see cref="SimulatedCrash"/> at the chosen one.</summary>
    private sealed class Cutter : IFileWriteObserver
    {
        public int Hits;
        public int CrashAt = -1;
        public List<string> Names = new();

        public void Hit(string what)
        {
            Hits++;
            Names.Add(what);
            if (Hits == CrashAt)
                throw new SimulatedCrash(what);
        }

        public void BeforeWrite(string path, long position, byte[] buffer, int offset, int count) => Hit($"write {Path.GetFileName(path)}@{position}");

        public void BeforeSetLength(string path, long length) => Hit($"resize {Path.GetFileName(path)}");

        public void BeforeFlush(string path) => Hit($"flush {Path.GetFileName(path)}");

        public void AfterFlush(string path)
        {
        }
    }

    private static bool Run(VmStore s, Func<VmStore, StorePlan> plan, Cutter cutter)
    {
        StorePlan p = plan(s);
        FaultPoint.Hook = cutter.Hit;
        FileAccessor.Observer = cutter;
        try
        {
            s.Execute(p);
            return false;
        }
        catch (Exception ex) when (FaultPoint.IsCrash(ex))
        {
            return true;
        }
        finally
        {
            FaultPoint.Hook = null;
            FileAccessor.Observer = null;
        }
    }

    private static VmStore Copy(string from, string to)
    {
        foreach (string dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(dir.Replace(from, to));
        foreach (string file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = file.Replace(from, to);
            File.Copy(file, target);
            if (ReadOnlyFile.IsMarked(file))
                ReadOnlyFile.Mark(target, readOnly: true);
        }
        return VmStore.At(to);
    }

    [Theory]
    [InlineData("clone", "repair")]
    [InlineData("clone", "rerun")]
    [InlineData("base", "repair")]
    [InlineData("base", "rerun")]
    public void ARenameCutOffAtEveryStepIsUndoneOrFinished(string kind, string how)
    {
        using var t = new TestStore();
        string template = Path.Combine(t.Folder, "template");
        VmStore ts = VmStore.At(template);
        Fleet(ts, t, DiskFormat.Vhdx);
        Dictionary<string, string> before = Reads(ts);
        string oldName = kind == "clone" ? "lab-01" : "v1";
        string newName = kind == "clone" ? "lab-99" : "v9";
        Func<VmStore, StorePlan> plan = kind == "clone" ? s => s.PlanRenameClone(oldName, newName) : s => s.PlanRenameBase(oldName, newName);
        bool Exists(VmStore s, string n) => kind == "clone" ? s.CloneExists(n) : s.BaseExists(n);
        // Reads keyed by volume and clone, with the renamed clone under its old name: the same whichever name it has.
        Dictionary<string, string> ReadsAsBefore(VmStore s) => Reads(s).ToDictionary(k => k.Key.Replace("|" + newName, "|" + oldName), k => k.Value);

        var counter = new Cutter();
        Assert.False(Run(Copy(template, Path.Combine(t.Folder, "count")), plan, counter));
        int total = counter.Hits;
        // Every named step; of the disk writes (re-pointing links), an even sample unless VMCLONE_STRESS=1.
        bool stress = Environment.GetEnvironmentVariable("VMCLONE_STRESS") == "1";
        List<int> points = Enumerable.Range(1, total)
            .Where(i => stress || !counter.Names[i - 1].StartsWith("write", StringComparison.Ordinal) && !counter.Names[i - 1].StartsWith("flush", StringComparison.Ordinal)
                || i % Math.Max(1, total / 4) == 0)
            .ToList();
        foreach (int k in points)
        {
            VmStore s = Copy(template, Path.Combine(t.Folder, $"cut-{k}"));
            Assert.True(Run(s, plan, new Cutter { CrashAt = k }));
            string what = $"{kind} rename cut at {k}/{total} ({counter.Names[k - 1]}), then {how}";
            switch (how)
            {
                case "repair":
                    VmStoreReport repaired = s.Check(repair: true);
                    Assert.True(repaired.IsHealthy, $"{what}: {string.Join("; ", repaired.Problems.Where(p => !p.Repaired).Select(p => p.Description))}");
                    Assert.True(Exists(s, oldName) != Exists(s, newName), $"{what}: exactly one of the names must exist");
                    break;
                default:
                    string staging = Path.Combine(kind == "clone" ? s.ClonesFolder : s.BasesFolder, ".staging-" + oldName);
                    if (Exists(s, oldName) || File.Exists(Path.Combine(staging, "plan.json")))
                    {
                        s.Execute(plan(s));
                    }
                    else
                    {
                        // Finished already, only its empty work folder left: the old name is gone, and the next repair drops the folder.
                        Assert.Equal(kind == "clone" ? "CloneNotFound" : "BaseNotFound", Assert.Throws<StoreException>(() => plan(s)).ErrorId);
                        s.Check(repair: true);
                    }
                    Assert.True(!Exists(s, oldName) && Exists(s, newName), what);
                    break;
            }
            VmStoreReport clean = s.Check(repair: false);
            Assert.True(clean.IsHealthy && clean.Problems.Count == 0, $"{what}: {string.Join("; ", clean.Problems.Select(p => p.Description))}");
            Assert.Equal(before, ReadsAsBefore(s));
            Assert.Empty(Directory.GetDirectories(kind == "clone" ? s.ClonesFolder : s.BasesFolder, ".*"));
            StoreLayout.DeleteFolder(s.Root);
        }
        _output.WriteLine($"{kind} rename: {total} crash points, {points.Count} cut off and then {how}");
    }
}
