using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Copies a disk's whole virtual content (its chain flattened) into a new standalone VHDX, VMDK or raw file.</summary>
/// <remarks>
/// <para>Convert-VmDisk reads the disk through its whole parent chain and writes one standalone file holding exactly what the chain shows: converting a differencing disk flattens it. The source is never changed.</para>
/// <para>The copy is sparse: runs that read as zeros are not allocated in the destination, so a mostly empty 100 GiB disk converts to a small file. The destination is written under a hidden staging folder next to it and moved into place only when complete; an interrupted conversion leaves no destination file.</para>
/// <para>The format follows the destination's extension (.vhdx, .vmdk, .qcow2, .raw/.img) unless -DestinationFormat says otherwise; a destination whose extension names no such format is refused with UnknownDiskExtension unless -DestinationFormat is given.</para>
/// <para>A qcow2 destination is a standalone image as qemu-img create makes it (64 KiB clusters unless -BlockSizeBytes says otherwise), with only the clusters that hold data allocated; qemu-img check finds it clean. Any format VmClone reads converts into qcow2 and back.</para>
/// <para>On a file inside a store (a folder above it holds store.json) the store's boundary applies: parents are followed only inside the store (DiskParentOutsideRoot), and a file that is a link leading out of the store or a FIFO, device or socket is refused (VolumeOutsideStore, VolumeNotRegularFile) before it is opened.</para>
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
            if (!ShouldProcess(destination, $"Write the content of '{source}' as a new standalone disk"))
                return;
            using var progress = new CmdletProgress(this);
            var create = new DiskCreateOptions { BlockSizeBytes = IsBound(nameof(BlockSizeBytes)) ? BlockSizeBytes : null };
            DiskFileCmdlet.WithExternalDataFile(source, AllowExternalDataFile, allow =>
                WriteObject(DiskOperations.Convert(source, destination, format,
                    create, StoreOfFile.Apply(source, new DiskOpenOptions { AllowExternalDataFile = allow }), progress, CancellationToken)));
        });
    }
}
