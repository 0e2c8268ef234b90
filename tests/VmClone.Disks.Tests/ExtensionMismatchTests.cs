using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>
/// A hypervisor opens a disk by its name (Hyper-V refuses a .vhdx that is not VHDX), so a file
/// whose extension names one format while it holds the other is refused on open, naming the
/// file, the extension and the format found, rather than opened by its content.
/// </summary>
public class ExtensionMismatchTests
{
    [Theory]
    [InlineData("made.vmdk", "renamed.vhdx", ".vhdx", DiskFormat.Vmdk)]
    [InlineData("made.vhdx", "renamed.vmdk", ".vmdk", DiskFormat.Vhdx)]
    [InlineData("made.vhdx", "renamed.avhdx", ".avhdx", null)]
    public void ADiskNamedForTheOtherFormatIsRefused(string made, string named, string extension, DiskFormat? found)
    {
        using var dir = new TempFolder();
        VirtualDisk.CreateDynamic(dir.File(made), 64L << 20).Dispose();
        string path = dir.File(named);
        File.Move(dir.File(made), path);
        if (found is null)
        {
            // .avhdx is a VHDX name too: nothing to refuse.
            VirtualDisk.Open(path, FileAccess.Read).Dispose();
            return;
        }
        foreach (FileAccess access in new[] { FileAccess.Read, FileAccess.ReadWrite })
        {
            var ex = Assert.Throws<DiskFormatException>(() => VirtualDisk.Open(path, access).Dispose());
            Assert.Contains($"'{path}'", ex.Message);
            Assert.Contains(extension, ex.Message);
            Assert.Contains(found.Value.ToString().ToUpperInvariant(), ex.Message);
            Assert.Equal(found, ex.FormatFound);
        }
        Assert.Throws<DiskFormatException>(() => VirtualDisk.OpenLayer(path, FileAccess.Read).Dispose());
        Assert.Throws<DiskFormatException>(() => VirtualDisk.DetectFormat(path));
    }

    [Fact]
    public void AChildWhoseParentWasRenamedToTheOtherFormatIsRefused()
    {
        using var dir = new TempFolder();
        VirtualDisk.CreateDynamic(dir.File("base.vmdk"), 64L << 20).Dispose();
        File.Move(dir.File("base.vmdk"), dir.File("base.vhdx"));
        Assert.Throws<DiskFormatException>(() => VirtualDisk.CreateDifferencing(dir.File("child.vhdx"), dir.File("base.vhdx")).Dispose());
        Assert.False(File.Exists(dir.File("child.vhdx")));
    }
}
