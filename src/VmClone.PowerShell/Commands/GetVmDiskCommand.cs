using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Shows a virtual disk file and, with -Chain, every disk in its parent chain.</summary>
/// <remarks>
/// <para>Get-VmDisk reads a disk's metadata without changing the file: format, type (Dynamic, Fixed, Differencing), virtual size, file size, bytes it stores itself, block size, sector sizes, parent path and the depth of its chain.</para>
/// <para>A differencing disk whose parent is missing or was modified is still shown: ChainDepth is empty and ChainProblem says what is wrong, and a warning is written. With -Chain, one object per layer is written, from the disk itself (Level 0) down to its base.</para>
/// <para>Accepts paths from the pipeline, so Get-ChildItem *.vhdx | Get-VmDisk works.</para>
/// </remarks>
/// <example>
/// <summary>Show one disk</summary>
/// <code>Get-VmDisk -Path ./child.vhdx</code>
/// <para>Shows the child's format, type, sizes, parent and chain depth.</para>
/// </example>
/// <example>
/// <summary>Show a whole chain</summary>
/// <code>Get-VmDisk ./child.vhdx -Chain | Format-Table Level, Type, VirtualSize, FileSize, Path</code>
/// <para>One row per layer, from the child (Level 0) down to its base.</para>
/// </example>
/// <example>
/// <summary>Every disk in a folder, largest files first</summary>
/// <code>Get-ChildItem -Path . -Filter *.vhdx | Get-VmDisk | Sort-Object FileSize -Descending</code>
/// <para>Files are bound from the pipeline by their path.</para>
/// </example>
[Cmdlet(VerbsCommon.Get, "VmDisk", DefaultParameterSetName = PathSet)]
[OutputType(typeof(VmDiskInfo))]
public sealed class GetVmDiskCommand : VmCloneCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    /// <summary>Disk file(s) to show; wildcards are allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = null!;

    /// <summary>Disk file(s) to show, taken literally (no wildcards). Bound from the PSPath of files piped from Get-ChildItem.</summary>
    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = null!;

    /// <summary>Also show every parent down to the base, one object per layer.</summary>
    [Parameter]
    public SwitchParameter Chain { get; set; }

    /// <summary>Treat the file as this format instead of detecting it (for raw images without a .raw or .img extension).</summary>
    [Parameter]
    public DiskFormat Format { get; set; }

    protected override void ProcessRecord()
    {
        bool literal = ParameterSetName == LiteralPathSet;
        foreach (string path in ResolveExistingPaths(literal ? LiteralPath : Path, literal))
        {
            Try(path, () =>
            {
                var options = new DiskOpenOptions { Format = MyInvocation.BoundParameters.ContainsKey(nameof(Format)) ? Format : null };
                foreach (VmDiskInfo info in DiskOperations.Inspect(path, Chain.IsPresent, options))
                {
                    if (info.ChainProblem is string problem)
                        WriteWarning(problem);
                    WriteObject(info);
                }
            });
        }
    }
}
