using System;

namespace VmClone.Disks;

/// <summary>Whether bytes are all zero: how empty tables are recognised and how copies stay sparse.</summary>
internal static class ZeroBytes
{
    private static readonly byte[] Zeros = new byte[64 * 1024];

    /// <summary>64 KiB of zeros to write from; never written to.</summary>
    public static byte[] Block => Zeros;

    /// <summary>True when every byte is zero (compared in blocks against zeros, many bytes per step).</summary>
    public static bool All(ReadOnlySpan<byte> data)
    {
        while (data.Length > 0)
        {
            int n = Math.Min(data.Length, Zeros.Length);
            if (!data.Slice(0, n).SequenceEqual(new ReadOnlySpan<byte>(Zeros, 0, n)))
                return false;
            data = data.Slice(n);
        }
        return true;
    }
}
