using System.Globalization;
using VmClone.Core.Store;

namespace VmClone.Core.Disks;

/// <summary>
/// The sizes Azure takes for a fixed VHD (the only disk file it imports): a virtual size of a
/// whole number of MiB (Add-AzVhd: "N * MiB + 512 bytes" for the file; qemu commit fb9245c2),
/// at least 20 MiB (a managed disk's upload size is 20 MiB + 512 bytes at the least), and no
/// more than the 2040 GiB a VHD holds for VmClone, qemu and XenServer alike (Azure's own limit,
/// 32 TiB for a data disk, lies beyond it).
/// </summary>
public static class AzureVhd
{
    private const long MiB = 1L << 20;

    /// <summary>The smallest virtual size Azure takes: 20 MiB.</summary>
    public const long MinVirtualSize = 20 * MiB;

    /// <summary>The largest virtual size VmClone writes as a VHD: 2040 GiB.</summary>
    public const long MaxVirtualSize = 2040L << 30;

    /// <summary>
    /// The virtual size a fixed VHD for a disk of <paramref name="size"/> bytes gets: the size
    /// itself when Azure takes it; with <paramref name="roundUp"/> the next size it takes (a
    /// whole MiB, at least 20 MiB). Otherwise refused (AzureVhdSizeRejected) naming the size it
    /// would take and the switch that takes it; a disk larger than a VHD holds is always refused.
    /// </summary>
    public static long SizeFor(long size, bool roundUp, string destination)
    {
        if (size > MaxVirtualSize)
            throw new VmCloneException(StoreErrorIds.AzureVhdSizeRejected, VmCloneErrorKind.InvalidArgument,
                $"'{destination}': the disk is {N(size)} bytes ({Format.Bytes(size)}), more than the {N(MaxVirtualSize)} bytes (2040 GiB) a VHD holds; " +
                "nothing was written. Shrink the disk's content first, or keep it as VHDX (Azure imports only VHD).", destination);
        long wholeMiB = (size + MiB - 1) / MiB * MiB;
        long target = wholeMiB < MinVirtualSize ? MinVirtualSize : wholeMiB;
        if (target == size || roundUp)
            return target;
        string why = size < MinVirtualSize
            ? $"smaller than the {N(MinVirtualSize)} bytes (20 MiB) Azure takes at the least"
            : "not a whole number of MiB, which Azure requires of a VHD";
        throw new VmCloneException(StoreErrorIds.AzureVhdSizeRejected, VmCloneErrorKind.InvalidArgument,
            $"'{destination}': the disk is {N(size)} bytes ({Format.Bytes(size)}), {why}; nothing was written. " +
            $"As an Azure disk it would take {N(target)} bytes ({target / MiB} MiB): add -RoundUpToMiB to write it at that size " +
            $"(the added {N(target - size)} bytes read as zeros, so a GPT disk's backup header is no longer in its last sector until the guest repairs it), " +
            "or resize the disk to a whole number of MiB first.", destination);
    }

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);
}
