using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;
using Xunit.Abstractions;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// DivergedBytes is how much of a volume no longer reads as its base, to the sector: for a
/// volume over a parent, what its own file answers; for a standalone volume (a clone's data
/// volume made empty because the base's held nothing), whose base is empty, the sectors that no
/// longer read as zeros. Only Get-VmVolume reads a standalone data volume's content for it.
/// </summary>
public class DivergedBytesTests
{
    private const int Sector = 512;

    private readonly ITestOutputHelper _output;

    public DivergedBytesTests(ITestOutputHelper output) => _output = output;

    /// <summary>A base whose data volume is empty (so a clone's data volume is standalone) and clone "lab" of it.</summary>
    private static TestStore NewStore(DiskFormat format, bool rememberBases = false)
    {
        var t = new TestStore(rememberBases);
        var specs = new List<VolumeSpec>
        {
            new() { Name = "system", Type = VolumeType.System, Path = t.SourceDisk("system.vhdx", "operating system") },
            new() { Name = "temp", Type = VolumeType.Temporary, SizeBytes = TestStore.VolumeSize },
            new() { Name = "data", Type = VolumeType.Data, SizeBytes = TestStore.VolumeSize },
        };
        t.Store.Execute(t.Store.PlanNewBase("b1", specs, format));
        t.Store.Execute(t.Store.PlanNewClone("lab", "b1"));
        return t;
    }

    private static void WriteBytes(string path, long offset, byte[] bytes)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
        disk.Content.Position = offset;
        disk.Content.Write(bytes, 0, bytes.Length);
    }

    /// <summary>Three sectors, each non-zero in another place: all of one, only its last byte, only its first.</summary>
    private static byte[] ThreeSectors()
    {
        var bytes = new byte[3 * Sector];
        bytes.AsSpan(0, Sector).Fill(0xA5);
        bytes[2 * Sector - 1] = 1;
        bytes[2 * Sector] = 0x80;
        return bytes;
    }

    private static VmVolumeInfo Shown(TestStore t, string clone, string volume) =>
        t.Store.GetCloneVolumes(clone).Single(v => v.Name == volume);

    /// <summary>Bytes read from <paramref name="path"/> (by the engine) while <paramref name="work"/> runs.</summary>
    private static long BytesReadOf(string path, Action work)
    {
        string full = Path.GetFullPath(path);
        long read = 0;
        Action<string, int>? before = FileAccessor.ReadObserver;
        FileAccessor.ReadObserver = (p, count) =>
        {
            if (string.Equals(p, full, StringComparison.Ordinal))
                read += count;
        };
        try
        {
            work();
        }
        finally
        {
            FileAccessor.ReadObserver = before;
        }
        return read;
    }

    [Theory]
    [InlineData(DiskFormat.Vhdx)]
    [InlineData(DiskFormat.Vmdk)]
    [InlineData(DiskFormat.Qcow2)]
    public void AStandaloneDataVolumeShowsTheSectorsThatNoLongerReadAsZeros(DiskFormat format)
    {
        using TestStore t = NewStore(format);
        string data = t.Volume("lab", "data");
        Assert.Null(Shown(t, "lab", "data").ParentPath);
        Assert.Equal(0, Shown(t, "lab", "data").DivergedBytes);

        WriteBytes(data, 5 << 20, ThreeSectors());
        // A sector of zeros written where nothing was stored, and a sector written and then
        // zeroed again: both read as the empty base does.
        WriteBytes(data, 40 << 20, new byte[Sector]);
        WriteBytes(data, 20 << 20, ThreeSectors().Take(Sector).ToArray());
        WriteBytes(data, 20 << 20, new byte[Sector]);

        VmVolumeInfo shown = Shown(t, "lab", "data");
        Assert.Equal(3 * Sector, shown.DivergedBytes);
        Assert.Equal(data, shown.Path);
    }

    [Theory]
    [InlineData(DiskFormat.Vhdx)]
    [InlineData(DiskFormat.Qcow2)]
    public void CountingReadsOnlyWhatTheFileStoresThroughOneSmallBuffer(DiskFormat format)
    {
        using TestStore t = NewStore(format);
        string data = t.Volume("lab", "data");
        byte[] written = new byte[8 << 20];
        new Random(7).NextBytes(written);
        WriteBytes(data, 16 << 20, written);
        WriteBytes(data, 30 << 20, ThreeSectors());
        long owned = Shown(t, "lab", "data").OwnedBytes;

        VmVolumeInfo? shown = null;
        long allocated = 0;
        long read = BytesReadOf(data, () =>
        {
            long start = GC.GetAllocatedBytesForCurrentThread();
            shown = Shown(t, "lab", "data");
            allocated = GC.GetAllocatedBytesForCurrentThread() - start;
        });

        _output.WriteLine($"{format}: read {read} bytes of a file storing {owned}, allocated {allocated}");
        Assert.Equal(written.Length + 3 * Sector, shown!.DivergedBytes);
        Assert.InRange(read, written.Length, owned + (2 << 20));
        Assert.True(allocated < 4 << 20, $"counting {owned} stored bytes allocated {allocated} bytes");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ListingClonesAndFleetCommandsReadNoneOfADataVolumesContent(bool rememberBases)
    {
        using TestStore t = NewStore(DiskFormat.Vhdx, rememberBases);
        string data = t.Volume("lab", "data");
        byte[] written = new byte[8 << 20];
        new Random(3).NextBytes(written);
        WriteBytes(data, 16 << 20, written);
        // What opening the volume reads (its headers and tables), to compare with.
        long open = BytesReadOf(data, () => VirtualDisk.OpenLayer(data, FileAccess.Read).Dispose());

        var reads = new Dictionary<string, long>
        {
            ["Get-VmClone"] = BytesReadOf(data, () => t.Store.GetClones()),
            ["Get-VmClone lab"] = BytesReadOf(data, () => t.Store.GetClone("lab")),
            ["Restore-VmClone -PassThru"] = BytesReadOf(data, () => t.Store.Execute(t.Store.PlanRestore("lab"))),
            ["Clear-VmTemporaryVolume -PassThru"] = BytesReadOf(data, () => t.Store.Execute(t.Store.PlanClearTemporary("lab"))),
        };

        foreach ((string command, long bytes) in reads)
        {
            _output.WriteLine($"{command}: {bytes} bytes of the data volume read (an open reads {open})");
            Assert.True(bytes <= 4 * open, $"{command} read {bytes} bytes of the data volume; opening it reads {open}");
        }
        Assert.Equal(written.Length, Shown(t, "lab", "data").DivergedBytes);
    }

    [Fact]
    public void AClonesTotalCountsAStandaloneTemporaryVolumeToTheSector()
    {
        using TestStore t = NewStore(DiskFormat.Vhdx);
        // A temporary volume that links to no parent (made by hand): its base is empty too.
        string temp = t.Volume("lab", "temp");
        File.Delete(temp);
        VirtualDisk.CreateDynamic(temp, TestStore.VolumeSize).Dispose();
        WriteBytes(temp, 3 << 20, ThreeSectors().Take(2 * Sector).ToArray());
        string data = t.Volume("lab", "data");
        WriteBytes(data, 5 << 20, ThreeSectors());

        VmCloneInfo clone = t.Store.GetClone("lab");

        Assert.Equal(CloneState.Ready, clone.State);
        Assert.Null(clone.Volumes.Single(v => v.Name == "temp").ParentPath);
        Assert.Equal(2 * Sector, clone.Volumes.Single(v => v.Name == "temp").DivergedBytes);
        Assert.Equal(2 * Sector, clone.DivergedBytes);
        Assert.Equal(2 * Sector, t.Store.GetClones().Single().DivergedBytes);
    }
}
