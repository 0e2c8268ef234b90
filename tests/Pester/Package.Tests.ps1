# The built module as a package: its manifest is complete, and a package published to a
# (temporary, file) repository installs with PSResourceGet, imports and works.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'The module manifest' {
    BeforeAll {
        $manifest = Test-ModuleManifest -Path $env:VMCLONE_MODULE
        $data = Import-PowerShellDataFile $env:VMCLONE_MODULE
    }

    It 'passes Test-ModuleManifest and says everything a gallery shows' {
        $manifest.Version | Should -BeGreaterThan ([version]'0.0')
        $manifest.PowerShellVersion | Should -Be ([version]'7.2')
        $manifest.CompatiblePSEditions | Should -Be 'Core'
        $manifest.ProjectUri | Should -Not -BeNullOrEmpty
        $manifest.LicenseUri | Should -Not -BeNullOrEmpty
        $manifest.ReleaseNotes | Should -Match ([regex]::Escape($data.ModuleVersion))
        $manifest.Tags | Should -Contain 'VHDX'
        $manifest.Description.Length | Should -BeGreaterThan 40
    }

    It 'lists what it exports: cmdlets, formats, DSC resources; nothing else' {
        $data.CmdletsToExport | Sort-Object | Should -Be @(
            'Clear-VmTemporaryVolume',
            'Compare-VmDisk',
            'Convert-VmDisk',
            'Export-VmClone',
            'Get-VmBase',
            'Get-VmClone',
            'Get-VmDisk',
            'Get-VmVolume',
            'Import-VmClone',
            'Invoke-VmRebase',
            'Measure-VmDisk',
            'Merge-VmDisk',
            'New-VmBase',
            'New-VmClone',
            'New-VmDisk',
            'Optimize-VmDisk',
            'Remove-VmBase',
            'Remove-VmClone',
            'Rename-VmBase',
            'Rename-VmClone',
            'Resize-VmDisk',
            'Restore-VmClone',
            'Set-VmDisk',
            'Test-VmDisk',
            'Test-VmStore')
        $data.FormatsToProcess | Should -Be 'VmClone.format.ps1xml'
        $data.DscResourcesToExport | Sort-Object | Should -Be @('VmCloneBase', 'VmCloneClone')
        $data.FunctionsToExport | Should -BeNullOrEmpty
        $data.AliasesToExport | Should -BeNullOrEmpty
        $data.VariablesToExport | Should -BeNullOrEmpty
        (Get-Module VmClone).ExportedFunctions.Count | Should -Be 0
    }

    It 'ships every file it names' {
        $base = Split-Path $env:VMCLONE_MODULE
        foreach ($f in @($data.RootModule) + $data.FormatsToProcess + $data.NestedModules + 'en-US/VmClone.PowerShell.dll-Help.xml' +
            'en-US/about_VmClone.help.txt' + 'en-US/about_VmClone_Rebase.help.txt' + 'en-US/about_VmClone_Scheduling.help.txt' + 'en-US/about_VmClone_Security.help.txt' +
            'Samples/Invoke-ScheduledRebase.ps1') {
            Join-Path $base $f | Should -Exist
        }
    }
}

Describe 'A package in a local repository' {
    BeforeAll {
        $dir = New-TestFolder
        $repo = Join-Path $dir 'repository'
        $modules = Join-Path $dir 'modules'
        New-Item -ItemType Directory -Path $repo, $modules | Out-Null
        $version = (Import-PowerShellDataFile $env:VMCLONE_MODULE).ModuleVersion
        $repoName = 'VmCloneTest' + [guid]::NewGuid().ToString('N').Substring(0, 8)
        Register-PSResourceRepository -Name $repoName -Uri $repo -Trusted
        try {
            Publish-PSResource -Path (Split-Path $env:VMCLONE_MODULE) -Repository $repoName -SkipDependenciesCheck
            $found = Find-PSResource -Name VmClone -Repository $repoName
            Save-PSResource -Name VmClone -Repository $repoName -Path $modules -TrustRepository -SkipDependencyCheck
        }
        finally { Unregister-PSResourceRepository -Name $repoName }
        $store = Join-Path $dir 'store'
        $check = @"
`$ErrorActionPreference = 'Stop'
`$env:PSModulePath = '$modules' + [IO.Path]::PathSeparator + `$env:PSModulePath
`$m = Import-Module VmClone -PassThru
'base: ' + `$m.ModuleBase
'dsc: ' + ((`$m.ExportedDscResources | Sort-Object) -join ',')
New-VmBase pkg -Store '$store' -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 8MB } | Out-Null
'bases: ' + (Get-VmBase -Store '$store').Name
'help: ' + (Get-Help Get-VmBase).Synopsis
"@
        $run = Invoke-TestPwsh -Arguments @('-Command', $check) -TimeoutSeconds 120
    }
    AfterAll { Remove-TestFolder $dir }

    It 'is found under its name and version' {
        $found.Name | Should -Be 'VmClone'
        $found.Version | Should -Be ([version]$version)
        Get-ChildItem $repo -Filter "VmClone.$version.nupkg" | Should -Not -BeNullOrEmpty
    }

    It 'installs into a versioned module folder, imports from there, and works' {
        Join-Path $modules "VmClone/$version/VmClone.psd1" | Should -Exist
        $run.ExitCode | Should -Be 0 -Because ($run.Output -join "`n")
        $run.Output | Should -Contain ('base: ' + (Join-Path $modules "VmClone/$version"))
        $run.Output | Should -Contain 'dsc: VmCloneBase,VmCloneClone'
        $run.Output | Should -Contain 'bases: pkg'
        ($run.Output | Where-Object { $_ -like 'help: *' }) | Should -Not -Be 'help: '
    }
}
