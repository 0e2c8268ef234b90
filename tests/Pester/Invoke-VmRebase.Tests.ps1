# Invoke-VmRebase by parameter (names, -Base) and piped: system as the new base, temporary reset,
# data byte for byte; -WhatIf changes nothing.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Invoke-VmRebase' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $clones = 'lab-01', 'lab-02', 'lab-03'
        New-TestFleet $store -Clone $clones -Folder $dir -DataInBase
        New-VmBase other -Store $store -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 16MB } | Out-Null
        $dataHash = @{}
        foreach ($c in $clones) {
            Write-DiskText (Get-TestVolumePath $store $c 'system') 8MB "$c installed software"
            Write-DiskText (Get-TestVolumePath $store $c 'data') 3MB "$c documents"
            $dataHash[$c] = Get-DiskContentHash (Get-TestVolumePath $store $c 'data')
        }
        Write-DiskText (Get-TestVolumePath $store lab-01 'system') 20MB 'update 2026-11'
        Get-VmClone lab-01 -Store $store | New-VmBase -Name win11-v2 | Out-Null
        Write-DiskText (Get-TestVolumePath $store lab-02 'system') 20MB 'update 2026-12'
        Get-VmClone lab-02 -Store $store | New-VmBase -Name win11-v3 | Out-Null

        function Assert-Rebased([string] $Clone, [string] $Base) {
            $c = Get-VmClone $Clone -Store $store
            $c.Base | Should -Be $Base
            $c.LastRebased | Should -Not -BeNullOrEmpty
            Get-DiskContentHash (Get-TestVolumePath $store $Clone 'system') | Should -Be (Get-DiskContentHash (Get-TestVolumePath $store -Base $Base -Volume 'system'))
            Get-DiskContentHash (Get-TestVolumePath $store $Clone 'temp') | Should -Be (Get-DiskContentHash (Get-TestVolumePath $store -Base $Base -Volume 'temp'))
            Get-DiskContentHash (Get-TestVolumePath $store $Clone 'data') | Should -Be $dataHash[$Clone]
        }
    }
    AfterAll { Remove-TestFolder $dir }

    Context 'by parameter' {
        It 'changes nothing with -WhatIf, by names and by -Base' {
            $before = Get-TestSnapshot $store
            Invoke-VmRebase lab-01, lab-02 -NewBase win11-v2 -Store $store -WhatIf
            Invoke-VmRebase -Base win11 -NewBase win11-v2 -Store $store -WhatIf
            Get-TestSnapshot $store | Should -Be $before
        }

        It '-WhatIf shows bytes: what each volume''s step copies at most, and in all' {
            $text = Get-WhatIfText { Invoke-VmRebase lab-03 -NewBase win11-v2 -Store $store -WhatIf }
            $text | Should -Match 'data \(Data\): re-parent onto .*\(copies at most \d[\d.]* [KMG]iB\)'
            $text | Should -Match 'system \(System\): replace by a child of .*\(copies nothing\)'
            $text | Should -Match 'in all: copies at most \d[\d.]* [KMG]iB'
        }

        It 'refuses a clone whose outline differs from the new base with OutlineMismatch, naming it, and rebases nothing of it' {
            $err = $null
            Invoke-VmRebase lab-03 -NewBase other -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $err.Count | Should -Be 1
            $err[0].FullyQualifiedErrorId | Should -Be 'OutlineMismatch,VmClone.PowerShell.Commands.InvokeVmRebaseCommand'
            $err[0].TargetObject | Should -Be 'lab-03'
            (Get-VmClone lab-03 -Store $store).Base | Should -Be 'win11'
            Read-DiskText (Get-TestVolumePath $store lab-03 'system') 8MB 25 | Should -Be 'lab-03 installed software'
        }

        It 'names each clone as the target of its error when the new base does not exist, so a fleet log tells which clones failed' {
            $err = $null
            Invoke-VmRebase lab-02, lab-03 -NewBase no-such-base -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $err.Count | Should -Be 2
            $err.FullyQualifiedErrorId | Sort-Object -Unique | Should -Be 'BaseNotFound,VmClone.PowerShell.Commands.InvokeVmRebaseCommand'
            $err.TargetObject | Should -Be 'lab-02', 'lab-03'
            (Get-VmClone lab-02, lab-03 -Store $store).Base | Sort-Object -Unique | Should -Be 'win11'
        }

        It 'rebases every clone of -Base: system as the new base, temporary reset, data byte-identical' {
            $rebased = @(Invoke-VmRebase -Base win11 -NewBase win11-v2 -Store $store -Force)
            $rebased.Name | Should -Be $clones
            $rebased.Base | Sort-Object -Unique | Should -Be 'win11-v2'
            foreach ($c in $clones) { Assert-Rebased $c 'win11-v2' }
            (Get-VmBase win11 -Store $store).CloneCount | Should -Be 0
        }

        It 'rebases the named clones, once when named twice' {
            $rebased = @(Invoke-VmRebase lab-01, lab-03, lab-01 -NewBase win11-v3 -Store $store -Force)
            $rebased.Name | Should -Be 'lab-01', 'lab-03'
            foreach ($c in 'lab-01', 'lab-03') { Assert-Rebased $c 'win11-v3' }
            (Get-VmClone lab-02 -Store $store).Base | Should -Be 'win11-v2'
        }
    }

    Context 'piped' {
        It 'rebases the clones piped from Get-VmClone, in input order' {
            $rebased = @(Get-VmClone -Base win11-v3 -Store $store | Invoke-VmRebase -NewBase win11 -Force)
            $rebased.Name | Should -Be 'lab-01', 'lab-03'
            foreach ($c in 'lab-01', 'lab-03') { Assert-Rebased $c 'win11' }
        }

        It 'rebases clones piped by name, once when piped twice' {
            $rebased = @('lab-02', 'lab-02' | Invoke-VmRebase -NewBase win11 -Store $store -Force)
            $rebased.Name | Should -Be 'lab-02'
            Assert-Rebased 'lab-02' 'win11'
        }
    }
}
