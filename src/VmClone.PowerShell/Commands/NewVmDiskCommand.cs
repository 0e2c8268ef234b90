using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Creates a dynamic, fixed or differencing virtual disk file (VHDX, VMDK, VHD, qcow2 or raw).</summary>
/// <remarks>
/// <para>New-VmDisk creates an empty dynamic disk of the size you give, or a differencing disk (a child) over an existing disk and its chain. Creating a child copies no data: only metadata is written, so it takes milliseconds whatever the parent's size.</para>
/// <para>The format follows the file extension (.vhdx/.avhdx, .vmdk, .vhd/.avhd, .qcow2, .raw/.img) unless -Format says otherwise; a name whose extension names no such format (x.qed, x.vdi) is refused with UnknownDiskExtension unless -Format is given. A child records its parent's relative and absolute path and the parent's identity (VHDX DataWriteGuid, VMDK CID, VHD unique id); if the parent is modified later, opening the child is refused.</para>
/// <para>A qcow2 image is made as qemu-img create -f qcow2 makes it (version 3, 64 KiB clusters unless -BlockSizeBytes gives another power of two from 512 bytes to 2 MiB). A qcow2 child over a qcow2, VMDK, raw or VHDX parent records the backing file relative to its own folder and the backing format, so qemu opens it without being told the parent: qemu and libvirt (Proxmox VE, oVirt, OpenStack) start such mixed chains, while Hyper-V starts only VHDX (and VHD) chains and VMware only VMDK chains, so a chain with a qcow2 layer reaches them through Convert-VmDisk. qcow2 records nothing of the parent's content: a parent of another size is refused, but a parent modified later is not detected when the child is opened (a store's records detect a modified base).</para>
/// <para>-Fixed creates a fixed disk, as Hyper-V's New-VHD -Fixed does: the whole virtual size is laid out in the file and its space reserved on the volume at once (Linux fallocate, so it takes no time to write zeros), so the disk never runs out of space while a VM writes. A fixed VHDX has every block present (BAT entries FULLY_PRESENT); a VMDK is monolithicFlat, a descriptor and its -flat.vmdk extent, as VMware's preallocated disks are; a VHD is fixed (the data, then its footer); a raw image is fixed by nature. qcow2 has no fixed form and is refused with FixedNotSupported: qemu-img's preallocation=full still writes a qcow2 image with tables and refcounts; use raw for a fixed disk qemu opens.</para>
/// <para>A VHD is made as Hyper-V makes one: dynamic, 2 MiB blocks unless -BlockSizeBytes gives another power of two from 512 bytes to 256 MiB, the current size with its matching CHS geometry, creator "win ". A VHD child over a VHD parent records the parent's unique id, its absolute path as the parent name, and W2ru (relative, with backslashes) and W2ku (absolute) locators, which Hyper-V, XenServer and libvhdi follow; qemu reads a differencing VHD without its parent, so do not judge one with qemu-img.</para>
/// <para>The command works on any path, in or out of a VmClone store, and never overwrites an existing file.</para>
/// <para>On a file inside a store (a folder above it holds store.json) the store's boundary applies: parents are followed only inside the store (DiskParentOutsideRoot), and a file that is a link leading out of the store or a FIFO, device or socket is refused (VolumeOutsideStore, VolumeNotRegularFile) before it is opened.</para>
/// </remarks>
/// <example>
/// <summary>Create a 40 GiB dynamic VHDX</summary>
/// <code>New-VmDisk -Path ./base.vhdx -SizeBytes 40GB</code>
/// <para>Creates base.vhdx with the default 32 MiB blocks and 512-byte logical sectors. The file starts at a few MiB and grows as data is written.</para>
/// </example>
/// <example>
/// <summary>Create a child of a disk</summary>
/// <code>New-VmDisk -Path ./base.vhdx -SizeBytes 1GB | Out-Null
/// New-VmDisk -Path ./child.vhdx -ParentPath ./base.vhdx</code>
/// <para>child.vhdx reads exactly as base.vhdx until something is written to it; writes land in child.vhdx only.</para>
/// </example>
/// <example>
/// <summary>Create a 4K-sector disk with 1 MiB blocks, and preview first</summary>
/// <code>New-VmDisk -Path ./4k.vhdx -SizeBytes 10GB -LogicalSectorSizeBytes 4096 -BlockSizeBytes 1MB -WhatIf
/// New-VmDisk -Path ./4k.vhdx -SizeBytes 10GB -LogicalSectorSizeBytes 4096 -BlockSizeBytes 1MB</code>
/// <para>-WhatIf shows what would be created without touching the file system.</para>
/// </example>
/// <example>
/// <summary>Create fixed disks for Hyper-V and VMware</summary>
/// <code>New-VmDisk -Path ./fixed.vhdx -SizeBytes 64MB -Fixed
/// New-VmDisk -Path ./thick.vmdk -SizeBytes 64MB -Fixed</code>
/// <para>fixed.vhdx has all its blocks present and its 64 MiB reserved, like New-VHD -Fixed; thick.vmdk is a monolithicFlat descriptor beside thick-flat.vmdk, the 64 MiB of data.</para>
/// </example>
[Cmdlet(VerbsCommon.New, "VmDisk", SupportsShouldProcess = true, DefaultParameterSetName = DynamicSet)]
[OutputType(typeof(VmDiskInfo))]
public sealed class NewVmDiskCommand : VmCloneCmdlet
{
    private const string DynamicSet = "Dynamic";
    private const string DifferencingSet = "Differencing";

    /// <summary>Path of the new disk file. It must not exist; its folder must.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = null!;

    /// <summary>Virtual size of a dynamic disk in bytes (PowerShell's 40GB notation works). Must be a multiple of the logical sector size.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = DynamicSet, ValueFromPipelineByPropertyName = true)]
    [Alias("Size", "VirtualSize")]
    [ValidateRange(1L, long.MaxValue)]
    public long SizeBytes { get; set; }

    /// <summary>The disk the new differencing disk is a child of. Its whole chain must open cleanly. The child takes the parent's size and logical sector size.</summary>
    [Parameter(Mandatory = true, ParameterSetName = DifferencingSet, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string ParentPath { get; set; } = null!;

    /// <summary>Allocation unit: VHDX block size in bytes, a power of two from 1 MiB to 256 MiB (default 32 MiB, 2 MiB for children); VMDK grain size (default 64 KiB).</summary>
    [Parameter]
    [ValidateRange(4096L, 256L * 1024 * 1024)]
    public long BlockSizeBytes { get; set; }

    /// <summary>Logical sector size, 512 (default) or 4096. A child always has its parent's.</summary>
    [Parameter]
    [ValidateSet("512", "4096")]
    public int LogicalSectorSizeBytes { get; set; }

    /// <summary>Physical sector size reported to the guest, 512 or 4096 (default).</summary>
    [Parameter]
    [ValidateSet("512", "4096")]
    public int PhysicalSectorSizeBytes { get; set; }

    /// <summary>Create a fixed disk: the whole size laid out in the file and its space reserved (VHDX, VMDK monolithicFlat, VHD, raw; not qcow2).</summary>
    [Parameter(ParameterSetName = DynamicSet)]
    public SwitchParameter Fixed { get; set; }

    /// <summary>File format. By default it follows the extension (.vhdx, .avhdx, .vmdk, .raw, .img); VHDX otherwise.</summary>
    [Parameter]
    [ValidateDiskFormat(DiskFormatUse.Write)]
    public DiskFormat Format { get; set; }

    protected override void ProcessRecord()
    {
        foreach (string input in Path)
        {
            Try(input, () =>
            {
                string path = ResolveNewPath(input);
                string? parent = ParameterSetName == DifferencingSet ? ResolveNewPath(ParentPath) : null;
                DiskFormat format = DiskOperations.FormatFor(path, MyInvocation.BoundParameters.ContainsKey(nameof(Format)) ? Format : null);
                string what = parent is null ? $"Create a {(Fixed ? "fixed" : "dynamic")} disk of {SizeBytes} bytes" : $"Create a differencing disk over '{parent}'";
                if (!ShouldProcess(path, what))
                    return;
                var options = new DiskCreateOptions
                {
                    Format = format,
                    BlockSizeBytes = MyInvocation.BoundParameters.ContainsKey(nameof(BlockSizeBytes)) ? BlockSizeBytes : null,
                    LogicalSectorSizeBytes = MyInvocation.BoundParameters.ContainsKey(nameof(LogicalSectorSizeBytes)) ? LogicalSectorSizeBytes : null,
                    PhysicalSectorSizeBytes = MyInvocation.BoundParameters.ContainsKey(nameof(PhysicalSectorSizeBytes)) ? PhysicalSectorSizeBytes : null,
                    Fixed = Fixed.IsPresent,
                    ReserveSpace = Fixed.IsPresent,
                };
                WriteVerbose($"{what}: '{path}'.");
                // A child in a store (or over a parent in one) gets the store's boundary.
                DiskOpenOptions open = StoreOfFile.Apply(path, new DiskOpenOptions());
                if (parent is not null && open.AllowedParentRoot is null)
                    StoreOfFile.Apply(parent, open);
                WriteObject(DiskOperations.Create(path, parent is null ? SizeBytes : null, parent, options, open));
            });
        }
    }
}
