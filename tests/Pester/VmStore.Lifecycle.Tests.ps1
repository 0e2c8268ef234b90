# The whole life of a fleet with real bytes, once per format: a base with a system, a temporary
# and a data volume; three clones with their own content in every volume; a new base from a
# clone, every clone rebased onto it, the old base removed. Shutdown cleaning, restore and the
# removal of a clone, in each format, are in the files of their cmdlets.
BeforeDiscovery {
    Import-Module $env:VMCLONE_MODULE -Force
    # VMDK runs unless the engine says it is not written yet.
    $script:vmdkSkip = $false
    $probe = Join-Path ([IO.Path]::GetTempPath()) ("vmclone-probe-" + [guid]::NewGuid().ToString('N').Substring(0, 8) + '.vmdk')
    try { [VmClone.Disks.VirtualDisk]::CreateDynamic($probe, 1MB).Dispose() }
    catch { if ($_.Exception.Message -like '*being written*') { $script:vmdkSkip = $true } else { throw } }
    finally { Remove-Item -LiteralPath $probe -Force -ErrorAction SilentlyContinue }
    $script:formats = @(
        @{ Format = 'Vhdx'; Skip = $false }
        @{ Format = 'Vmdk'; Skip = $vmdkSkip }
    )
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    function Get-VolumePath([string] $Clone, [string] $Volume) {
        (Get-VmVolume -Clone $Clone -Store $store | Where-Object Name -eq $Volume).Path
    }
    function Get-BaseVolumePath([string] $Base, [string] $Volume) {
        (Get-VmVolume -Base $Base -Store $store | Where-Object Name -eq $Volume).Path
    }
    function Write-Text([string] $Path, [long] $Offset, [string] $Text) {
        Write-DiskBytes $Path $Offset ([Text.Encoding]::UTF8.GetBytes($Text))
    }
    function Read-Text([string] $Path, [long] $Offset, [int] $Count) {
        [Text.Encoding]::UTF8.GetString((Read-DiskBytes $Path $Offset $Count))
    }
}

Describe 'A fleet of clones in <Format>' -ForEach $formats {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $clones = 'lab-01', 'lab-02', 'lab-03'
        $size = 64MB
        $systemSource = Join-Path $dir 'system.vhdx'
        $dataSource = Join-Path $dir 'data.vhdx'
        New-VmDisk $systemSource -SizeBytes $size | Out-Null
        New-VmDisk $dataSource -SizeBytes $size | Out-Null
        Write-Text $systemSource 0 'win11 base system'
        Write-Text $systemSource 40MB 'win11 system, deep inside'
        Write-Text $dataSource 1MB 'shared documents from the base'
    }
    AfterAll { Remove-TestFolder $dir }

    It 'makes a read-only base of three volumes from files and sizes' -Skip:$Skip {
        $base = New-VmBase -Name win11 -Format $Format -Store $store -Volume @(
            @{ Name = 'system'; Type = 'System'; Path = $systemSource }
            @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = $size }
            [pscustomobject]@{ Name = 'data'; Type = 'Data'; Path = $dataSource })
        $base | Should -BeOfType ([VmClone.Core.Store.VmBaseInfo])
        $base.Volumes.Name | Should -Be @('system', 'temp', 'data')
        $base.Volumes.Type | Should -Be @('System', 'Temporary', 'Data')
        $base.Volumes.Format | Sort-Object -Unique | Should -Be $Format
        $base.CloneCount | Should -Be 0
        foreach ($v in $base.Volumes) {
            [VmClone.Disks.ReadOnlyFile]::IsMarked($v.Path) | Should -BeTrue
            { [VmClone.Disks.VirtualDisk]::Open($v.Path, 'ReadWrite') } | Should -Throw '*read-only*'
        }
        Read-Text $base.Volumes[0].Path 0 17 | Should -Be 'win11 base system'
        Test-Path (Join-Path $store 'store.json') | Should -BeTrue
        Get-Content (Join-Path $store 'bases/win11/base.json') -Raw | ConvertFrom-Json | Select-Object -ExpandProperty formatVersion | Should -Be 1
    }

    It 'makes three clones without copying data' -Skip:$Skip {
        $made = $clones | New-VmClone -Base win11 -Store $store
        $made.Count | Should -Be 3
        $made[0] | Should -BeOfType ([VmClone.Core.Store.VmCloneInfo])
        $made.State | Sort-Object -Unique | Should -Be 'Ready'
        foreach ($c in $made) { $c.SizeOnDisk | Should -BeLessThan 16MB }
        (Get-VmBase win11 -Store $store).CloneCount | Should -Be 3
        foreach ($c in $clones) { Read-Text (Get-VolumePath $c 'system') 0 17 | Should -Be 'win11 base system' }
    }

    It 'keeps what each clone writes in each of its volumes apart' -Skip:$Skip {
        $script:dataHash = @{}
        foreach ($c in $clones) {
            Write-Text (Get-VolumePath $c 'system') 8MB "$c installed software"
            Write-Text (Get-VolumePath $c 'temp') 2MB "$c pagefile"
            Write-Text (Get-VolumePath $c 'data') 3MB "$c documents"
            $dataHash[$c] = Get-DiskContentHash (Get-VolumePath $c 'data')
        }
        $dataHash.Values | Sort-Object -Unique | Should -HaveCount 3
        $drift = Get-VmClone -Store $store | Sort-Object SizeOnDisk
        $drift.DivergedBytes | ForEach-Object { $_ | Should -BeGreaterThan 0 }
        (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq data).DivergedBytes | Should -BeGreaterThan 0
    }

    It 'makes a new base from an updated clone, flattened' -Skip:$Skip {
        Write-Text (Get-VolumePath lab-03 'system') 20MB 'update 2026-11'
        $v2 = Get-VmClone lab-03 -Store $store | New-VmBase -Name win11-v2
        $v2.Source | Should -Be 'clone lab-03'
        $v2.Volumes.Format | Sort-Object -Unique | Should -Be $Format
        foreach ($v in $v2.Volumes) {
            (Get-VmDisk $v.Path).ChainDepth | Should -Be 1
        }
        Read-Text (Get-BaseVolumePath win11-v2 'system') 20MB 14 | Should -Be 'update 2026-11'
        Get-DiskContentHash (Get-BaseVolumePath win11-v2 'temp') | Should -Be (Get-DiskContentHash (Get-BaseVolumePath win11 'temp'))
        # Data volumes come from the clone's base by default (-DataFrom Base): what lab-03 wrote to its own stays out of new clones.
        Get-DiskContentHash (Get-BaseVolumePath win11-v2 'data') | Should -Be (Get-DiskContentHash (Get-BaseVolumePath win11 'data'))
        Get-DiskContentHash (Get-BaseVolumePath win11-v2 'data') | Should -Not -Be $dataHash['lab-03']
    }

    It 'rebases every clone: system as the new base, temporary reset, data byte-identical' -Skip:$Skip {
        $rebased = Get-VmClone -Base win11 -Store $store | Invoke-VmRebase -NewBase win11-v2 -Confirm:$false
        $rebased.Count | Should -Be 3
        $rebased.Base | Sort-Object -Unique | Should -Be 'win11-v2'
        $rebased.LastRebased | ForEach-Object { $_ | Should -Not -BeNullOrEmpty }
        $newSystem = Get-DiskContentHash (Get-BaseVolumePath win11-v2 'system')
        $newTemp = Get-DiskContentHash (Get-BaseVolumePath win11-v2 'temp')
        foreach ($c in $clones) {
            Get-DiskContentHash (Get-VolumePath $c 'system') | Should -Be $newSystem
            Get-DiskContentHash (Get-VolumePath $c 'temp') | Should -Be $newTemp
            Get-DiskContentHash (Get-VolumePath $c 'data') | Should -Be $dataHash[$c]
        }
    }

    It 'removes the old base once nothing depends on it, and every clone still reads the same' -Skip:$Skip {
        Remove-VmBase win11 -Store $store -Force
        Get-VmBase -Store $store | ForEach-Object Name | Should -Be 'win11-v2'
        Test-Path (Join-Path $store 'bases/win11') | Should -BeFalse
        $newSystem = Get-DiskContentHash (Get-BaseVolumePath win11-v2 'system')
        foreach ($c in $clones) {
            Get-DiskContentHash (Get-VolumePath $c 'system') | Should -Be $newSystem
            Get-DiskContentHash (Get-VolumePath $c 'data') | Should -Be $dataHash[$c]
        }
        $report = Test-VmStore -Store $store
        $report.IsHealthy | Should -BeTrue
        $report.CloneCount | Should -Be 3
    }
}
