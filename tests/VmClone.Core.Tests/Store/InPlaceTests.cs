using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using VmClone.Core.Store;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// Restore, Clear-VmTemporaryVolume and rebase make a system or temporary volume a new child of
/// its base in the volume's own file where they can (Linux): no file is created or freed. What
/// the user sees must not change: the volume reads its base, a cut-off rewrite is finished by the
/// next command, and a file that is also reachable by another name (a backup's hard link) is
/// never rewritten under that name.
/// </summary>
public class InPlaceTests
{
    private static readonly bool OnLinux = RuntimeInformation.IsOSPlatform(OSPlatform.Linux);

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

    private static string Run(string file, string arguments)
    {
        using Process p = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, UseShellExecute = false })!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return output.Trim();
    }

    private static string Inode(string path) => Run("stat", $"-c %i \"{path}\"");

    [OracleTheory(tools: new[] { "qemu-img" }, python: new[] { "pyvhdi" })]
    [InlineData(DiskFormat.Vhdx)]
    [InlineData(DiskFormat.Vmdk)]
    [InlineData(DiskFormat.Qcow2)]
    [InlineData(DiskFormat.Vhd)]
    public void ARestoredVolumeIsANewChildInItsOwnFileButAHardLinkedCopyKeepsItsContent(DiskFormat format)
    {
        if (!OnLinux)
            return;
        using var t = new TestStore();
        NewBase(t, "v1", format);
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        t.Store.Execute(t.Store.PlanNewClone("kept", "v1"));
        string baseSystem = TestStore.Hash(t.BaseVolume("v1", "system"));
        string baseTemp = TestStore.Hash(t.BaseVolume("v1", "temp"));
        foreach (string c in new[] { "lab", "kept" })
        {
            TestStore.Write(t.Volume(c, "system"), 1 << 20, $"{c} installed an app");
            TestStore.Write(t.Volume(c, "temp"), 2 << 20, $"{c} pagefile");
            TestStore.Write(t.Volume(c, "data"), 3 << 20, $"{c} documents");
        }
        string labSystem = t.Volume("lab", "system"), labTemp = t.Volume("lab", "temp");
        string inodeSystem = Inode(labSystem), inodeTemp = Inode(labTemp);
        string labData = TestStore.Hash(t.Volume("lab", "data"));
        // A backup tool's hard link to one clone's system volume.
        string backup = t.File("backup-system." + format.ToString().ToLowerInvariant());
        Run("ln", $"\"{t.Volume("kept", "system")}\" \"{backup}\"");
        // (Outside the store its relative parent path leads nowhere: it is read over the base named.)
        var overBase = new DiskOpenOptions { ParentPathOverride = t.BaseVolume("v1", "system") };
        string backupHash = TestStore.Hash(backup, overBase);
        Assert.NotEqual(baseSystem, backupHash);

        t.Store.Execute(t.Store.PlanRestore("lab"));
        t.Store.Execute(t.Store.PlanRestore("kept"));

        Assert.Equal(inodeSystem, Inode(labSystem));
        Assert.Equal(inodeTemp, Inode(labTemp));
        Assert.Equal(baseSystem, TestStore.Hash(labSystem));
        Assert.Equal(baseTemp, TestStore.Hash(labTemp));
        Assert.Equal(labData, TestStore.Hash(t.Volume("lab", "data")));
        Assert.Equal(baseSystem, TestStore.Hash(t.Volume("kept", "system")));
        Assert.Equal(backupHash, TestStore.Hash(backup, overBase));
        Assert.All(t.Store.GetClone("lab").Volumes.Where(v => v.Name != "data"), v => Assert.Equal(0, v.DivergedBytes));
        VmStoreReport report = t.Store.Check(repair: false);
        Assert.True(report.IsHealthy && report.Problems.Count == 0, string.Join("\n", report.Problems.Select(p => p.Description)));

        // The independent readers agree: the rewritten volume reads as its base.
        if (format is DiskFormat.Vmdk or DiskFormat.Qcow2)
        {
            string f = format.ToString().ToLowerInvariant();
            foreach (string rewritten in new[] { labSystem, labTemp })
                VmClone.Disks.Tests.Contract.ContractFormats.AssertQemuCheckClean(rewritten, f);
            Assert.Equal(baseSystem, Oracle.QemuRawSha256(labSystem, f), ignoreCase: true);
            Assert.Equal(baseTemp, Oracle.QemuRawSha256(labTemp, f), ignoreCase: true);
        }
        else if (format == DiskFormat.Vhd)
        {
            // qemu reads a differencing VHD without its parent: libvhdi, given the base, judges it.
            Assert.Equal(baseSystem, Oracle.LibvhdiSha256(t.BaseVolume("v1", "system"), labSystem), ignoreCase: true);
            Assert.Equal(baseTemp, Oracle.LibvhdiSha256(t.BaseVolume("v1", "temp"), labTemp), ignoreCase: true);
        }
        else
        {
            Oracle.PrepareEmptyVhdxChildForLibvhdi(labSystem, 5 << 20);
            Assert.Equal(TestStore.Hash(labSystem), Oracle.LibvhdiSha256(t.BaseVolume("v1", "system"), labSystem), ignoreCase: true);
        }
    }

    [Fact]
    public void AVolumeThatCanNoLongerBeRewrittenWhenTheCommitComesIsReplacedByANewFile()
    {
        if (!OnLinux)
            return;
        using var t = new TestStore();
        NewBase(t, "v1");
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        TestStore.Write(t.Volume("lab", "system"), 1 << 20, "lab installed an app");
        string system = t.Volume("lab", "system");
        string before = TestStore.Hash(system);
        string inode = Inode(system);
        string backup = Path.Combine(Path.GetDirectoryName(system)!, "..", "backup-system.vhdx");
        // Between the plan's decision and the commit, a backup tool hard-links the volume.
        FaultPoint.Hook = p =>
        {
            if (p == "committing")
                Run("ln", $"\"{system}\" \"{backup}\"");
        };
        try
        {
            t.Store.Execute(t.Store.PlanRestore("lab"));
        }
        finally
        {
            FaultPoint.Hook = null;
        }
        Assert.NotEqual(inode, Inode(system));
        Assert.Equal(TestStore.Hash(t.BaseVolume("v1", "system")), TestStore.Hash(system));
        Assert.Equal(before, TestStore.Hash(backup));
        File.Delete(backup);
        Assert.Empty(t.Store.Layout.WorkFolders("clone", "lab"));
        Assert.True(t.Store.Check(repair: false).IsHealthy);
    }

    /// <summary>
    /// Throws <see cref="SimulatedCrash"/> at the first resize of one file (its headers new, its
    /// tables old: it still opens) or at the first write after it (the file cut short under its
    /// old tables: it does not open).
    /// </summary>
    private sealed class CutAtResize : IFileWriteObserver
    {
        private readonly string _file;
        private readonly bool _afterResize;
        private bool _resized;

        public CutAtResize(string file, bool afterResize)
        {
            _file = file;
            _afterResize = afterResize;
        }

        public bool Cut { get; private set; }

        private void Crash(string what)
        {
            Cut = true;
            throw new SimulatedCrash(what);
        }

        public void BeforeWrite(string path, long position, byte[] buffer, int offset, int count)
        {
            if (path == _file && _resized && _afterResize && !Cut)
                Crash("write after resize");
        }

        public void BeforeSetLength(string path, long length)
        {
            if (path != _file || Cut)
                return;
            _resized = true;
            if (!_afterResize)
                Crash("resize " + Path.GetFileName(path));
        }

        public void BeforeFlush(string path)
        {
        }

        public void AfterFlush(string path)
        {
        }
    }

    [Theory]
    [InlineData("Restore", false)]
    [InlineData("Restore", true)]
    [InlineData("ClearTemporary", false)]
    [InlineData("ClearTemporary", true)]
    [InlineData("Rebase", false)]
    [InlineData("Rebase", true)]
    public void AVolumeRewriteCutOffHalfWayIsFinishedByTheNextCommand(string operation, bool afterResize)
    {
        using var t = new TestStore();
        NewBase(t, "v1");
        NewBase(t, "v2");
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        TestStore.Write(t.Volume("lab", "system"), 1 << 20, "lab installed an app");
        TestStore.Write(t.Volume("lab", "temp"), 0, "lab scratch");
        TestStore.Write(t.Volume("lab", "data"), 3 << 20, "lab documents");
        string data = TestStore.Hash(t.Volume("lab", "data"));
        string volume = t.Volume("lab", operation == "ClearTemporary" ? "temp" : "system");
        string baseName = operation == "Rebase" ? "v2" : "v1";
        string expected = TestStore.Hash(t.BaseVolume(baseName, Path.GetFileNameWithoutExtension(volume)));
        StorePlan Plan() => operation switch
        {
            "Restore" => t.Store.PlanRestore("lab"),
            "ClearTemporary" => t.Store.PlanClearTemporary("lab"),
            _ => t.Store.PlanRebase("lab", "v2"),
        };

        var cutter = new CutAtResize(volume, afterResize);
        FileAccessor.Observer = cutter;
        try
        {
            Assert.ThrowsAny<SimulatedCrash>(() => t.Store.Execute(Plan()));
        }
        finally
        {
            FileAccessor.Observer = null;
        }
        if (!OnLinux)
            return; // elsewhere the new file is built beside the volume, and the cut came before any commit
        Assert.True(cutter.Cut);
        Assert.Contains(t.Store.Check(repair: false).Problems, p => p.Kind == StoreProblemKind.InterruptedOperation);
        // Half rewritten, the volume is neither disk: its new headers lead to its old tables,
        // which after the resize point past its end. The clone says what happened: interrupted,
        // not ready, and not broken either.
        VmCloneInfo cut = t.Store.GetClone("lab");
        Assert.Equal(CloneState.Interrupted, cut.State);
        Assert.Equal(afterResize, cut.Volumes.Single(v => v.Path == volume).Problem is not null);

        // The same command again: recovery finishes the rewrite, and the rerun has the rest to do.
        t.Store.Execute(Plan());
        Assert.Equal(expected, TestStore.Hash(volume));
        Assert.Equal(data, TestStore.Hash(t.Volume("lab", "data")));
        Assert.Equal(baseName, t.Store.LoadClone("lab").Base);
        Assert.Empty(t.Store.Layout.WorkFolders("clone", "lab"));
        VmStoreReport report = t.Store.Check(repair: false);
        Assert.True(report.IsHealthy && report.Problems.Count == 0, string.Join("\n", report.Problems.Select(p => p.Description)));
    }
}
