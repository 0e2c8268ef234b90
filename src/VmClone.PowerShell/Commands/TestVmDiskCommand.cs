using System.Management.Automation;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Checks the integrity of a virtual disk and its whole parent chain.</summary>
/// <remarks>
/// <para>Test-VmDisk opens the disk and every parent read-only and checks each file's structures (headers and their checksums, region and metadata tables, block allocation table or grain tables, sector bitmaps, an unreplayed log) and every link of the chain (parent found, parent identity unchanged, compatible geometry).</para>
/// <para>It writes one result per disk: Path, IsHealthy, and Problems — a list that is empty when the disk is healthy, each problem naming the file it is in. A damaged disk is a result, not an error; a path that does not exist is an error.</para>
/// <para>Nothing is ever written to the files checked.</para>
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
[Cmdlet(VerbsDiagnostic.Test, "VmDisk", DefaultParameterSetName = PathSet)]
[OutputType(typeof(VmDiskCheckResult))]
public sealed class TestVmDiskCommand : VmCloneCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    /// <summary>Disk file(s) to check; wildcards are allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = null!;

    /// <summary>Disk file(s) to check, taken literally (no wildcards). Bound from the PSPath of files piped from Get-ChildItem.</summary>
    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = null!;

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
                WriteVerbose($"Checking '{path}' and its chain.");
                var options = new DiskOpenOptions { Format = MyInvocation.BoundParameters.ContainsKey(nameof(Format)) ? Format : null };
                WriteObject(DiskOperations.Check(path, options, CancellationToken));
            });
        }
    }
}
