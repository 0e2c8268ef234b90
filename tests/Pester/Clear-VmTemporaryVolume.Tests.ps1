# Clear-VmTemporaryVolume by parameter and piped, in each format: only the temporary volumes go
# back to the base's initial state; system and data stay byte for byte.
BeforeDiscovery {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:formats = @(Get-TestFormats)
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    # Each clone writes its own content into each of its volumes; returns the data hashes.
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
}

Describe 'Clear-VmTemporaryVolume' {
    Context 'by parameter, <Format>' -ForEach $formats {
        BeforeAll {
            $dir = New-TestFolder
            $store = Join-Path $dir 'store'
            if (-not $Skip) {
                New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir -Format $Format
                $dataHash = Write-CloneContent 'lab-01', 'lab-02'
                $baseTemp = Get-DiskContentHash (Get-TestVolumePath $store -Base win11 -Volume 'temp')
            }
        }
        AfterAll { Remove-TestFolder $dir }

        It 'changes nothing with -WhatIf' -Skip:$Skip {
            $before = Get-TestSnapshot $store
            Clear-VmTemporaryVolume lab-02 -Store $store -WhatIf
            Get-TestSnapshot $store | Should -Be $before
            Read-DiskText (Get-TestVolumePath $store lab-02 'temp') 2MB 15 | Should -Be 'lab-02 pagefile'
        }

        It 'cleans only the temporary volumes on shutdown' -Skip:$Skip {
            Clear-VmTemporaryVolume lab-02 -Store $store
            Get-DiskContentHash (Get-TestVolumePath $store lab-02 'temp') | Should -Be $baseTemp
            (Get-VmVolume -Clone lab-02 -Store $store | Where-Object Name -eq temp).Format | Should -Be $Format
            Read-DiskText (Get-TestVolumePath $store lab-02 'system') 8MB 25 | Should -Be 'lab-02 installed software'
            Get-DiskContentHash (Get-TestVolumePath $store lab-02 'data') | Should -Be $dataHash['lab-02']
            Read-DiskText (Get-TestVolumePath $store lab-01 'temp') 2MB 15 | Should -Be 'lab-01 pagefile'
        }

        It 'refuses an unknown clone with CloneNotFound, naming it, and cleans the others' -Skip:$Skip {
            $err = $null
            Clear-VmTemporaryVolume nope, lab-01 -Store $store -ErrorVariable err -ErrorAction SilentlyContinue
            $err.Count | Should -Be 1
            $err[0].FullyQualifiedErrorId | Should -Be 'CloneNotFound,VmClone.PowerShell.Commands.ClearVmTemporaryVolumeCommand'
            $err[0].TargetObject | Should -Be 'nope'
            Get-DiskContentHash (Get-TestVolumePath $store lab-01 'temp') | Should -Be $baseTemp
            Get-DiskContentHash (Get-TestVolumePath $store lab-01 'data') | Should -Be $dataHash['lab-01']
        }
    }

    Context 'piped' {
        BeforeAll {
            $dir = New-TestFolder
            $store = Join-Path $dir 'store'
            New-TestFleet $store -Clone lab-01, lab-02, lab-03 -Folder $dir
            $dataHash = Write-CloneContent 'lab-01', 'lab-02', 'lab-03'
            $baseTemp = Get-DiskContentHash (Get-TestVolumePath $store -Base win11 -Volume 'temp')
        }
        AfterAll { Remove-TestFolder $dir }

        It 'cleans the clones piped from Get-VmClone and passes them on' {
            $out = @(Get-VmClone -Base win11 -Store $store | Clear-VmTemporaryVolume -PassThru)
            $out.Name | Should -Be 'lab-01', 'lab-02', 'lab-03'
            foreach ($c in 'lab-01', 'lab-02', 'lab-03') {
                Get-DiskContentHash (Get-TestVolumePath $store $c 'temp') | Should -Be $baseTemp
                Read-DiskText (Get-TestVolumePath $store $c 'system') 8MB 25 | Should -Be "$c installed software"
                Get-DiskContentHash (Get-TestVolumePath $store $c 'data') | Should -Be $dataHash[$c]
            }
        }

        It 'cleans a clone piped by name, once when piped twice' {
            Write-DiskText (Get-TestVolumePath $store lab-02 'temp') 2MB 'lab-02 pagefile'
            $out = @('lab-02', 'lab-02' | Clear-VmTemporaryVolume -Store $store -PassThru)
            $out.Name | Should -Be 'lab-02'
            Get-DiskContentHash (Get-TestVolumePath $store lab-02 'temp') | Should -Be $baseTemp
        }
    }
}
