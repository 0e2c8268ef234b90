# Objects compose: each output type carries what the next command binds to, its views fit in
# 80 columns with readable sizes while its properties stay numbers, ConvertTo-Json of it is
# useful, and names complete with Tab.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $dir = New-TestFolder
    $store = Join-Path $dir 'store-with-a-rather-long-folder-name-to-stress-the-views'
    New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir -DataInBase
    Write-DiskBytes (Join-Path $store 'clones/lab-01/system.vhdx') 0 (Get-RandomBytes 300000 5)
    Push-Location $dir
    New-VmDisk ./base.vhdx 64MB | Out-Null
    New-VmDisk ./child-with-a-long-name-so-that-paths-wrap.vhdx -ParentPath ./base.vhdx | Out-Null
    # One problem for Test-VmStore to report: a base file no longer read-only.
    [VmClone.Disks.ReadOnlyFile]::Mark((Join-Path $store 'bases/win11/temp.vhdx'), $false)

    $script:outputs = [ordered]@{
        VmBaseInfo        = @(Get-VmBase -Store $store)
        VmCloneInfo       = @(Get-VmClone -Store $store)
        VmVolumeInfo      = @(Get-VmVolume -Clone lab-01 -Store $store)
        VmDiskInfo        = @(Get-VmDisk ./child-with-a-long-name-so-that-paths-wrap.vhdx -Chain)
        VmDiskCheckResult = @(Test-VmDisk ./child-with-a-long-name-so-that-paths-wrap.vhdx)
        VmStoreReport     = @(Test-VmStore -Store $store)
        VmStoreProblem    = @((Test-VmStore -Store $store).Problems)
    }
}
AfterAll { Pop-Location; Remove-TestFolder $dir }

Describe 'Pipes between the commands' {
    It 'Get-VmBase | New-VmClone makes clones of the piped base, in its store' {
        $made = @(Get-VmBase win11 -Store $store | New-VmClone -Name pipe-01, pipe-02)
        $made.Name | Should -Be @('pipe-01', 'pipe-02')
        $made.Base | Should -Be @('win11', 'win11')
        $made[0].Store | Should -Be $store
    }

    It 'Get-VmClone | Restore-VmClone | Clear-VmTemporaryVolume | Remove-VmClone' {
        $out = @(Get-VmClone pipe-* -Store $store | Restore-VmClone -Force -PassThru | Clear-VmTemporaryVolume -PassThru)
        $out.Name | Should -Be @('pipe-01', 'pipe-02')
        Get-VmClone pipe-* -Store $store | Remove-VmClone -Force
        Get-VmClone pipe-* -Store $store | Should -BeNullOrEmpty
    }

    It 'Get-VmBase and Get-VmClone | Get-VmVolume; -Type filters by volume type' {
        (Get-VmBase win11 -Store $store | Get-VmVolume).Name | Should -Be @('system', 'temp', 'data')
        (Get-VmClone lab-01 -Store $store | Get-VmVolume -Type Data).Name | Should -Be 'data'
        (Get-VmVolume -Clone lab-01, lab-02 -Type System, Temporary -Store $store).Count | Should -Be 4
    }

    It 'Get-VmVolume | Get-VmDisk binds the volume''s Path' {
        $disks = @(Get-VmVolume -Clone lab-01 -Store $store | Get-VmDisk)
        $disks.Path | Should -Be (Get-VmVolume -Clone lab-01 -Store $store).Path
        $disks[0].ParentPath | Should -Be (Join-Path $store 'bases/win11/system.vhdx')
    }

    It 'Get-VmDisk | Convert-VmDisk and Get-VmDisk | Test-VmDisk bind the disk''s Path' {
        $flat = Get-VmDisk ./child-with-a-long-name-so-that-paths-wrap.vhdx | Convert-VmDisk -DestinationPath ./flat.vmdk
        $flat.Format | Should -Be 'Vmdk'
        $flat.ParentPath | Should -BeNullOrEmpty
        (Get-VmDisk ./flat.vmdk | Test-VmDisk).IsHealthy | Should -BeTrue
    }

    It 'Get-VmClone | New-VmBase, then Get-VmBase | Remove-VmBase' {
        Get-VmClone lab-02 -Store $store | New-VmBase -Name from-pipe | Out-Null
        (Get-VmBase from-pipe -Store $store).Source | Should -Be 'clone lab-02'
        Get-VmBase from-pipe -Store $store | Remove-VmBase -Force
        Get-VmBase -Store $store | Where-Object Name -eq 'from-pipe' | Should -BeNullOrEmpty
    }
}

Describe 'Views and serialization of <Name>' -ForEach @(
    @{ Name = 'VmBaseInfo' }, @{ Name = 'VmCloneInfo' }, @{ Name = 'VmVolumeInfo' }, @{ Name = 'VmDiskInfo' },
    @{ Name = 'VmDiskCheckResult' }, @{ Name = 'VmStoreReport' }, @{ Name = 'VmStoreProblem' }
) {
    BeforeAll { $objects = $script:outputs[$Name] }

    It 'is produced by a command' {
        $objects | Should -Not -BeNullOrEmpty
        $objects[0].GetType().Name | Should -Be $Name
    }

    It 'fits in 80 columns as a <View>' -ForEach @(@{ View = 'table' }, @{ View = 'list' }) {
        $text = if ($View -eq 'table') { $objects | Format-Table | Out-String -Width 80 } else { $objects | Format-List | Out-String -Width 80 }
        $text.Trim() | Should -Not -BeNullOrEmpty
        $long = @($text -split '\r?\n' | Where-Object { $_.Length -gt 80 })
        $long | Should -BeNullOrEmpty -Because "every line fits in 80 columns:`n$text"
    }

    It 'shows sizes readably while its size properties stay numbers' {
        $sizeProps = @($objects[0].PSObject.Properties | Where-Object { $_.Name -match 'Size|Bytes' -and $_.Name -notmatch 'Sector' })
        foreach ($p in $sizeProps) { $p.Value | Should -BeOfType [long] -Because $p.Name }
        if ($sizeProps) { ($objects | Format-Table | Out-String -Width 80) | Should -Match '\d (B|KiB|MiB|GiB)\b' }
    }

    It 'converts to useful JSON quickly' {
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $json = $objects | ConvertTo-Json -Depth 3 -EnumsAsStrings
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 5
        $json.Length | Should -BeLessThan 200000
        $back = @($json | ConvertFrom-Json)
        $back.Count | Should -Be $objects.Count
        $first = $back[0].PSObject.Properties.Name
        ($first -contains 'Name' -or $first -contains 'Path' -or $first -contains 'Store') | Should -BeTrue
        foreach ($p in $objects[0].PSObject.Properties | Where-Object { $_.Value -is [long] }) {
            $back[0].($p.Name) | Should -Be $p.Value -Because "$($p.Name) stays a number in JSON"
        }
        # Without -EnumsAsStrings too (enums are numbers then).
        { $objects | ConvertTo-Json -Depth 3 -WarningAction Stop } | Should -Not -Throw
    }
}

Describe 'Tab completion' {
    BeforeAll {
        function Complete([string] $line) {
            (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText
        }
    }

    It 'completes clone names from the store given by -Store' {
        Complete "Get-VmClone -Store '$store' -Name lab-" | Should -Be @('lab-01', 'lab-02')
        Complete "Restore-VmClone -Store '$store' lab-0" | Should -Be @('lab-01', 'lab-02')
        Complete "Get-VmVolume -Store '$store' -Clone lab-02" | Should -Be @('lab-02')
    }

    It 'completes base names for -Base and -NewBase' {
        Complete "New-VmClone -Store '$store' -Name x -Base w" | Should -Be @('win11')
        Complete "Invoke-VmRebase -Store '$store' -Name lab-01 -NewBase wi" | Should -Be @('win11')
        Complete "Get-VmClone -Store '$store' -Base " | Should -Be @('win11')
    }

    It 'completes volume types for Get-VmVolume -Type and formats for New-VmBase -Format' {
        Complete "Get-VmVolume -Clone lab-01 -Type T" | Should -Be @('Temporary')
        Complete "Get-VmVolume -Clone lab-01 -Type " | Sort-Object | Should -Be @('Data', 'System', 'Temporary')
        Complete "New-VmBase x -FromClone lab-01 -Format V" | Should -Be @('Vhdx', 'Vmdk', 'Vhd')
        Complete "New-VmBase x -FromClone lab-01 -Format " | Should -Be @('Vhdx', 'Vmdk', 'Vhd', 'Qcow2')
        Complete "New-VmDisk ./x.raw 1MB -Format R" | Should -Be @('Raw')
        Complete "Get-VmDisk ./x.vhdx -Format Vm" | Should -Be @('Vmdk')
    }

    It 'completes nothing, without error, from a store that does not exist' {
        Complete "Get-VmClone -Store '$dir/nowhere' -Name lab-" | Should -BeNullOrEmpty
    }
}
