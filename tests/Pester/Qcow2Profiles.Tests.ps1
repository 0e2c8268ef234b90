# The qcow2 layout of a store's base (cluster size, extended L2), as the KVM farms make theirs:
# IsardVDI 4 KiB clusters, Proxmox VE 9 128 KiB clusters with extended L2 on its linked clones.
# The base's files and every overlay made from it (clone, restore, clearing, rebase) have it, as
# qemu-img info reads them, and qemu-img check finds each clean.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:noQemu = Get-OracleSkip 'qemu-img'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    # Cluster size, extended L2 and the check's verdict of one image, as qemu-img reads it.
    function Get-QemuLayout([string] $Path) {
        $info = (qemu-img info -f qcow2 --output=json $Path) -join "`n" | ConvertFrom-Json
        $check = (qemu-img check -f qcow2 --output=json $Path 2>$null) -join "`n" | ConvertFrom-Json
        $extended = [bool]$info.'format-specific'.data.'extended-l2'
        $leaks = if ($check.PSObject.Properties['leaks']) { $check.leaks } else { 0 }
        $corruptions = if ($check.PSObject.Properties['corruptions']) { $check.corruptions } else { 0 }
        "cluster=$($info.'cluster-size') extended-l2=$extended corruptions=$corruptions leaks=$leaks"
    }

    # Every volume file of the store's bases and clones, with its qemu-img layout.
    function Get-StoreLayouts([string] $Store) {
        $volumes = @(Get-VmBase -Store $Store | ForEach-Object { Get-VmVolume -Base $_.Name -Store $Store }) +
            @(Get-VmClone -Store $Store | ForEach-Object { Get-VmVolume -Clone $_.Name -Store $Store })
        foreach ($v in $volumes) { "$($v.Path): $(Get-QemuLayout $v.Path)" }
    }
}

Describe 'qcow2 store layouts' {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $system = Join-Path $dir 'system.vhdx'
        ([VmClone.Disks.VirtualDisk]::CreateDynamic($system, 8MB)).Dispose()
        Write-DiskBytes $system 0 (Get-RandomBytes 300KB 1)
        $volumes = @(
            @{ Name = 'system'; Type = 'System'; Path = $system }
            @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 8MB }
            @{ Name = 'data'; Type = 'Data'; SizeBytes = 8MB })
    }
    AfterEach { Remove-TestFolder $dir }

    It 'keeps <Name> (<Cluster>-byte clusters, extended L2 <Extended>) on the base and every overlay, through restore, clearing and rebase' -Skip:$noQemu -ForEach @(
        @{ Name = 'IsardVDI'; Cluster = 4096; Extended = $false }
        @{ Name = 'Proxmox VE'; Cluster = 131072; Extended = $true }
    ) {
        $want = "cluster=$Cluster extended-l2=$Extended corruptions=0 leaks=0"
        $base = New-VmBase win11 -Store $store -Format Qcow2 -Qcow2ClusterSizeBytes $Cluster -Qcow2ExtendedL2:$Extended -Volume $volumes
        $base.Volumes | ForEach-Object Format | Sort-Object -Unique | Should -Be 'Qcow2'
        New-VmClone lab-01, lab-02 -Base win11 -Store $store | Out-Null
        $lab1 = Get-VmVolume -Clone lab-01 -Store $store
        Write-DiskBytes ($lab1 | Where-Object Name -eq system).Path 1MB (Get-RandomBytes 200KB 2)
        Write-DiskBytes ($lab1 | Where-Object Name -eq data).Path 2MB (Get-RandomBytes 100KB 3)
        Write-DiskBytes ($lab1 | Where-Object Name -eq temp).Path 0 (Get-RandomBytes 50KB 4)
        $data = Get-DiskContentHash ($lab1 | Where-Object Name -eq data).Path
        Get-StoreLayouts $store | Where-Object { $_ -notlike "*: $want" } | Should -BeNullOrEmpty

        Restore-VmClone lab-02 -Store $store -Confirm:$false | Out-Null
        Clear-VmTemporaryVolume lab-01 -Store $store -Confirm:$false | Out-Null
        # A base from a clone keeps its base's layout, and so do the overlays of a rebase onto it.
        New-VmBase win11-v2 -FromClone lab-01 -Store $store | Out-Null
        Invoke-VmRebase lab-01, lab-02 -NewBase win11-v2 -Store $store -Confirm:$false | Out-Null
        (Get-VmClone lab-01 -Store $store).Base | Should -Be 'win11-v2'
        Get-DiskContentHash (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq data).Path | Should -Be $data
        Get-StoreLayouts $store | Where-Object { $_ -notlike "*: $want" } | Should -BeNullOrEmpty
        (Get-StoreLayouts $store).Count | Should -Be 12
    }

    It 'gives a base from a clone the layout it is asked for instead of its old base''s' -Skip:$noQemu {
        New-VmBase win11 -Store $store -Format Qcow2 -Qcow2ClusterSizeBytes 4KB -Volume $volumes | Out-Null
        New-VmClone lab-01 -Base win11 -Store $store | Out-Null
        New-VmBase pve -FromClone lab-01 -Store $store -Qcow2ClusterSizeBytes 128KB -Qcow2ExtendedL2 | Out-Null
        New-VmClone pve-01 -Base pve -Store $store | Out-Null
        $files = @(Get-VmVolume -Base pve -Store $store) + @(Get-VmVolume -Clone pve-01 -Store $store)
        $files | ForEach-Object { "$($_.Path): $(Get-QemuLayout $_.Path)" } | Where-Object { $_ -notlike '*: cluster=131072 extended-l2=True corruptions=0 leaks=0' } | Should -BeNullOrEmpty
    }

    It 'refuses a layout qcow2 cannot have, or one for a base that is not qcow2, making nothing (<Case>)' -ForEach @(
        @{ Case = 'extended L2 on 4 KiB clusters'; Arguments = @{ Format = 'Qcow2'; Qcow2ClusterSizeBytes = 4KB; Qcow2ExtendedL2 = $true }; Message = '*extended L2*16 KiB*' }
        @{ Case = 'a cluster size that is no power of two'; Arguments = @{ Format = 'Qcow2'; Qcow2ClusterSizeBytes = 96KB }; Message = '*power of two*512 bytes*2 MiB*' }
        @{ Case = 'a VHDX base'; Arguments = @{ Format = 'Vhdx'; Qcow2ClusterSizeBytes = 4KB }; Message = '*-Format Qcow2*' }
    ) {
        $e = try { New-VmBase win11 -Store $store -Volume $volumes @Arguments -ErrorAction Stop; $null } catch { $_ }
        $e | Should -Not -BeNullOrEmpty
        $e.FullyQualifiedErrorId | Should -BeLike 'InvalidQcow2Layout,*'
        $e.Exception.Message | Should -BeLike $Message
        Test-Path (Join-Path $store 'bases/win11') | Should -BeFalse
    }
}

Describe 'the VmCloneBase DSC resource with a qcow2 layout' {
    BeforeAll {
        $dscModule = (Get-Module VmClone).NestedModules | Where-Object Name -eq 'VmClone.Dsc'
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
    }
    AfterAll { Remove-TestFolder $dir }

    It 'creates the base in the declared cluster size and extended L2, which its clones take' -Skip:$noQemu {
        $volume = & $dscModule { New-Object -TypeName VmCloneVolume }
        $volume.Name = 'system'; $volume.Type = 'System'; $volume.SizeBytes = 8MB
        $base = & $dscModule { New-Object -TypeName VmCloneBase }
        $base.Name = 'pve'; $base.Store = $store; $base.Format = 'Qcow2'; $base.Volume = @($volume)
        $base.Qcow2ClusterSizeBytes = 128KB; $base.Qcow2ExtendedL2 = $true
        $base.Test() | Should -BeFalse
        $base.Set()
        $base.Test() | Should -BeTrue
        New-VmClone pve-01 -Base pve -Store $store | Out-Null
        @((Get-VmVolume -Base pve -Store $store).Path, (Get-VmVolume -Clone pve-01 -Store $store).Path) |
            ForEach-Object { "$($_): $(Get-QemuLayout $_)" } | Where-Object { $_ -notlike '*: cluster=131072 extended-l2=True corruptions=0 leaks=0' } | Should -BeNullOrEmpty
    }
}
