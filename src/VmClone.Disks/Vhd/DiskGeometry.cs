using System;

namespace VmClone.Disks.Vhd;

/// <summary>
/// The cylinder/head/sector geometry a VHD footer records (spec, "Disk Geometry" and its
/// appendix "CHS Calculation"). Virtual PC sizes a disk by it: cylinders × heads × sectors
/// sectors of 512 bytes, which rounds the size down; Hyper-V records it beside the current size.
/// </summary>
internal readonly struct DiskGeometry : IEquatable<DiskGeometry>
{
    /// <summary>The largest geometry the field can hold (65535 cylinders, 16 heads, 255 sectors per track).</summary>
    public const long MaxSectors = 65535L * 16 * 255;

    public DiskGeometry(int cylinders, int heads, int sectorsPerTrack)
    {
        Cylinders = cylinders;
        Heads = heads;
        SectorsPerTrack = sectorsPerTrack;
    }

    public int Cylinders { get; }

    public int Heads { get; }

    public int SectorsPerTrack { get; }

    /// <summary>Sectors the geometry addresses.</summary>
    public long TotalSectors => (long)Cylinders * Heads * SectorsPerTrack;

    /// <summary>The spec appendix's geometry for a disk of <paramref name="totalSectors"/> sectors (capped at the largest geometry).</summary>
    public static DiskGeometry ForSectors(long totalSectors)
    {
        if (totalSectors > MaxSectors)
            totalSectors = MaxSectors;
        long sectorsPerTrack, heads, cylinderTimesHeads;
        if (totalSectors >= 65535L * 16 * 63)
        {
            sectorsPerTrack = 255;
            heads = 16;
            cylinderTimesHeads = totalSectors / sectorsPerTrack;
        }
        else
        {
            sectorsPerTrack = 17;
            cylinderTimesHeads = totalSectors / sectorsPerTrack;
            heads = (cylinderTimesHeads + 1023) / 1024;
            if (heads < 4)
                heads = 4;
            if (cylinderTimesHeads >= heads * 1024 || heads > 16)
            {
                sectorsPerTrack = 31;
                heads = 16;
                cylinderTimesHeads = totalSectors / sectorsPerTrack;
            }
            if (cylinderTimesHeads >= heads * 1024)
            {
                sectorsPerTrack = 63;
                heads = 16;
                cylinderTimesHeads = totalSectors / sectorsPerTrack;
            }
        }
        return new DiskGeometry((int)(cylinderTimesHeads / heads), (int)heads, (int)sectorsPerTrack);
    }

    public bool Equals(DiskGeometry other) =>
        Cylinders == other.Cylinders && Heads == other.Heads && SectorsPerTrack == other.SectorsPerTrack;

    public override bool Equals(object? obj) => obj is DiskGeometry g && Equals(g);

    public override int GetHashCode() => (Cylinders << 16) ^ (Heads << 8) ^ SectorsPerTrack;

    public override string ToString() => $"{Cylinders}/{Heads}/{SectorsPerTrack}";
}
