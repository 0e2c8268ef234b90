using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Store;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhd;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// A store kept in VHD: clones are differencing VHDs naming their base by W2ru (relative, with
/// backslashes) and W2ku (absolute) locators and its unique id, as Hyper-V and XenServer open
/// them. qemu reads a differencing VHD without its parent, so libvhdi (each layer given its
/// parent with set_parent) judges what a clone shows after restore and rebase.
/// </summary>
public class VhdStoreTests
{
    private static void NewBase(TestStore t, string name, string marker)
    {
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk($"{name}-system.vhdx", marker + " system") },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            new() { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk($"{name}-data.vhdx", marker + " data") },
        };
        t.Store.Execute(t.Store.PlanNewBase(name, specs, DiskFormat.Vhd));
    }

    /// <summary>libvhdi's sha256 of a volume's content, its chain (as VmClone opens it) handed over from the base up.</summary>
    private static string Libvhdi(TestStore t, string path)
    {
        string[] chain;
        using (VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, t.Store.OpenOptions))
            chain = disk.Layers.Select(l => l.Path).Reverse().ToArray();
        return Oracle.LibvhdiSha256(chain).ToUpperInvariant();
    }

    [Fact]
    public void ABaseAndItsClonesAreVhdFilesTheClonesNamingTheBaseAsHyperVDoes()
    {
        using var t = new TestStore();
        NewBase(t, "v1", "v1");
        VmCloneInfo clone = (VmCloneInfo)t.Store.Execute(t.Store.PlanNewClone("lab", "v1"))!;
        Assert.All(t.Store.GetBase("v1").Volumes, v => Assert.EndsWith(".vhd", v.Path, StringComparison.Ordinal));
        Assert.All(clone.Volumes, v => Assert.Equal(DiskFormat.Vhd, v.Format));
        foreach (string volume in new[] { "system", "temp", "data" })
        {
            string child = t.Volume("lab", volume), parent = t.BaseVolume("v1", volume);
            using VirtualDisk disk = VirtualDisk.Open(child, FileAccess.Read);
            var layer = Assert.IsType<VhdLayer>(disk.Layers[0]);
            var parentLayer = Assert.IsType<VhdLayer>(disk.Layers[1]);
            Assert.Equal(DiskType.Differencing, layer.Type);
            Assert.Equal(parentLayer.Footer.UniqueId, layer.Header!.ParentUniqueId);
            var locators = layer.Header.Locators.Where(l => !l.IsEmpty).ToList();
            Assert.Equal(new[] { "W2ru", "W2ku" }, locators.Select(l => l.CodeName));
            string relative = Path.GetRelativePath(Path.GetDirectoryName(child)!, parent).Replace('/', '\\');
            Assert.Equal(relative.StartsWith("..", StringComparison.Ordinal) ? relative : ".\\" + relative, Locator(child, locators[0]));
            Assert.Equal(parent, Locator(child, locators[1]));
        }
    }

    private static string Locator(string path, ParentLocatorEntry entry)
    {
        byte[] data = new byte[entry.DataLength];
        using FileStream f = File.OpenRead(path);
        f.Position = (long)entry.DataOffset;
        f.ReadExactly(data);
        return System.Text.Encoding.Unicode.GetString(data);
    }

    [OracleFact(python: new[] { "pyvhdi" })]
    public void LibvhdiReadsEveryCloneVolumeAsVmCloneDoesAfterRestoreAndAfterRebase()
    {
        using var t = new TestStore();
        NewBase(t, "v1", "v1");
        NewBase(t, "v2", "v2");
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
        TestStore.Write(t.Volume("lab", "system"), 1 << 20, "lab installed an app");
        TestStore.Write(t.Volume("lab", "temp"), 2 << 20, "lab pagefile");
        TestStore.Write(t.Volume("lab", "data"), 3 << 20, "lab documents");
        TestStore.Write(t.Volume("lab", "data"), 0, "lab over the base's data");
        string data = TestStore.Hash(t.Volume("lab", "data"));
        foreach (string volume in new[] { "system", "temp", "data" })
            Assert.Equal(TestStore.Hash(t.Volume("lab", volume)), Libvhdi(t, t.Volume("lab", volume)));

        t.Store.Execute(t.Store.PlanRestore("lab"));
        Assert.Equal(TestStore.Hash(t.BaseVolume("v1", "system")), Libvhdi(t, t.Volume("lab", "system")));
        Assert.Equal(TestStore.Hash(t.BaseVolume("v1", "temp")), Libvhdi(t, t.Volume("lab", "temp")));
        Assert.Equal(data, Libvhdi(t, t.Volume("lab", "data")));

        // Onto a base with other data: the data volume keeps every byte it showed.
        TestStore.Write(t.Volume("lab", "system"), 1 << 20, "lab installed an app again");
        t.Store.Execute(t.Store.PlanRebase("lab", "v2"));
        Assert.Equal("v2", t.Store.GetClone("lab").Base);
        Assert.Equal(data, TestStore.Hash(t.Volume("lab", "data")));
        Assert.Equal(data, Libvhdi(t, t.Volume("lab", "data")));
        Assert.Equal(TestStore.Hash(t.BaseVolume("v2", "system")), Libvhdi(t, t.Volume("lab", "system")));
        Assert.Equal(TestStore.Hash(t.BaseVolume("v2", "temp")), Libvhdi(t, t.Volume("lab", "temp")));
        using (VirtualDisk disk = VirtualDisk.Open(t.Volume("lab", "data"), FileAccess.Read))
            Assert.Equal(t.BaseVolume("v2", "data"), disk.Layers[1].Path);
        VmStoreReport report = t.Store.Check(repair: false);
        Assert.True(report.IsHealthy && report.Problems.Count == 0, string.Join("\n", report.Problems.Select(p => p.Description)));
    }
}
