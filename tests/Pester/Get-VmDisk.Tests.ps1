BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:corpus = if ($env:VMCLONE_CORPUS) { $env:VMCLONE_CORPUS } else { Join-Path $PSScriptRoot '../../../shared/corpus' }
    $script:noCorpus = ($env:CI -ne 'true') -and -not (Test-Path $corpus)
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
