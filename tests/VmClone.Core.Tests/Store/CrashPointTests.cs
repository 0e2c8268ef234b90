using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Store;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// Every store operation cut off at its crash points — each named step between file-system
/// changes, and disk-file writes, resizes and flushes — as a killed process would leave it. After
/// each cut: Test-VmStore -Repair (or the next command) leaves the clone as before or as after,
/// never in between; running the operation again completes it; every data volume hashes as before.
/// The default run tries an evenly spread sample of the disk-write points of each operation; with
/// VMCLONE_STRESS=1 it tries every one.
/// </summary>
public class CrashPointTests : IClassFixture<CrashPointTests.Template>
{
    /// <summary>One template store for every scenario; each cut works on a copy of it.</summary>
    public sealed class Template : IDisposable
    {
        public Template()
        {
            Store = new TestStore();
            Root = Path.Combine(Store.Folder, "template");
            BuildTemplate(VmStore.At(Root), Store);
        }

        public TestStore Store { get; }

        public string Root { get; }

        public void Dispose() => Store.Dispose();
    }

    private const long Size = 8L << 20;
    private static readonly bool Stress = Environment.GetEnvironmentVariable("VMCLONE_STRESS") == "1";
    private readonly ITestOutputHelper _output;

    private readonly Template _template;

    public CrashPointTests(Template template, ITestOutputHelper output)
    {
        _template = template;
        _output = output;
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

    private sealed class Scenario
    {
        public string Name = "";
        public Func<VmStore, StorePlan> Plan = null!;
        /// <summary>The base the clone is on afterwards (null: the subject is gone / is a base).</summary>
        public string? CloneAfter;
        public string? CloneBefore;
        public string Clone = "lab";
        /// <summary>False for an operation that discards lab's data on purpose (a restore naming its data volume): the data then reads as before or as the base's.</summary>
        public bool DataKept = true;
        /// <summary>The clone's name afterwards, for a rename of the clone (null: it keeps its name).</summary>
        public string? RenamedTo;
        /// <summary>A base renamed by the operation: its name before and after.</summary>
        public (string From, string To)? BaseRenamed;
        /// <summary>For an import: makes its files outside the store copy, and says each one's path and content hash.</summary>
        public Func<VmStore, Dictionary<string, (string Path, string Hash)>>? Prepare;
    }

    /// <summary>Where an import's files are made for the store at <paramref name="s"/>: beside it, outside it.</summary>
    private static string OutsideOf(VmStore s) => s.Root + "-elsewhere";

    /// <summary>Children of base <paramref name="baseName"/>'s system and data volumes made outside the store (by the engine, as another tool would), each with writes of its own.</summary>
    private static Dictionary<string, (string Path, string Hash)> ChildrenOutside(VmStore s, string baseName, string ext)
    {
        Directory.CreateDirectory(OutsideOf(s));
        var made = new Dictionary<string, (string Path, string Hash)>();
        foreach (string volume in new[] { "system", "data" })
        {
            string path = Path.Combine(OutsideOf(s), $"made-elsewhere-{volume}{ext}");
            VirtualDisk.CreateDifferencing(path, s.GetBase(baseName).Volumes.Single(v => v.Name == volume).Path).Dispose();
            TestStore.Write(path, 1 << 20, $"{volume} written elsewhere");
            made[volume] = (path, TestStore.Hash(path));
        }
        return made;
    }

    private static StorePlan PlanImport(VmStore s, string clone, string baseName, string ext, bool copy = false) =>
        s.PlanImportClone(clone, baseName, new[] { "system", "data" }.Select(v => new ImportVolumeSpec { Name = v, Path = Path.Combine(OutsideOf(s), $"made-elsewhere-{v}{ext}") }).ToList(), copy);

    private static IEnumerable<Scenario> Scenarios() => new[]
    {
        new Scenario { Name = "NewClone", Clone = "lab-new", Plan = s => s.PlanNewClone("lab-new", "v1"), CloneBefore = null, CloneAfter = "v1" },
        new Scenario { Name = "Restore", Plan = s => s.PlanRestore("lab"), CloneBefore = "v1", CloneAfter = "v1" },
        new Scenario { Name = "Restore (system volume only)", Plan = s => s.PlanRestore("lab", new[] { "system" }), CloneBefore = "v1", CloneAfter = "v1" },
        new Scenario { Name = "Restore (named data volume)", Plan = s => s.PlanRestore("lab", new[] { "data" }), CloneBefore = "v1", CloneAfter = "v1", DataKept = false },
        new Scenario { Name = "ClearTemporary", Plan = s => s.PlanClearTemporary("lab"), CloneBefore = "v1", CloneAfter = "v1" },
        new Scenario { Name = "Rebase (re-parent data)", Plan = s => s.PlanRebase("lab", "v2"), CloneBefore = "v1", CloneAfter = "v2" },
        new Scenario { Name = "Rebase (flatten data)", Plan = s => s.PlanRebase("lab", "empty"), CloneBefore = "v1", CloneAfter = "empty" },
        new Scenario { Name = "Rebase (convert format)", Plan = s => s.PlanRebase("lab", "vmdk", convertFormat: true), CloneBefore = "v1", CloneAfter = "vmdk" },
        new Scenario { Name = "Rebase (grown outline)", Plan = s => s.PlanRebase("lab", "big"), CloneBefore = "v1", CloneAfter = "big" },
        new Scenario { Name = "Rebase (grown outline, kept data)", Clone = "solo", Plan = s => s.PlanRebase("solo", "bigempty"), CloneBefore = "empty", CloneAfter = "bigempty" },
        new Scenario { Name = "RemoveClone", Plan = s => s.PlanRemoveClone("lab"), CloneBefore = "v1", CloneAfter = null },
        new Scenario { Name = "NewBaseFromClone", Plan = s => s.PlanNewBaseFromClone("v3", "lab"), CloneBefore = "v1", CloneAfter = "v1" },
        new Scenario { Name = "RemoveBase", Clone = "lab", Plan = s => s.PlanRemoveBase("unused"), CloneBefore = "v1", CloneAfter = "v1" },
        new Scenario { Name = "RenameClone", Plan = s => s.PlanRenameClone("lab", "lab-renamed"), CloneBefore = "v1", CloneAfter = "v1", RenamedTo = "lab-renamed" },
        new Scenario { Name = "RenameBase", Plan = s => s.PlanRenameBase("v1", "v1-renamed"), CloneBefore = "v1", CloneAfter = "v1-renamed", BaseRenamed = ("v1", "v1-renamed") },
        new Scenario { Name = "Import", Clone = "adopted", Prepare = s => ChildrenOutside(s, "v1", ".vhdx"), Plan = s => PlanImport(s, "adopted", "v1", ".vhdx"), CloneBefore = null, CloneAfter = "v1" },
        new Scenario { Name = "Import (copy)", Clone = "adopted", Prepare = s => ChildrenOutside(s, "v1", ".vhdx"), Plan = s => PlanImport(s, "adopted", "v1", ".vhdx", copy: true), CloneBefore = null, CloneAfter = "v1" },
        new Scenario { Name = "qcow2 Import", Clone = "adopted", Prepare = s => ChildrenOutside(s, "q1", ".qcow2"), Plan = s => PlanImport(s, "adopted", "q1", ".qcow2"), CloneBefore = null, CloneAfter = "q1" },
        // The same operations on a store kept in qcow2: labq on q1, q1 and qempty qcow2 bases.
        new Scenario { Name = "qcow2 NewClone", Clone = "labq-new", Plan = s => s.PlanNewClone("labq-new", "q1"), CloneBefore = null, CloneAfter = "q1" },
        new Scenario { Name = "qcow2 Restore", Clone = "labq", Plan = s => s.PlanRestore("labq"), CloneBefore = "q1", CloneAfter = "q1" },
        new Scenario { Name = "qcow2 ClearTemporary", Clone = "labq", Plan = s => s.PlanClearTemporary("labq"), CloneBefore = "q1", CloneAfter = "q1" },
        new Scenario { Name = "qcow2 Rebase (flatten data)", Clone = "labq", Plan = s => s.PlanRebase("labq", "qempty"), CloneBefore = "q1", CloneAfter = "qempty" },
        new Scenario { Name = "qcow2 Rebase (convert format)", Plan = s => s.PlanRebase("lab", "q1", convertFormat: true), CloneBefore = "v1", CloneAfter = "q1" },
        new Scenario { Name = "qcow2 RemoveClone", Clone = "labq", Plan = s => s.PlanRemoveClone("labq"), CloneBefore = "q1", CloneAfter = null },
        new Scenario { Name = "qcow2 Restore (system volume only)", Clone = "labq", Plan = s => s.PlanRestore("labq", new[] { "system" }), CloneBefore = "q1", CloneAfter = "q1" },
        new Scenario { Name = "qcow2 Rebase (grown outline)", Clone = "labq", Plan = s => s.PlanRebase("labq", "qbig"), CloneBefore = "q1", CloneAfter = "qbig" },
        new Scenario { Name = "qcow2 RenameClone", Clone = "labq", Plan = s => s.PlanRenameClone("labq", "labq-renamed"), CloneBefore = "q1", CloneAfter = "q1", RenamedTo = "labq-renamed" },
        new Scenario { Name = "qcow2 RenameBase", Clone = "labq", Plan = s => s.PlanRenameBase("q1", "q1-renamed"), CloneBefore = "q1", CloneAfter = "q1-renamed", BaseRenamed = ("q1", "q1-renamed") },
        // And on VHD: labh on h1, h1 and hempty VHD bases.
        new Scenario { Name = "vhd NewClone", Clone = "labh-new", Plan = s => s.PlanNewClone("labh-new", "h1"), CloneBefore = null, CloneAfter = "h1" },
        new Scenario { Name = "vhd Restore", Clone = "labh", Plan = s => s.PlanRestore("labh"), CloneBefore = "h1", CloneAfter = "h1" },
        new Scenario { Name = "vhd ClearTemporary", Clone = "labh", Plan = s => s.PlanClearTemporary("labh"), CloneBefore = "h1", CloneAfter = "h1" },
        new Scenario { Name = "vhd Rebase (flatten data)", Clone = "labh", Plan = s => s.PlanRebase("labh", "hempty"), CloneBefore = "h1", CloneAfter = "hempty" },
        new Scenario { Name = "vhd Rebase (convert format)", Plan = s => s.PlanRebase("lab", "h1", convertFormat: true), CloneBefore = "v1", CloneAfter = "h1" },
        new Scenario { Name = "vhd RemoveClone", Clone = "labh", Plan = s => s.PlanRemoveClone("labh"), CloneBefore = "h1", CloneAfter = null },
        new Scenario { Name = "vhd Restore (system volume only)", Clone = "labh", Plan = s => s.PlanRestore("labh", new[] { "system" }), CloneBefore = "h1", CloneAfter = "h1" },
        new Scenario { Name = "vhd Rebase (grown outline)", Clone = "labh", Plan = s => s.PlanRebase("labh", "hbig"), CloneBefore = "h1", CloneAfter = "hbig" },
        new Scenario { Name = "vhd RenameClone", Clone = "labh", Plan = s => s.PlanRenameClone("labh", "labh-renamed"), CloneBefore = "h1", CloneAfter = "h1", RenamedTo = "labh-renamed" },
        new Scenario { Name = "vhd RenameBase", Clone = "labh", Plan = s => s.PlanRenameBase("h1", "h1-renamed"), CloneBefore = "h1", CloneAfter = "h1-renamed", BaseRenamed = ("h1", "h1-renamed") },
        // And on VMDK: labk on the "vmdk" base.
        new Scenario { Name = "vmdk Restore (system volume only)", Clone = "labk", Plan = s => s.PlanRestore("labk", new[] { "system" }), CloneBefore = "vmdk", CloneAfter = "vmdk" },
        new Scenario { Name = "vmdk RenameClone", Clone = "labk", Plan = s => s.PlanRenameClone("labk", "labk-renamed"), CloneBefore = "vmdk", CloneAfter = "vmdk", RenamedTo = "labk-renamed" },
        new Scenario { Name = "vmdk RenameBase", Clone = "labk", Plan = s => s.PlanRenameBase("vmdk", "vmdk-renamed"), CloneBefore = "vmdk", CloneAfter = "vmdk-renamed", BaseRenamed = ("vmdk", "vmdk-renamed") },
    };

    public static IEnumerable<object[]> ScenarioNames() => Scenarios().Select(s => new object[] { s.Name });

    // Run by CrashPointScenariosA and B (below), half the scenarios each.
    internal void CutOffAtEveryCrashPointIsFinishedOrUndone(string scenarioName)
    {
        Scenario scenario = Scenarios().Single(s => s.Name == scenarioName);
        using var t = new TestStore();
        string template = _template.Root;

        // A clean run counts the crash points.
        var counter = new Cutter();
        string dataBefore;
        string? subjectDataBefore;
        {
            VmStore s = CopyStore(template, Path.Combine(t.Folder, "count"));
            scenario.Prepare?.Invoke(s);
            dataBefore = DataHash(s, "lab");
            subjectDataBefore = scenario.Clone != "lab" && s.CloneExists(scenario.Clone) ? DataHash(s, scenario.Clone) : null;
            RunCut(s, scenario, counter);
            Assert.Equal(-1, counter.CrashAt);
        }
        int total = counter.Hits;
        List<int> points = Enumerable.Range(1, total)
            .Where(i => Stress || !counter.Names[i - 1].StartsWith("write", StringComparison.Ordinal) && !counter.Names[i - 1].StartsWith("resize", StringComparison.Ordinal)
                || i % Math.Max(1, total / 3) == 0)
            .ToList();
        foreach (int k in points)
        {
            VmStore s = CopyStore(template, Path.Combine(t.Folder, $"cut-{k}"));
            Dictionary<string, (string Path, string Hash)>? imported = scenario.Prepare?.Invoke(s);
            var cutter = new Cutter { CrashAt = k };
            bool crashed = RunCut(s, scenario, cutter);
            Assert.True(crashed, $"{scenario.Name}: no crash at point {k} of {total}");
            string what = $"{scenario.Name}, cut at {k}/{total} ({counter.Names[k - 1]})";

            // Test-VmStore -Repair: as before or as after, nothing in between.
            VmStoreReport repaired = s.Check(repair: true);
            Assert.True(repaired.IsHealthy, $"{what}: repair left {string.Join("; ", repaired.Problems.Where(p => !p.Repaired).Select(p => p.Description))}");
            AssertQemuFindsNoCorruption(s, what);
            VmStoreReport clean = s.Check(repair: false);
            Assert.True(clean.IsHealthy && clean.Problems.Count == 0, $"{what}: after repair {string.Join("; ", clean.Problems.Select(p => p.Description))}");
            if (scenario.RenamedTo is not null)
                Assert.False(s.CloneExists(scenario.Clone) && s.CloneExists(scenario.RenamedTo), $"{what}: the clone under both names");
            if (scenario.BaseRenamed is { From: var from, To: var to })
                Assert.True(s.BaseExists(from) != s.BaseExists(to), $"{what}: base '{from}' {(s.BaseExists(from) ? "is" : "is not")} there, '{to}' {(s.BaseExists(to) ? "is" : "is not")}: exactly one of the names must exist");
            string subject = Current(s, scenario, scenario.Clone);
            string? on = s.CloneExists(subject) ? s.LoadClone(subject).Base : null;
            Assert.True(on == scenario.CloneBefore || on == scenario.CloneAfter, $"{what}: clone on '{on}'");
            string lab = Current(s, scenario, "lab");
            if (s.CloneExists(lab) && scenario.DataKept)
                Assert.Equal(dataBefore, DataHash(s, lab));
            else if (s.CloneExists(lab))
                Assert.Contains(DataHash(s, lab), new[] { dataBefore, BaseDataHash(s, "v1") });
            if (subjectDataBefore is not null && s.CloneExists(subject))
                Assert.Equal(subjectDataBefore, DataHash(s, subject));
            AssertOnOneBase(s);
            // An import: no clone and every file to import where it was and as it was, or a whole
            // clone that reads as those files did (and, unless copied, the files gone).
            foreach (KeyValuePair<string, (string Path, string Hash)> f in imported ?? new())
            {
                if (!s.CloneExists(scenario.Clone))
                    Assert.True(File.Exists(f.Value.Path) && TestStore.Hash(f.Value.Path) == f.Value.Hash, $"{what}: no clone, and '{f.Value.Path}' is not as it was");
                else
                    Assert.True(TestStore.Hash(Volume(s, scenario.Clone, f.Key), s.OpenOptions) == f.Value.Hash, $"{what}: the imported {f.Key} reads otherwise");
            }

            // Running the operation again completes it.
            bool finished = scenario.Name switch
            {
                "RemoveBase" => !s.BaseExists("unused"),
                "NewBaseFromClone" => s.BaseExists("v3"),
                _ when scenario.Name.EndsWith("RemoveClone", StringComparison.Ordinal) => !s.CloneExists(scenario.Clone),
                _ when scenario.Name.EndsWith("NewClone", StringComparison.Ordinal) => s.CloneExists(scenario.Clone),
                _ when scenario.RenamedTo is not null => !s.CloneExists(scenario.Clone),
                _ when scenario.BaseRenamed is { From: var old } => !s.BaseExists(old),
                _ when scenario.Prepare is not null => s.CloneExists(scenario.Clone),
                _ => false,
            };
            if (!finished)
                s.Execute(scenario.Plan(s));
            subject = Current(s, scenario, scenario.Clone);
            lab = Current(s, scenario, "lab");
            Assert.Equal(scenario.CloneAfter, s.CloneExists(subject) ? s.LoadClone(subject).Base : null);
            if (scenario.RenamedTo is not null)
                Assert.True(!s.CloneExists(scenario.Clone) && s.CloneExists(scenario.RenamedTo), $"{what}: after the rerun, only the new name");
            if (scenario.BaseRenamed is { From: var was, To: var now })
                Assert.True(!s.BaseExists(was) && s.BaseExists(now), $"{what}: after the rerun, only the base's new name");
            Assert.True(s.Check(repair: false).IsHealthy, $"{what}: rerun left an unhealthy store");
            if (s.CloneExists(lab))
                Assert.Equal(scenario.DataKept ? dataBefore : BaseDataHash(s, "v1"), DataHash(s, lab));
            if (subjectDataBefore is not null && s.CloneExists(subject))
                Assert.Equal(subjectDataBefore, DataHash(s, subject));
            AssertOnOneBase(s);
            foreach (KeyValuePair<string, (string Path, string Hash)> f in imported ?? new())
                Assert.Equal(f.Value.Hash, TestStore.Hash(Volume(s, scenario.Clone, f.Key), s.OpenOptions));
            // libvhdi costs a process per volume: it judges two of the cuts, halfway and last.
            if (k == points[points.Count / 2] || k == points[^1])
                AssertLibvhdiReadsAsVmClone(s, subject, what);
            StoreLayout.DeleteFolder(s.Root);
        }
        _output.WriteLine($"{scenario.Name}: {total} crash points, {points.Count} cut off there, each repaired to before or after and completed by running it again");
    }

    /// <summary>The name clone <paramref name="name"/> goes by now: its new one once a rename of it took place.</summary>
    private static string Current(VmStore s, Scenario scenario, string name) =>
        scenario.RenamedTo is string renamed && name == scenario.Clone && !s.CloneExists(name) && s.CloneExists(renamed) ? renamed : name;

    [Fact]
    public void TheNextCommandOnTheCloneFinishesACutOffRebaseAndRedoesNothing()
    {
        using var t = new TestStore();
        VmStore s = CopyStore(_template.Root, t.Root);
        string data = DataHash(s, "lab");
        // Cut off while moving the new files into place.
        CutOffAt("committing", () => s.Execute(s.PlanRebase("lab", "v2")));
        Assert.Single(s.Layout.WorkFolders("clone", "lab"));
        // The same command again: recovery finishes the rebase; the re-made plan has nothing left to do.
        StorePlan again = s.PlanRebase("lab", "v2");
        var info = (VmCloneInfo)s.Execute(again)!;
        Assert.Equal("v2", info.Base);
        Assert.Empty(s.Layout.WorkFolders("clone", "lab"));
        Assert.Equal(data, DataHash(s, "lab"));
        Assert.All(s.PlanRebase("lab", "v2").Volumes, v => Assert.Equal(VolumeAction.Keep, v.Action));
        Assert.True(s.Check(repair: false).IsHealthy);
    }

    [Theory]
    [InlineData("reparenting", "Reparenting")]
    [InlineData("committing", "Committing")]
    public void AJournalNamesItsPhaseAsEarlierVersionsDidAndOneCutOffThereIsFinished(string point, string phase)
    {
        // A store may be left with a journal by the previous version and repaired by this one (or
        // the other way round): the phase is written by name, "Reparenting" or "Committing".
        using var t = new TestStore();
        VmStore s = CopyStore(_template.Root, t.Root);
        string data = DataHash(s, "lab");
        CutOffAt(point, () => s.Execute(s.PlanRebase("lab", "v2")));
        string journal = Path.Combine(Assert.Single(s.Layout.WorkFolders("clone", "lab")), "plan.json");
        Assert.Contains($"\"phase\": \"{phase}\"", File.ReadAllText(journal));

        VmStoreReport repaired = s.Check(repair: true);
        Assert.True(repaired.IsHealthy, string.Join("\n", repaired.Problems));
        Assert.Equal("v2", s.LoadClone("lab").Base);
        Assert.Empty(s.Layout.WorkFolders("clone", "lab"));
        Assert.Equal(data, DataHash(s, "lab"));
    }

    [Theory]
    [InlineData("manifest written")]
    [InlineData("plan deleted")]
    public void AFinishedOperationCutOffBeforeItsCleanUpIsNoProblemAndGoesAtTheNextRepair(string point)
    {
        // What a rerun of "Invoke-VmRebase -Base v1" meets: the clone is already on v2, so the
        // rerun does not touch it, and only the work folder of its finished rebase is left.
        using var t = new TestStore();
        VmStore s = CopyStore(_template.Root, t.Root);
        string data = DataHash(s, "lab");
        CutOffAt(point, () => s.Execute(s.PlanRebase("lab", "v2")));
        Assert.Equal("v2", s.LoadClone("lab").Base);
        Assert.Empty(s.GetClones(null, "v1"));
        string left = Assert.Single(s.Layout.WorkFolders("clone", "lab"));

        VmStoreReport report = s.Check(repair: false);
        Assert.True(report.IsHealthy);
        Assert.Empty(report.Problems);
        Assert.True(Directory.Exists(left), "a check without -Repair changes nothing");

        VmStoreReport repaired = s.Check(repair: true);
        Assert.True(repaired.IsHealthy);
        Assert.Empty(s.Layout.WorkFolders("clone", "lab"));
        Assert.Equal(data, DataHash(s, "lab"));
        AssertOnOneBase(s);
    }

    [Fact]
    public void AWorkFolderWithFilesLeftIsStillReported()
    {
        using var t = new TestStore();
        VmStore s = CopyStore(_template.Root, t.Root);
        CutOffAt("recreated system", () => s.Execute(s.PlanRebase("lab", "v2")));
        Assert.Contains(s.Check(repair: false).Problems, p => p.Kind == StoreProblemKind.InterruptedOperation && p.Description.Contains("putting its new volumes in place"));
    }

    [Theory]
    [InlineData("clone")]
    [InlineData("base")]
    public void RemovingAgainFinishesARemovalCutOffAfterItsRename(string kind)
    {
        using var t = new TestStore();
        VmStore s = CopyStore(_template.Root, t.Root);
        Func<StorePlan> plan = kind == "clone" ? () => s.PlanRemoveClone("lab") : () => s.PlanRemoveBase("unused");
        CutOffAt("renamed away", () => s.Execute(plan()));
        string name = kind == "clone" ? "lab" : "unused";
        Assert.Single(s.Layout.WorkFolders(kind, name));
        Assert.Null(s.Execute(plan()));
        Assert.Empty(s.Layout.WorkFolders(kind, name));
        Assert.Empty(s.Check(repair: false).Problems);
        // Once nothing is left, the name is unknown again.
        StoreException e = Assert.Throws<StoreException>(() => plan());
        Assert.Equal(kind == "clone" ? "CloneNotFound" : "BaseNotFound", e.ErrorId);
    }

    /// <summary>Runs <paramref name="action"/> cut off at fault point <paramref name="point"/>, as a killed process would be.</summary>
    private static void CutOffAt(string point, Action action)
    {
        FaultPoint.Hook = p => { if (p == point) throw new SimulatedCrash(p); };
        try
        {
            Assert.ThrowsAny<SimulatedCrash>(action);
        }
        finally
        {
            FaultPoint.Hook = null;
        }
    }

    private static bool RunCut(VmStore s, Scenario scenario, Cutter cutter)
    {
        StorePlan plan = scenario.Plan(s);
        FaultPoint.Hook = cutter.Hit;
        FileAccessor.Observer = cutter;
        try
        {
            s.Execute(plan);
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

    /// <summary>
    /// v1 (system, temp, data with content); lab on v1 with its own system and data writes;
    /// v2 made from another clone (its data holds data: lab's data is re-parented onto it);
    /// "empty" with an empty data volume (lab's data is flattened); "unused", a base nothing uses;
    /// "vmdk", a VMDK base (a rebase onto it converts every volume of lab, data included);
    /// "q1" and "qempty", qcow2 bases, and labq, a clone on q1 with its own writes;
    /// "h1" and "hempty", VHD bases, and labh, a clone on h1 with its own writes;
    /// "big" and "bigempty" (VHDX), "qbig" (qcow2) and "hbig" (VHD), every volume twice as large;
    /// labk, a clone on "vmdk" with its own writes.
    /// </summary>
    private static void BuildTemplate(VmStore s, TestStore t)
    {
        VolumeSpec[] Specs(string prefix, bool data) => new[]
        {
            new VolumeSpec { Name = "system", Type = VolumeType.System, Path = t.SourceDisk($"{prefix}-system.vhdx", $"{prefix} system", Size) },
            new VolumeSpec { Name = "temp", Type = VolumeType.Temporary, SizeBytes = Size },
            new VolumeSpec { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk($"{prefix}-data.vhdx", data ? $"{prefix} data" : null, Size) },
        };
        s.Execute(s.PlanNewBase("v1", Specs("v1", true)));
        s.Execute(s.PlanNewBase("empty", Specs("empty", false)));
        s.Execute(s.PlanNewBase("unused", Specs("unused", true)));
        s.Execute(s.PlanNewBase("vmdk", Specs("vmdk", true), DiskFormat.Vmdk));
        s.Execute(s.PlanNewClone("build", "v1"));
        TestStore.Write(Volume(s, "build", "system"), 1 << 20, "updated system");
        TestStore.Write(Volume(s, "build", "data"), 2 << 20, "build data");
        // v2 takes build's data (not v1's, the default), so re-parenting lab's data onto it has ranges to copy.
        s.Execute(s.PlanNewBaseFromClone("v2", "build", dataFrom: BaseDataSource.Clone));
        s.Execute(s.PlanRemoveClone("build"));
        s.Execute(s.PlanNewClone("lab", "v1"));
        TestStore.Write(Volume(s, "lab", "system"), 3 << 20, "lab system change");
        TestStore.Write(Volume(s, "lab", "temp"), 0, "scratch");
        TestStore.Write(Volume(s, "lab", "data"), 2 << 20, "lab's own data, over what build wrote in v2");
        TestStore.Write(Volume(s, "lab", "data"), 5 << 20, "lab's data");
        s.Execute(s.PlanNewBase("q1", Specs("q1", true), DiskFormat.Qcow2));
        s.Execute(s.PlanNewBase("qempty", Specs("qempty", false), DiskFormat.Qcow2));
        s.Execute(s.PlanNewClone("labq", "q1"));
        TestStore.Write(Volume(s, "labq", "system"), 3 << 20, "labq system change");
        TestStore.Write(Volume(s, "labq", "temp"), 0, "scratch");
        TestStore.Write(Volume(s, "labq", "data"), 5 << 20, "labq's data");
        s.Execute(s.PlanNewBase("h1", Specs("h1", true), DiskFormat.Vhd));
        s.Execute(s.PlanNewBase("hempty", Specs("hempty", false), DiskFormat.Vhd));
        s.Execute(s.PlanNewClone("labh", "h1"));
        TestStore.Write(Volume(s, "labh", "system"), 3 << 20, "labh system change");
        TestStore.Write(Volume(s, "labh", "temp"), 0, "scratch");
        TestStore.Write(Volume(s, "labh", "data"), 5 << 20, "labh's data");
        // A grown outline: every volume twice as large. lab's data becomes standalone and grows;
        // solo (on "empty", so its data volume is standalone) keeps its data file and grows it in place.
        VolumeSpec[] Grown(string prefix, bool data) => new[]
        {
            new VolumeSpec { Name = "system", Type = VolumeType.System, Path = t.SourceDisk($"{prefix}-system.vhdx", $"{prefix} system", 2 * Size) },
            new VolumeSpec { Name = "temp", Type = VolumeType.Temporary, SizeBytes = 2 * Size },
            new VolumeSpec { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk($"{prefix}-data.vhdx", data ? $"{prefix} data" : null, 2 * Size) },
        };
        s.Execute(s.PlanNewBase("big", Grown("big", true)));
        s.Execute(s.PlanNewBase("bigempty", Grown("bigempty", false)));
        s.Execute(s.PlanNewClone("solo", "empty"));
        TestStore.Write(Volume(s, "solo", "data"), 7 << 20, "solo's data near its end");
        // The grown outline in qcow2 and VHD: labq and labh move onto it, their data flattened and grown.
        s.Execute(s.PlanNewBase("qbig", Grown("qbig", true), DiskFormat.Qcow2));
        s.Execute(s.PlanNewBase("hbig", Grown("hbig", true), DiskFormat.Vhd));
        // labk on the VMDK base, with writes of its own.
        s.Execute(s.PlanNewClone("labk", "vmdk"));
        TestStore.Write(Volume(s, "labk", "system"), 3 << 20, "labk system change");
        TestStore.Write(Volume(s, "labk", "temp"), 0, "scratch");
        TestStore.Write(Volume(s, "labk", "data"), 5 << 20, "labk's data");
    }

    /// <summary>qemu-img check finds no corruption in any qcow2 file of the store (leaks a cut-off write may leave are allowed); nothing without qemu-img.</summary>
    private static void AssertQemuFindsNoCorruption(VmStore s, string what)
    {
        if (Oracle.SkipReason(new[] { "qemu-img" }, Array.Empty<string>()) is not null)
            return;
        foreach (string file in Directory.EnumerateFiles(s.Root, "*.qcow2", SearchOption.AllDirectories))
        {
            var (code, stdout, stderr) = Oracle.Run("qemu-img", $"check -f qcow2 \"{file}\"", throwOnError: false);
            // 0: clean; 3: leaked clusters only; 2: corruptions; 1: the check could not finish.
            Assert.True(code == 0 || code == 3, $"{what}: qemu-img check of {file} exited {code}\n{stdout}{stderr}");
        }
    }

    /// <summary>
    /// libvhdi (each layer linked to its parent with set_parent) reads every VHD volume of
    /// <paramref name="clone"/> as VmClone does; nothing for other formats or without pyvhdi.
    /// </summary>
    private static void AssertLibvhdiReadsAsVmClone(VmStore s, string clone, string what)
    {
        if (!s.CloneExists(clone) || Oracle.SkipReason(Array.Empty<string>(), new[] { "pyvhdi" }) is not null)
            return;
        foreach (VmVolumeInfo v in s.GetClone(clone).Volumes.Where(v => v.Path.EndsWith(".vhd", StringComparison.OrdinalIgnoreCase)))
        {
            string[] chain;
            using (VirtualDisk disk = VirtualDisk.Open(v.Path, FileAccess.Read, s.OpenOptions))
                chain = disk.Layers.Select(l => l.Path).Reverse().ToArray();
            Assert.True(string.Equals(TestStore.Hash(v.Path, s.OpenOptions), Oracle.LibvhdiSha256(chain), StringComparison.OrdinalIgnoreCase), $"{what}: libvhdi reads {v.Path} otherwise");
        }
    }

    private static string Volume(VmStore s, string clone, string volume) => s.GetClone(clone).Volumes.Single(v => v.Name == volume).Path;

    /// <summary>
    /// The data volume's content over its first <see cref="Size"/> bytes (what it held before any
    /// rebase), and whether all past them reads as zeros: the same before and after a rebase onto
    /// a grown outline, which keeps the content and adds zeros.
    /// </summary>
    private static string DataHash(VmStore s, string clone) => HeadHash(Volume(s, clone, "data"), s.OpenOptions);

    /// <summary>The data volume of a base, in the same terms as <see cref="DataHash"/> (a restored data volume reads as it).</summary>
    private static string BaseDataHash(VmStore s, string baseName) => HeadHash(s.GetBase(baseName).Volumes.Single(v => v.Name == "data").Path, s.OpenOptions);

    /// <summary>The hash of a disk's first <see cref="Size"/> bytes, and whether all after them reads as zeros (what a grown data volume keeps).</summary>
    private static string HeadHash(string path, DiskOpenOptions options)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, options);
        var head = new byte[Size];
        disk.Content.Position = 0;
        int read = 0;
        while (read < head.Length && disk.Content.Read(head, read, head.Length - read) is int n && n > 0)
            read += n;
        var tail = new byte[1 << 20];
        bool zeros = true;
        while (disk.Content.Read(tail, 0, tail.Length) is int m && m > 0)
            zeros &= tail.AsSpan(0, m).IndexOfAnyExcept((byte)0) < 0;
        return Hashing.Sha256Bytes(head) + (zeros ? " then zeros" : " then data");
    }

    /// <summary>Every clone's volumes lead into exactly one base: the one its manifest names (or none).</summary>
    private static void AssertOnOneBase(VmStore s)
    {
        foreach (string c in s.CloneNames())
        {
            CloneManifest m = s.LoadClone(c);
            var bases = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (CloneVolumeManifest v in m.Volumes)
            {
                using VirtualDisk disk = VirtualDisk.Open(Path.Combine(s.CloneFolder(c), v.File), FileAccess.Read, s.OpenOptions);
                foreach (DiskLayer l in disk.Layers.Skip(1))
                    bases.Add(Path.GetFileName(Path.GetDirectoryName(l.Path)!));
            }
            Assert.True(bases.Count == 0 || (bases.Count == 1 && bases.Contains(m.Base)), $"clone {c} on {m.Base} depends on {string.Join(", ", bases)}");
        }
    }

    private static VmStore CopyStore(string from, string to)
    {
        foreach (string dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(dir.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (string file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = file.Replace(from, to);
            File.Copy(file, target);
            if (ReadOnlyFile.IsMarked(file))
                ReadOnlyFile.Mark(target, readOnly: true);
        }
        return VmStore.At(to);
    }
}

/// <summary>
/// The scenarios of <see cref="CrashPointTests"/>, every other one: the cut-off runs are the
/// longest part of the suite, and xunit runs two test classes side by side where it would run
/// one class's cases one after the other.
/// </summary>
public class CrashPointScenariosA : IClassFixture<CrashPointTests.Template>
{
    private readonly CrashPointTests _tests;

    public CrashPointScenariosA(CrashPointTests.Template template, ITestOutputHelper output) => _tests = new CrashPointTests(template, output);

    public static IEnumerable<object[]> Names() => CrashPointTests.ScenarioNames().Where((_, i) => i % 2 == 0);

    [Theory]
    [MemberData(nameof(Names))]
    public void CutOffAtEveryCrashPointIsFinishedOrUndone(string scenarioName) => _tests.CutOffAtEveryCrashPointIsFinishedOrUndone(scenarioName);
}

/// <summary>The other half of <see cref="CrashPointTests"/>'s scenarios (see <see cref="CrashPointScenariosA"/>).</summary>
public class CrashPointScenariosB : IClassFixture<CrashPointTests.Template>
{
    private readonly CrashPointTests _tests;

    public CrashPointScenariosB(CrashPointTests.Template template, ITestOutputHelper output) => _tests = new CrashPointTests(template, output);

    public static IEnumerable<object[]> Names() => CrashPointTests.ScenarioNames().Where((_, i) => i % 2 == 1);

    [Theory]
    [MemberData(nameof(Names))]
    public void CutOffAtEveryCrashPointIsFinishedOrUndone(string scenarioName) => _tests.CutOffAtEveryCrashPointIsFinishedOrUndone(scenarioName);
}
