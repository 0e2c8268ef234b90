# Optimize-VmDisk gives back what a disk stores for nothing (runs that read as zeros; in a
# differencing disk, runs equal to its parent's) while everything read through the chain stays as
# it was; in a store it works under the clone's lock and refuses a volume in use.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:noQemu = Get-OracleSkip 'qemu-img'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    # A disk with 2 MiB of data and 4 MiB written with zeros: stored, and nothing worth keeping.
    function New-ZeroedDisk([string] $Path) {
        New-VmDisk $Path 32MB -BlockSizeBytes 1MB | Out-Null
        Write-DiskBytes $Path 0 (Get-RandomBytes 2MB 5)
        Write-DiskBytes $Path 4MB ([byte[]]::new(4MB))
    }
    function Get-Stored([string] $Path) { (Get-VmDisk $Path).AllocatedSize }
}

Describe 'Optimize-VmDisk' {
    BeforeEach { $dir = New-TestFolder; Push-Location $dir }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'gives back the zero blocks of a <Name> by parameter; the content reads the same' -ForEach @(
        @{ Name = 'disk.vhdx'; Qemu = 'vhdx' }
        @{ Name = 'disk.vmdk'; Qemu = 'vmdk' }
        @{ Name = 'disk.qcow2'; Qemu = 'qcow2' }
        @{ Name = 'disk.vhd'; Qemu = 'vpc' }
    ) {
        New-ZeroedDisk "$dir/$Name"
        $hash = Get-DiskContentHash "$dir/$Name"
        $qemuHash = if (-not $noQemu) { Get-QemuContentHash "$dir/$Name" $Qemu }
        $out = Optimize-VmDisk -Path "./$Name"
        $out | Should -BeOfType ([VmClone.Core.Disks.VmDiskOptimization])
        $out.Method | Should -Be 'Rewritten'
        $out.StoredBytesAfter | Should -BeLessThan $out.StoredBytesBefore
        $out.SizeOnDiskAfter | Should -BeLessThan $out.SizeOnDiskBefore
        Get-DiskContentHash "$dir/$Name" | Should -Be $hash
        if (-not $noQemu) { Get-QemuContentHash "$dir/$Name" $Qemu | Should -Be $qemuHash }
        @(Get-ChildItem -Force $dir -Filter '.vmclone-*').Count | Should -Be 0
    }

    It 'drops from a child the blocks it rewrote with its parent''s bytes; a grandchild stays linked' {
        New-VmDisk ./p.vhdx 32MB -BlockSizeBytes 1MB | Out-Null
        $bytes = Get-RandomBytes 2MB 9
        Write-DiskBytes "$dir/p.vhdx" 0 $bytes
        New-VmDisk ./c.vhdx -ParentPath ./p.vhdx | Out-Null
        Write-DiskBytes "$dir/c.vhdx" 0 $bytes
        Write-DiskText "$dir/c.vhdx" 10MB 'child change'
        New-VmDisk ./g.vhdx -ParentPath ./c.vhdx | Out-Null
        $child = Get-DiskContentHash "$dir/c.vhdx"; $grand = Get-DiskContentHash "$dir/g.vhdx"
        $before = Get-Stored ./c.vhdx
        (Optimize-VmDisk ./c.vhdx).StoredBytesAfter | Should -BeLessThan $before
        Get-DiskContentHash "$dir/c.vhdx" | Should -Be $child
        Get-DiskContentHash "$dir/g.vhdx" | Should -Be $grand
        (Get-VmDisk ./g.vhdx).ChainProblem | Should -BeNullOrEmpty
        Read-DiskText "$dir/c.vhdx" 10MB 12 | Should -Be 'child change'
    }

    It 'optimizes disks piped from Get-ChildItem and from Get-VmDisk' {
        New-ZeroedDisk "$dir/a.vhdx"; New-ZeroedDisk "$dir/b.qcow2"; New-ZeroedDisk "$dir/c.vmdk"
        $out = Get-ChildItem ./a.vhdx, ./b.qcow2 | Optimize-VmDisk
        @($out).Count | Should -Be 2
        $out | ForEach-Object { $_.StoredBytesAfter | Should -BeLessThan $_.StoredBytesBefore }
        (Get-VmDisk ./c.vmdk | Optimize-VmDisk).RangesDropped | Should -BeGreaterThan 0
    }

    It 'punches the zero ranges of a raw image in place' -Skip:(-not $IsLinux) {
        New-VmDisk ./r.raw 16MB | Out-Null
        Write-DiskBytes "$dir/r.raw" 0 (Get-RandomBytes 1MB 2)
        Write-DiskBytes "$dir/r.raw" 4MB ([byte[]]::new(4MB))
        $hash = Get-DiskContentHash "$dir/r.raw"
        $out = Optimize-VmDisk ./r.raw
        $out.Method | Should -Be 'Punched'
        $out.SizeOnDiskAfter | Should -BeLessThan $out.SizeOnDiskBefore
        (Get-Item ./r.raw).Length | Should -Be 16MB
        Get-DiskContentHash "$dir/r.raw" | Should -Be $hash
    }

    It 'changes nothing with -WhatIf and says what it would do' {
        New-ZeroedDisk "$dir/w.vhdx"
        $snapshot = Get-TestSnapshot $dir
        Optimize-VmDisk ./w.vhdx -WhatIf | Should -BeNullOrEmpty
        $text = Get-WhatIfText { Optimize-VmDisk "$dir/w.vhdx" -WhatIf }
        $text | Should -BeLike '*compacted copy*'
        Get-TestSnapshot $dir | Should -Be $snapshot
    }

    It 'refuses a disk another process holds open with DiskInUse' -Skip:(-not $IsLinux) {
        New-ZeroedDisk "$dir/held.vhdx"
        $before = Get-Stored ./held.vhdx
        $lock = Start-RecordLock "$dir/held.vhdx"
        try {
            $e = try { Optimize-VmDisk ./held.vhdx -ErrorAction Stop; $null } catch { $_ }
            $e.FullyQualifiedErrorId | Should -Be 'DiskInUse,VmClone.PowerShell.Commands.OptimizeVmDiskCommand'
        }
        finally { $lock.Kill(); $lock.WaitForExit() }
        Get-Stored ./held.vhdx | Should -Be $before
    }

    It 'refuses a streamOptimized VMDK with OptimizeNotSupported' -Skip:$noQemu {
        qemu-img create -q -f vmdk -o subformat=streamOptimized ./s.vmdk 16M
        $e = try { Optimize-VmDisk ./s.vmdk -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'OptimizeNotSupported,VmClone.PowerShell.Commands.OptimizeVmDiskCommand'
    }

    It 'refuses a store volume given by -Path with DiskInStore, pointing at the store form' {
        New-TestFleet (Join-Path $dir 'store') -Clone lab-01 -Folder $dir
        $system = Get-TestVolumePath (Join-Path $dir 'store') lab-01 system
        $e = try { Optimize-VmDisk -Path $system -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'DiskInStore,VmClone.PowerShell.Commands.OptimizeVmDiskCommand'
        $e.Exception.Message | Should -BeLike '*-Store*'
    }
}

Describe 'Optimize-VmDisk in a store' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir
        foreach ($c in 'lab-01', 'lab-02') {
            $system = Get-TestVolumePath $store $c system
            Write-DiskBytes $system 8MB ([byte[]]::new(4MB))
            Write-DiskText $system 1MB "$c app"
        }
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'optimizes a clone''s volumes by name, only those asked with -Volume' {
        $system = Get-TestVolumePath $store lab-01 system
        $hash = Get-DiskContentHash $system
        $out = Optimize-VmDisk -Store $store -Name lab-01 -Volume system
        @($out).Count | Should -Be 1
        $out.Path | Should -Be $system
        $out.StoredBytesAfter | Should -BeLessThan $out.StoredBytesBefore
        Get-DiskContentHash $system | Should -Be $hash
        Read-DiskText $system 1MB 10 | Should -Be 'lab-01 app'
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }

    It 'optimizes clones piped from Get-VmClone' {
        $out = Get-VmClone -Store $store | Optimize-VmDisk
        @($out).Count | Should -Be 6
        ($out | Where-Object { $_.Path -like '*system*' }).StoredBytesAfter | ForEach-Object { $_ | Should -BeLessThan 4MB }
        Read-DiskText (Get-TestVolumePath $store lab-02 system) 1MB 10 | Should -Be 'lab-02 app'
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }

    It 'changes nothing with -WhatIf' {
        $snapshot = Get-TestSnapshot $store
        Get-VmClone -Store $store lab-01 | Optimize-VmDisk -WhatIf | Should -BeNullOrEmpty
        $text = Get-WhatIfText { Optimize-VmDisk -Store $store -Name lab-01 -WhatIf }
        $text | Should -BeLike "*Optimize clone 'lab-01'*"
        Get-TestSnapshot $store | Should -Be $snapshot
    }

    It 'refuses a clone whose volume is in use with VolumeInUse and goes on with the others' -Skip:(-not $IsLinux) {
        $held = Get-TestVolumePath $store lab-01 system
        $before = (Get-VmDisk $held).AllocatedSize
        $lock = Start-RecordLock $held
        try {
            $err = $null
            $out = Optimize-VmDisk -Store $store -Name lab-01, lab-02 -ErrorVariable err -ErrorAction SilentlyContinue
            $err.Count | Should -Be 1
            $err[0].FullyQualifiedErrorId | Should -Be 'VolumeInUse,VmClone.PowerShell.Commands.OptimizeVmDiskCommand'
            $err[0].TargetObject | Should -Be 'lab-01'
            @($out).Count | Should -Be 3
        }
        finally { $lock.Kill(); $lock.WaitForExit() }
        (Get-VmDisk $held).AllocatedSize | Should -Be $before
    }

    It 'leaves nothing Test-VmStore minds, and a cut-off run''s staging folder is repaired or cleaned by the next run' {
        $folder = Split-Path (Get-TestVolumePath $store lab-01 system)
        $leftover = Join-Path $folder '.vmclone-staging-system.vhdx'
        New-Item -ItemType Directory $leftover | Out-Null
        Set-Content -LiteralPath (Join-Path $leftover 'system.vhdx') 'half a copy'
        $report = Test-VmStore -Store $store
        $report.IsHealthy | Should -BeFalse
        @($report.Problems).Kind | Should -Be 'InterruptedOperation'
        Test-VmStore -Store $store -Repair | Out-Null
        $leftover | Should -Not -Exist
        New-Item -ItemType Directory $leftover | Out-Null
        Optimize-VmDisk -Store $store -Name lab-01 | Out-Null
        $leftover | Should -Not -Exist
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }

    It 'refuses an unknown clone with CloneNotFound' {
        $e = try { Optimize-VmDisk -Store $store -Name nosuch -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'CloneNotFound,VmClone.PowerShell.Commands.OptimizeVmDiskCommand'
    }
}
