using System.IO;
using VmClone.Core.Store;
using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>The store names and admits volume files by the format registry, and refuses a format it does not know.</summary>
public class StoreFormatTests
{
    [Theory]
    [InlineData(DiskFormat.Vhdx, ".vhdx")]
    [InlineData(DiskFormat.Vmdk, ".vmdk")]
    public void AVolumeFileIsNamedByItsFormatsExtension(DiskFormat format, string extension)
    {
        Assert.Equal(extension, VmStore.Extension(format));
    }

    [Fact]
    public void AnUnknownFormatGetsNoFileNameInsteadOfRaw()
    {
        Assert.Throws<VirtualDiskException>(() => VmStore.Extension((DiskFormat)99));
    }
}
