using System;
using System.Linq;
using Xunit;

namespace VmClone.Disks.Tests.Contract;

/// <summary>The format registry's rows agree with each other and with the DiskFormat enum.</summary>
public class RegistryTests
{
    [Fact]
    public void EveryFormatValueHasExactlyOneRow()
    {
        foreach (DiskFormat format in Enum.GetValues<DiskFormat>())
            Assert.Single(DiskFormats.All, r => r.Format == format);
    }

    [Fact]
    public void ExtensionsAreLowerCaseWithADotAndBelongToOneFormat()
    {
        var all = DiskFormats.All.SelectMany(r => r.Extensions).ToList();
        Assert.All(all, e => Assert.Matches("^\\.[a-z0-9]+$", e));
        Assert.Equal(all.Count, all.Distinct().Count());
        foreach (DiskFormatInfo row in DiskFormats.All)
            Assert.All(row.Extensions, e => Assert.Same(row, DiskFormats.FromExtension("disk" + e.ToUpperInvariant())));
    }

    [Fact]
    public void ABaseFormatIsWritableAndCanHaveChildren()
    {
        Assert.NotEmpty(DiskFormats.BaseFormats);
        Assert.All(DiskFormats.BaseFormats, r => Assert.True(r.CanWrite && r.CanHaveParent, r.Name));
    }
}
