using System;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace VmClone.Core.Disks;

/// <summary>
/// Whether two byte ranges hold the same bytes: the comparison a content-preserving re-parent
/// makes over every byte both parent chains hold.
/// </summary>
internal static class BytesEqual
{
    /// <summary>
    /// Compares a vector at a time, four vectors per step. Compiled fully optimized at its first
    /// call (AggressiveOptimization, value 512 in runtimes that know it): a re-parent in a fresh
    /// process would otherwise compare its first few hundred MiB with the framework's
    /// precompiled comparison, measured at less than half the speed of this loop.
    /// </summary>
    [MethodImpl((MethodImplOptions)512)]
    public static bool Check(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != b.Length)
            return false;
        if (!Vector.IsHardwareAccelerated)
            return a.SequenceEqual(b);
        ReadOnlySpan<Vector<byte>> va = MemoryMarshal.Cast<byte, Vector<byte>>(a);
        ReadOnlySpan<Vector<byte>> vb = MemoryMarshal.Cast<byte, Vector<byte>>(b);
        int i = 0;
        for (; i + 4 <= va.Length; i += 4)
        {
            Vector<byte> differences = (va[i] ^ vb[i]) | (va[i + 1] ^ vb[i + 1]) | (va[i + 2] ^ vb[i + 2]) | (va[i + 3] ^ vb[i + 3]);
            if (differences != Vector<byte>.Zero)
                return false;
        }
        for (; i < va.Length; i++)
        {
            if (va[i] != vb[i])
                return false;
        }
        int tail = va.Length * Vector<byte>.Count;
        return a.Slice(tail).SequenceEqual(b.Slice(tail));
    }
}
