BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Test-VmDisk' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        New-VmDisk ./base.vhdx 1GB | Out-Null
        Write-DiskBytes (Join-Path $dir 'base.vhdx') 0 (Get-RandomBytes 3MB 7)
        New-VmDisk ./child.vhdx -ParentPath ./base.vhdx | Out-Null
        Write-DiskBytes (Join-Path $dir 'child.vhdx') 1MB (Get-RandomBytes 5000 8)
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'finds a healthy chain healthy' {
        $r = Test-VmDisk ./child.vhdx
        $r.IsHealthy | Should -BeTrue
        $r.Problems.Count | Should -Be 0
        $r.CheckedPaths.Count | Should -Be 2
        $r.Path | Should -Be (Join-Path $dir 'child.vhdx')
    }

    It 'reports a base modified behind the child''s back' {
        Write-DiskBytes (Join-Path $dir 'base.vhdx') 0 ([byte[]](1, 2, 3))
        $r = Test-VmDisk ./child.vhdx
        $r.IsHealthy | Should -BeFalse
        $r.Problems[0].Path | Should -Be (Join-Path $dir 'child.vhdx')
        $r.Problems[0].Description | Should -BeLike '*changed*'
    }

    It 'reports a missing parent' {
        Remove-Item ./base.vhdx
        $r = Test-VmDisk ./child.vhdx
        $r.IsHealthy | Should -BeFalse
        ($r.Problems.Description -join ' ') | Should -BeLike '*base.vhdx*'
    }

    It 'reports a file whose headers are both damaged, and does not touch it' {
        $path = Join-Path $dir 'base.vhdx'
        $fs = [IO.File]::Open($path, 'Open', 'ReadWrite')
        foreach ($offset in 64KB, 128KB) { $fs.Position = $offset + 100; $fs.WriteByte(0x5A) }
        $fs.Dispose()
        $before = (Get-FileHash $path).Hash
        $r = Test-VmDisk $path
        $r.IsHealthy | Should -BeFalse
        $r.Problems[0].Path | Should -Be $path
        (Get-FileHash $path).Hash | Should -Be $before
    }

    It 'checks every disk piped from Get-ChildItem' {
        $results = Get-ChildItem -Filter *.vhdx | Test-VmDisk
        $results.Count | Should -Be 2
        $results.IsHealthy | Should -Be @($true, $true)
    }

    It 'leaves every file byte-identical' {
        $before = Get-ChildItem | Get-FileHash
        Test-VmDisk ./child.vhdx | Out-Null
        (Get-ChildItem | Get-FileHash).Hash | Should -Be $before.Hash
    }
}
