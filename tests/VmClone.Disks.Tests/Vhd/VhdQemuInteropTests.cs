using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vhd;

/// <summary>VHDs qemu-img makes and qemu-io writes read in VmClone exactly as qemu reads them.</summary>
public class VhdQemuInteropTests
{
    [OracleTheory(tools: new[] { "qemu-img", "qemu-io" })]
    [InlineData("fixed", false, 10_000_000L)]
    [InlineData("fixed", true, 10L << 20)]
    [InlineData("dynamic", false, 10_000_000L)]
    [InlineData("dynamic", true, (9L << 20) + 3 * 512)]
    public void AQemuMadeDiskWrittenByQemuIoReadsAsQemuReadsIt(string subformat, bool forceSize, long size)
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.vhd");
        Oracle.Run("qemu-img", $"create -q -f vpc -o subformat={subformat}{(forceSize ? ",force_size=on" : "")} \"{path}\" {size}");
        foreach ((int pattern, long at, int length) in new[] { (0x5a, 0L, 4096), (0xa5, 2_100_000L, 300_000), (0x3c, 7_340_032L, 512), (0x11, 4_194_304L - 1024, 2048) })
            Oracle.Run("qemu-io", $"-f vpc -c \"write -P {pattern} {at} {length}\" \"{path}\"");
        string expected = Oracle.QemuRawSha256(path, "vpc");
        long qemuSize = QemuVirtualSize(path);
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        Assert.Equal(DiskFormat.Vhd, disk.Format);
        Assert.Equal(subformat == "fixed" ? DiskType.Fixed : DiskType.Dynamic, disk.Type);
        Assert.Equal(qemuSize, disk.Capacity);
        Assert.Equal(expected, Hashing.Sha256Stream(disk.Content));
    }

    private static long QemuVirtualSize(string path)
    {
        string json = Oracle.Run("qemu-img", $"info -f vpc --output=json \"{path}\"").StdOut;
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("virtual-size").GetInt64();
    }
}
