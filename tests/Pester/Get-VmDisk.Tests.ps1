BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:corpus = if ($env:VMCLONE_CORPUS) { $env:VMCLONE_CORPUS } else { Join-Path $PSScriptRoot '../../../shared/corpus' }
    $script:noCorpus = ($env:CI -ne 'true') -and -not (Test-Path $corpus)
    $script:qemuIoSkip = (Get-OracleSkip 'qemu-img') -or (Get-OracleSkip 'qemu-io')
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $corpus = if ($env:VMCLONE_CORPUS) { $env:VMCLONE_CORPUS } else { Join-Path $PSScriptRoot '../../../shared/corpus' }
}

Describe 'Get-VmDisk' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        New-VmDisk ./base.vhdx 2GB | Out-Null
        New-VmDisk ./mid.vhdx -ParentPath ./base.vhdx | Out-Null
        New-VmDisk ./top.vhdx -ParentPath ./mid.vhdx | Out-Null
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'shows one disk by path' {
        $d = Get-VmDisk -Path ./top.vhdx
        $d.Path | Should -Be (Join-Path $dir 'top.vhdx')
        $d.Type | Should -Be 'Differencing'
        $d.ChainDepth | Should -Be 3
        $d.ParentPath | Should -Be (Join-Path $dir 'mid.vhdx')
        $d.VirtualSize | Should -Be 2GB
        $d.FileSize | Should -Be (Get-Item ./top.vhdx).Length
        $d.Level | Should -Be 0
    }

    It 'shows every layer with -Chain, top first' {
        $chain = Get-VmDisk ./top.vhdx -Chain
        $chain.Count | Should -Be 3
        $chain.Level | Should -Be @(0, 1, 2)
        (Split-Path -Leaf $chain.Path) | Should -Be @('top.vhdx', 'mid.vhdx', 'base.vhdx')
        $chain.ChainDepth | Should -Be @(3, 2, 1)
        $chain[2].Type | Should -Be 'Dynamic'
        $chain[2].ParentPath | Should -BeNullOrEmpty
    }

    It 'takes files from Get-ChildItem through the pipeline' {
        $all = Get-ChildItem -Filter *.vhdx | Get-VmDisk
        $all.Count | Should -Be 3
        ($all.Path | Sort-Object) | Should -Be ((Get-ChildItem -Filter *.vhdx).FullName | Sort-Object)
    }

    It 'expands wildcards in -Path' {
        (Get-VmDisk ./*.vhdx).Count | Should -Be 3
    }

    It 'shows a child whose parent is gone, with a warning that names the parent' {
        Remove-Item ./mid.vhdx
        $d = Get-VmDisk ./top.vhdx -WarningVariable warn -WarningAction SilentlyContinue
        $d.ChainDepth | Should -BeNullOrEmpty
        $d.ChainProblem | Should -BeLike '*mid.vhdx*'
        $warn.Count | Should -Be 1
    }

    It 'writes an error for a path that does not exist and goes on with the others' {
        $out = Get-VmDisk ./nope.vhdx, ./base.vhdx -ErrorVariable err -ErrorAction SilentlyContinue
        $out.Count | Should -Be 1
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PathNotFound,*'
    }

    It 'names the file and the problem for something that is not a disk' {
        Set-Content ./notes.vhdx 'not a disk'
        Get-VmDisk ./notes.vhdx -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'DiskFormatInvalid,VmClone.PowerShell.Commands.GetVmDiskCommand'
        $err[0].Exception.Message | Should -BeLike '*notes.vhdx*'
    }

    It 'renders its table and list views at 80 columns' {
        $table = Get-VmDisk ./top.vhdx -Chain | Format-Table | Out-String -Width 80
        $table | Should -Match 'Differencing'
        $table | Should -Match '2 GiB'
        ($table -split "`n" | Where-Object { $_.Length -gt 80 }) | Should -BeNullOrEmpty
        Get-VmDisk ./top.vhdx | Format-List | Out-String -Width 80 | Should -Match 'ParentPath'
    }

    It 'shows the parent a Hyper-V checkpoint disk records' -Skip:$noCorpus {
        $gz = Join-Path $corpus 'dissect.hypervisor/differencing.avhdx.gz'
        $target = Join-Path $dir 'differencing.avhdx'
        $in = [IO.Compression.GZipStream]::new([IO.File]::OpenRead($gz), [IO.Compression.CompressionMode]::Decompress)
        $out = [IO.File]::Create($target)
        $in.CopyTo($out); $out.Dispose(); $in.Dispose()
        $d = Get-VmDisk $target -WarningAction SilentlyContinue
        $d.Type | Should -Be 'Differencing'
        $d.VirtualSize | Should -Be 8GB
        $d.ParentIdentity | Should -Be '{ff34003b-11ed-4cf8-a166-b2be05e20b80}'
        $d.ChainProblem | Should -BeLike '*Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx*'
    }
}

Describe 'Get-VmDisk -Map' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        New-VmDisk ./base.vhdx 64MB -BlockSizeBytes 1MB | Out-Null
        Write-DiskBytes (Join-Path $dir 'base.vhdx') 0 (Get-RandomBytes 2MB 3)
        New-VmDisk ./child.vhdx -ParentPath ./base.vhdx | Out-Null
        Write-DiskBytes (Join-Path $dir 'child.vhdx') 8MB (Get-RandomBytes 4096 4)
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'maps a chain from offset 0 to the end, each run with its depth and file (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        $map = if ($How -eq 'piped') { Get-Item ./child.vhdx | Get-VmDisk -Map } else { Get-VmDisk -Path ./child.vhdx -Map }
        $map[0] | Should -BeOfType ([VmClone.Core.Disks.VmDiskMapEntry])
        $map.Count | Should -Be 4
        ($map | ForEach-Object { "$($_.Start)+$($_.Length) $($_.Kind) $($_.Depth)" }) | Should -Be @(
            "0+$(2MB) Data 1", "$(2MB)+$(6MB) Unallocated ", "$(8MB)+4096 Data 0", "$(8MB + 4096)+$(56MB - 4096) Unallocated ")
        $map[0].File | Should -Be (Join-Path $dir 'base.vhdx')
        $map[0].FromParent | Should -BeTrue
        $map[2].File | Should -Be (Join-Path $dir 'child.vhdx')
        $map[2].FromParent | Should -BeFalse
        $map[1].File | Should -BeNullOrEmpty
        $map[-1].End | Should -Be 64MB
    }

    It 'maps a qcow2 chain as qemu-img map --output=json does' -Skip:([bool]$qemuIoSkip) {
        & qemu-img create -f qcow2 ./b.qcow2 64M | Out-Null
        & qemu-io -c 'write -P 1 1M 64k' -c 'write -z 4M 64k' ./b.qcow2 | Out-Null
        & qemu-img create -f qcow2 -b b.qcow2 -F qcow2 ./c.qcow2 | Out-Null
        & qemu-io -c 'write -P 2 2M 64k' ./c.qcow2 | Out-Null
        $qemu = (& qemu-img map --output=json ./c.qcow2) -join "`n" | ConvertFrom-Json
        $expected = foreach ($e in $qemu) {
            $kind = if (-not $e.present) { 'Unallocated' } elseif ($e.data) { 'Data' } else { 'Zero' }
            $depth = if ($e.present) { $e.depth } else { '' }
            $offset = if ($e.data) { "@$($e.offset)" } else { '' }
            "$($e.start)+$($e.length) $kind $depth$offset"
        }
        (Get-ChildItem ./c.qcow2 | Get-VmDisk -Map | ForEach-Object { "$($_.Start)+$($_.Length) $($_.Kind) $($_.Depth)$(if ($_.Kind -eq 'Data') { "@$($_.Offset)" })" }) | Should -Be $expected
    }

    It 'refuses -Map with -Chain' {
        { Get-VmDisk ./child.vhdx -Map -Chain } | Should -Throw -ErrorId 'MapWithChain,VmClone.PowerShell.Commands.GetVmDiskCommand'
    }

    It 'renders its table at 80 columns' {
        $table = Get-VmDisk ./child.vhdx -Map | Format-Table | Out-String -Width 80
        $table | Should -Match 'Unallocated'
        ($table -split "`n" | Where-Object { $_.Length -gt 80 }) | Should -BeNullOrEmpty
    }
}

Describe 'Get-VmDisk -Map in a store' {
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
        if ($How -eq 'piped') { Get-Item $link | Get-VmDisk -Map -ErrorVariable err -ErrorAction SilentlyContinue }
        else { Get-VmDisk -Path $link -Map -ErrorVariable err -ErrorAction SilentlyContinue }
        $err[0].FullyQualifiedErrorId | Should -Be 'VolumeOutsideStore,VmClone.PowerShell.Commands.GetVmDiskCommand'
    }

    It 'refuses a FIFO in the store without waiting on it' -Skip:$IsWindows {
        $job = Start-ThreadJob {
            param($module, $fifo)
            Import-Module $module
            Get-VmDisk -LiteralPath $fifo -Map -ErrorVariable e -ErrorAction SilentlyContinue
            $e[0].FullyQualifiedErrorId
        } -ArgumentList $env:VMCLONE_MODULE, $fifo
        $job | Wait-Job -Timeout 30 | Out-Null
        $job.State | Should -Be 'Completed'
        Receive-Job $job | Should -Be 'VolumeNotRegularFile,VmClone.PowerShell.Commands.GetVmDiskCommand'
        Remove-Job $job -Force
    }
}
