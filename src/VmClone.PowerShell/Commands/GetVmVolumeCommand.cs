using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Shows the volumes of clones or bases: type, format, file, parent, sizes and drift.</summary>
/// <remarks>
/// <para>Each volume shows its file and the parent file it links to (what the disk itself says), its virtual size, its size on disk (SizeOnDisk: the space the file system has allocated for the file, Linux st_blocks × 512 or Windows GetCompressedFileSize, not its length, so a sparse file counts only what it holds; the length on macOS), the bytes its own file stores (OwnedBytes) and, for a clone, how much of it no longer reads as the base (DivergedBytes).</para>
/// <para>DivergedBytes is how much of the volume no longer reads as the base, in 512-byte sectors, for every format. For a volume over a parent it is the sectors its own file answers, as finely as that file records them: each sector for VHDX and VHD, whole grains (64 KiB) for VMDK and whole clusters for qcow2. For a standalone volume, such as a clone's data volume made empty because the base's held nothing, the base is empty: it is the sectors that no longer read as zeros, which Get-VmVolume counts by reading what the volume's file stores (the time it takes follows the data stored, not the volume's size; a base's volumes, which clones diverge from, are not read and show the bytes their files store). So three sectors written into a standalone data volume show as 1536 bytes, and a sector written with zeros shows as nothing.</para>
/// <para>Get-VmClone and the fleet commands never read a data volume's content: in the Volumes of their output a standalone data volume shows the bytes its file stores instead (whole blocks, grains or clusters), an upper bound of what Get-VmVolume shows.</para>
/// <para>Pipe clones from Get-VmClone or bases from Get-VmBase, or name them with -Clone or -Base.</para>
/// </remarks>
/// <example>
/// <summary>The volumes of one clone</summary>
/// <code>Get-VmVolume -Clone lab-01</code>
/// <para>One row per volume.</para>
/// </example>
/// <example>
/// <summary>Data volumes of every clone, largest first</summary>
/// <code>Get-VmClone | Get-VmVolume | Where-Object Type -eq Data | Sort-Object OwnedBytes -Descending</code>
/// <para>Objects from Get-VmClone and Get-VmBase can be piped.</para>
/// </example>
/// <example>
/// <summary>Only the temporary volumes, then their files through Get-VmDisk</summary>
/// <code>Get-VmVolume -Clone lab-01, lab-02 -Type Temporary | Get-VmDisk | Format-Table Type, SizeOnDisk, Path</code>
/// <para>-Type filters by volume type; volumes bind to Get-VmDisk by their Path.</para>
/// </example>
[Cmdlet(VerbsCommon.Get, "VmVolume", DefaultParameterSetName = CloneSet)]
[OutputType(typeof(VmVolumeInfo))]
public sealed class GetVmVolumeCommand : VmStoreCmdlet
{
    private const string CloneSet = "Clone";
    private const string BaseSet = "Base";
    private const string InputSet = "InputObject";

    /// <summary>Names of the clones whose volumes to show.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = CloneSet)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Clone { get; set; } = null!;

    /// <summary>Names of the bases whose volumes to show.</summary>
    [Parameter(Mandatory = true, ParameterSetName = BaseSet)]
    [ArgumentCompleter(typeof(BaseNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Base { get; set; } = null!;

    /// <summary>A clone from Get-VmClone or a base from Get-VmBase.</summary>
    [Parameter(Mandatory = true, ParameterSetName = InputSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    public PSObject InputObject { get; set; } = null!;

    /// <summary>Only volumes of these types: System, Temporary or Data.</summary>
    [Parameter]
    public VolumeType[] Type { get; set; } = null!;

    private void WriteVolumes(System.Collections.Generic.IEnumerable<VmVolumeInfo> volumes)
    {
        foreach (VmVolumeInfo v in volumes)
        {
            if (Type is null || System.Array.IndexOf(Type, v.Type) >= 0)
                WriteObject(v);
        }
    }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == InputSet)
        {
            switch (InputObject.BaseObject)
            {
                case VmCloneInfo c:
                    Try(c.Name, () => WriteVolumes(StoreAt(c.Store).GetCloneVolumes(c.Name, CancellationToken)));
                    break;
                case VmBaseInfo b:
                    Try(b.Name, () => WriteVolumes(StoreAt(b.Store).GetBaseVolumes(b.Name, CancellationToken)));
                    break;
                default:
                    WriteError(new ErrorRecord(new System.ArgumentException($"Get-VmVolume takes clones (Get-VmClone) and bases (Get-VmBase), not {InputObject.BaseObject.GetType().Name}."),
                        StoreErrorIds.InvalidInputObject, ErrorCategory.InvalidArgument, InputObject));
                    break;
            }
            return;
        }
        bool clones = ParameterSetName == CloneSet;
        foreach (string name in clones ? Clone : Base)
        {
            Try(name, () =>
            {
                VmStore store = OpenStore();
                WriteVolumes(clones ? store.GetCloneVolumes(name, CancellationToken) : store.GetBaseVolumes(name, CancellationToken));
            });
        }
    }
}
