# New-VmClone by parameter and piped: each clone reads its base's content, takes little room, and
# a name given twice is made once; a name in use is an error for that name only.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'New-VmClone' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone @() -Folder $dir -DataInBase
        $baseSystem = Get-DiskContentHash (Get-TestVolumePath $store -Base win11 -Volume 'system')
        $baseData = Get-DiskContentHash (Get-TestVolumePath $store -Base win11 -Volume 'data')

        function Assert-Clone([string] $Clone) {
            Get-DiskContentHash (Get-TestVolumePath $store $Clone 'system') | Should -Be $baseSystem
            Get-DiskContentHash (Get-TestVolumePath $store $Clone 'data') | Should -Be $baseData
            (Get-VmClone $Clone -Store $store).State | Should -Be 'Ready'
        }
    }
    AfterAll { Remove-TestFolder $dir }

    Context 'by parameter' {
        It 'changes nothing with -WhatIf' {
            $before = Get-TestSnapshot $store
            New-VmClone lab-01, lab-02 -Base win11 -Store $store -WhatIf
            Get-TestSnapshot $store | Should -Be $before
        }

        It 'makes each named clone over the base, once when named twice' {
            $err = $null
            $made = @(New-VmClone lab-01, lab-02, lab-01 -Base win11 -Store $store -ErrorVariable err -ErrorAction SilentlyContinue)
            $err | Should -BeNullOrEmpty -Because 'a clone named twice is made once, not refused the second time'
            $made.Name | Should -Be 'lab-01', 'lab-02'
            $made.Base | Sort-Object -Unique | Should -Be 'win11'
            foreach ($c in $made) { $c.SizeOnDisk | Should -BeLessThan 16MB }
            foreach ($c in 'lab-01', 'lab-02') { Assert-Clone $c }
            (Get-VmBase win11 -Store $store).CloneCount | Should -Be 2
        }

        It 'refuses a name in use with CloneExists, naming it, and makes the others' {
            $err = $null
            $made = @(New-VmClone lab-01, lab-03 -Base win11 -Store $store -ErrorVariable err -ErrorAction SilentlyContinue)
            $made.Name | Should -Be 'lab-03'
            $err.Count | Should -Be 1
            $err[0].FullyQualifiedErrorId | Should -Be 'CloneExists,VmClone.PowerShell.Commands.NewVmCloneCommand'
            $err[0].TargetObject | Should -Be 'lab-01'
            Assert-Clone 'lab-03'
        }

        It 'refuses a name that differs only in case from a clone that exists, naming that clone' {
            $err = $null
            New-VmClone LAB-01 -Base win11 -Store $store -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $err[0].FullyQualifiedErrorId | Should -Be 'CloneExists,VmClone.PowerShell.Commands.NewVmCloneCommand'
            $err[0].Exception.Message | Should -BeLike "*by clone 'lab-01'*"
            @(Get-ChildItem (Join-Path $store 'clones') -Directory -Force | Where-Object Name -ceq 'LAB-01') | Should -BeNullOrEmpty
        }

        It 'refuses an unknown base with BaseNotFound and makes nothing' {
            $err = $null
            New-VmClone lab-09 -Base nope -Store $store -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            ($err[0].FullyQualifiedErrorId -split ',')[0] | Should -Be 'BaseNotFound'
            Test-Path (Join-Path $store 'clones/lab-09') | Should -BeFalse
        }
    }

    Context 'piped' {
        It 'makes a clone of each piped name, in input order, once when piped twice' {
            $err = $null
            $made = @('kiosk-02', 'kiosk-01', 'kiosk-02' | New-VmClone -Base win11 -Store $store -ErrorVariable err -ErrorAction SilentlyContinue)
            $err | Should -BeNullOrEmpty
            $made.Name | Should -Be 'kiosk-02', 'kiosk-01'
            foreach ($c in 'kiosk-01', 'kiosk-02') { Assert-Clone $c }
        }

        It 'makes clones of a base piped from Get-VmBase, in its store' {
            $made = @(Get-VmBase win11 -Store $store | New-VmClone -Name pipe-01, pipe-02)
            $made.Name | Should -Be 'pipe-01', 'pipe-02'
            $made.Store | Sort-Object -Unique | Should -Be (Get-VmBase win11 -Store $store).Store
            foreach ($c in 'pipe-01', 'pipe-02') { Assert-Clone $c }
        }
    }
}
