# Compare-VmDisk against the built module: verdicts as qemu-img compare gives them, by parameter
# and piped, differences as results (never errors), and the store's boundary on both disks.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:qemuSkip = Get-OracleSkip 'qemu-img'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Compare-VmDisk' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        New-VmDisk ./base.vhdx 64MB -BlockSizeBytes 1MB | Out-Null
        Write-DiskBytes (Join-Path $dir 'base.vhdx') 0 (Get-RandomBytes 3MB 7)
        New-VmDisk ./child.vhdx -ParentPath ./base.vhdx | Out-Null
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'finds an untouched clone identical to its base without reading the base (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        $r = if ($How -eq 'piped') { Get-Item ./child.vhdx | Compare-VmDisk -DifferencePath ./base.vhdx }
             else { Compare-VmDisk -Path ./child.vhdx -DifferencePath ./base.vhdx }
        $r | Should -BeOfType ([VmClone.Core.Disks.VmDiskComparison])
        $r.Identical | Should -BeTrue
        $r.Difference | Should -Be 'None'
        $r.FirstDifferenceOffset | Should -BeNullOrEmpty
        $r.Path | Should -Be (Join-Path $dir 'child.vhdx')
        $r.DifferencePath | Should -Be (Join-Path $dir 'base.vhdx')
        $r.BytesRead | Should -Be 0
    }

    It 'gives the first differing offset as a result, with no error, so a script decides on Identical (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        Write-DiskBytes (Join-Path $dir 'child.vhdx') (2MB + 123) ([byte[]](0xEE, 0xEF))
        $r = if ($How -eq 'piped') { './child.vhdx' | Compare-VmDisk -DifferencePath ./base.vhdx -ErrorVariable err }
             else { Compare-VmDisk ./child.vhdx ./base.vhdx -ErrorVariable err }
        $err.Count | Should -Be 0
        $? | Should -BeTrue
        $r.Identical | Should -BeFalse
        $r.Difference | Should -Be 'Content'
        $r.FirstDifferenceOffset | Should -Be (2MB + 123)
        (Compare-VmDisk ./child.vhdx ./base.vhdx | Select-Object -ExpandProperty Identical) | Should -BeFalse
    }

    It 'agrees with qemu-img compare on a converted copy, and with -Strict on allocation' -Skip:([bool]$qemuSkip) {
        Convert-VmDisk ./child.vhdx ./flat.qcow2 | Out-Null
        (Compare-VmDisk ./child.vhdx ./flat.qcow2).Identical | Should -BeTrue
        & qemu-img compare ./base.vhdx ./flat.qcow2 | Out-Null
        $LASTEXITCODE | Should -Be 0
        # 1 MiB of zeros stored as data in the copy, where the chain has nothing.
        Write-DiskBytes (Join-Path $dir 'flat.qcow2') 40MB ([byte[]]::new(1MB))
        (Compare-VmDisk ./base.vhdx ./flat.qcow2).Identical | Should -BeTrue
        $strict = Compare-VmDisk ./base.vhdx ./flat.qcow2 -Strict
        $strict.Identical | Should -BeFalse
        $strict.Difference | Should -Be 'Allocation'
        $strict.FirstDifferenceOffset | Should -Be 40MB
    }

    It 'compares each of several piped disks with -DifferencePath' {
        Write-DiskBytes (Join-Path $dir 'child.vhdx') 0 ([byte[]](1))
        $results = Get-ChildItem -Filter *.vhdx | Sort-Object Name | Compare-VmDisk -DifferencePath ./base.vhdx
        $results.Count | Should -Be 2
        $results.Identical | Should -Be @($true, $false)
    }

    It 'calls differing sizes different only with -Strict' {
        New-VmDisk ./big.vhdx 80MB -BlockSizeBytes 1MB | Out-Null
        Write-DiskBytes (Join-Path $dir 'big.vhdx') 0 (Get-RandomBytes 3MB 7)
        (Compare-VmDisk ./base.vhdx ./big.vhdx).Identical | Should -BeTrue
        $s = Compare-VmDisk ./base.vhdx ./big.vhdx -Strict
        $s.Difference | Should -Be 'Size'
        $s.Size | Should -Be 64MB
        $s.DifferenceSize | Should -Be 80MB
    }

    It 'writes an error naming a disk that does not exist' {
        Compare-VmDisk ./child.vhdx ./nope.vhdx -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PathNotFound,*'
    }

    It 'leaves both files byte-identical' {
        $before = Get-ChildItem | Get-FileHash
        Compare-VmDisk ./child.vhdx ./base.vhdx -Strict | Out-Null
        (Get-ChildItem | Get-FileHash).Hash | Should -Be $before.Hash
    }

    It 'renders its table at 80 columns' {
        $table = Compare-VmDisk ./child.vhdx ./base.vhdx | Format-Table | Out-String -Width 80
        $table | Should -Match 'True'
        ($table -split "`n" | Where-Object { $_.Length -gt 80 }) | Should -BeNullOrEmpty
    }
}

Describe 'Compare-VmDisk in a store' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-VmBase win11 -Store $store -Volume @(@{ Name = 'system'; Type = 'System'; SizeBytes = 64MB }) | Out-Null
        $outside = Join-Path $dir 'outside.vhdx'
        New-VmDisk $outside 64MB | Out-Null
        $volume = (Get-ChildItem (Join-Path $store 'bases/win11') -File | Where-Object Name -NotLike '*.json' | Select-Object -First 1).FullName
        $link = Join-Path $store 'bases/win11/link.vhdx'
        New-Item -ItemType SymbolicLink -Path $link -Target $outside | Out-Null
        $fifo = Join-Path $store 'bases/win11/fifo.vhdx'
        if (-not $IsWindows) { & mkfifo $fifo }
    }
    AfterAll { Remove-TestFolder $dir }

    It 'refuses a store file that is a link leading out of the store, as -Path or -DifferencePath (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        if ($How -eq 'piped') { Get-Item $link | Compare-VmDisk -DifferencePath $volume -ErrorVariable err -ErrorAction SilentlyContinue }
        else { Compare-VmDisk -Path $link -DifferencePath $volume -ErrorVariable err -ErrorAction SilentlyContinue }
        $err[0].FullyQualifiedErrorId | Should -Be 'VolumeOutsideStore,VmClone.PowerShell.Commands.CompareVmDiskCommand'
        Compare-VmDisk -Path $volume -DifferencePath $link -ErrorVariable err2 -ErrorAction SilentlyContinue
        $err2[0].FullyQualifiedErrorId | Should -Be 'VolumeOutsideStore,VmClone.PowerShell.Commands.CompareVmDiskCommand'
    }

    It 'refuses a FIFO in the store without waiting on it' -Skip:$IsWindows {
        $job = Start-ThreadJob {
            param($module, $volume, $fifo)
            Import-Module $module
            Compare-VmDisk -Path $volume -DifferencePath $fifo -ErrorVariable e -ErrorAction SilentlyContinue
            Compare-VmDisk -Path $fifo -DifferencePath $volume -ErrorVariable e2 -ErrorAction SilentlyContinue
            $e[0].FullyQualifiedErrorId; $e2[0].FullyQualifiedErrorId
        } -ArgumentList $env:VMCLONE_MODULE, $volume, $fifo
        $job | Wait-Job -Timeout 30 | Out-Null
        $job.State | Should -Be 'Completed'
        Receive-Job $job | Should -Be @('VolumeNotRegularFile,VmClone.PowerShell.Commands.CompareVmDiskCommand', 'VolumeNotRegularFile,VmClone.PowerShell.Commands.CompareVmDiskCommand')
        Remove-Job $job -Force
    }
}
