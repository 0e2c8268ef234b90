using System;
using CsCheck;
using VmClone.Core.Disks;
using Xunit;

namespace VmClone.Core.Tests.Disks;

public class BytesEqualTests
{
    /// <summary>
    /// Ranges of every length from empty to beyond four vectors, equal or differing in one byte
    /// anywhere (in the unrolled steps, the single vectors after them, or the tail): the answer
    /// is the framework's.
    /// </summary>
    [Fact]
    public void EqualsWhatTheFrameworkSaysForEveryLengthAndDifference()
    {
        Gen.Select(Gen.Int[0, 700], Gen.Int[0, 1_000_000], Gen.Bool).Sample((length, seed, differ) =>
        {
            var rng = new Random(seed);
            byte[] a = new byte[length + 3];
            rng.NextBytes(a);
            byte[] b = (byte[])a.Clone();
            if (differ && length > 0)
                b[3 + rng.Next(length)] ^= (byte)(1 + rng.Next(255));
            // Offset by 3: the ranges need not start on a vector boundary.
            ReadOnlySpan<byte> x = a.AsSpan(3, length), y = b.AsSpan(3, length);

            Assert.Equal(x.SequenceEqual(y), BytesEqual.Check(x, y));
        }, iter: 5000);
    }

    [Fact]
    public void RangesOfDifferentLengthsDiffer()
    {
        byte[] zeros = new byte[100];

        Assert.False(BytesEqual.Check(zeros.AsSpan(0, 64), zeros.AsSpan(0, 65)));
    }
}
