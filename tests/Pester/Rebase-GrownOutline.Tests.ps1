# Invoke-VmRebase onto a base whose system and data volumes grew: every clone's system becomes a
# child of the larger system, its data volume keeps its content byte for byte over its old length
# and reads zeros after it; the old base can then be removed. A smaller volume stays refused.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Invoke-VmRebase onto a grown outline' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $clones = 'lab-01', 'lab-02', 'lab-03'
        New-TestFleet $store -Clone $clones -Folder $dir -DataInBase
        $dataHash = @{}
        foreach ($c in $clones) {
            Write-DiskText (Get-TestVolumePath $store $c 'system') 8MB "$c installed software"
            Write-DiskText (Get-TestVolumePath $store $c 'data') (32MB - 4096) "$c documents at the end"
            $dataHash[$c] = Get-DiskHeadHash (Get-TestVolumePath $store $c 'data') 32MB
        }
        # The next month's base: system 64 MiB -> 128 MiB, temp 32 -> 64, data 32 -> 64 MiB, with
        # data past the old end that no clone may show.
        New-VmDisk "$dir/big-system.vhdx" 128MB | Out-Null
        Write-DiskText "$dir/big-system.vhdx" 0 'win11 big system'
        Write-DiskText "$dir/big-system.vhdx" 100MB 'more room for updates'
        New-VmDisk "$dir/big-data.vhdx" 64MB | Out-Null
        Write-DiskBytes "$dir/big-data.vhdx" 1MB (Get-RandomBytes 65536 7)
        Write-DiskText "$dir/big-data.vhdx" 40MB 'base data past the old end'
        New-VmBase win11-big -Store $store -Volume @(
            @{ Name = 'system'; Type = 'System'; Path = "$dir/big-system.vhdx" }
            @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 64MB }
            @{ Name = 'data'; Type = 'Data'; Path = "$dir/big-data.vhdx" }) | Out-Null
        New-VmBase win11-small -Store $store -Volume @(
            @{ Name = 'system'; Type = 'System'; SizeBytes = 64MB }
            @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 32MB }
            @{ Name = 'data'; Type = 'Data'; SizeBytes = 16MB }) | Out-Null
    }
    AfterAll { Remove-TestFolder $dir }

    It 'says in -WhatIf that each data volume grows from 32 MiB to 64 MiB, and changes nothing' {
        $before = Get-TestSnapshot $store
        $run = Invoke-TestPwsh -Arguments @('-Command', "Import-Module '$env:VMCLONE_MODULE'; Invoke-VmRebase -Base win11 -NewBase win11-big -Store '$store' -WhatIf")
        ($run.Output -join "`n") | Should -BeLike '*data (Data):*grow from 32 MiB to 64 MiB*'
        Get-TestSnapshot $store | Should -Be $before
    }

    It 'refuses a base with a smaller data volume with OutlineMismatch, and changes nothing' {
        $err = $null
        Invoke-VmRebase lab-01 -NewBase win11-small -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'OutlineMismatch,VmClone.PowerShell.Commands.InvokeVmRebaseCommand'
        $err[0].Exception.Message | Should -BeLike '*never shrinks*as large as the clone*or larger*'
        (Get-VmClone lab-01 -Store $store).Base | Should -Be 'win11'
    }

    It 'moves the fleet by parameter and piped: system and temp from the new base, data kept and grown with zeros' {
        $rebased = @(Invoke-VmRebase lab-01, lab-02 -NewBase win11-big -Store $store -Force)
        $rebased.Count | Should -Be 2
        $piped = @(Get-VmClone lab-03 -Store $store | Invoke-VmRebase -NewBase win11-big -Force)
        $piped.Count | Should -Be 1
        foreach ($c in $clones) {
            (Get-VmClone $c -Store $store).Base | Should -Be 'win11-big'
            $system = Get-TestVolumePath $store $c 'system'
            (Get-VmDisk $system).VirtualSize | Should -Be 128MB
            Read-DiskText $system 100MB 21 | Should -Be 'more room for updates'
            (Get-VmDisk (Get-TestVolumePath $store $c 'temp')).VirtualSize | Should -Be 64MB
            $data = Get-TestVolumePath $store $c 'data'
            (Get-VmDisk $data).VirtualSize | Should -Be 64MB
            Get-DiskHeadHash $data 32MB | Should -Be $dataHash[$c]
            $dataHash[$c] | Should -BeLike '* then zeros'
        }
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }

    It 'lets the old base be removed once no clone depends on it' {
        Remove-VmBase win11 -Store $store -Force
        Get-VmBase -Store $store | ForEach-Object Name | Should -Not -Contain 'win11'
        foreach ($c in $clones) { Get-DiskHeadHash (Get-TestVolumePath $store $c 'data') 32MB | Should -Be $dataHash[$c] }
    }
}
