using System;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// How a qcow2 base's files and every overlay made from it are laid out: the cluster size and
/// whether L2 entries are extended (32 subclusters each). The farms that set these: IsardVDI
/// (QCOW2_CLUSTER_SIZE=4k, QCOW2_EXTENDED_L2=off), Proxmox VE 9 (cluster_size=128k and
/// extended_l2=on for every linked clone). Recorded with each base volume, so that clones,
/// restores, the clearing of temporary volumes and rebases onto the base keep it.
/// </summary>
public sealed class Qcow2Layout
{
    /// <summary>qemu-img create's cluster size: 64 KiB.</summary>
    public const long DefaultClusterSize = 64 * 1024;

    /// <summary>Cluster size in bytes: a power of two from 512 bytes to 2 MiB (qemu-img's default 64 KiB).</summary>
    public long ClusterSize { get; set; } = DefaultClusterSize;

    /// <summary>Extended L2 entries (qemu-img's extended_l2=on); clusters of at least 16 KiB.</summary>
    public bool ExtendedL2 { get; set; }

    /// <summary>The options a volume file of this layout is created with.</summary>
    internal static DiskCreateOptions CreateOptions(DiskFormat format, Qcow2Layout? layout, int? logicalSectorSize = null) => new()
    {
        Format = format,
        LogicalSectorSizeBytes = logicalSectorSize,
        BlockSizeBytes = format == DiskFormat.Qcow2 ? layout?.ClusterSize : null,
        Qcow2ExtendedL2 = format == DiskFormat.Qcow2 && (layout?.ExtendedL2 ?? false),
    };

    /// <summary>
    /// Refuses (InvalidQcow2Layout) a layout qcow2 cannot have, or one given for a base of
    /// another format, before anything is planned or written.
    /// </summary>
    internal static void Validate(Qcow2Layout? layout, DiskFormat format, string subject)
    {
        if (layout is null)
            return;
        if (format != DiskFormat.Qcow2)
            throw Invalid($"A qcow2 cluster size or extended L2 is for a qcow2 base (-Format Qcow2), not a {format.ToString().ToUpperInvariant()} one.", subject);
        long c = layout.ClusterSize;
        if (c < 512 || c > 2 * 1024 * 1024 || (c & (c - 1)) != 0)
            throw Invalid($"A qcow2 cluster size must be a power of two from 512 bytes to 2 MiB (4 KiB for IsardVDI, 64 KiB qemu's default, 128 KiB for Proxmox VE), not {c}.", subject);
        if (layout.ExtendedL2 && c < 16 * 1024)
            throw Invalid($"qcow2 extended L2 entries need clusters of at least 16 KiB (qemu refuses smaller), not {c} bytes.", subject);
    }

    private static StoreException Invalid(string message, string subject) =>
        new(StoreErrorIds.InvalidQcow2Layout, VmCloneErrorKind.InvalidArgument, message, subject);
}
