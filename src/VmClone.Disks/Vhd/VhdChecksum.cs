using System;

namespace VmClone.Disks.Vhd;

/// <summary>
/// The VHD checksum (spec, "Hard Disk Footer Format", Checksum): the one's complement of the
/// sum of every byte of the structure, the checksum field itself taken as zero. The footer and
/// the dynamic disk header use the same rule.
/// </summary>
internal static class VhdChecksum
{
    /// <summary>The checksum of <paramref name="data"/> with the four bytes at <paramref name="fieldOffset"/> counted as zero, and <paramref name="skip"/> (or -1) also left out.</summary>
    public static uint Compute(ReadOnlySpan<byte> data, int fieldOffset, int skip = -1)
    {
        uint sum = 0;
        for (int i = 0; i < data.Length; i++)
        {
            if ((i >= fieldOffset && i < fieldOffset + 4) || i == skip)
                continue;
            sum += data[i];
        }
        return ~sum;
    }
}
