BeforeDiscovery {
    Import-Module $env:VMCLONE_MODULE -Force
    $script:commands = @(Get-Command -Module VmClone -CommandType Cmdlet | ForEach-Object { @{ Name = $_.Name } })
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
}

Describe 'The VmClone module' {
    It 'has a valid manifest' {
        $m = Test-ModuleManifest -Path $env:VMCLONE_MODULE
        $m.Name | Should -Be 'VmClone'
        $m.ExportedCmdlets.Keys | Should -Contain 'New-VmDisk'
    }

    It 'exports exactly the cmdlets its manifest lists' {
        $manifest = Import-PowerShellDataFile $env:VMCLONE_MODULE
        (Get-Command -Module VmClone).Name | Sort-Object | Should -Be ($manifest.CmdletsToExport | Sort-Object)
    }

    It 'has an about_VmClone topic' {
        $about = Get-Help about_VmClone
        ($about | Out-String) | Should -Match 'differencing'
    }

    It 'has about topics for rebase planning, unattended use and the trust boundary' {
        (Get-Help about_VmClone_Rebase | Out-String) | Should -Match 'OUTLINE RULE'
        (Get-Help about_VmClone_Rebase | Out-String) | Should -Match 'GOING BACK'
        (Get-Help about_VmClone_Scheduling | Out-String) | Should -Match 'ConfirmationNotPossible'
        $security = Get-Help about_VmClone_Security | Out-String
        foreach ($rule in 'WHO IS TRUSTED', 'NOTHING OUTSIDE', 'ONLY REGULAR FILES', 'DECIDE UNDER THE LOCK', 'COST BOUNDED BY THE FILE', 'VALIDATE BEFORE WRITING') {
            $security | Should -Match $rule
        }
    }
}

Describe 'Help for <Name>' -ForEach $commands {
    BeforeAll { $help = Get-Help $Name -Full }

    It 'has a synopsis and a description' {
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -BeLike "*$Name*[<]*"
        ($help.description | Out-String).Trim().Length | Should -BeGreaterThan 40
    }

    It 'has at least two examples with code' {
        @($help.examples.example).Count | Should -BeGreaterOrEqual 2
        foreach ($e in $help.examples.example) { $e.code | Should -Not -BeNullOrEmpty }
    }

    It 'describes every parameter' {
        foreach ($p in $help.parameters.parameter) {
            ($p.description | Out-String).Trim() | Should -Not -BeNullOrEmpty -Because "-$($p.name) needs a description"
        }
    }
}
