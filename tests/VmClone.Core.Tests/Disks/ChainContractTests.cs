using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;
using VmClone.Disks.Tests.Contract;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

/// <summary>
/// The chain contract's operations that live in Core, for every row of the format registry:
/// merge (every writable format with a parent) and conversion between every pair of writable
/// formats, each judged by the format's oracle where one is listed (<see cref="ContractFormats"/>).
/// </summary>
public class ChainContractTests
{
    private const int Size = (4 << 20) + 5 * 512;

    /// <summary>A base with data and a child with data over it, in <paramref name="format"/>.</summary>
    private static (string Base, string Child) MakeChain(TempFolder dir, DiskFormat format, int seed)
    {
        string ext = ContractFormats.Extension(format);
        string b = dir.File("base" + ext), c = dir.File("child" + ext);
        VirtualDisk.CreateDynamic(b, Size, ContractFormats.Create(format)).Dispose();
        DiskFiles.Write(b, 1000, DiskFiles.Random(seed, 600_000));
        VirtualDisk.CreateDifferencing(c, b, ContractFormats.Create(format)).Dispose();
        DiskFiles.Write(c, 300_001, DiskFiles.Random(seed + 1, 500_000));
        DiskFiles.Write(c, Size - 4000, DiskFiles.Random(seed + 2, 4000));
        return (b, c);
    }

    private static bool HaveOracles => Oracle.SkipReason(ContractFormats.OracleTools, ContractFormats.OraclePython) is null;

    /// <summary>
    /// What the chain holds, as our reader shows it; where the format's oracle reads the chain
    /// too, it must show the same, so that an operation judged against this value is not judged
    /// against our reader alone (a writer and reader wrong in the same way would agree).
    /// </summary>
    private static string ExpectedContent(DiskFormat format, string parent, string child)
    {
        string ours = DiskFiles.ContentHash(child);
        if (HaveOracles && ContractFormats.OracleSha256(format, new[] { parent, child }) is string judged)
            Assert.Equal(judged, ours);
        return ours;
    }

    [Theory]
    [MemberData(nameof(ContractFormats.WithParent), MemberType = typeof(ContractFormats))]
    public void MergingAChildLeavesItsParentShowingWhatTheChildShowed(DiskFormat format)
    {
        using var dir = new TempFolder();
        var (b, c) = MakeChain(dir, format, 21);
        string expected = ExpectedContent(format, b, c);

        VmDiskInfo merged = DiskOperations.Merge(c, null, force: false, null, CancellationToken.None);

        Assert.Equal(b, merged.Path);
        Assert.False(File.Exists(c));
        Assert.Equal(expected, DiskFiles.ContentHash(b));
        Assert.True(DiskOperations.Check(b).IsHealthy);
        if (HaveOracles && ContractFormats.OracleSha256(format, new[] { b }) is string judged)
            Assert.Equal(expected, judged);
    }

    public static IEnumerable<object[]> Pairs() =>
        from source in ContractFormats.WithParent().Select(f => (DiskFormat)f[0])
        from target in DiskFormats.All.Where(f => f.CanWrite)
        select new object[] { source, target.Format };

    [Theory]
    [MemberData(nameof(Pairs))]
    public void AChainConvertsToEveryWritableFormatWithTheSameContent(DiskFormat source, DiskFormat target)
    {
        using var dir = new TempFolder();
        var (b, c) = MakeChain(dir, source, 31);
        string expected = ExpectedContent(source, b, c);
        string destination = dir.File("flat" + ContractFormats.Extension(target));

        VmDiskInfo info = DiskOperations.Convert(c, destination, target, null, null, null, CancellationToken.None);

        Assert.Equal(target, info.Format);
        Assert.Equal(target, VirtualDisk.DetectFormat(destination));
        Assert.Equal(expected, DiskFiles.ContentHash(destination));
        using (VirtualDisk flat = VirtualDisk.Open(destination, FileAccess.Read))
        {
            Assert.Single(flat.Layers);
            Assert.Empty(flat.Top.Check());
        }
        if (HaveOracles && ContractFormats.OracleSha256(target, new[] { destination }) is string judged)
            Assert.Equal(expected, judged);
    }
}
