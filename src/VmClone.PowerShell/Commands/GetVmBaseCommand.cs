using System.Linq;
using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Lists the bases in the store.</summary>
/// <remarks>
/// <para>Get-VmBase shows each base's volumes, how many clones depend on it, when it was made and the space its files take. A base whose files were changed after it was made shows IsModified; Test-VmStore says more.</para>
/// <para>Names accept wildcards; a name without wildcards that matches no base is an error.</para>
/// </remarks>
/// <example>
/// <summary>Every base</summary>
/// <code>Get-VmBase</code>
/// <para>A table of name, clone count, volumes and size on disk.</para>
/// </example>
/// <example>
/// <summary>Bases by pattern, with their volumes</summary>
/// <code>Get-VmBase win11* | Get-VmVolume</code>
/// <para>Every volume of every base whose name starts with win11.</para>
/// </example>
[Cmdlet(VerbsCommon.Get, "VmBase")]
[OutputType(typeof(VmBaseInfo))]
public sealed class GetVmBaseCommand : VmStoreCmdlet
{
    /// <summary>Base names; wildcards allowed. All bases when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(BaseNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    protected override void ProcessRecord()
    {
        Try(Name is null ? "*" : string.Join(",", Name), () =>
        {
            VmStore store = OpenStore();
            var wanted = Match(Name, store.BaseNames(), "base", store.Root).ToList();
            foreach (VmBaseInfo b in store.GetBases(n => wanted.Contains(n)))
                WriteObject(b);
        });
    }
}
