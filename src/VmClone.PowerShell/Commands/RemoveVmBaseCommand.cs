using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Removes a base and its files; refused while anything depends on it.</summary>
/// <remarks>
/// <para>Remove-VmBase deletes the base's folder, volume files and manifest. It refuses, naming them, while any clone's manifest names the base or any disk file in the store depends on its files (as the disks' own parent links say) — a clone whose data volume is still a child of the base's data volume included.</para>
/// <para>Rebase the clones onto another base first (Invoke-VmRebase -Base OLD -NewBase NEW), or remove them. The command asks for confirmation; -Force skips it.</para>
/// <para>Links inside the base's folder are deleted as links, never followed; a base folder that is itself a link is refused (ManifestInvalid), nothing it leads to is touched.</para>
/// </remarks>
/// <example>
/// <summary>Remove a base nothing depends on</summary>
/// <code>New-VmBase -Name scratch -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 64MB } | Out-Null
/// Remove-VmBase scratch -Force</code>
/// <para>Without -Force, PowerShell asks first.</para>
/// </example>
/// <example>
/// <summary>Retire an old base once its clones have moved</summary>
/// <code>Get-VmClone lab-01 | New-VmBase -Name win11-v2 | Out-Null
/// Invoke-VmRebase -Base win11 -NewBase win11-v2 -Force | Out-Null
/// Remove-VmBase win11 -Force</code>
/// <para>Every clone has left win11, so nothing depends on it any more.</para>
/// </example>
[Cmdlet(VerbsCommon.Remove, "VmBase", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
public sealed class RemoveVmBaseCommand : VmStoreCmdlet
{
    /// <summary>Names of the bases to remove (no wildcards).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(BaseNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = null!;

    /// <summary>Do not ask for confirmation.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        foreach (string name in Name)
        {
            Try(name, () =>
            {
                VmStore store = OpenStore();
                StorePlan plan = store.PlanRemoveBase(name);
                if (ShouldRun(plan, $"Remove base '{name}' and its files", Force))
                    store.Execute(plan, null, CancellationToken);
            });
        }
    }
}
