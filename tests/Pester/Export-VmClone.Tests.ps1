# Export-VmClone: a clone's volumes as standalone disks in a folder of their own, read by
# VmClone and by qemu-img exactly as the clone reads, the store untouched.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:noQemu = Get-OracleSkip 'qemu-img'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force



}

Describe 'Export-VmClone' {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $out = Join-Path $dir 'exports'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir -DataInBase
        $system = Get-TestVolumePath $store lab-01 system
        $temp = Get-TestVolumePath $store lab-01 temp
        $data = Get-TestVolumePath $store lab-01 data
        Write-DiskText $system 8192 'lab-01 system change'
        Write-DiskText $temp 4096 'scratch that stays behind'
        Write-DiskText $data 2MB 'lab-01 user data'
        # Lock files are the one thing an export writes in the store (who holds the clone).
        $snapshot = { Get-TestSnapshot $store | Where-Object { $_ -notmatch '[\\/]\.locks([\\/]|\s)' } }
        $storeBefore = & $snapshot
    }
    AfterEach {
        if ($lock -and -not $lock.HasExited) { $lock.Kill(); $lock.WaitForExit() }
        $lock = $null
        Remove-TestFolder $dir
    }

    It 'writes every volume as a standalone disk that reads as the clone, with a manifest, by parameter' {
        $result = Export-VmClone -Name lab-01 -DestinationPath $out -Store $store
        $result.Name | Should -Be 'lab-01'
        $result.Base | Should -Be 'win11'
        $result.Path | Should -Be (Join-Path $out 'lab-01')
        $result.Volumes.Name | Should -Be @('system', 'temp', 'data')
        foreach ($v in $result.Volumes) {
            $v.Path | Should -Be (Join-Path $out "lab-01/$($v.Name).vhdx")
            (Get-VmDisk $v.Path).ParentPath | Should -BeNullOrEmpty
        }
        Get-DiskContentHash (Join-Path $out 'lab-01/system.vhdx') | Should -Be (Get-DiskContentHash $system)
        Get-DiskContentHash (Join-Path $out 'lab-01/data.vhdx') | Should -Be (Get-DiskContentHash $data)
        # The temporary volume leaves its scratch behind: it is the base's initial state.
        Get-DiskContentHash (Join-Path $out 'lab-01/temp.vhdx') | Should -Be (Get-DiskContentHash (Get-TestVolumePath $store -Base win11 -Volume temp))
        $manifest = Get-Content -Raw (Join-Path $out 'lab-01/vmclone-export.json') | ConvertFrom-Json
        $manifest.name | Should -Be 'lab-01'
        $manifest.base | Should -Be 'win11'
        $manifest.volumes.name | Should -Be @('system', 'temp', 'data')
        $manifest.volumes.type | Should -Be @('System', 'Temporary', 'Data')
        $manifest.volumes.file | Should -Be @('system.vhdx', 'temp.vhdx', 'data.vhdx')
        @(Get-ChildItem -Force $out).Name | Should -Be @('lab-01') -Because 'no staging folder is left behind'
        & $snapshot | Should -Be $storeBefore -Because 'an export only reads the store'
    }

    It 'exports every clone piped from Get-VmClone into a folder of its own, converted to qcow2 that qemu-img reads the same' -Skip:$noQemu {
        $results = Get-VmClone -Base win11 -Store $store | Export-VmClone -DestinationPath $out -Format Qcow2
        $results.Name | Should -Be @('lab-01', 'lab-02')
        foreach ($clone in 'lab-01', 'lab-02') {
            foreach ($volume in 'system', 'data') {
                $exported = Join-Path $out "$clone/$volume.qcow2"
                qemu-img check -f qcow2 $exported | Out-Null
                $LASTEXITCODE | Should -Be 0 -Because "qemu-img check finds $exported clean"
                Get-QemuContentHash $exported qcow2 | Should -Be (Get-DiskContentHash (Get-TestVolumePath $store $clone $volume))
            }
        }
    }

    It 'prints the plan with -WhatIf, with what each disk copies, and writes nothing' {
        $text = Get-WhatIfText { Export-VmClone lab-01 $out -Store $store -WhatIf }
        $text | Should -Match "Export clone 'lab-01' of base 'win11'"
        $text | Should -Match 'system \(System\): write system\.vhdx \(Vhdx, 64 MiB virtual'
        $text | Should -Match 'temp \(Temporary\): write temp\.vhdx .* the initial state'
        $text | Should -Match 'vmclone-export\.json'
        Test-Path $out | Should -BeFalse
    }

    It '-WhatIf shows bytes: what each disk copies at most, and in all' {
        $text = Get-WhatIfText { Export-VmClone lab-01 $out -Store $store -WhatIf }
        $text | Should -Match 'system \(System\): write system\.vhdx .*\(copies at most \d[\d.]* [KMG]iB\)'
        $text | Should -Match 'in all: copies at most \d[\d.]* [KMG]iB'
        Test-Path $out | Should -BeFalse
    }

    It 'refuses a destination that exists, and one inside the store, writing nothing' {
        New-Item -ItemType Directory (Join-Path $out 'lab-01') | Out-Null
        Set-Content (Join-Path $out 'lab-01/keep.txt') 'mine'
        $errors = $null
        Export-VmClone lab-01 $out -Store $store -ErrorAction SilentlyContinue -ErrorVariable errors | Should -BeNullOrEmpty
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'DestinationExists*'
        "$($errors[0])" | Should -Match ([regex]::Escape((Join-Path $out 'lab-01')))
        @(Get-ChildItem (Join-Path $out 'lab-01')).Name | Should -Be @('keep.txt')

        Export-VmClone lab-01 (Join-Path $store 'exports') -Store $store -ErrorAction SilentlyContinue -ErrorVariable errors | Should -BeNullOrEmpty
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'ExportInsideStore*'
        Test-Path (Join-Path $store 'exports') | Should -BeFalse
        & $snapshot | Should -Be $storeBefore
    }

    It 'refuses a clone whose files a running machine holds, unless -Force' -Skip:(-not $IsLinux) {
        $lock = Start-RecordLock $system
        $errors = $null
        Export-VmClone lab-01 $out -Store $store -ErrorAction SilentlyContinue -ErrorVariable errors | Should -BeNullOrEmpty
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'VolumeInUse*'
        "$($errors[0])" | Should -Match 'system\.vhdx'
        Test-Path (Join-Path $out 'lab-01') | Should -BeFalse
        @(Get-ChildItem -Force $out -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty -Because 'no staging folder is left behind'

        $forced = Export-VmClone lab-01 $out -Store $store -Force
        Get-DiskContentHash $forced.Volumes[0].Path | Should -Be (Get-DiskContentHash $system)
    }

    It 'refuses an unknown clone by name, and a store that is not one' {
        $errors = $null
        Export-VmClone nope $out -Store $store -ErrorAction SilentlyContinue -ErrorVariable errors | Should -BeNullOrEmpty
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'CloneNotFound*'
        Export-VmClone lab-01 $out -Store (Join-Path $dir 'typo') -ErrorAction SilentlyContinue -ErrorVariable errors | Should -BeNullOrEmpty
        $errors[0].FullyQualifiedErrorId | Should -BeLike 'StoreNotFound*'
        Test-Path $out | Should -BeFalse
    }
}
