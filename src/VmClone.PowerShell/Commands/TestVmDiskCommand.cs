using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Checks the integrity of a virtual disk and its whole parent chain.</summary>
/// <remarks>
/// <para>Test-VmDisk opens the disk and every parent read-only and checks each file's structures (headers and their checksums, region and metadata tables, block allocation table or grain tables, sector bitmaps, an unreplayed log) and every link of the chain (parent found, parent identity unchanged, compatible geometry).</para>
/// <para>It writes one result per disk: Path, IsHealthy, and Problems — a list that is empty when the disk is healthy, each problem naming the file it is in. A damaged disk is a result, not an error; a path that does not exist is an error.</para>
/// <para>For a qcow2 image the refcounts are recomputed from the header, the refcount table and blocks, the L1 and every L2 table and the clusters they name, and compared with the recorded ones as qemu-img check does. A cluster counted lower than it is used, a COPIED flag that disagrees with its refcount, or a table naming a cluster past the end of the file is a problem (Kind Corruption). A cluster counted but used by nothing is listed apart in Leaks (Kind Leak): it wastes space and puts no data at risk, so a disk with leaks alone is healthy (qemu-img check -r leaks frees them). Images with internal snapshots or persistent bitmaps (and files of more than 256 Mi clusters) have their mapping checked but not their refcounts: the result's RefcountsNotCompared lists each such file with its Reason (InternalSnapshots, PersistentBitmaps or TooManyClusters), and is empty when every qcow2 file's refcounts were compared. IsHealthy says nothing of the refcounts of a file listed there; qemu-img check does.</para>
/// <para>For a VHD the footer and its copy at offset 0 are compared (one damaged copy is a problem the next write mends; both with bad checksums refuse the file), the dynamic header's checksum, the BAT and every stored block against the file's length and each other, and each differencing layer's parent unique id. A VHD chain of more than 30 files is healthy but listed in Warnings (Kind VhdChainTooDeepForXenServer, also written as a warning): XenServer and XCP-ng refuse it.</para>
/// <para>Nothing is ever written to the files checked.</para>
/// <para>On a file inside a store (a folder above it holds store.json) the store's boundary applies: parents are followed only inside the store (DiskParentOutsideRoot), and a file that is a link leading out of the store or a FIFO, device or socket is refused (VolumeOutsideStore, VolumeNotRegularFile) before it is opened.</para>
/// </remarks>
/// <example>
/// <summary>Check a disk</summary>
/// <code>Test-VmDisk -Path ./child.vhdx</code>
/// <para>IsHealthy is True and Problems is empty for a good chain.</para>
/// </example>
/// <example>
/// <summary>List the problems of every unhealthy disk in a folder</summary>
/// <code>Get-ChildItem -Path . -Filter *.vhdx | Test-VmDisk | Where-Object { -not $_.IsHealthy } | Select-Object -ExpandProperty Problems</code>
/// <para>Each problem shows the file and what is wrong with it.</para>
/// </example>
/// <example>
/// <summary>Fail a script when a disk is damaged</summary>
/// <code>if (-not (Test-VmDisk ./base.vhdx).IsHealthy) { throw "base.vhdx is damaged" }</code>
/// <para>Use the IsHealthy property in scripts.</para>
/// </example>
[Cmdlet(VerbsDiagnostic.Test, "VmDisk", DefaultParameterSetName = "Path")]
[OutputType(typeof(VmDiskCheckResult))]
public sealed class TestVmDiskCommand : DiskFileCmdlet
{
    /// <summary>Read a qcow2 image whose data lies in an external data file (incompatible feature bit 2, qemu-img create -o data_file=...), provided that file really lies in the image's own folder (links resolved). Without it such an image is refused, the message naming the data file: an image that names another file to read is how CVE-2024-32498 leaked host files. Never applies inside a store: a store's volumes are one file each.</summary>
    [Parameter]
    public SwitchParameter AllowExternalDataFile { get; set; }

    protected override bool AllowsExternalDataFile => AllowExternalDataFile;

    protected override void ProcessDisk(string path, DiskOpenOptions options)
    {
        WriteVerbose($"Checking '{path}' and its chain.");
        VmDiskCheckResult result = DiskOperations.Check(path, options, CancellationToken);
        foreach (VmDiskWarning warning in result.Warnings)
            WriteWarning(warning.Description);
        WriteObject(result);
    }
}
