using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>What the sizes a user reads in Get-VmClone, Get-VmVolume and Get-VmDisk mean, measured on real files.</summary>
public class VolumeSizeTests
{
    private const long GiB = 1L << 30;
    private const long MiB = 1L << 20;

    private static void NewBaseAndClone(TestStore t)
    {
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk("system.vhdx", "operating system") },
            new() { Name = "data", Type = VolumeType.Data, Path = t.SourceDisk("data.vhdx", null) },
        };
        t.Store.Execute(t.Store.PlanNewBase("v1", specs, DiskFormat.Vhdx));
        t.Store.Execute(t.Store.PlanNewClone("lab", "v1"));
    }

    /// <summary>Grows the file to 64 GiB without writing: a hole, as a fixed VHDX made on a sparse file system is.</summary>
    private static void MakeSparse(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        f.SetLength(64 * GiB);
    }

    [Fact]
    public void SizeOnDiskIsTheSpaceAllocatedNotTheFileLength()
    {
        if (RuntimeInformation.IsOSPlatform(OSPlatform.OSX))
            return; // documented: macOS reports the length
        using var t = new TestStore();
        NewBaseAndClone(t);
        string data = t.Volume("lab", "data");
        MakeSparse(data);
        Assert.Equal(64 * GiB, new FileInfo(data).Length);

        VmVolumeInfo volume = t.Store.GetClone("lab").Volumes.Single(v => v.Name == "data");
        Assert.True(volume.SizeOnDisk > 0 && volume.SizeOnDisk < 16 * MiB, $"a 64 GiB file with nothing written shows {volume.SizeOnDisk} bytes on disk");
        VmCloneInfo clone = t.Store.GetClone("lab");
        Assert.True(clone.SizeOnDisk < 32 * MiB, $"the clone shows {clone.SizeOnDisk} bytes on disk");

        VmDiskInfo disk = DiskOperations.Inspect(data, wholeChain: false).Single();
        Assert.Equal(64 * GiB, disk.FileSize);
        Assert.True(disk.SizeOnDisk > 0 && disk.SizeOnDisk < 16 * MiB, $"Get-VmDisk shows {disk.SizeOnDisk} bytes on disk");
    }
}
