using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Copies a disk's whole virtual content (its chain flattened) into a new standalone VHDX, VMDK, VHD, qcow2 or raw file, or a fixed VHD for Azure.</summary>
/// <remarks>
/// <para>Convert-VmDisk reads the disk through its whole parent chain and writes one standalone file holding exactly what the chain shows: converting a differencing disk flattens it. The source is never changed.</para>
/// <para>The copy is sparse: runs that read as zeros are not allocated in the destination, so a mostly empty 100 GiB disk converts to a small file. The destination is written under a hidden staging folder next to it and moved into place only when complete; an interrupted conversion leaves no destination file.</para>
/// <para>The format follows the destination's extension (.vhdx, .vmdk, .vhd, .qcow2, .raw/.img) unless -DestinationFormat says otherwise; a destination whose extension names no such format is refused with UnknownDiskExtension unless -DestinationFormat is given.</para>
/// <para>A qcow2 destination is a standalone image as qemu-img create makes it (64 KiB clusters unless -BlockSizeBytes says otherwise), with only the clusters that hold data allocated; qemu-img check finds it clean. Any format VmClone reads converts into qcow2 and back.</para>
/// <para>-Fixed writes a fixed disk: a fixed VHD (the data, then a 512-byte footer), a VHDX whose blocks are all present, a monolithicFlat VMDK (a descriptor and its -flat.vmdk extent) or raw. The file is as long as the disk, but the source's holes stay holes, so it is small on disk until written. qcow2 has no fixed form (FixedNotSupported).</para>
/// <para>A fixed VHD is what Azure imports, and -DestinationFormat Vhd -Fixed writes one ready to upload (Add-AzVhd, azcopy to a managed disk): creator "win " and host "Wi2k" as Hyper-V writes them, original size equal to current size, the spec's CHS geometry, disk type 2, the footer's checksum, no dynamic header. Azure takes only a virtual size of a whole number of MiB and at least 20 MiB; any other size is refused up front (AzureVhdSizeRejected) naming the size the disk would take, and -RoundUpToMiB writes it at that size, the added range reading as zeros. A disk over 2040 GiB, more than a VHD holds, is always refused.</para>
/// <para>A VHD destination is a dynamic VHD as Hyper-V makes one (2 MiB blocks unless -BlockSizeBytes says otherwise, the current size with its CHS geometry), only the blocks that hold data stored; qemu-img -f vpc and libvhdi read it as VmClone does.</para>
/// <para>On a file inside a store (a folder above it holds store.json) the store's boundary applies: parents are followed only inside the store (DiskParentOutsideRoot), and a file that is a link leading out of the store or a FIFO, device or socket is refused (VolumeOutsideStore, VolumeNotRegularFile) before it is opened.</para>
/// <para>Before anything is written, what the copy can take at most (the new file as its format lays out the chain's stored blocks) is checked against the destination's free space: a copy that does not fit is refused at once with DiskFull, naming the folder, the bytes needed and the bytes free.</para>
/// </remarks>
/// <example>
/// <summary>Flatten a chain into a standalone VHDX</summary>
/// <code>Convert-VmDisk -Path ./child.vhdx -DestinationPath ./flat.vhdx</code>
/// <para>flat.vhdx reads exactly as child.vhdx and has no parent.</para>
/// </example>
/// <example>
/// <summary>Convert VHDX to VMDK for VMware or VirtualBox</summary>
/// <code>Convert-VmDisk ./base.vhdx ./base.vmdk</code>
/// <para>Writes a monolithicSparse VMDK that VMware Workstation, VirtualBox and qemu-img open.</para>
/// </example>
/// <example>
/// <summary>Export a raw image</summary>
/// <code>Convert-VmDisk ./child.vhdx -DestinationPath ./disk.img -DestinationFormat Raw</code>
/// <para>Zero runs stay holes in the raw file where the file system supports sparse files.</para>
/// </example>
/// <example>
/// <summary>Export a disk for Azure as a fixed VHD</summary>
/// <code>Convert-VmDisk ./child.vhdx ./azure.vhd -DestinationFormat Vhd -Fixed</code>
/// <para>azure.vhd is a fixed VHD holding child.vhdx's chain flattened, 1 GiB plus its 512-byte footer, ready for Add-AzVhd or azcopy; only the source's data takes space on disk.</para>
/// </example>
/// <example>
/// <summary>Round a disk up to the next whole MiB for Azure</summary>
/// <code>New-VmDisk -Path ./odd.vhdx -SizeBytes 31457792 | Out-Null
/// Convert-VmDisk ./odd.vhdx ./odd.vhd -DestinationFormat Vhd -Fixed -RoundUpToMiB</code>
/// <para>Without -RoundUpToMiB the 30 MiB + 512 bytes disk is refused with AzureVhdSizeRejected, naming the 32,505,856 bytes (31 MiB) it would take; with it the VHD is 31 MiB and its last 1,048,064 bytes read as zeros.</para>
/// </example>
[Cmdlet(VerbsData.Convert, "VmDisk", SupportsShouldProcess = true)]
[OutputType(typeof(VmDiskInfo))]
public sealed class ConvertVmDiskCommand : VmCloneCmdlet
{
    /// <summary>The disk to copy (with its chain).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = null!;

    /// <summary>The new file. It must not exist.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string DestinationPath { get; set; } = null!;

    /// <summary>Format of the new file; by default from its extension.</summary>
    [Parameter]
    [ValidateDiskFormat(DiskFormatUse.Write)]
    public DiskFormat DestinationFormat { get; set; }

    /// <summary>Allocation unit of the new file (VHDX block size, VMDK grain size).</summary>
    [Parameter]
    [ValidateRange(4096L, 256L * 1024 * 1024)]
    public long BlockSizeBytes { get; set; }

    /// <summary>Write a fixed disk: the whole virtual size laid out in the file (holes where the source has none of its data). With -DestinationFormat Vhd, a VHD Azure imports.</summary>
    [Parameter]
    public SwitchParameter Fixed { get; set; }

    /// <summary>With -Fixed to VHD: a size Azure refuses (not a whole number of MiB, under 20 MiB) is raised to the next size it takes instead of refused; the added range reads as zeros.</summary>
    [Parameter]
    public SwitchParameter RoundUpToMiB { get; set; }
    /// <summary>Read a qcow2 source whose data lies in an external data file (incompatible feature bit 2), provided that file really lies in the image's own folder (links resolved); the destination is always one file. Without it such a source is refused, the message naming the data file. Never applies inside a store.</summary>
    [Parameter]
    public SwitchParameter AllowExternalDataFile { get; set; }

    protected override void ProcessRecord()
    {
        Try(Path, () =>
        {
            string source = ResolveSinglePath(Path);
            string destination = ResolveNewPath(DestinationPath);
            DiskFormat format = DiskOperations.FormatFor(destination, IsBound(nameof(DestinationFormat)) ? DestinationFormat : null);
            string kind = Fixed ? $"a new fixed {format} disk" : "a new standalone disk";
            if (!ShouldProcess(destination, $"Write the content of '{source}' as {kind}"))
                return;
            using var progress = new CmdletProgress(this);
            var create = new DiskCreateOptions { BlockSizeBytes = IsBound(nameof(BlockSizeBytes)) ? BlockSizeBytes : null, Fixed = Fixed.IsPresent };
            DiskFileCmdlet.WithExternalDataFile(source, AllowExternalDataFile, allow =>
                WriteObject(DiskOperations.Convert(source, destination, format,
                    create, StoreOfFile.Apply(source, new DiskOpenOptions { AllowExternalDataFile = allow }), RoundUpToMiB.IsPresent, progress, CancellationToken)));
        });
    }
}
