# Test-VmStore by parameter and piped: a healthy store says so; a base volume that lost its
# read-only mark is reported, left alone by -WhatIf, and marked again by -Repair.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Test-VmStore' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir
        $baseSystem = Get-TestVolumePath $store -Base win11 -Volume 'system'
    }
    AfterAll { Remove-TestFolder $dir }

    Context 'by parameter' {
        It 'reports a healthy store with its counts' {
            $report = Test-VmStore -Store $store
            $report.IsHealthy | Should -BeTrue
            $report.BaseCount | Should -Be 1
            $report.CloneCount | Should -Be 2
            $report.Problems | Should -BeNullOrEmpty
        }

        It 'reports a base volume that is no longer read-only, and -Repair -WhatIf leaves it so' {
            [IO.File]::SetAttributes($baseSystem, 'Normal')
            [VmClone.Disks.ReadOnlyFile]::IsMarked($baseSystem) | Should -BeFalse
            $report = Test-VmStore -Store $store
            $report.IsHealthy | Should -BeFalse
            $problem = @($report.Problems | Where-Object Kind -eq 'BaseNotReadOnly')
            $problem.Count | Should -Be 1
            $problem[0].Path | Should -Be $baseSystem
            $problem[0].Subject | Should -BeLike '*win11*'
            $problem[0].Repaired | Should -BeFalse
            Test-VmStore -Store $store -Repair -WhatIf | Out-Null
            [VmClone.Disks.ReadOnlyFile]::IsMarked($baseSystem) | Should -BeFalse
        }

        It 'marks it read-only again with -Repair' {
            $report = Test-VmStore -Store $store -Repair -Confirm:$false
            @($report.Problems | Where-Object Kind -eq 'BaseNotReadOnly').Repaired | Should -BeTrue
            [VmClone.Disks.ReadOnlyFile]::IsMarked($baseSystem) | Should -BeTrue
            (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
        }
    }

    Context 'piped' {
        It 'checks the store of a piped base or clone' {
            $report = Get-VmBase win11 -Store $store | Test-VmStore
            $report.Store | Should -Be (Get-VmBase win11 -Store $store).Store
            $report.IsHealthy | Should -BeTrue
            (Get-VmClone lab-01 -Store $store | Test-VmStore).CloneCount | Should -Be 2
        }

        It 'refuses a piped folder that is not a store with StoreNotFound' {
            $err = $null
            [pscustomobject]@{ Store = (Join-Path $dir 'nowhere') } | Test-VmStore -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            ($err[0].FullyQualifiedErrorId -split ',')[0] | Should -Be 'StoreNotFound'
        }
    }
}
