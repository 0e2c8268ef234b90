using System;

namespace VmClone.Disks;

/// <summary>
/// Which units of a file (grains, 1 MiB blocks, sectors) some table entry already names: one bit
/// per unit, in pages allocated only where claims are. Its size follows the file's real length,
/// never what a header claims, so a small file cannot make it large; tables whose entries name
/// nothing (or lie in holes) cost nothing.
/// </summary>
internal sealed class ClaimMap
{
    private const int PageShift = 15; // 32,768 units (4 KiB of bits) per page
    private const long PageMask = (1L << PageShift) - 1;

    private ulong[]?[] _pages;

    /// <summary>A map of <paramref name="units"/> units; claims past them grow it.</summary>
    public ClaimMap(long units)
    {
        _pages = new ulong[]?[PagesFor(units)];
    }

    private static long PagesFor(long units) => Math.Max(1, (units + PageMask) >> PageShift);

    /// <summary>True when unit <paramref name="unit"/> is claimed.</summary>
    public bool IsClaimed(long unit)
    {
        long p = unit >> PageShift;
        if (unit < 0 || p >= _pages.Length || _pages[p] is not ulong[] page)
            return false;
        return (page[(unit & PageMask) >> 6] & (1UL << (int)(unit & 63))) != 0;
    }

    /// <summary>True when any unit of [<paramref name="first"/>, first + count) is claimed.</summary>
    public bool AnyClaimed(long first, long count)
    {
        for (long u = first; u < first + count;)
        {
            long p = u >> PageShift;
            if (p >= _pages.Length)
                return false;
            long pageEnd = (p + 1) << PageShift;
            long end = Math.Min(first + count, pageEnd);
            if (_pages[p] is ulong[] page)
            {
                for (long v = u; v < end;)
                {
                    int bit = (int)(v & 63);
                    int n = (int)Math.Min(64 - bit, end - v);
                    ulong mask = (n == 64 ? ulong.MaxValue : ((1UL << n) - 1)) << bit;
                    if ((page[(v & PageMask) >> 6] & mask) != 0)
                        return true;
                    v += n;
                }
            }
            u = end;
        }
        return false;
    }

    /// <summary>
    /// Claims [<paramref name="first"/>, first + count); returns false when any of it was claimed
    /// already (it is all claimed afterwards either way).
    /// </summary>
    public bool Claim(long first, long count)
    {
        if (first < 0 || count <= 0)
            return true;
        long lastPage = (first + count - 1) >> PageShift;
        if (lastPage >= _pages.Length)
            Array.Resize(ref _pages, (int)Math.Max(lastPage + 1, Math.Min(int.MaxValue / 2, _pages.Length * 2L)));
        bool fresh = true;
        for (long v = first; v < first + count;)
        {
            ulong[] page = _pages[v >> PageShift] ??= new ulong[(1 << PageShift) / 64];
            int bit = (int)(v & 63);
            int n = (int)Math.Min(64 - bit, first + count - v);
            ulong mask = (n == 64 ? ulong.MaxValue : ((1UL << n) - 1)) << bit;
            ref ulong word = ref page[(v & PageMask) >> 6];
            if ((word & mask) != 0)
                fresh = false;
            word |= mask;
            v += n;
        }
        return fresh;
    }
}
