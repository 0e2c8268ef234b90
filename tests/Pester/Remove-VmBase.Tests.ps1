# Remove-VmBase by parameter and piped: a base nothing depends on goes with its files; a base with
# clones is refused (BaseInUse) and stays whole; -WhatIf changes nothing.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Remove-VmBase' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01 -Folder $dir
        foreach ($b in 'spare-1', 'spare-2', 'spare-3') {
            New-VmBase $b -Store $store -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 16MB } | Out-Null
        }
        $lab01System = Get-DiskContentHash (Get-TestVolumePath $store lab-01 'system')
    }
    AfterAll { Remove-TestFolder $dir }

    Context 'by parameter' {
        It 'changes nothing with -WhatIf' {
            $before = Get-TestSnapshot $store
            Remove-VmBase spare-1 -Store $store -WhatIf
            Get-TestSnapshot $store | Should -Be $before
        }

        It 'refuses a base with clones with BaseInUse, naming it, and keeps it and its clones whole' {
            $before = Get-TestSnapshot (Join-Path $store 'bases/win11')
            $err = $null
            Remove-VmBase win11 -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
            $err.Count | Should -Be 1
            $err[0].FullyQualifiedErrorId | Should -Be 'BaseInUse,VmClone.PowerShell.Commands.RemoveVmBaseCommand'
            $err[0].TargetObject | Should -Be 'win11'
            $err[0].Exception.Message | Should -BeLike '*lab-01*'
            Get-TestSnapshot (Join-Path $store 'bases/win11') | Should -Be $before
            Get-DiskContentHash (Get-TestVolumePath $store lab-01 'system') | Should -Be $lab01System
        }

        It 'removes a base nothing depends on, with its folder and volumes' {
            $volume = Get-TestVolumePath $store -Base spare-1 -Volume 'system'
            Remove-VmBase spare-1 -Store $store -Force
            Test-Path -LiteralPath $volume | Should -BeFalse
            Test-Path (Join-Path $store 'bases/spare-1') | Should -BeFalse
            (Get-VmBase -Store $store).Name | Should -Be 'spare-2', 'spare-3', 'win11'
            (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
        }
    }

    Context 'piped' {
        It 'removes the bases piped from Get-VmBase' {
            Get-VmBase spare-* -Store $store | Remove-VmBase -Force
            (Get-VmBase -Store $store).Name | Should -Be 'win11'
            (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
        }

        It 'refuses a piped base with clones with BaseInUse' {
            $err = $null
            'win11' | Remove-VmBase -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
            ($err[0].FullyQualifiedErrorId -split ',')[0] | Should -Be 'BaseInUse'
            (Get-VmBase -Store $store).Name | Should -Be 'win11'
        }
    }
}
