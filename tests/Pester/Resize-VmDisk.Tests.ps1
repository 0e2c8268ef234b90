# Resize-VmDisk grows a disk of every format VmClone writes in place (the old content kept, the
# added range zeros), shrinks one only down to the end of what it stores (ShrinkBelowData names
# the smallest size; -ToMinimumSize takes it), grows a child only after its parent, and refuses a
# store's volume and a disk another process holds open.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:noQemu = Get-OracleSkip 'qemu-img'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force


    function Get-BytesHash([byte[]] $Bytes) { [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($Bytes)) }
    $script:zeros = Get-BytesHash ([byte[]]::new(65536))
}

Describe 'Resize-VmDisk' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        $pattern = Get-RandomBytes 65536 3
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'grows a <Name> by parameter: the old content stays, the added range reads as zeros' -ForEach @(
        @{ Name = 'disk.vhdx' }
        @{ Name = 'disk.vmdk' }
        @{ Name = 'disk.qcow2' }
        @{ Name = 'disk.raw' }
    ) {
        New-VmDisk "./$Name" 16MB | Out-Null
        Write-DiskBytes "$dir/$Name" (16MB - 65536) $pattern
        $out = Resize-VmDisk -Path "./$Name" -SizeBytes 24MB
        $out | Should -BeOfType ([VmClone.Core.Disks.VmDiskInfo])
        $out.VirtualSize | Should -Be 24MB
        (Get-VmDisk "./$Name").VirtualSize | Should -Be 24MB
        Get-BytesHash (Read-DiskBytes "$dir/$Name" (16MB - 65536) 65536) | Should -Be (Get-BytesHash $pattern)
        Get-BytesHash (Read-DiskBytes "$dir/$Name" 16MB 65536) | Should -Be $zeros
        Get-BytesHash (Read-DiskBytes "$dir/$Name" (24MB - 65536) 65536) | Should -Be $zeros
    }

    It 'grows disks piped from Get-ChildItem and from Get-VmDisk' {
        New-VmDisk ./a.vhdx, ./b.vmdk 8MB | Out-Null
        $out = Get-ChildItem ./a.vhdx, ./b.vmdk | Resize-VmDisk -SizeBytes 12MB
        @($out).Count | Should -Be 2
        $out.VirtualSize | Should -Be @(12MB, 12MB)
        (Get-VmDisk ./a.vhdx | Resize-VmDisk -SizeBytes 16MB).VirtualSize | Should -Be 16MB
    }

    It 'passes qemu-img check after growing a qcow2 past its L1 table' -Skip:$noQemu {
        qemu-img create -q -f qcow2 -o cluster_size=1024 ./q.qcow2 10M
        Write-DiskBytes "$dir/q.qcow2" 0 $pattern
        Resize-VmDisk ./q.qcow2 40MB | Out-Null
        qemu-img check ./q.qcow2 | Out-Null
        $LASTEXITCODE | Should -Be 0
        (qemu-img info --output=json ./q.qcow2 | ConvertFrom-Json).'virtual-size' | Should -Be 40MB
    }

    It 'changes nothing with -WhatIf and says from what size to what size' {
        New-VmDisk ./w.vhdx 8MB | Out-Null
        $snapshot = Get-TestSnapshot $dir
        Resize-VmDisk ./w.vhdx -SizeBytes 16MB -WhatIf | Should -BeNullOrEmpty
        # What -WhatIf prints goes to the host: a child pwsh shows it.
        $run = Invoke-TestPwsh -Arguments @('-Command', "Import-Module '$env:VMCLONE_MODULE'; Resize-VmDisk '$dir/w.vhdx' -SizeBytes 16MB -WhatIf")
        ($run.Output -join ' ') | Should -BeLike '*Grow from 8 MiB (8388608 bytes) to 16 MiB (16777216 bytes)*'
        Get-TestSnapshot $dir | Should -Be $snapshot
    }

    It 'refuses a shrink past stored data with ShrinkBelowData naming the smallest size, and -ToMinimumSize takes it' {
        New-VmDisk ./s.vhdx 64MB -BlockSizeBytes 1MB | Out-Null
        Write-DiskBytes "$dir/s.vhdx" 20MB $pattern
        $e = try { Resize-VmDisk ./s.vhdx -SizeBytes 10MB -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'ShrinkBelowData,VmClone.PowerShell.Commands.ResizeVmDiskCommand'
        $e.Exception.Message | Should -BeLike "*smallest size it can take is $(21MB) bytes*"
        (Get-VmDisk ./s.vhdx).VirtualSize | Should -Be 64MB
        (Get-Item ./s.vhdx | Resize-VmDisk -ToMinimumSize).VirtualSize | Should -Be 21MB
        Get-BytesHash (Read-DiskBytes "$dir/s.vhdx" 20MB 65536) | Should -Be (Get-BytesHash $pattern)
    }

    It 'grows a child only after its parent (ChildPastParent)' {
        New-VmDisk ./p.vhdx 8MB | Out-Null
        New-VmDisk ./c.vhdx -ParentPath ./p.vhdx | Out-Null
        $err = $null
        Resize-VmDisk ./c.vhdx -SizeBytes 16MB -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'ChildPastParent,VmClone.PowerShell.Commands.ResizeVmDiskCommand'
        $err[0].Exception.Message | Should -BeLike '*Grow the parent first*p.vhdx*'
        Resize-VmDisk ./p.vhdx -SizeBytes 16MB | Out-Null
        (Resize-VmDisk ./c.vhdx -SizeBytes 16MB).VirtualSize | Should -Be 16MB
        (Get-VmDisk ./c.vhdx).ChainProblem | Should -BeNullOrEmpty
    }

    It 'refuses a store volume with DiskInStore, pointing at the store commands' {
        New-TestFleet (Join-Path $dir 'store') -Clone lab-01 -Folder $dir
        $data = Get-TestVolumePath (Join-Path $dir 'store') lab-01 data
        $e = try { Resize-VmDisk -Path $data -SizeBytes 64MB -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'DiskInStore,VmClone.PowerShell.Commands.ResizeVmDiskCommand'
        $e.Exception.Message | Should -BeLike '*Invoke-VmRebase*'
        (Get-VmDisk $data).VirtualSize | Should -Be 32MB
    }

    It 'refuses a disk another process holds open with DiskInUse' -Skip:(-not $IsLinux) {
        New-VmDisk ./held.vhdx 8MB | Out-Null
        $lock = Start-RecordLock "$dir/held.vhdx"
        try {
            $e = try { Resize-VmDisk ./held.vhdx -SizeBytes 16MB -ErrorAction Stop; $null } catch { $_ }
            $e.FullyQualifiedErrorId | Should -Be 'DiskInUse,VmClone.PowerShell.Commands.ResizeVmDiskCommand'
        }
        finally { $lock.Kill(); $lock.WaitForExit() }
        (Get-VmDisk ./held.vhdx).VirtualSize | Should -Be 8MB
    }

    It 'refuses a FIFO as the other disk commands do' -Skip:(-not $IsLinux) {
        mkfifo ./pipe.vhdx
        $err = $null
        Resize-VmDisk -LiteralPath ./pipe.vhdx -SizeBytes 16MB -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].Exception.Message | Should -BeLike '*pipe.vhdx*'
    }

    It 'needs -SizeBytes or -ToMinimumSize' {
        New-VmDisk ./n.vhdx 8MB | Out-Null
        { Resize-VmDisk ./n.vhdx -ErrorAction Stop } | Should -Throw '*-SizeBytes or -ToMinimumSize*'
    }
}
