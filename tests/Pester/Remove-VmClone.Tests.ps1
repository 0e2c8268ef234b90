# Remove-VmClone by parameter and piped, in each format: the clone's folder, volumes and entry
# go; the base and the other clones stay as they were.
BeforeDiscovery {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:formats = @(Get-TestFormats)
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Remove-VmClone' {
    Context 'by parameter, <Format>' -ForEach $formats {
        BeforeAll {
            $dir = New-TestFolder
            $store = Join-Path $dir 'store'
            if (-not $Skip) {
                New-TestFleet $store -Clone lab-01, lab-02, lab-03 -Folder $dir -Format $Format
                Write-DiskText (Get-TestVolumePath $store lab-01 'data') 3MB 'lab-01 documents'
                $lab01 = Get-DiskContentHash (Get-TestVolumePath $store lab-01 'data')
            }
        }
        AfterAll { Remove-TestFolder $dir }

        It 'changes nothing with -WhatIf, and says what it would remove' -Skip:$Skip {
            $before = Get-TestSnapshot $store
            $transcript = Join-Path $dir 'whatif.txt'
            Start-Transcript -LiteralPath $transcript | Out-Null
            try { Remove-VmClone lab-02 -Store $store -WhatIf }
            finally { Stop-Transcript | Out-Null }
            Get-TestSnapshot $store | Should -Be $before
            Get-Content -LiteralPath $transcript -Raw | Should -BeLike "*Remove clone 'lab-02'*"
        }

        It 'removes a clone with its volumes and its entry' -Skip:$Skip {
            $folder = (Get-VmClone lab-02 -Store $store).Path
            Remove-VmClone lab-02 -Store $store -Force
            Test-Path $folder | Should -BeFalse
            (Get-VmClone -Store $store).Name | Should -Be @('lab-01', 'lab-03')
            (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
            Get-DiskContentHash (Get-TestVolumePath $store lab-01 'data') | Should -Be $lab01
            (Get-VmBase win11 -Store $store).CloneCount | Should -Be 2
        }

        It 'refuses an unknown clone with CloneNotFound, naming it, and removes the others' -Skip:$Skip {
            $err = $null
            Remove-VmClone nope, lab-03 -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
            $err.Count | Should -Be 1
            $err[0].FullyQualifiedErrorId | Should -Be 'CloneNotFound,VmClone.PowerShell.Commands.RemoveVmCloneCommand'
            $err[0].TargetObject | Should -Be 'nope'
            (Get-VmClone -Store $store).Name | Should -Be 'lab-01'
        }
    }

    Context 'piped' {
        BeforeAll {
            $dir = New-TestFolder
            $store = Join-Path $dir 'store'
            New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir
            New-VmBase kiosk -Store $store -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 16MB } | Out-Null
            New-VmClone kiosk-01, kiosk-02 -Base kiosk -Store $store | Out-Null
        }
        AfterAll { Remove-TestFolder $dir }

        It 'removes the clones piped from Get-VmClone -Base, and only those' {
            Get-VmClone -Base kiosk -Store $store | Remove-VmClone -Force
            (Get-VmClone -Store $store).Name | Should -Be 'lab-01', 'lab-02'
            Test-Path (Join-Path $store 'clones/kiosk-01') | Should -BeFalse
            (Get-VmBase kiosk -Store $store).CloneCount | Should -Be 0
            (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
        }

        It 'removes a clone piped by name, once when piped twice, without an error' {
            # One at a time, so the clone is gone before its second mention: it must not be looked for again.
            $err = $null
            'lab-02', 'lab-02' | Remove-VmClone -Store $store -Force -ThrottleLimit 1 -ErrorVariable err -ErrorAction SilentlyContinue
            $err | Should -BeNullOrEmpty
            (Get-VmClone -Store $store).Name | Should -Be 'lab-01'
        }
    }
}
