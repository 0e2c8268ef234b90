using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// A rebase onto a base of another format: refused unless every volume is to be converted, and
/// then every volume is the new format, data content byte for byte, and the plan names each file
/// that changes.
/// </summary>
public class RebaseFormatTests
{
    private static void MakeBase(TestStore t, string name, DiskFormat format)
    {
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk($"{name}-system.vhdx", $"{name} operating system") },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            new() { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk($"{name}-data.vhdx", $"{name} shared data") },
        };
        t.Store.Execute(t.Store.PlanNewBase(name, specs, format));
    }

    /// <summary>A store with base "v1" of <paramref name="from"/>, clone "lab" on it with its own data, and base "v2" of <paramref name="to"/>.</summary>
    private static string Setup(TestStore t, DiskFormat from, DiskFormat to)
    {
        MakeBase(t, "v1", from);
        MakeBase(t, "v2", to);
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        TestStore.Write(t.Volume("lab", "data"), 3 << 20, "the user's own files");
        TestStore.Write(t.Volume("lab", "system"), 1 << 20, "lab system change");
        return TestStore.Hash(t.Volume("lab", "data"), t.Store.OpenOptions);
    }

    private static string[] FilesOf(TestStore t, string clone) =>
        Directory.GetFileSystemEntries(t.Store.CloneFolder(clone)).Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal).ToArray()!;

    [Theory]
    [InlineData(DiskFormat.Vhdx, DiskFormat.Vmdk)]
    [InlineData(DiskFormat.Vmdk, DiskFormat.Vhdx)]
    public void ARebaseAcrossFormatsIsRefusedUpFrontNamingBothFormatsAndTheOption(DiskFormat from, DiskFormat to)
    {
        using var t = new TestStore();
        Setup(t, from, to);
        string before = t.Snapshot();
        StoreException e = Assert.Throws<StoreException>(() => t.Store.PlanRebase("lab", "v2"));
        Assert.Equal("RebaseFormatMismatch", e.ErrorId);
        Assert.Equal("lab", e.Target);
        Assert.Contains(from.ToString().ToUpperInvariant(), e.Message);
        Assert.Contains(to.ToString().ToUpperInvariant(), e.Message);
        Assert.Contains("-ConvertFormat", e.Message);
        Assert.Equal(before, t.Snapshot());
        Assert.Equal("v1", t.Store.GetClone("lab").Base);
    }

    [Theory]
    [InlineData(DiskFormat.Vhdx, DiskFormat.Vmdk)]
    [InlineData(DiskFormat.Vmdk, DiskFormat.Vhdx)]
    public void ConvertingRebaseTurnsEveryVolumeIntoTheNewFormatKeepingDataByteForByte(DiskFormat from, DiskFormat to)
    {
        using var t = new TestStore();
        string data = Setup(t, from, to);
        string oldExt = "." + from.ToString().ToLowerInvariant(), newExt = "." + to.ToString().ToLowerInvariant();

        StorePlan plan = t.Store.PlanRebase("lab", "v2", convertFormat: true);
        // The plan (and so -WhatIf) names every file that changes: old name -> new name.
        string described = plan.Describe();
        foreach (string volume in new[] { "system", "temp", "data" })
            Assert.Contains($"{volume}{oldExt} -> {volume}{newExt}", described);
        Assert.All(plan.Volumes, v => Assert.Equal(to, v.Format));

        var info = (VmCloneInfo)t.Store.Execute(plan)!;
        Assert.Equal(CloneState.Ready, info.State);
        Assert.Equal("v2", info.Base);
        Assert.All(info.Volumes, v => Assert.Equal(to, v.Format));
        Assert.Equal(new[] { "clone.json", "data" + newExt, "system" + newExt, "temp" + newExt }, FilesOf(t, "lab"));
        string dataPath = t.Volume("lab", "data");
        Assert.Equal(data, TestStore.Hash(dataPath, t.Store.OpenOptions));
        Assert.Equal("v2 operating system", TestStore.Read(t.Volume("lab", "system"), 0, 19));
        Assert.True(t.Store.Check(repair: false).IsHealthy);

        // Judged by qemu-img too: the converted data volume checks clean and holds the same bytes.
        if (QemuImg("check", "-f", to.ToString().ToLowerInvariant(), dataPath) is string check)
        {
            Assert.Contains("No errors", check);
            string raw = Path.Combine(t.Folder, "data.raw");
            Assert.NotNull(QemuImg("convert", "-f", to.ToString().ToLowerInvariant(), "-O", "raw", dataPath, raw));
            using FileStream s = File.OpenRead(raw);
            Assert.Equal(data, Convert.ToHexString(SHA256.HashData(s)));
        }
    }

    [Fact]
    public void ConvertingOntoABaseOfTheSameFormatChangesNoFileName()
    {
        using var t = new TestStore();
        Setup(t, DiskFormat.Vhdx, DiskFormat.Vhdx);
        StorePlan plan = t.Store.PlanRebase("lab", "v2", convertFormat: true);
        Assert.All(plan.Volumes, v => Assert.Null(v.Supersedes));
        Assert.Contains(plan.Volumes, v => v.Volume == "data" && v.Action == VolumeAction.Reparent);
    }

    /// <summary>
    /// A journal of a converting rebase is finished only when each conversion reads the very
    /// file of that volume it supersedes: one that would convert another file (here the clone's
    /// system volume into its data volume's name, deleting the real data) is refused by repair
    /// and nothing it names is touched.
    /// </summary>
    [Theory]
    [InlineData("system")]
    [InlineData("other clone")]
    public void AJournalConvertingAnotherFileThanTheOneItSupersedesIsRefused(string from)
    {
        using var t = new TestStore();
        Setup(t, DiskFormat.Vhdx, DiskFormat.Vmdk);
        t.Store.Execute(t.Store.PlanNewClone("other", "v1"));
        string folder = t.Store.CloneFolder("lab");
        string dataFile = Path.Combine(folder, "data.vhdx");
        string source = from == "system" ? Path.Combine(folder, "system.vhdx") : Path.Combine(t.Store.CloneFolder("other"), "data.vhdx");
        CloneManifest m = t.Store.LoadClone("lab");
        m.Revision = Guid.NewGuid().ToString("N");
        m.Base = "v2";
        CloneVolumeManifest data = m.Volumes.Single(v => v.Name == "data");
        data.File = "data.vmdk";
        data.Format = DiskFormat.Vmdk;
        data.Parent = null;
        var plan = new StorePlan
        {
            Operation = StoreOperation.Rebase, Store = t.Root, Subject = "lab", SubjectKind = "clone", Folder = folder,
            FromBase = "v1", ToBase = "v2", Phase = "Committing", CloneManifest = m, ConvertFormat = true,
            Volumes =
            {
                new PlannedVolume
                {
                    Volume = "data", Type = VolumeType.Data, Format = DiskFormat.Vmdk, Action = VolumeAction.Flatten,
                    Path = Path.Combine(folder, "data.vmdk"), Source = source, Supersedes = dataFile,
                },
            },
        };
        string staging = Path.Combine(t.Store.ClonesFolder, ".staging-lab");
        Directory.CreateDirectory(staging);
        VirtualDisk.CreateDynamic(Path.Combine(staging, "data.vmdk"), TestStore.VolumeSize, new DiskCreateOptions { Format = DiskFormat.Vmdk }).Dispose();
        File.WriteAllText(Path.Combine(staging, "plan.json"), Manifest.Serialize(plan));
        string[] named = { dataFile, source, Path.Combine(folder, "system.vhdx") };
        string before = string.Join(",", named.Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))));

        VmStoreReport report = t.Store.Check(repair: true);
        Assert.Contains(report.Problems, p => p.Kind == StoreProblemKind.ManifestInvalid && !p.Repaired && p.Path.EndsWith("plan.json", StringComparison.Ordinal));
        Assert.True(File.Exists(dataFile), "the data volume the journal would delete is kept");
        Assert.Equal(before, string.Join(",", named.Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))))));
        Assert.Equal("v1", t.Store.LoadClone("lab").Base);
        Assert.False(File.Exists(Path.Combine(folder, "data.vmdk")));
    }

    /// <summary>qemu-img's output, or null when it is not installed; a failing run fails the test.</summary>
    private static string? QemuImg(params string[] args)
    {
        var psi = new ProcessStartInfo("qemu-img") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
        using (p)
        {
            string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            Assert.True(p.WaitForExit(30_000), "qemu-img ends");
            Assert.True(p.ExitCode == 0, $"qemu-img {string.Join(" ", args)}: {output}");
            return output;
        }
    }
}
