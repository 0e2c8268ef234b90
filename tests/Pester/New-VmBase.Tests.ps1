# New-VmBase -FromClone never copies the disks of a running machine unless told: a clone whose
# file another program holds open (QEMU takes POSIX record locks on its images) is refused with
# VolumeInUse, naming the file and the holder; -Force copies it anyway.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

}

Describe 'New-VmBase -FromClone of a clone in use' -Skip:(-not $IsLinux) {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01 -Folder $dir
        $system = (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq system).Path
        Write-DiskBytes $system 4096 ([Text.Encoding]::UTF8.GetBytes('updated in lab-01'))
        $lock = Start-RecordLock $system
    }
    AfterAll {
        if ($lock -and -not $lock.HasExited) { $lock.Kill(); $lock.WaitForExit() }
        Remove-TestFolder $dir
    }

    It 'is refused by parameter with VolumeInUse, naming the file and the holder, and makes nothing' {
        $e = try { New-VmBase win11-v2 -FromClone lab-01 -Store $store -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'VolumeInUse,VmClone.PowerShell.Commands.NewVmBaseCommand'
        $e.TargetObject | Should -Be 'lab-01'
        $e.Exception.Message | Should -BeLike "*$system*record lock*-Force*"
        Get-VmBase -Store $store | ForEach-Object Name | Should -Be 'win11'
        Test-Path (Join-Path $store 'bases/win11-v2') | Should -BeFalse
        @(Get-ChildItem (Join-Path $store 'bases') -Force | Where-Object Name -like '.*').Count | Should -Be 0
    }

    It 'is refused piped as well' {
        $err = $null
        Get-VmClone lab-01 -Store $store | New-VmBase -Name win11-v2 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -Be 'VolumeInUse,VmClone.PowerShell.Commands.NewVmBaseCommand'
    }

    It 'copies the clone anyway with -Force, by parameter and piped' {
        $made = New-VmBase win11-v2 -FromClone lab-01 -Store $store -Force
        $made.Name | Should -Be 'win11-v2'
        $v2system = (Get-VmVolume -Base win11-v2 -Store $store | Where-Object Name -eq system).Path
        [Text.Encoding]::UTF8.GetString((Read-DiskBytes $v2system 4096 17)) | Should -Be 'updated in lab-01'
        (Get-VmClone lab-01 -Store $store | New-VmBase -Name win11-v3 -Force).Name | Should -Be 'win11-v3'
    }

    It 'copies the clone without -Force once the machine has let go' {
        $lock.Kill(); $lock.WaitForExit()
        (New-VmBase win11-v4 -FromClone lab-01 -Store $store).Name | Should -Be 'win11-v4'
    }
}

Describe 'New-VmBase -Format' {
    BeforeAll {
        Import-Module $env:VMCLONE_MODULE -Force
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    }

    It 'accepts the formats the store keeps bases in and refuses raw before anything is written' {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $e = try { New-VmBase -Store $store -Name b -Format Raw -Volume @{ Name = 'System'; Type = 'System'; SizeBytes = 1MB } -Confirm:$false -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -BeLike 'ParameterArgumentValidationError*'
        Test-Path (Join-Path $store 'bases/b') | Should -BeFalse
    }

    It 'lists the base formats in its help' {
        $values = (Get-Help New-VmBase -Parameter Format).parameterValueGroup.parameterValue
        $values | Should -Be @('Vhdx', 'Vmdk', 'Vhd', 'Qcow2')
    }
}

Describe 'New-VmBase -FromClone -DataFrom' {
    BeforeAll {
        Import-Module $env:VMCLONE_MODULE -Force
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01 -Folder $dir -DataInBase
        Write-DiskText (Get-TestVolumePath $store lab-01 'system') 8MB 'update 2026-11'
        Write-DiskText (Get-TestVolumePath $store lab-01 'data') 3MB 'the admin''s test files'
        $baseData = Get-DiskContentHash (Get-TestVolumePath $store -Base win11 -Volume 'data')
        $cloneData = Get-DiskContentHash (Get-TestVolumePath $store lab-01 'data')

    }
    AfterAll { Remove-TestFolder $dir }

    It 'says in -WhatIf where the data comes from, and changes nothing' {
        $before = Get-TestSnapshot $store
        $said = Get-WhatIfText { New-VmBase v2 -FromClone lab-01 -Store $store -WhatIf }
        $said | Should -BeLike "*data volumes from the clone's base*"
        $said | Should -BeLike "*data (Data): import from 'bases/win11/data.vhdx'*-DataFrom Base*"
        (Get-WhatIfText { New-VmBase v2 -FromClone lab-01 -DataFrom Clone -Store $store -WhatIf }) | Should -BeLike "*the clone's current data (-DataFrom Clone)*"
        (Get-WhatIfText { New-VmBase v2 -FromClone lab-01 -DataFrom Empty -Store $store -WhatIf }) | Should -BeLike "*data (Data): create empty*"
        Get-TestSnapshot $store | Should -Be $before
    }

    It '-WhatIf shows bytes: what each import copies at most, an empty volume nothing, and in all' {
        $said = Get-WhatIfText { New-VmBase v2 -FromClone lab-01 -DataFrom Empty -Store $store -WhatIf }
        $said | Should -Match 'system \(System\): import from .*\(copies at most \d[\d.]* [KMG]iB\)'
        $said | Should -Match 'data \(Data\): create empty .*\(copies nothing\)'
        $said | Should -Match 'in all: copies at most \d[\d.]* [KMG]iB'
    }

    It 'takes the old base''s data by default, by parameter' {
        New-VmBase v2 -FromClone lab-01 -Store $store | Out-Null
        Get-DiskContentHash (Get-TestVolumePath $store -Base v2 -Volume 'data') | Should -Be $baseData
        Read-DiskText (Get-TestVolumePath $store -Base v2 -Volume 'system') 8MB 14 | Should -Be 'update 2026-11'
    }

    It 'takes the clone''s data with -DataFrom Clone, piped' {
        Get-VmClone lab-01 -Store $store | New-VmBase -Name v3 -DataFrom Clone | Out-Null
        Get-DiskContentHash (Get-TestVolumePath $store -Base v3 -Volume 'data') | Should -Be $cloneData
    }

    It 'gives an empty data volume of the same size with -DataFrom Empty' {
        $v4 = New-VmBase v4 -FromClone lab-01 -DataFrom Empty -Store $store
        $data = $v4.Volumes | Where-Object Name -eq data
        $data.VirtualSize | Should -Be 32MB
        Read-DiskText $data.Path 3MB 22 | Should -Be ''
    }
}
