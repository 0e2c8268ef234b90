# Measure-VmDisk against the built module: qemu-img measure's numbers where qemu can measure the
# format (qcow2, raw: the same rule, so equal to the byte), the length of Convert-VmDisk's file
# where it cannot (VHDX, VMDK, VHD), by parameter and piped, and the store's boundary.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:qemuSkip = Get-OracleSkip 'qemu-img'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Measure-VmDisk' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        New-VmDisk ./base.qcow2 64MB | Out-Null
        Write-DiskBytes (Join-Path $dir 'base.qcow2') 0 (Get-RandomBytes 3MB 7)
        New-VmDisk ./child.qcow2 -ParentPath ./base.qcow2 | Out-Null
        Write-DiskBytes (Join-Path $dir 'child.qcow2') 10MB (Get-RandomBytes 1MB 8)
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'measures a chain flattened, in its own format by default (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        $m = if ($How -eq 'piped') { Get-Item ./child.qcow2 | Measure-VmDisk } else { Measure-VmDisk -Path ./child.qcow2 }
        $m | Should -BeOfType ([VmClone.Core.Disks.VmDiskMeasurement])
        $m.DestinationFormat | Should -Be 'Qcow2'
        $m.DataBytes | Should -Be 4MB
        $m.VirtualSize | Should -Be 64MB
        $m.BlockSize | Should -Be 64KB
        $m.Path | Should -Be (Join-Path $dir 'child.qcow2')
    }

    It 'gives qemu-img measure''s numbers for <Format>' -Skip:([bool]$qemuSkip) -ForEach @(
        @{ Format = 'Qcow2' }
        @{ Format = 'Raw' }
    ) {
        $m = Measure-VmDisk ./child.qcow2 -DestinationFormat $Format
        $qemu = & qemu-img measure --output=json -O $Format.ToLowerInvariant() ./child.qcow2 | ConvertFrom-Json
        $m.RequiredBytes | Should -Be $qemu.required
        $m.FullyAllocatedBytes | Should -Be $qemu.'fully-allocated'
    }

    It 'gives the length of the file Convert-VmDisk writes for <Format> (<How>)' -ForEach @(
        @{ Format = 'Vhdx'; How = 'by parameter' }
        @{ Format = 'Vmdk'; How = 'piped' }
        @{ Format = 'Vhd'; How = 'by parameter' }
    ) {
        $m = if ($How -eq 'piped') { './child.qcow2' | Measure-VmDisk -DestinationFormat $Format -BlockSizeBytes 1MB }
             else { Measure-VmDisk -Path ./child.qcow2 -DestinationFormat $Format -BlockSizeBytes 1MB }
        $copy = Join-Path $dir "copy.$($Format.ToLowerInvariant())"
        Convert-VmDisk ./child.qcow2 $copy -BlockSizeBytes 1MB | Out-Null
        $m.RequiredBytes | Should -Be (Get-Item $copy).Length
        $m.FullyAllocatedBytes | Should -BeGreaterThan $m.RequiredBytes
    }

    It 'measures every disk piped from Get-ChildItem' {
        $all = Get-ChildItem -Filter *.qcow2 | Sort-Object Name | Measure-VmDisk -DestinationFormat Vhdx
        $all.Count | Should -Be 2
        $all.DataBytes | Should -Be @(3MB, 4MB)
    }

    It 'refuses a block size the format cannot have, naming the disk' {
        Measure-VmDisk ./child.qcow2 -DestinationFormat Vhdx -BlockSizeBytes 4096 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'InvalidArgument,VmClone.PowerShell.Commands.MeasureVmDiskCommand'
        $err[0].Exception.Message | Should -BeLike '*child.qcow2*'
    }

    It 'reads no data and leaves every file byte-identical' {
        $before = Get-ChildItem | Get-FileHash
        Measure-VmDisk ./child.qcow2 | Out-Null
        (Get-ChildItem | Get-FileHash).Hash | Should -Be $before.Hash
    }

    It 'renders its table at 80 columns' {
        $table = Measure-VmDisk ./child.qcow2 | Format-Table | Out-String -Width 80
        $table | Should -Match 'Qcow2'
        ($table -split "`n" | Where-Object { $_.Length -gt 80 }) | Should -BeNullOrEmpty
    }
}

Describe 'Measure-VmDisk in a store' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-VmBase win11 -Store $store -Volume @(@{ Name = 'system'; Type = 'System'; SizeBytes = 64MB }) | Out-Null
        $outside = Join-Path $dir 'outside.vhdx'
        New-VmDisk $outside 64MB | Out-Null
        $link = Join-Path $store 'bases/win11/link.vhdx'
        New-Item -ItemType SymbolicLink -Path $link -Target $outside | Out-Null
        $fifo = Join-Path $store 'bases/win11/fifo.vhdx'
        if (-not $IsWindows) { & mkfifo $fifo }
    }
    AfterAll { Remove-TestFolder $dir }

    It 'refuses a store file that is a link leading out of the store (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        if ($How -eq 'piped') { Get-Item $link | Measure-VmDisk -ErrorVariable err -ErrorAction SilentlyContinue }
        else { Measure-VmDisk -Path $link -ErrorVariable err -ErrorAction SilentlyContinue }
        $err[0].FullyQualifiedErrorId | Should -Be 'VolumeOutsideStore,VmClone.PowerShell.Commands.MeasureVmDiskCommand'
    }

    It 'refuses a FIFO in the store without waiting on it' -Skip:$IsWindows {
        $job = Start-ThreadJob {
            param($module, $fifo)
            Import-Module $module
            Measure-VmDisk -LiteralPath $fifo -ErrorVariable e -ErrorAction SilentlyContinue
            $e[0].FullyQualifiedErrorId
        } -ArgumentList $env:VMCLONE_MODULE, $fifo
        $job | Wait-Job -Timeout 30 | Out-Null
        $job.State | Should -Be 'Completed'
        Receive-Job $job | Should -Be 'VolumeNotRegularFile,VmClone.PowerShell.Commands.MeasureVmDiskCommand'
        Remove-Job $job -Force
    }
}
