using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;
using VmClone.Disks.Tests.Support;
using VmClone.Disks.Vhdx;
using VmClone.Disks.Vmdk;
using Xunit;

namespace VmClone.Core.Tests.Disks;

/// <summary>
/// A conversion writes no more than the source really holds: small files whose tables name the
/// same data for terabytes of disk are refused before anything is written.
/// </summary>
public class ConvertBoundTests
{
    private const long MiB = 1024 * 1024;
    private const long TiB = 1024L * 1024 * MiB;

    /// <summary>A ~150 KiB monolithicSparse claiming 1 TiB: every directory entry names one table of four grains.</summary>
    private static string AliasedVmdk(TempFolder dir)
    {
        ulong capacity = (ulong)(TiB / 512);
        var header = new SparseExtentHeader
        {
            Flags = SparseExtentHeader.FlagValidNewlineTest,
            Capacity = capacity,
            DescriptorOffset = 1,
            DescriptorSize = 20,
            GdOffset = 21,
        };
        long gdEntries = (long)header.NumGdEntries;
        long table = 21 + (gdEntries * 4 + 511) / 512;
        long firstGrain = (table + 4 + 127) / 128 * 128;
        header.OverHead = (ulong)firstGrain;
        var file = new byte[(firstGrain + 4 * 128) * 512];
        header.ToBytes().CopyTo(file, 0);
        Encoding.ASCII.GetBytes(Descriptor.CreateMonolithicSparse(0x0badf00d, Descriptor.NoParentCid, null, capacity, "aliased.vmdk")).CopyTo(file, 512);
        for (long i = 0; i < gdEntries; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan((int)(21 * 512 + i * 4)), (uint)table);
        for (int g = 0; g < 4; g++)
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan((int)(table * 512 + g * 4)), (uint)(firstGrain + g * 128));
        new Random(3).NextBytes(file.AsSpan((int)(firstGrain * 512)));
        string path = dir.File("aliased.vmdk");
        File.WriteAllBytes(path, file);
        return path;
    }

    [Theory]
    [InlineData("vmdk")]
    [InlineData("vhdx")]
    public void ConvertingAFileWhoseTablesAliasOneBlockIsRefusedAndWritesNothing(string format)
    {
        using var dir = new TempFolder();
        string source = format == "vmdk" ? AliasedVmdk(dir) : AliasedDisks.Vhdx(dir.File("aliased.vhdx"), TiB, (int)MiB);
        string destination = dir.File("out.raw");
        // A hang guard only: the refusal comes at the first aliased block, in well under a second.
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        Exception? error = Record.Exception(() => DiskOperations.Convert(source, destination, DiskFormat.Raw, null, null, null, guard.Token));
        var ex = Assert.IsType<DiskFormatException>(error);
        Assert.Equal(source, ex.Path);
        Assert.False(File.Exists(destination));
        Assert.Equal(new[] { source }, Directory.GetFileSystemEntries(Path.GetDirectoryName(source)!));
    }
}
