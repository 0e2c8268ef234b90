namespace VmClone.Disks.Qcow2;

/// <summary>Choices for a new qcow2 image; the defaults are qemu-img create's.</summary>
public sealed class Qcow2CreateOptions
{
    /// <summary>Cluster size: a power of two from 512 bytes to 2 MiB (default 64 KiB; IsardVDI uses 4 KiB, Proxmox 128 KiB).</summary>
    public long? ClusterSize { get; set; }

    /// <summary>Extended L2 entries (32 subclusters per cluster; clusters of 16 KiB or more; version 3 only).</summary>
    public bool ExtendedL2 { get; set; }

    /// <summary>Version 2 (qemu's compat=0.10) instead of 3 (compat=1.1).</summary>
    public bool Version2 { get; set; }

    /// <summary>Refcount width: 1, 2, 4, 8, 16, 32 or 64 bits (default 16; version 2 only 16).</summary>
    public int? RefcountBits { get; set; }

    /// <summary>The options of a cluster size from the engine's generic create options (DiskCreateOptions.BlockSizeBytes).</summary>
    internal static Qcow2CreateOptions From(long? blockSize, bool extendedL2 = false) => new() { ClusterSize = blockSize, ExtendedL2 = extendedL2 };
}
