using System;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>
/// CRC-32C against published vectors and against the plain bitwise definition on random input,
/// with and without long zero tails (which the implementation skips algebraically).
/// </summary>
public class Crc32CTests
{
    /// <summary>The definition, one bit at a time: slow, obviously right.</summary>
    private static uint Reference(ReadOnlySpan<byte> data, int zeroedField = -1)
    {
        uint crc = 0xFFFFFFFFu;
        for (int i = 0; i < data.Length; i++)
        {
            byte b = zeroedField >= 0 && i >= zeroedField && i < zeroedField + 4 ? (byte)0 : data[i];
            crc ^= b;
            for (int k = 0; k < 8; k++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        return ~crc;
    }

    [Fact]
    public void KnownVectors()
    {
        // RFC 3720 B.4 (iSCSI) and the usual check value.
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(new byte[32]));
        byte[] ones = new byte[32];
        Array.Fill(ones, (byte)0xFF);
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(ones));
        byte[] up = new byte[32];
        for (int i = 0; i < 32; i++)
            up[i] = (byte)i;
        Assert.Equal(0x46DD794Eu, Crc32C.Compute(up));
        byte[] down = new byte[32];
        for (int i = 0; i < 32; i++)
            down[i] = (byte)(31 - i);
        Assert.Equal(0x113FDB5Cu, Crc32C.Compute(down));
        Assert.Equal(0x00000000u, Crc32C.Compute(ReadOnlySpan<byte>.Empty));
    }

    [Fact]
    public void MatchesTheBitwiseDefinitionOnRandomInput()
    {
        var rng = new Random(20261126);
        for (int round = 0; round < 400; round++)
        {
            int length = round < 100 ? round : rng.Next(0, 140_000);
            byte[] data = new byte[length];
            // Random content, then a zero tail of random length (often most of the buffer, as
            // in a region table), sometimes with a lone non-zero byte inside the tail.
            int content = length == 0 ? 0 : rng.Next(0, length + 1);
            rng.NextBytes(data.AsSpan(0, content));
            if (content < length && rng.Next(4) == 0)
                data[rng.Next(content, length)] = (byte)rng.Next(1, 256);
            Assert.Equal(Reference(data), Crc32C.Compute(data));
            if (length >= 4)
            {
                int field = rng.Next(0, length - 3);
                Assert.Equal(Reference(data, field), Crc32C.ComputeWithZeroedField(data, field));
            }
        }
    }

    [Fact]
    public void ZeroRunsOfEveryShortLengthAndOfLargePowers()
    {
        var rng = new Random(7);
        byte[] head = new byte[13];
        rng.NextBytes(head);
        foreach (int zeros in new[] { 0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 4095, 4096, 4097, 65536 - 13, 65536, 1 << 20 })
        {
            byte[] data = new byte[head.Length + zeros];
            head.CopyTo(data, 0);
            Assert.Equal(Reference(data), Crc32C.Compute(data));
            Assert.Equal(Reference(data, 4), Crc32C.ComputeWithZeroedField(data, 4));
        }
    }

    [Fact]
    public void AppendZerosEqualsHashingZeros()
    {
        var rng = new Random(11);
        for (int round = 0; round < 200; round++)
        {
            uint crc = (uint)rng.Next() ^ ((uint)rng.Next() << 16);
            int count = rng.Next(0, 20_000);
            Assert.Equal(Crc32C.Append(crc, new byte[count]), Crc32C.AppendZeros(crc, count));
        }
    }
}
