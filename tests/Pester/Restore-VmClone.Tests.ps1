# Restore-VmClone by parameter and piped, in each format: system and temporary go back to the
# base, data stays byte for byte, the clone stays listed.
BeforeDiscovery {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:formats = @(Get-TestFormats)
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    function Write-CloneContent([string[]] $Clones) {
        $hashes = @{}
        foreach ($c in $Clones) {
            Write-DiskText (Get-TestVolumePath $store $c 'system') 8MB "$c installed software"
            Write-DiskText (Get-TestVolumePath $store $c 'temp') 2MB "$c pagefile"
            Write-DiskText (Get-TestVolumePath $store $c 'data') 3MB "$c documents"
            $hashes[$c] = Get-DiskContentHash (Get-TestVolumePath $store $c 'data')
        }
        $hashes
    }


    function Assert-Restored([string] $Clone, [hashtable] $DataHash) {
        Get-DiskContentHash (Get-TestVolumePath $store $Clone 'system') | Should -Be (Get-DiskContentHash (Get-TestVolumePath $store -Base win11 -Volume 'system'))
        Get-DiskContentHash (Get-TestVolumePath $store $Clone 'temp') | Should -Be (Get-DiskContentHash (Get-TestVolumePath $store -Base win11 -Volume 'temp'))
        Get-DiskContentHash (Get-TestVolumePath $store $Clone 'data') | Should -Be $DataHash[$Clone]
    }
}

Describe 'Restore-VmClone' {
    Context 'by parameter, <Format>' -ForEach $formats {
        BeforeAll {
            $dir = New-TestFolder
            $store = Join-Path $dir 'store'
            if (-not $Skip) {
                New-TestFleet $store -Clone lab-01, lab-02, lab-03 -Folder $dir -Format $Format
                $dataHash = Write-CloneContent 'lab-01', 'lab-02', 'lab-03'
            }
        }
        AfterAll { Remove-TestFolder $dir }

        It 'changes nothing with -WhatIf' -Skip:$Skip {
            $before = Get-TestSnapshot $store
            Restore-VmClone lab-01, lab-02 -Store $store -WhatIf
            Get-TestSnapshot $store | Should -Be $before
        }

        It 'restores system and temporary to the base and keeps data' -Skip:$Skip {
            $restored = @(Restore-VmClone lab-01, lab-02 -Store $store -Force -PassThru)
            $restored.Name | Should -Be 'lab-01', 'lab-02'
            $restored.LastRestored | ForEach-Object { $_ | Should -Not -BeNullOrEmpty }
            $restored.DivergedBytes | ForEach-Object { $_ | Should -Be 0 }
            foreach ($c in 'lab-01', 'lab-02') { Assert-Restored $c $dataHash }
            Read-DiskText (Get-TestVolumePath $store lab-03 'system') 8MB 25 | Should -Be 'lab-03 installed software'
            (Get-VmClone -Store $store).Name | Should -Be 'lab-01', 'lab-02', 'lab-03'
        }

        It 'refuses an unknown clone with CloneNotFound, naming it, and restores the others' -Skip:$Skip {
            $err = $null
            Restore-VmClone nope, lab-03 -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
            $err.Count | Should -Be 1
            $err[0].FullyQualifiedErrorId | Should -Be 'CloneNotFound,VmClone.PowerShell.Commands.RestoreVmCloneCommand'
            $err[0].TargetObject | Should -Be 'nope'
            Assert-Restored 'lab-03' $dataHash
        }
    }

    Context 'piped, <Format>' -ForEach $formats {
        BeforeAll {
            $dir = New-TestFolder
            $store = Join-Path $dir 'store'
            if (-not $Skip) {
                New-TestFleet $store -Clone lab-01, lab-02, lab-03 -Folder $dir -Format $Format
                $dataHash = Write-CloneContent 'lab-01', 'lab-02', 'lab-03'
            }
        }
        AfterAll { Remove-TestFolder $dir }

        It 'restores system and temporary to the base and keeps data' -Skip:$Skip {
            $restored = Get-VmClone lab-01 -Store $store | Restore-VmClone -Force -PassThru
            $restored.Name | Should -Be 'lab-01'
            $restored.LastRestored | Should -Not -BeNullOrEmpty
            $restored.DivergedBytes | Should -Be 0
            Assert-Restored 'lab-01' $dataHash
            (Get-VmClone -Store $store).Name | Should -Be 'lab-01', 'lab-02', 'lab-03'
        }

        It 'restores clones piped by name, once when piped twice' -Skip:$Skip {
            $out = @('lab-02', 'lab-03', 'lab-02' | Restore-VmClone -Store $store -Force -PassThru)
            $out.Name | Should -Be 'lab-02', 'lab-03'
            foreach ($c in 'lab-02', 'lab-03') { Assert-Restored $c $dataHash }
        }
    }
}

Describe 'Restore-VmClone -Volume and -Type' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02, lab-03 -Folder $dir
        $dataHash = Write-CloneContent 'lab-01', 'lab-02', 'lab-03'
        $baseSystem = Get-DiskContentHash (Get-TestVolumePath $store -Base win11 -Volume 'system')
        $baseData = Get-DiskContentHash (Get-TestVolumePath $store -Base win11 -Volume 'data')
    }
    AfterAll { Remove-TestFolder $dir }

    It 'restores only the system volume by parameter, keeping temporary and data' {
        $temp = Get-DiskContentHash (Get-TestVolumePath $store lab-01 'temp')
        Restore-VmClone lab-01 -Volume system -Store $store -Force
        Get-DiskContentHash (Get-TestVolumePath $store lab-01 'system') | Should -Be $baseSystem
        Get-DiskContentHash (Get-TestVolumePath $store lab-01 'temp') | Should -Be $temp
        Get-DiskContentHash (Get-TestVolumePath $store lab-01 'data') | Should -Be $dataHash['lab-01']
    }

    It 'restores only the temporary volumes piped, with -Type Temporary' {
        Get-VmClone lab-02 -Store $store | Restore-VmClone -Type Temporary -Force
        Read-DiskText (Get-TestVolumePath $store lab-02 'system') 8MB 25 | Should -Be 'lab-02 installed software'
        Read-DiskText (Get-TestVolumePath $store lab-02 'temp') 2MB 15 | Should -Be ''
        Get-DiskContentHash (Get-TestVolumePath $store lab-02 'data') | Should -Be $dataHash['lab-02']
    }

    It 'says in -WhatIf that a named data volume loses its content, and changes nothing' {
        $before = Get-TestSnapshot $store
        $said = Get-WhatIfText { Restore-VmClone lab-03 -Volume data -Store $store -WhatIf }
        $said | Should -BeLike "*only volume(s) data*"
        $said | Should -BeLike "*data (Data):*its content is discarded*"
        Get-TestSnapshot $store | Should -Be $before
    }

    It 'takes a named data volume back to the base with -Force' {
        Restore-VmClone lab-03 -Volume data -Store $store -Force
        Get-DiskContentHash (Get-TestVolumePath $store lab-03 'data') | Should -Be $baseData
        Read-DiskText (Get-TestVolumePath $store lab-03 'system') 8MB 25 | Should -Be 'lab-03 installed software'
    }

    It 'does not restore data by type' {
        { Restore-VmClone lab-03 -Type Data -Store $store -Force } | Should -Throw -ErrorId 'ParameterArgumentValidationError,VmClone.PowerShell.Commands.RestoreVmCloneCommand'
    }

    It 'refuses an unknown volume with VolumeNotFound, naming the clone and its volumes' {
        $before = Get-TestSnapshot $store
        $err = $null
        Restore-VmClone lab-01 -Volume system, users -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -Be 'VolumeNotFound,VmClone.PowerShell.Commands.RestoreVmCloneCommand'
        $err[0].TargetObject | Should -Be 'lab-01'
        $err[0].Exception.Message | Should -BeLike "*'lab-01'*'users'*system (System), temp (Temporary), data (Data)*"
        Get-TestSnapshot $store | Should -Be $before
    }
}
