using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Gives back the space a disk file, or a clone's volumes, store for nothing: blocks that read as zeros, and in a differencing disk blocks that read as its parent reads them (like Hyper-V's Optimize-VHD).</summary>
/// <remarks>
/// <para>Optimize-VmDisk leaves every byte read through the chain as it was and stores less. A dynamic or differencing VHDX, VMDK (monolithicSparse), qcow2 or VHD file is written again as a compacted copy in a hidden folder beside it (.vmclone-staging-NAME), with the same format, block size, parent link and identity (VHDX DataWriteGuid, VHD unique id, VMDK CID), so its own children stay linked; only the runs that read otherwise than what lies below them are copied: for a base, what is not zero; in a differencing disk, what differs from the parent chain (a run of zeros over the parent's data stays). The copy is made durable and renamed over the file in one step: cut off, the file is the old one, whole, and the next optimize of it deletes the staging folder. The copy needs room beside the file for what the disk stores; without it nothing is written (DiskFull).</para>
/// <para>A fixed disk (a raw image, a fixed VHD or VHDX, a flat VMDK) keeps its layout: its all-zero ranges are punched out of the file in place (Linux fallocate), so it takes less space and reads the same.</para>
/// <para>Each result says how the space was given back (Method: Rewritten, Punched, or Unchanged when there was nothing to give back, the file then left as it was, as for a qcow2 image of compressed clusters that a plain copy would make larger), the virtual bytes the file stores and the bytes it takes on the file system before and after, and the runs it no longer stores (RangesDropped, BytesDropped).</para>
/// <para>A clone's volumes are optimized with -Name (and -Store), or by piping clones from Get-VmClone: under the clone's lock, so no restore or rebase runs at the same time; only the named volumes with -Volume. A volume another program holds open (a running machine) is refused with VolumeInUse and nothing is written. A store's volume given by -Path is refused with DiskInStore.</para>
/// <para>Refused, nothing written: a file another process holds open (DiskInUse); a streamOptimized or multi-extent VMDK, a qcow2 image with an external data file (OptimizeNotSupported: convert it instead, Convert-VmDisk writes a compact copy).</para>
/// </remarks>
/// <example>
/// <summary>Give back the blocks a base wrote with zeros</summary>
/// <code>New-VmDisk -Path ./zeros.vhdx -SizeBytes 64MB | Out-Null
/// Optimize-VmDisk -Path ./zeros.vhdx</code>
/// <para>The result shows the bytes stored before and after; the disk reads as before.</para>
/// </example>
/// <example>
/// <summary>Preview, then optimize every disk in a folder</summary>
/// <code>New-Item -ItemType Directory ./lab | Out-Null
/// New-VmDisk -Path ./lab/a.vhdx, ./lab/b.qcow2 -SizeBytes 64MB | Out-Null
/// Get-ChildItem ./lab | Optimize-VmDisk -WhatIf
/// Get-ChildItem ./lab | Optimize-VmDisk</code>
/// </example>
/// <example>
/// <summary>Optimize a clone's volumes in the default store</summary>
/// <code>Get-VmClone lab-01 | Optimize-VmDisk
/// Optimize-VmDisk -Name lab-02 -Volume system -WhatIf</code>
/// <para>Each volume of lab-01 is optimized under the clone's lock; a running machine's volume is refused with VolumeInUse. -WhatIf lists the volume files a run on lab-02 would rewrite.</para>
/// </example>
[Cmdlet(VerbsCommon.Optimize, "VmDisk", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = PathSet)]
[OutputType(typeof(VmDiskOptimization))]
public sealed class OptimizeVmDiskCommand : VmStoreCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";
    private const string NameSet = "Name";
    private const string InputSet = "InputObject";

    /// <summary>Disk file(s); wildcards are allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = null!;

    /// <summary>Disk file(s), taken literally (no wildcards). Bound from the PSPath of files piped from Get-ChildItem.</summary>
    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = null!;

    /// <summary>Treat the file as this format instead of detecting it (for raw images without a .raw or .img extension).</summary>
    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = LiteralPathSet)]
    [ValidateDiskFormat(DiskFormatUse.Write)]
    public DiskFormat Format { get; set; }

    /// <summary>Names of the clones (in -Store, or the default store) whose volumes to optimize.</summary>
    [Parameter(Mandatory = true, ParameterSetName = NameSet)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    /// <summary>Clones from Get-VmClone, whose volumes to optimize (each in its own store).</summary>
    [Parameter(Mandatory = true, ParameterSetName = InputSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    public VmCloneInfo[] InputObject { get; set; } = null!;

    /// <summary>Optimize only these volumes of each clone (by name); by default all of them.</summary>
    [Parameter(ParameterSetName = NameSet)]
    [Parameter(ParameterSetName = InputSet)]
    [ValidateNotNullOrEmpty]
    public string[]? Volume { get; set; }

    protected override void ProcessRecord()
    {
        switch (ParameterSetName)
        {
            case NameSet:
                foreach (string name in Name)
                    Try(name, () => OptimizeClone(OpenStore(), name));
                break;
            case InputSet:
                foreach (VmCloneInfo clone in InputObject)
                    Try(clone.Name, () => OptimizeClone(StoreAt(clone.Store), clone.Name));
                break;
            default:
                if (IsBound(nameof(Store)))
                    ThrowTerminatingError(new ErrorRecord(
                        new PSArgumentException("-Store goes with -Name or piped clones; a disk file given by -Path or -LiteralPath is optimized where it is."),
                        StoreErrorIds.InvalidArgument, ErrorCategory.InvalidArgument, Store));
                bool literal = ParameterSetName == LiteralPathSet;
                DiskFormat? format = IsBound(nameof(Format)) ? Format : null;
                foreach (string path in ResolveExistingPaths(literal ? LiteralPath : Path, literal))
                    Try(path, () => OptimizeFile(path, StoreOfFile.Apply(path, new DiskOpenOptions { Format = format })));
                break;
        }
    }

    private void OptimizeFile(string path, DiskOpenOptions options)
    {
        VmDiskOptimization plan = DiskOperations.PlanOptimize(path, options);
        string how = plan.Type == DiskType.Fixed
            ? "Punch out the ranges that read as zeros, in place"
            : plan.Type == DiskType.Differencing
                ? "Write a compacted copy without the runs that read as zeros or as its parent reads them, and rename it over the file"
                : "Write a compacted copy without the runs that read as zeros, and rename it over the file";
        if (!ShouldProcess(path, $"{how} ({SizeFormat.Bytes(plan.StoredBytesBefore)} stored now)"))
            return;
        using var progress = new CmdletProgress(this);
        WriteObject(DiskOperations.Optimize(path, options, progress, CancellationToken));
    }

    private void OptimizeClone(VmStore store, string name)
    {
        OptimizePlan plan = store.PlanOptimize(name, Volume);
        if (!ShouldProcess(plan.Describe(), $"Optimize the volumes of clone '{name}'?", "Confirm"))
            return;
        using var progress = new CmdletProgress(this, subject: name);
        foreach (VmDiskOptimization result in store.Optimize(plan, progress, CancellationToken))
            WriteObject(result);
    }
}
