using System;
using System.IO;

namespace VmClone.Disks;

/// <summary>How <see cref="VirtualDisk.Open(string, System.IO.FileAccess, DiskOpenOptions?)"/> treats a file and its chain.</summary>
public sealed class DiskOpenOptions
{
    /// <summary>Opens the file as this format instead of detecting it (needed for raw images without a .raw/.img extension).</summary>
    public DiskFormat? Format { get; set; }

    /// <summary>
    /// Accept a parent whose identity no longer matches what the child recorded (the parent was
    /// modified after the child was made). Reads may then show corrupted content; only for recovery.
    /// </summary>
    public bool IgnoreParentIdentityMismatch { get; set; }

    /// <summary>
    /// When set, parents are only followed if they really lie inside this folder: their paths
    /// with every symbolic link resolved, so that a link or a linked folder inside it that leads
    /// out is outside. Every engine entry point that opens, creates over or links to a parent
    /// (Open, CreateDifferencing, CreateDifferencingFile, TryRecreateDifferencingFile,
    /// ParentLink.For, DiskLayer.SetParent) holds the parent to it when given these options.
    /// </summary>
    public string? AllowedParentRoot { get; set; }

    /// <summary>
    /// Read files whose structures carry a wrong checksum (a VHD footer or dynamic header that
    /// was edited without updating it) instead of refusing them. Off by default: a bad checksum
    /// means the file was damaged or tampered with; only for recovering data.
    /// </summary>
    public bool AcceptBadChecksums { get; set; }

    /// <summary>Use this file as the top layer's parent instead of the paths stored in it.</summary>
    public string? ParentPathOverride { get; set; }

    /// <summary>
    /// Read a qcow2 image whose data lies in an external data file (incompatible feature bit 2),
    /// provided that file lies in the image's own folder (links resolved) and, with
    /// <see cref="AllowedParentRoot"/>, inside that root. Off by default: an image that names
    /// another file to read is refused (the CVE-2024-32498 class).
    /// </summary>
    public bool AllowExternalDataFile { get; set; }

    /// <summary>
    /// Write into a qcow2 image that has persistent dirty bitmaps (libvirt checkpoints): before
    /// the first write the bitmaps' consistency bit (autoclear bit 0) is cleared, as qcow2.rst
    /// asks of a writer that does not update them, so qemu treats them as stale and the next
    /// incremental backup is a full one. Off by default: such images are not opened for writing.
    /// </summary>
    public bool AllowWritingOverBitmaps { get; set; }

    /// <summary>Longest chain accepted; deeper chains (or loops) are refused.</summary>
    public int MaxChainDepth { get; set; } = DefaultMaxChainDepth;

    /// <summary>Default for <see cref="MaxChainDepth"/>.</summary>
    public const int DefaultMaxChainDepth = 128;

    internal static readonly DiskOpenOptions Default = new();
}

/// <summary>Choices for a new disk file; every property has a sensible default.</summary>
public sealed class DiskCreateOptions
{
    /// <summary>File format; by default taken from the extension (.vhdx, .avhdx, .vmdk, .vhd, .avhd, .raw/.img), else VHDX.</summary>
    public DiskFormat? Format { get; set; }

    /// <summary>Allocation unit: VHDX block size (1–256 MiB, power of two; default 32 MiB, 2 MiB for differencing), VMDK grain (default 64 KiB), VHD block size (512 bytes–256 MiB, power of two; default 2 MiB, as Hyper-V and XenServer write).</summary>
    public long? BlockSizeBytes { get; set; }

    /// <summary>512 or 4096; differencing disks take their parent's.</summary>
    public int? LogicalSectorSizeBytes { get; set; }

    /// <summary>
    /// qcow2 only: extended L2 entries (32 subclusters per cluster, qemu's extended_l2=on, what
    /// Proxmox VE 9 gives its linked clones); needs clusters of at least 16 KiB. Refused for
    /// any other format.
    /// </summary>
    public bool Qcow2ExtendedL2 { get; set; }

    /// <summary>512 or 4096 (default 4096).</summary>
    public int? PhysicalSectorSizeBytes { get; set; }

    /// <summary>
    /// A fixed disk: the whole virtual size laid out in the file when it is created, as Hyper-V's
    /// New-VHD -Fixed makes one — a fixed VHD (the data, then the footer), a VHDX with every
    /// block FULLY_PRESENT, a VMDK monolithicFlat (a descriptor and its -flat.vmdk extent), raw.
    /// qcow2 has no fixed form and a differencing disk cannot be fixed: both are refused.
    /// </summary>
    public bool Fixed { get; set; }

    /// <summary>
    /// With <see cref="Fixed"/>: the file system's blocks are reserved for the whole file when it
    /// is created (Linux fallocate; a file on Windows is allocated as it is sized), so writing
    /// into the disk later never finds the volume full. Without it the ranges not yet written
    /// are holes: the file is as long as the disk but takes only what holds data (a conversion).
    /// </summary>
    public bool ReserveSpace { get; set; }
}

/// <summary>Everything a format needs to write a new, empty layer.</summary>
internal sealed class LayerCreateSpec
{
    public LayerCreateSpec(string path, long virtualSize)
    {
        Path = path;
        VirtualSize = virtualSize;
    }

    public string Path { get; }

    public long VirtualSize { get; }

    /// <summary>Null: the format's default.</summary>
    public long? BlockSize { get; set; }

    /// <summary>qcow2's extended L2 entries (<see cref="DiskCreateOptions.Qcow2ExtendedL2"/>).</summary>
    public bool ExtendedL2 { get; set; }

    public int LogicalSectorSize { get; set; } = 512;

    public int PhysicalSectorSize { get; set; } = 4096;

    /// <summary>The parent's top layer (open read-only) for a differencing disk, else null.</summary>
    public DiskLayer? Parent { get; set; }

    /// <summary>A fixed disk (<see cref="DiskCreateOptions.Fixed"/>); never with a parent.</summary>
    public bool Fixed { get; set; }

    /// <summary>Reserve the file system's space for every file of a fixed disk (<see cref="DiskCreateOptions.ReserveSpace"/>).</summary>
    public bool ReserveSpace { get; set; }

    /// <summary>Parent path relative to the child's folder, with '/' separators, or null when on another volume.</summary>
    public string? ParentRelativePath { get; set; }

    /// <summary>Full path of the parent.</summary>
    public string? ParentAbsolutePath { get; set; }

    /// <summary>
    /// An existing file, opened with <see cref="FileAccessor.OpenToRewrite"/>, that the new layer
    /// is written into in place (<see cref="VirtualDisk.TryRecreateDifferencingFile"/>); null for a
    /// new file at <see cref="Path"/>.
    /// </summary>
    public FileAccessor? Target { get; set; }

    /// <summary>The file the format writes its layout into: <see cref="Target"/>, or a new one.</summary>
    public FileAccessor OpenFile() => Target ?? FileAccessor.CreateNew(Path);

    /// <summary>
    /// After a failed create: closes the file and deletes it if it was new. A file rewritten in
    /// place is left as it is, neither old nor new; its caller does the rewrite again.
    /// </summary>
    public void Abandon(FileAccessor file)
    {
        file.Dispose();
        if (Target is not null)
            return;
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
