# Import-VmClone by parameter and piped (files from Get-Item, hashtables): the files move (or
# with -Copy are copied) into the store, read as before, and the clone is like any other;
# -WhatIf changes nothing and names every file; refusals carry their ids and change nothing.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    # A child of the base's volume, made outside the store as another tool would, with a write of its own.
    function New-OutsideChild([string] $Path, [string] $Volume, [string] $Text) {
        New-VmDisk $Path -ParentPath (Get-TestVolumePath $store -Base win11 -Volume $Volume) | Out-Null
        Write-DiskText $Path 2MB $Text
        $Path
    }
}

Describe 'Import-VmClone' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $outside = Join-Path $dir 'elsewhere'
        New-Item -ItemType Directory $outside | Out-Null
        New-TestFleet $store -Clone lab-01 -Folder $dir -DataInBase
    }
    AfterAll { Remove-TestFolder $dir }

    It 'changes nothing with -WhatIf and names every volume, where it comes from and where its link will point' {
        $system = New-OutsideChild (Join-Path $outside 'w-system.vhdx') system 'guest system'
        $before = Get-TestSnapshot $dir
        $said = Get-WhatIfText { Import-VmClone adopted -Base win11 -Volume @{ Name = 'system'; Path = $system } -Store $store -WhatIf }
        $said | Should -BeLike "*Import clone 'adopted' on base 'win11'*"
        $said | Should -BeLike "*system (System): import from '$system' (moved), parent link re-pointed to 'bases/win11/system.vhdx'*"
        $said | Should -BeLike "*temp (Temporary): create as a child of 'bases/win11/temp.vhdx'*"
        $said2 = Get-WhatIfText { Import-VmClone adopted -Base win11 -Volume @{ Name = 'system'; Path = $system } -Store $store -Copy -WhatIf }
        $said2 | Should -BeLike "*import from '$system' (copied)*(copies at most *"
        $said | Should -BeLike "*in all: copies nothing*"
        $said2 | Should -Not -BeLike "*in all: copies nothing*"
        Get-TestSnapshot $dir | Should -Be $before
        Remove-Item $system
    }

    It 'imports by parameter: the files move in, read as before, and the clone is like any other' {
        $system = New-OutsideChild (Join-Path $outside 'p-system.vhdx') system 'guest system'
        $data = New-OutsideChild (Join-Path $outside 'p-data.vhdx') data 'guest documents'
        $hashes = (Get-DiskContentHash $system), (Get-DiskContentHash $data)
        $c = Import-VmClone -Name adopted -Base win11 -Volume @{ Name = 'system'; Path = $system }, @{ Name = 'data'; Path = $data } -Store $store
        $c | Should -BeOfType ([VmClone.Core.Store.VmCloneInfo])
        $c.Name | Should -Be 'adopted'
        $c.State | Should -Be 'Ready'
        Test-Path $system | Should -BeFalse
        Test-Path $data | Should -BeFalse
        (Get-DiskContentHash (Get-TestVolumePath $store adopted system)), (Get-DiskContentHash (Get-TestVolumePath $store adopted data)) | Should -Be $hashes
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
        Restore-VmClone adopted -Store $store -Force
        Read-DiskText (Get-TestVolumePath $store adopted data) 2MB 15 | Should -Be 'guest documents'
    }

    It 'imports a file piped from Get-Item, and -Copy leaves it as it was' {
        $system = New-OutsideChild (Join-Path $outside 'system-07.vhdx') system 'piped system'
        $bytes = (Get-FileHash $system).Hash
        $c = Get-Item $system | Import-VmClone -Name piped -Base win11 -Copy -Store $store
        $c.Name | Should -Be 'piped'
        (Get-FileHash $system).Hash | Should -Be $bytes
        Read-DiskText (Get-TestVolumePath $store piped system) 2MB 12 | Should -Be 'piped system'
    }

    It 'imports a piped list of hashtables' {
        $system = New-OutsideChild (Join-Path $outside 'h-system.vhdx') system 'hashtable system'
        @(@{ Name = 'system'; Path = $system }) | Import-VmClone -Name hashed -Base win11 -Store $store | Out-Null
        Read-DiskText (Get-TestVolumePath $store hashed system) 2MB 16 | Should -Be 'hashtable system'
    }

    It 'refuses <Why> with <Id> and changes nothing' -ForEach @(
        @{ Why = 'a volume the base does not have'; Id = 'VolumeNotFound'; Name = 'new'; Volume = 'swap'; Make = 'child' }
        @{ Why = 'a taken name, whatever its case'; Id = 'CloneExists'; Name = 'LAB-01'; Volume = 'system'; Make = 'child' }
        @{ Why = 'a disk that is no child'; Id = 'ImportParentMismatch'; Name = 'new'; Volume = 'system'; Make = 'standalone' }
        @{ Why = 'a file in the store'; Id = 'ImportSourceInStore'; Name = 'new'; Volume = 'system'; Make = 'instore' }
        @{ Why = 'a file of another format'; Id = 'ImportFormatMismatch'; Name = 'new'; Volume = 'system'; Make = 'vmdk' }) {
        $path = switch ($Make) {
            'child' { New-OutsideChild (Join-Path $outside "r-$Id.vhdx") system 'x' }
            'standalone' { $p = Join-Path $outside "r-$Id.vhdx"; New-VmDisk $p 64MB | Out-Null; $p }
            'instore' { $p = Join-Path $store 'stray.vhdx'; New-VmDisk $p -ParentPath (Get-TestVolumePath $store -Base win11 -Volume system) | Out-Null; $p }
            'vmdk' { $p = Join-Path $outside "r-$Id.vmdk"; New-VmDisk $p 64MB | Out-Null; $p }
        }
        $before = Get-TestSnapshot $dir
        $e = try { Import-VmClone $Name -Base win11 -Volume @{ Name = $Volume; Path = $path } -Store $store -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be "$Id,VmClone.PowerShell.Commands.ImportVmCloneCommand"
        $e.Exception.Message | Should -Not -BeNullOrEmpty
        Get-TestSnapshot $dir | Should -Be $before
        Remove-Item $path -Force
    }

    It 'refuses a file another program holds open with VolumeInUse, and leaves it where it is' {
        $system = New-OutsideChild (Join-Path $outside 'held-system.vhdx') system 'held'
        $lock = Start-RecordLock $system
        try {
            $e = try { Import-VmClone held -Base win11 -Volume @{ Name = 'system'; Path = $system } -Store $store -ErrorAction Stop; $null } catch { $_ }
            $e.FullyQualifiedErrorId | Should -Be 'VolumeInUse,VmClone.PowerShell.Commands.ImportVmCloneCommand'
            Test-Path $system | Should -BeTrue
            (Get-VmClone -Store $store).Name | Should -Not -Contain 'held'
        }
        finally { if (-not $lock.HasExited) { $lock.Kill(); $lock.WaitForExit() } }
    }
}
