using System;
using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>Reading structures that a new file leaves mostly as holes.</summary>
public class FileAccessorTests
{
    private const int KiB = 1024;

    /// <summary>
    /// A sparse file — data, hole, data, hole, and a read running past its end — read with holes
    /// zero-filled instead of read: byte for byte what a plain read returns, at every offset.
    /// </summary>
    [Fact]
    public void ReadingPastHolesReturnsWhatAPlainReadReturns()
    {
        using var dir = new TempFolder();
        string path = dir.File("sparse.bin");
        var rng = new Random(3);
        byte[] a = new byte[4 * KiB], b = new byte[6 * KiB];
        rng.NextBytes(a);
        rng.NextBytes(b);
        using (var fs = new FileStream(path, FileMode.CreateNew))
        {
            fs.SetLength(200 * KiB);
            fs.Position = 0;
            fs.Write(a, 0, a.Length);
            fs.Position = 96 * KiB;
            fs.Write(b, 0, b.Length);
        }
        using FileAccessor file = FileAccessor.Open(path, FileAccess.Read);
        if (OperatingSystem.IsLinux())
            Assert.True(file.NextData(8 * KiB) is null or >= 96 * KiB, "the gap is a hole, or the file system cannot tell");
        foreach ((long at, int count) in new[] { (0L, 200 * KiB), (1000L, 150 * KiB), (5 * KiB, 20 * KiB), (95 * KiB, 3 * KiB), (150 * KiB, 80 * KiB), (190 * KiB, 30 * KiB) })
        {
            var plain = new byte[count];
            var skipping = new byte[count + 10];
            skipping.AsSpan().Fill(0xEE); // nothing left from before, nothing written outside the range
            file.ReadOrZero(at, plain, 0, count);
            file.ReadSkippingHoles(at, skipping, 5, count);
            Assert.True(plain.AsSpan().SequenceEqual(skipping.AsSpan(5, count)), $"read of {count} at {at}");
            Assert.Equal(0xEE, skipping[4]);
            Assert.Equal(0xEE, skipping[count + 5]);
        }
    }
}
