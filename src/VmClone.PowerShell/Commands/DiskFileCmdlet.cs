using System.Management.Automation;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>
/// Base of the cmdlets that read existing disk files: -Path (wildcards) or -LiteralPath (bound
/// from the PSPath of files piped from Get-ChildItem), and -Format for raw images without a
/// telling extension. Each resolved file goes to <see cref="ProcessDisk"/>; a failure is an
/// error for that file and the others go on.
/// </summary>
public abstract class DiskFileCmdlet : VmCloneCmdlet
{
    protected const string PathSet = "Path";
    protected const string LiteralPathSet = "LiteralPath";

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
    [Parameter]
    [ValidateDiskFormat(DiskFormatUse.Read)]
    public DiskFormat Format { get; set; }

    protected override void ProcessRecord()
    {
        bool literal = ParameterSetName == LiteralPathSet;
        DiskFormat? format = IsBound(nameof(Format)) ? Format : null;
        // A file inside a store is opened with the store's boundary (StoreOfFile).
        foreach (string path in ResolveExistingPaths(literal ? LiteralPath : Path, literal))
        {
            Try(path, () => WithExternalDataFile(path, AllowsExternalDataFile, allow =>
                ProcessDisk(path, StoreOfFile.Apply(path, new DiskOpenOptions { Format = format, AllowExternalDataFile = allow }))));
        }
    }

    /// <summary>True when the cmdlet was asked to read a qcow2 image's external data file (its -AllowExternalDataFile).</summary>
    protected virtual bool AllowsExternalDataFile => false;

    /// <summary>
    /// Runs <paramref name="action"/> with whether an external data file may be read: when
    /// <paramref name="requested"/>, and never for a file inside a store (a store's volumes are
    /// one file each; an image there that names another file is refused, and the refusal says
    /// why the switch did not apply).
    /// </summary>
    internal static void WithExternalDataFile(string path, bool requested, System.Action<bool> action)
    {
        string? root = requested ? StoreOfFile.FindRoot(path) : null;
        try
        {
            action(requested && root is null);
        }
        catch (DiskFormatException ex) when (root is not null && ex.Structure == ExternalDataFileStructure)
        {
            throw new DiskFormatException(ex.Path, ex.Structure,
                $"{ex.Reason}; '{path}' lies in store '{root}', where no image is read with an external data file, even with -AllowExternalDataFile", ex.Offset, ex);
        }
    }

    /// <summary>The structure the engine names when it refuses an external data file.</summary>
    private const string ExternalDataFileStructure = "external data file";

    /// <summary>The work for one resolved disk file.</summary>
    protected abstract void ProcessDisk(string path, DiskOpenOptions options);
}
