@{
    # The one version source: build.ps1 stamps the assemblies and the package from it.
    RootModule           = 'VmClone.PowerShell.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = 'da24afe3-4529-47b4-a9fb-632df589f82f'
    Author               = 'VmClone contributors'
    CompanyName          = 'VmClone'
    Copyright            = '(c) VmClone contributors. MIT License.'
    Description          = 'Bases and linked clones for VDI as VHDX/VMDK differencing-disk chains: create read-only bases, clone in milliseconds, restore, rebase whole fleets while data volumes survive. Cross-platform VHDX and VMDK engine, no hypervisor needed.'
    PowerShellVersion    = '7.2'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('VmClone.format.ps1xml')
    # The DSC resources are PowerShell classes, so they live in a script module of their own.
    NestedModules        = @('VmClone.Dsc.psm1')
    DscResourcesToExport = @('VmCloneBase', 'VmCloneClone')
    CmdletsToExport      = @(
        'New-VmDisk'
        'Get-VmDisk'
        'Test-VmDisk'
        'Convert-VmDisk'
        'Merge-VmDisk'
        'Set-VmDisk'
        'Compare-VmDisk'
        'Measure-VmDisk'
        'Resize-VmDisk'
        'Optimize-VmDisk'
        'New-VmBase'
        'Get-VmBase'
        'Remove-VmBase'
        'New-VmClone'
        'Get-VmClone'
        'Remove-VmClone'
        'Get-VmVolume'
        'Restore-VmClone'
        'Clear-VmTemporaryVolume'
        'Invoke-VmRebase'
        'Test-VmStore'
        'Export-VmClone'
        'Rename-VmClone'
        'Rename-VmBase'
        'Import-VmClone'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('VHDX', 'VMDK', 'VDI', 'LinkedClone', 'DifferencingDisk', 'HyperV', 'VMware', 'QEMU', 'Linux', 'MacOS', 'Windows', 'PSEdition_Core')
            LicenseUri   = 'https://opensource.org/licenses/MIT'
            ProjectUri   = 'https://github.com/vmclone/VmClone'
            ReleaseNotes = @'
0.1.0
- Managed VHDX engine (MS-VHDX v1): dynamic and differencing disks, 512/4096-byte sectors,
  1-256 MiB blocks, parent locators with identity checks, log replay, crash-safe metadata.
- VMDK engine: monolithicSparse and delta disks (read and write), split and flat extents,
  streamOptimized (read).
- Disk commands: New-VmDisk, Get-VmDisk (-Chain), Test-VmDisk, Convert-VmDisk,
  Merge-VmDisk, Set-VmDisk.
- Store commands: New/Get/Remove-VmBase, New/Get/Remove-VmClone, Get-VmVolume,
  Restore-VmClone, Clear-VmTemporaryVolume, Invoke-VmRebase, Test-VmStore (-Repair).
- Fleet commands work on several clones at a time (-ThrottleLimit); unattended hosts never
  block on a prompt (ConfirmationNotPossible).
- DSC resources VmCloneBase and VmCloneClone; a sample scheduled rebase script.
- Help: about_VmClone, about_VmClone_Rebase, about_VmClone_Scheduling, about_VmClone_Security; every example runs.
'@
        }
    }
}
