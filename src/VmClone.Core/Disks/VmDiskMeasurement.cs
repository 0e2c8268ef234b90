using VmClone.Disks;

namespace VmClone.Core.Disks;

/// <summary>What Measure-VmDisk found: the bytes a standalone copy of a disk's content in a format would take.</summary>
public sealed class VmDiskMeasurement
{
    /// <summary>Full path of the disk measured (its whole chain is read, as a convert flattens it).</summary>
    public string Path { get; set; } = "";

    /// <summary>The format the copy would be written in.</summary>
    public DiskFormat DestinationFormat { get; set; }

    /// <summary>Virtual size of the disk in bytes.</summary>
    public long VirtualSize { get; set; }

    /// <summary>The copy's allocation unit in bytes (VHDX block, VMDK grain, qcow2 cluster, VHD block; 512 for raw).</summary>
    public long BlockSize { get; set; }

    /// <summary>
    /// Bytes the new file needs for the content the chain stores: its length after Convert-VmDisk
    /// (for qcow2 and raw, qemu-img measure's "required size", which Convert-VmDisk's file never
    /// exceeds). Stored blocks that hold only zeros are counted, as qemu-img measure counts them;
    /// the convert then writes less.
    /// </summary>
    public long RequiredBytes { get; set; }

    /// <summary>Bytes the new file takes once every block of it is written (qemu-img measure's "fully allocated size").</summary>
    public long FullyAllocatedBytes { get; set; }

    /// <summary>Virtual bytes the chain stores as data (not zero, not unallocated): what a convert reads and copies.</summary>
    public long DataBytes { get; set; }

    public override string ToString() => $"{DestinationFormat}: {RequiredBytes} bytes required, {FullyAllocatedBytes} fully allocated ('{Path}')";
}
