using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// The store as a trust boundary: someone who can write a clone folder or a store record must
/// not make VmClone (run by an administrator) delete, rewrite or read anything outside the store.
/// </summary>
public class HostileStoreTests
{
    private const string Secret = "SECRET-7f3a-outside-the-store";
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    private static void NewBase(TestStore t, string name, string dataText)
    {
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk($"{name}-system.vhdx", $"{name} operating system") },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            new() { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk($"{name}-data.vhdx", dataText) },
        };
        t.Store.Execute(t.Store.PlanNewBase(name, specs));
    }

    private static TestStore NewStoreWithClone()
    {
        var t = new TestStore();
        NewBase(t, "b1", "shared data one");
        t.Store.Execute(t.Store.PlanNewClone("c1", "b1"));
        TestStore.Write(Path.Combine(t.Store.CloneFolder("c1"), "data.vhdx"), 1 << 20, "the user's own data");
        return t;
    }

    private static string CloneJson(TestStore t, string clone = "c1") => Path.Combine(t.Store.CloneFolder(clone), "clone.json");

    private static void EditClone(TestStore t, Action<CloneManifest> edit, string clone = "c1")
    {
        CloneManifest m = Manifest.Read<CloneManifest>(CloneJson(t, clone));
        edit(m);
        Manifest.Write(CloneJson(t, clone), m);
    }

    private static string FileHash(string path) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>True when the secret's bytes are in any file under the store.</summary>
    private static bool SecretInStore(TestStore t)
    {
        byte[] needle = Encoding.UTF8.GetBytes(Secret);
        foreach (string f in Directory.EnumerateFiles(t.Root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            var info = new FileInfo(f);
            if (info.LinkTarget is not null || info.Length == 0)
                continue;
            if (File.ReadAllBytes(f).AsSpan().IndexOf(needle) >= 0)
                return true;
        }
        return false;
    }

    private static T Bounded<T>(Func<T> work)
    {
        Task<T> task = Task.Run(work);
        Assert.True(task.Wait(HangGuard), $"did not end within {HangGuard.TotalSeconds} s");
        return task.Result;
    }

    private static Exception? BoundedThrows(Action work)
    {
        Task task = Task.Run(work);
        try
        {
            Assert.True(task.Wait(HangGuard), $"did not end within {HangGuard.TotalSeconds} s");
            return null;
        }
        catch (AggregateException ex)
        {
            return ex.InnerException;
        }
    }

    private static void MakeFifo(string path)
    {
        using Process p = Process.Start(new ProcessStartInfo("mkfifo", $"\"{path}\"") { UseShellExecute = false })!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    public static IEnumerable<object[]> HostileFileFields() => new[]
    {
        new object[] { "absolute" },
        new object[] { "dotdot" },
        new object[] { "base volume" },
    };

    private static string HostileFile(TestStore t, string kind, string victim) => kind switch
    {
        "absolute" => victim,
        "dotdot" => "../../../" + Path.GetFileName(victim),
        _ => "../../bases/b1/system.vhdx",
    };

    [Theory]
    [MemberData(nameof(HostileFileFields))]
    public void RestoreOfAManifestNamingAFileOutsideTheCloneDeletesNothingAndReportsManifestInvalid(string kind)
    {
        using TestStore t = NewStoreWithClone();
        string victim = t.SourceDisk("victim.vhdx", "the admin's own disk");
        string baseSystem = Path.Combine(t.Store.BaseFolder("b1"), "system.vhdx");
        string victimHash = FileHash(victim);
        string baseHash = FileHash(baseSystem);
        // A VMDK name for the system volume makes a restore delete the file the manifest names.
        EditClone(t, m => m.Volumes[0].File = HostileFile(t, kind, victim));
        var ex = Assert.Throws<StoreException>(() => t.Store.Execute(t.Store.PlanRestore("c1")));
        Assert.Equal("ManifestInvalid", ex.ErrorId);
        Assert.True(File.Exists(victim) && File.Exists(baseSystem));
        Assert.Equal(victimHash, FileHash(victim));
        Assert.Equal(baseHash, FileHash(baseSystem));
        Assert.True(ReadOnlyFile.IsMarked(baseSystem));
        Assert.Equal("ManifestInvalid", t.Store.GetClone("c1").State.ToString());
        Assert.Contains(t.Store.Check(false).Problems, p => p.Kind == StoreProblemKind.ManifestInvalid && p.Subject == "clone c1");
    }

    [Theory]
    [MemberData(nameof(HostileFileFields))]
    public void ClearingTemporaryVolumesOfAHostileManifestDeletesNothing(string kind)
    {
        using TestStore t = NewStoreWithClone();
        string victim = t.SourceDisk("victim.vhdx", "the admin's own disk");
        string victimHash = FileHash(victim);
        EditClone(t, m => m.Volumes[1].File = HostileFile(t, kind, victim));
        var ex = Assert.Throws<StoreException>(() => t.Store.Execute(t.Store.PlanClearTemporary("c1")));
        Assert.Equal("ManifestInvalid", ex.ErrorId);
        Assert.Equal(victimHash, FileHash(victim));
    }

    [Fact]
    public void RebaseOfAManifestWhoseDataVolumeIsOutsideTheStoreChangesNoOutsideDisk()
    {
        using TestStore t = NewStoreWithClone();
        NewBase(t, "b2", "shared data two");
        // A disk outside the store, a child of the base's data volume: a rebase would re-parent it.
        string outside = t.File("outside-child.vhdx");
        VirtualDisk.CreateDifferencing(outside, Path.Combine(t.Store.BaseFolder("b1"), "data.vhdx")).Dispose();
        string hash = FileHash(outside);
        EditClone(t, m => m.Volumes[2].File = "../../../outside-child.vhdx");
        var ex = Assert.ThrowsAny<VmCloneException>(() => t.Store.Execute(t.Store.PlanRebase("c1", "b2")));
        Assert.Equal("ManifestInvalid", ex.ErrorId);
        Assert.Equal(hash, FileHash(outside));
    }

    [Fact]
    public void ABaseManifestNamingAFileOutsideItsFolderIsNotUsed()
    {
        using TestStore t = NewStoreWithClone();
        string victim = t.SourceDisk("victim.vhdx", "the admin's own disk");
        string baseJson = Path.Combine(t.Store.BaseFolder("b1"), "base.json");
        File.SetAttributes(baseJson, FileAttributes.Normal);
        BaseManifest b = Manifest.Read<BaseManifest>(baseJson);
        b.Volumes[0].File = victim;
        Manifest.Write(baseJson, b);
        var ex = Assert.Throws<StoreException>(() => t.Store.Execute(t.Store.PlanNewClone("c2", "b1")));
        Assert.Equal("ManifestInvalid", ex.ErrorId);
        Assert.False(Directory.Exists(t.Store.CloneFolder("c2")));
        Assert.Contains(t.Store.Check(false).Problems, p => p.Kind == StoreProblemKind.ManifestInvalid && p.Subject == "base b1");
    }

    /// <summary>A journal that would make a clone volume a child of (or copy from) a disk outside the store.</summary>
    private static void WriteHostileJournal(TestStore t, string phase, string outside)
    {
        string folder = t.Store.CloneFolder("c1");
        CloneManifest m = Manifest.Read<CloneManifest>(CloneJson(t));
        m.Revision = Guid.NewGuid().ToString("N"); // the manifest of an operation not yet in place
        string volume = phase == "Reparenting" ? "data" : "system";
        var plan = new StorePlan
        {
            Operation = phase == "Reparenting" ? StoreOperation.Rebase : StoreOperation.Restore,
            Store = t.Root,
            Subject = "c1",
            SubjectKind = "clone",
            Folder = folder,
            FromBase = "b1",
            ToBase = "b1",
            Phase = Enum.Parse<JournalPhase>(phase),
            CloneManifest = m,
            Volumes =
            {
                new PlannedVolume
                {
                    Volume = volume,
                    Type = volume == "data" ? VolumeType.Data : VolumeType.System,
                    Format = DiskFormat.Vhdx,
                    Action = phase == "Reparenting" ? VolumeAction.Reparent : VolumeAction.Replace,
                    Path = Path.Combine(folder, volume + ".vhdx"),
                    Source = outside,
                    InPlace = phase != "Reparenting",
                },
            },
        };
        string staging = Path.Combine(t.Store.ClonesFolder, ".staging-c1");
        Directory.CreateDirectory(staging);
        File.WriteAllText(Path.Combine(staging, "plan.json"), Manifest.Serialize(plan));
    }

    [Theory]
    [InlineData("Committing")]
    [InlineData("Reparenting")]
    public void AHandWrittenJournalNamingAnOutsideParentIsRefusedByRepairAndByTheNextCommand(string phase)
    {
        using TestStore t = NewStoreWithClone();
        string outside = t.SourceDisk("outside.vhdx", Secret);
        string outsideHash = FileHash(outside);
        string folder = t.Store.CloneFolder("c1");
        string systemHash = FileHash(Path.Combine(folder, "system.vhdx"));
        string dataHash = FileHash(Path.Combine(folder, "data.vhdx"));
        WriteHostileJournal(t, phase, outside);

        VmStoreReport report = t.Store.Check(repair: true);
        Assert.False(report.IsHealthy);
        Assert.Contains(report.Problems, p => p.Kind == StoreProblemKind.ManifestInvalid && !p.Repaired && p.Path.EndsWith("plan.json", StringComparison.Ordinal));
        Assert.True(File.Exists(Path.Combine(t.Store.ClonesFolder, ".staging-c1", "plan.json")), "the journal is left for the admin to judge");
        Assert.Equal(systemHash, FileHash(Path.Combine(folder, "system.vhdx")));
        Assert.Equal(dataHash, FileHash(Path.Combine(folder, "data.vhdx")));
        Assert.Equal(outsideHash, FileHash(outside));
        Assert.False(SecretInStore(t));

        var ex = Assert.Throws<StoreException>(() => t.Store.Execute(t.Store.PlanRestore("c1")));
        Assert.Equal("ManifestInvalid", ex.ErrorId);
        Assert.Equal(systemHash, FileHash(Path.Combine(folder, "system.vhdx")));
        Assert.Equal(outsideHash, FileHash(outside));
    }

    [Fact]
    public void ACloneVolumeReplacedByALinkToAnOutsideDiskIsNotReadyAndNothingOutsideIsRead()
    {
        using TestStore t = NewStoreWithClone();
        string outside = t.SourceDisk("outside.vhdx", Secret);
        string data = Path.Combine(t.Store.CloneFolder("c1"), "data.vhdx");
        File.Delete(data);
        File.CreateSymbolicLink(data, outside);
        VmCloneInfo info = t.Store.GetClone("c1");
        Assert.NotEqual(CloneState.Ready, info.State);
        Assert.NotNull(info.Volumes.Single(v => v.Name == "data").Problem);
        Assert.ThrowsAny<VmCloneException>(() => t.Store.Execute(t.Store.PlanNewBaseFromClone("copy", "c1")));
        Assert.False(t.Store.Check(false).IsHealthy);
        Assert.False(SecretInStore(t));
    }

    [Fact]
    public void ACloneVolumeReplacedByADescriptorNamingAnOutsideExtentIsNotReadyAndNothingOutsideIsRead()
    {
        using TestStore t = NewStoreWithClone();
        string raw = t.File("outside.raw");
        using (var fs = new FileStream(raw, FileMode.CreateNew))
        {
            fs.SetLength(TestStore.VolumeSize);
            fs.Write(Encoding.UTF8.GetBytes(Secret));
        }
        string data = Path.Combine(t.Store.CloneFolder("c1"), "data.vhdx");
        File.Delete(data);
        // The extent is named beside the descriptor, as the format wants, but is a link leading out.
        File.CreateSymbolicLink(Path.Combine(t.Store.CloneFolder("c1"), "data-flat.raw"), raw);
        File.WriteAllText(data,
            "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n" +
            $"RW {TestStore.VolumeSize / 512} FLAT \"data-flat.raw\" 0\n\nddb.virtualHWVersion = \"4\"\n");
        VmCloneInfo info = t.Store.GetClone("c1");
        Assert.NotEqual(CloneState.Ready, info.State);
        Assert.ThrowsAny<Exception>(() => t.Store.Execute(t.Store.PlanNewBaseFromClone("copy", "c1")));
        Assert.False(t.Store.Check(false).IsHealthy);
        Assert.False(SecretInStore(t));
    }

    private static string OutsideFolderWithReadOnlyFile(TestStore t, out string file)
    {
        string dir = t.File("victim-dir");
        Directory.CreateDirectory(dir);
        file = Path.Combine(dir, "keep.vhdx");
        File.WriteAllText(file, "keep me");
        ReadOnlyFile.Mark(file, readOnly: true);
        return dir;
    }

    [Fact]
    public void RemovingACloneWhoseFolderIsALinkNeverTouchesTheLinkedFolder()
    {
        using TestStore t = NewStoreWithClone();
        string dir = OutsideFolderWithReadOnlyFile(t, out string keep);
        string folder = t.Store.CloneFolder("c1");
        File.Copy(Path.Combine(folder, "clone.json"), Path.Combine(dir, "clone.json"));
        Directory.Delete(folder, recursive: true);
        Directory.CreateSymbolicLink(folder, dir);
        Exception? ex = BoundedThrows(() => t.Store.Execute(t.Store.PlanRemoveClone("c1")));
        Assert.True(File.Exists(keep), $"the linked folder's file was deleted ({ex?.Message})");
        Assert.True(ReadOnlyFile.IsMarked(keep));
        Assert.True(File.Exists(Path.Combine(dir, "clone.json")));
        Assert.False(Directory.Exists(folder) && new DirectoryInfo(folder).LinkTarget is null);
    }

    [Fact]
    public void RemovingACloneDeletesLinksInsideItsFolderNeverTheirTargets()
    {
        using TestStore t = NewStoreWithClone();
        string dir = OutsideFolderWithReadOnlyFile(t, out string keep);
        string folder = t.Store.CloneFolder("c1");
        Directory.CreateSymbolicLink(Path.Combine(folder, "linked-dir"), dir);
        File.CreateSymbolicLink(Path.Combine(folder, "extra.vhdx"), keep);
        t.Store.Execute(t.Store.PlanRemoveClone("c1"));
        Assert.False(Directory.Exists(folder));
        Assert.True(File.Exists(keep));
        Assert.True(ReadOnlyFile.IsMarked(keep), "the link's target lost its read-only mark");
        Assert.True(Directory.Exists(dir));
    }

    [Fact]
    public void RemovingABaseDeletesLinksInsideItsFolderNeverTheirTargets()
    {
        using var t = new TestStore();
        NewBase(t, "b1", "shared");
        string dir = OutsideFolderWithReadOnlyFile(t, out string keep);
        File.CreateSymbolicLink(Path.Combine(t.Store.BaseFolder("b1"), "extra.vhdx"), keep);
        t.Store.Execute(t.Store.PlanRemoveBase("b1"));
        Assert.True(File.Exists(keep));
        Assert.True(ReadOnlyFile.IsMarked(keep), "the link's target lost its read-only mark");
    }

    [Fact]
    public void AFifoInPlaceOfACloneVolumeEndsEveryCommandInBoundedTime()
    {
        if (OperatingSystem.IsWindows())
            return;
        using TestStore t = NewStoreWithClone();
        string system = Path.Combine(t.Store.CloneFolder("c1"), "system.vhdx");
        File.Delete(system);
        MakeFifo(system);
        VmCloneInfo info = Bounded(() => t.Store.GetClone("c1"));
        Assert.Equal(CloneState.Broken, info.State);
        Assert.Contains("not a regular file", info.Volumes[0].Problem);
        Exception? restore = BoundedThrows(() => t.Store.Execute(t.Store.PlanRestore("c1")));
        Assert.Equal("VolumeNotRegularFile", Assert.IsType<StoreException>(restore).ErrorId);
        Assert.False(Bounded(() => t.Store.Check(false)).IsHealthy);
        Assert.Null(BoundedThrows(() => t.Store.Execute(t.Store.PlanRemoveClone("c1"))));
        Assert.False(Directory.Exists(t.Store.CloneFolder("c1")));
    }

    [Fact]
    public void LockFilesAndTheirFolderAreForTheOwnerOnly()
    {
        if (OperatingSystem.IsWindows())
            return;
        using TestStore t = NewStoreWithClone();
        t.Store.Execute(t.Store.PlanRestore("c1"));
        string locks = Path.Combine(t.Root, ".locks");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(locks));
        string[] files = Directory.GetFiles(locks, "*.lock");
        Assert.NotEmpty(files);
        foreach (string f in files.Append(Path.Combine(t.Root, ".lock")))
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(f));
    }

    [Fact]
    public void ExistingLockFilesWithLooseModesAreMadePrivate()
    {
        if (OperatingSystem.IsWindows())
            return;
        using TestStore t = NewStoreWithClone();
        string locks = Path.Combine(t.Root, ".locks");
        string lockFile = Path.Combine(locks, "clone-c1.lock");
        File.SetUnixFileMode(locks, (UnixFileMode)0x1ED);    // 0755, as older versions left it
        File.SetUnixFileMode(lockFile, (UnixFileMode)0x1A4); // 0644
        VmStore fresh = VmStore.At(t.Root);
        fresh.Execute(fresh.PlanRestore("c1"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(locks));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(lockFile));
    }

    /// <summary>Replaces the clone's data volume by a child of a disk outside the store (holding the secret), as an attacker who can write the folder would.</summary>
    private static void SwapDataForChildOfOutsideDisk(TestStore t, string outside)
    {
        string data = Path.Combine(t.Store.CloneFolder("c1"), "data.vhdx");
        string swapped = Path.Combine(t.Store.CloneFolder("c1"), "swap.tmp.vhdx");
        VirtualDisk.CreateDifferencing(swapped, outside).Dispose();
        File.Move(swapped, data, overwrite: true);
    }

    [Fact]
    public void AReparentWhoseDataVolumeIsSwappedAfterPlanningIsRefused()
    {
        using TestStore t = NewStoreWithClone();
        NewBase(t, "b2", "shared data two");
        string outside = t.SourceDisk("outside.vhdx", Secret);
        StorePlan plan = t.Store.PlanRebase("c1", "b2");
        Assert.Contains(plan.Volumes, v => v.Action == VolumeAction.Reparent);
        SwapDataForChildOfOutsideDisk(t, outside);
        Assert.ThrowsAny<VmCloneException>(() => t.Store.Execute(plan));
        Assert.False(SecretInStore(t));
        Assert.False(t.Store.Check(false).IsHealthy);
    }

    [Fact]
    public void AReparentStalledOnItsLockWhileTheDataVolumeIsSwappedIsRefused()
    {
        using TestStore t = NewStoreWithClone();
        NewBase(t, "b2", "shared data two");
        string outside = t.SourceDisk("outside.vhdx", Secret);
        StorePlan plan = t.Store.PlanRebase("c1", "b2");
        Task execute;
        using (StoreLocks.Acquire(t.Root, new[] { new LockRequest("clone", "c1", exclusive: false) }, "holding", CancellationToken.None))
        {
            execute = Task.Run(() => t.Store.Execute(plan));
            Thread.Sleep(500);
            Assert.False(execute.IsCompleted, "the rebase waits for the lock");
            SwapDataForChildOfOutsideDisk(t, outside);
        }
        var ex = Assert.Throws<AggregateException>(() => execute.Wait(HangGuard));
        Assert.IsAssignableFrom<VmCloneException>(ex.InnerException);
        Assert.False(SecretInStore(t));
    }

    [Fact]
    public void AReparentIsRefusedWhenTheDataVolumeIsReplacedByALinkAfterPlanning()
    {
        using TestStore t = NewStoreWithClone();
        NewBase(t, "b2", "shared data two");
        string outside = t.File("outside-child.vhdx");
        VirtualDisk.CreateDifferencing(outside, Path.Combine(t.Store.BaseFolder("b1"), "data.vhdx")).Dispose();
        string hash = FileHash(outside);
        StorePlan plan = t.Store.PlanRebase("c1", "b2");
        string data = Path.Combine(t.Store.CloneFolder("c1"), "data.vhdx");
        File.Delete(data);
        File.CreateSymbolicLink(data, outside);
        Assert.ThrowsAny<VmCloneException>(() => t.Store.Execute(plan));
        Assert.Equal(hash, FileHash(outside));
    }
}
