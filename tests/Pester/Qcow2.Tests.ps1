BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:noQemu = Get-OracleSkip 'qemu-img'
    $script:noQemuIo = Get-OracleSkip 'qemu-io'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    # qemu-img check --output=json of one image: exit code, corruptions and leaks.
    function Get-QemuCheck([string] $Path) {
        $json = qemu-img check -f qcow2 --output=json $Path 2>$null
        $exit = $LASTEXITCODE
        $report = ($json -join "`n") | ConvertFrom-Json
        [pscustomobject]@{
            Exit = $exit
            Corruptions = $(if ($report.PSObject.Properties['corruptions']) { $report.corruptions } else { 0 })
            Leaks = $(if ($report.PSObject.Properties['leaks']) { $report.leaks } else { 0 })
        }
    }

    # qemu-img check finds no corruption and no leak.
    function Assert-QemuClean([string] $Path) {
        $c = Get-QemuCheck $Path
        "$Path exit=$($c.Exit) corruptions=$($c.Corruptions) leaks=$($c.Leaks)" | Should -Be "$Path exit=0 corruptions=0 leaks=0"
    }


    function Get-QemuInfo([string] $Path) { (qemu-img info -f qcow2 --output=json $Path) -join "`n" | ConvertFrom-Json }
}

Describe 'qcow2 disks' {
    BeforeEach { $dir = New-TestFolder; Push-Location $dir }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    Context 'New-VmDisk' {
        It 'creates a qcow2 image by its .qcow2 name that qemu-img calls clean, of the asked size' -Skip:$noQemu {
            $disk = New-VmDisk ./base.qcow2 1GB
            $disk.Format | Should -Be 'Qcow2'
            $disk.Type | Should -Be 'Dynamic'
            Assert-QemuClean (Join-Path $dir 'base.qcow2')
            $info = Get-QemuInfo ./base.qcow2
            $info.'virtual-size' | Should -Be 1GB
            $info.'cluster-size' | Should -Be 65536
        }

        It 'creates qcow2 with -Format Qcow2 whatever the name, with the asked cluster size' -Skip:$noQemu {
            $disk = New-VmDisk ./base.img 64MB -Format Qcow2 -BlockSizeBytes 4KB
            $disk.Format | Should -Be 'Qcow2'
            (Get-QemuInfo ./base.img).'cluster-size' | Should -Be 4096
            Assert-QemuClean (Join-Path $dir 'base.img')
        }

        It 'creates an overlay that qemu reads through, with the backing file relative and its format recorded' -Skip:$noQemu {
            New-VmDisk ./base.qcow2 64MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'base.qcow2') 1MB (Get-RandomBytes 200000 1)
            New-Item -ItemType Directory ./clones | Out-Null
            $child = New-VmDisk ./clones/child.qcow2 -ParentPath ./base.qcow2
            $child.Type | Should -Be 'Differencing'
            $info = Get-QemuInfo ./clones/child.qcow2
            $info.'backing-filename' | Should -Be '../base.qcow2'
            $info.'backing-filename-format' | Should -Be 'qcow2'
            Write-DiskBytes (Join-Path $dir 'clones/child.qcow2') (1MB + 5000) (Get-RandomBytes 70000 2)
            Assert-QemuClean (Join-Path $dir 'clones/child.qcow2')
            Get-QemuContentHash ./clones/child.qcow2 qcow2 | Should -Be (Get-DiskContentHash (Join-Path $dir 'clones/child.qcow2'))
        }

        It 'makes qcow2 overlays of VMDK, raw and VHDX parents that qemu reads as VmClone does (<_>)' -Skip:$noQemu -ForEach 'vmdk', 'raw', 'vhdx' {
            $parent = Join-Path $dir "base.$_"
            New-VmDisk $parent 16MB | Out-Null
            Write-DiskBytes $parent 4096 (Get-RandomBytes 300000 3)
            $child = Join-Path $dir 'child.qcow2'
            (New-VmDisk $child -ParentPath $parent).Format | Should -Be 'Qcow2'
            (Get-QemuInfo $child).'backing-filename-format' | Should -Be $_
            Write-DiskBytes $child 100000 (Get-RandomBytes 5000 4)
            Assert-QemuClean $child
            Get-QemuContentHash $child qcow2 | Should -Be (Get-DiskContentHash $child)
        }
    }

    Context 'Get-VmDisk' {
        It 'shows the qcow2 facts: cluster size, compat, extended L2, compression, backing file stored and resolved, snapshots, dirty and corrupt' -Skip:$noQemu {
            qemu-img create -q -f qcow2 -o cluster_size=128k,extended_l2=on,compression_type=zstd ./base.qcow2 64M
            New-Item -ItemType Directory ./c | Out-Null
            qemu-img create -q -f qcow2 -b ../base.qcow2 -F qcow2 ./c/child.qcow2
            $info = Get-VmDisk ./c/child.qcow2
            $info.Qcow2 | Should -Not -BeNullOrEmpty
            $info.Qcow2.ClusterSize | Should -Be 65536
            $info.Qcow2.Compat | Should -Be '1.1'
            $info.Qcow2.BackingFile | Should -Be '../base.qcow2'
            $info.Qcow2.BackingFileResolved | Should -Be (Join-Path $dir 'base.qcow2')
            $info.Qcow2.BackingFormat | Should -Be 'qcow2'
            $info.Qcow2.SnapshotCount | Should -Be 0
            $info.Qcow2.IsDirty | Should -BeFalse
            $info.Qcow2.IsCorrupt | Should -BeFalse
            $base = Get-VmDisk ./base.qcow2
            $base.Qcow2.ClusterSize | Should -Be 131072
            $base.Qcow2.ExtendedL2 | Should -BeTrue
            $base.Qcow2.CompressionType | Should -Be 'Zstd'
            $base.Qcow2.BackingFile | Should -BeNullOrEmpty
            qemu-img create -q -f qcow2 -o compat=0.10 ./old.qcow2 16M
            (Get-VmDisk ./old.qcow2).Qcow2.Compat | Should -Be '0.10'
            qemu-img snapshot -c first ./old.qcow2
            (Get-VmDisk ./old.qcow2).Qcow2.SnapshotCount | Should -Be 1
        }

        It 'leaves the qcow2 facts out of other formats' {
            New-VmDisk ./base.vhdx 64MB | Out-Null
            (Get-VmDisk ./base.vhdx).Qcow2 | Should -BeNullOrEmpty
        }
    }

    Context 'Test-VmDisk' {
        It 'finds a clean image healthy, as qemu-img check does' -Skip:$noQemu {
            New-VmDisk ./base.qcow2 64MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'base.qcow2') 0 (Get-RandomBytes 300000 5)
            $r = Test-VmDisk ./base.qcow2
            $r.IsHealthy | Should -BeTrue
            $r.Leaks.Count | Should -Be 0
            Assert-QemuClean (Join-Path $dir 'base.qcow2')
        }

        It 'lists leaked clusters apart from corruptions, counting as many as qemu-img check' -Skip:$noQemu {
            New-VmDisk ./base.qcow2 64MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'base.qcow2') 0 (Get-RandomBytes 300000 5)
            # Raise the refcount of the L1 table's cluster (refcount block at 128 KiB, 16-bit entries): a leak, harmless.
            $path = Join-Path $dir 'base.qcow2'
            $fs = [IO.File]::Open($path, 'Open', 'ReadWrite')
            try { $fs.Position = 128KB + 2 * 3; $fs.WriteByte(0); $fs.WriteByte(2) } finally { $fs.Dispose() }
            (Get-QemuCheck $path).Leaks | Should -Be 1
            $r = Test-VmDisk ./base.qcow2
            $r.IsHealthy | Should -BeTrue
            $r.Problems.Count | Should -Be 0
            $r.Leaks.Count | Should -Be 1
            $r.Leaks[0].Kind | Should -Be 'Leak'
            $r.Leaks[0].Path | Should -Be $path
        }

        It 'reports a cluster in use counted free as a corruption, as qemu-img check does' -Skip:$noQemu {
            New-VmDisk ./base.qcow2 64MB | Out-Null
            $path = Join-Path $dir 'base.qcow2'
            Write-DiskBytes $path 0 (Get-RandomBytes 300000 5)
            # Count the L2 table (cluster 4, after header, refcount table, block and L1) free.
            $fs = [IO.File]::Open($path, 'Open', 'ReadWrite')
            try { $fs.Position = 128KB + 2 * 5; $fs.WriteByte(0); $fs.WriteByte(0) } finally { $fs.Dispose() }
            (Get-QemuCheck $path).Corruptions | Should -BeGreaterThan 0
            $r = Test-VmDisk ./base.qcow2
            $r.IsHealthy | Should -BeFalse
            $r.Problems.Kind | Should -Contain 'Corruption'
            ($r.Problems.Description -join "`n") | Should -BeLike '*refcount=0 reference=1*'
        }
    }

    Context 'Convert-VmDisk' {
        It 'converts to qcow2 and back, zero runs kept as holes, qemu reading what VmClone reads (<_>)' -Skip:$noQemu -ForEach 'vhdx', 'vmdk' {
            $source = Join-Path $dir "source.$_"
            New-VmDisk $source 256MB | Out-Null
            Write-DiskBytes $source 3MB (Get-RandomBytes 500000 6)
            Write-DiskBytes $source 200MB (Get-RandomBytes 100000 7)
            Write-DiskBytes $source 100MB ([byte[]]::new(4MB)) # zeros written: no data
            $q = Join-Path $dir 'copy.qcow2'
            (Convert-VmDisk $source -DestinationPath $q).Format | Should -Be 'Qcow2'
            Assert-QemuClean $q
            $hash = Get-DiskContentHash $source
            Get-QemuContentHash $q qcow2 | Should -Be $hash
            (Get-Item $q).Length | Should -BeLessThan 2MB
            $back = Join-Path $dir "back.$_"
            Convert-VmDisk $q -DestinationPath $back | Out-Null
            Get-DiskContentHash $back | Should -Be $hash
        }
    }

    Context 'Merge-VmDisk' {
        It 'commits an overlay into its qcow2 parent as qemu-img commit does, the parent checked clean' -Skip:$noQemu {
            New-VmDisk ./base.qcow2 64MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'base.qcow2') 0 (Get-RandomBytes 400000 8)
            New-VmDisk ./child.qcow2 -ParentPath ./base.qcow2 | Out-Null
            Write-DiskBytes (Join-Path $dir 'child.qcow2') 300000 (Get-RandomBytes 500000 9)
            $hash = Get-DiskContentHash (Join-Path $dir 'child.qcow2')
            Merge-VmDisk ./child.qcow2 -DestinationPath ./base.qcow2 | Out-Null
            Test-Path ./child.qcow2 | Should -BeFalse
            Assert-QemuClean (Join-Path $dir 'base.qcow2')
            Get-QemuContentHash ./base.qcow2 qcow2 | Should -Be $hash
        }
    }

    Context 'Set-VmDisk' {
        It 're-points an overlay at a copy of its parent (metadata only), qemu following the new name' -Skip:$noQemu {
            New-VmDisk ./base.qcow2 64MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'base.qcow2') 0 (Get-RandomBytes 100000 10)
            New-VmDisk ./child.qcow2 -ParentPath ./base.qcow2 | Out-Null
            Write-DiskBytes (Join-Path $dir 'child.qcow2') 50000 (Get-RandomBytes 1000 11)
            $hash = Get-DiskContentHash (Join-Path $dir 'child.qcow2')
            New-Item -ItemType Directory ./moved | Out-Null
            Copy-Item ./base.qcow2 ./moved/base.qcow2
            Set-VmDisk ./child.qcow2 -ParentPath ./moved/base.qcow2
            Remove-Item ./base.qcow2
            (Get-QemuInfo ./child.qcow2).'backing-filename' | Should -Be 'moved/base.qcow2'
            Assert-QemuClean (Join-Path $dir 'child.qcow2')
            Get-QemuContentHash ./child.qcow2 qcow2 | Should -Be $hash
        }

        It 'rebases an overlay onto other content keeping every byte it shows (-PreserveContent)' -Skip:$noQemu {
            New-VmDisk ./old.qcow2 64MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'old.qcow2') 0 (Get-RandomBytes 600000 12)
            New-VmDisk ./new.qcow2 64MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'new.qcow2') 200000 (Get-RandomBytes 900000 13)
            New-VmDisk ./child.qcow2 -ParentPath ./old.qcow2 | Out-Null
            Write-DiskBytes (Join-Path $dir 'child.qcow2') 100000 (Get-RandomBytes 3000 14)
            $hash = Get-DiskContentHash (Join-Path $dir 'child.qcow2')
            Set-VmDisk ./child.qcow2 -ParentPath ./new.qcow2 -PreserveContent
            Remove-Item ./old.qcow2
            Assert-QemuClean (Join-Path $dir 'child.qcow2')
            (Get-QemuInfo ./child.qcow2).'backing-filename' | Should -Be 'new.qcow2'
            Get-QemuContentHash ./child.qcow2 qcow2 | Should -Be $hash
        }
    }
}

Describe 'a qcow2 store' {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01 -Folder $dir -Format Qcow2 -DataInBase
        $volumes = { param($clone) Get-VmVolume -Clone $clone -Store $store }
        $assertAllClean = {
            foreach ($v in @(Get-VmVolume -Base win11 -Store $store) + @(Get-VmClone -Store $store | ForEach-Object { Get-VmVolume -Clone $_.Name -Store $store })) {
                $v.Path | Should -BeLike '*.qcow2'
                Assert-QemuClean $v.Path
            }
        }
    }
    AfterEach {
        if ($holder -and -not $holder.HasExited) { $holder.Kill(); $holder.WaitForExit() }
        Remove-TestFolder $dir
    }

    It 'keeps a base and clones qemu opens by themselves, through writes by qemu, restore, clearing, rebase and removal, every volume checked clean after each step' -Skip:($noQemu -or $noQemuIo) {
        (Get-VmDisk (Get-TestVolumePath $store -Base win11 -Volume system)).Format | Should -Be 'Qcow2'
        & $assertAllClean
        $system = Get-TestVolumePath $store lab-01 system
        $data = Get-TestVolumePath $store lab-01 data
        # qemu needs no backing chain spelled out: the name is relative and the format recorded.
        $info = Get-QemuInfo $system
        [IO.Path]::IsPathRooted($info.'backing-filename') | Should -BeFalse
        $info.'backing-filename-format' | Should -Be 'qcow2'
        [IO.Path]::GetFullPath($info.'full-backing-filename') | Should -Be (Get-TestVolumePath $store -Base win11 -Volume system)
        $baseSystem = Get-QemuContentHash (Get-TestVolumePath $store -Base win11 -Volume system) qcow2

        qemu-io -f qcow2 -c 'write -P 0xab 1M 64k' $system | Out-Null
        $LASTEXITCODE | Should -Be 0
        qemu-io -f qcow2 -c 'write -P 0xcd 3M 100k' $data | Out-Null
        (Read-DiskBytes $system 1MB 65536) | Where-Object { $_ -ne 0xab } | Should -BeNullOrEmpty
        Get-DiskContentHash $system | Should -Be (Get-QemuContentHash $system qcow2)
        $dataHash = Get-DiskContentHash $data
        & $assertAllClean

        Restore-VmClone lab-01 -Store $store -Confirm:$false | Out-Null
        $system = Get-TestVolumePath $store lab-01 system
        Get-QemuContentHash $system qcow2 | Should -Be $baseSystem
        Get-DiskContentHash $system | Should -Be $baseSystem
        Get-DiskContentHash (Get-TestVolumePath $store lab-01 data) | Should -Be $dataHash
        & $assertAllClean

        $temp = Get-TestVolumePath $store lab-01 temp
        qemu-io -f qcow2 -c 'write -P 0x11 0 64k' $temp | Out-Null
        Clear-VmTemporaryVolume lab-01 -Store $store -Confirm:$false | Out-Null
        (Read-DiskBytes (Get-TestVolumePath $store lab-01 temp) 0 65536) | Where-Object { $_ -ne 0 } | Should -BeNullOrEmpty
        & $assertAllClean

        qemu-io -f qcow2 -c 'write -P 0x22 2M 4k' (Get-TestVolumePath $store lab-01 system) | Out-Null
        New-VmBase win11-v2 -FromClone lab-01 -Store $store | Out-Null
        Invoke-VmRebase lab-01 -NewBase win11-v2 -Store $store -Confirm:$false | Out-Null
        (Get-VmClone lab-01 -Store $store).Base | Should -Be 'win11-v2'
        Get-DiskContentHash (Get-TestVolumePath $store lab-01 data) | Should -Be $dataHash
        Get-QemuContentHash (Get-TestVolumePath $store lab-01 data) qcow2 | Should -Be $dataHash
        [IO.Path]::GetFullPath((Get-QemuInfo (Get-TestVolumePath $store lab-01 system)).'full-backing-filename') | Should -Be (Get-TestVolumePath $store -Base win11-v2 -Volume system)
        & $assertAllClean
        foreach ($v in Get-VmVolume -Base win11-v2 -Store $store) { Assert-QemuClean $v.Path }

        Remove-VmClone lab-01 -Store $store -Confirm:$false
        Get-VmClone -Store $store | Should -BeNullOrEmpty
        Test-Path (Join-Path $store 'clones/lab-01') | Should -BeFalse
    }

    It 'refuses to restore a clone while a qemu holds its image, and restores it once qemu has let go' -Skip:($noQemuIo -or -not $IsLinux) {
        $system = Get-TestVolumePath $store lab-01 system
        qemu-io -f qcow2 -c 'write -P 0xab 1M 64k' $system | Out-Null
        $before = (Get-FileHash $system).Hash
        # qemu-io keeps the image open, locked as a running qemu locks it, while its input stays
        # open: started directly with its input and output ours (no shell between, its output
        # drained so it never waits on a full pipe).
        $start = [Diagnostics.ProcessStartInfo]::new('qemu-io')
        foreach ($a in '-f', 'qcow2', $system) { $start.ArgumentList.Add($a) }
        $start.RedirectStandardInput = $true
        $start.RedirectStandardOutput = $true
        $start.RedirectStandardError = $true
        $start.UseShellExecute = $false
        $holder = [Diagnostics.Process]::Start($start)
        $holder.BeginOutputReadLine(); $holder.BeginErrorReadLine()
        # Under a loaded machine qemu-io can take many seconds to start: the restore is tried only
        # once qemu's own tools see the image locked.
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $locked = $false
        while (-not $locked -and -not $holder.HasExited -and $watch.Elapsed.TotalSeconds -lt 60) {
            $busy = qemu-img info -f qcow2 $system 2>&1 | Out-String
            $locked = $LASTEXITCODE -ne 0 -and $busy -like '*lock*'
            if (-not $locked) { Start-Sleep -Milliseconds 100 }
        }
        "locked: $locked, qemu-io exited: $($holder.HasExited)" | Should -Be 'locked: True, qemu-io exited: False' -Because 'qemu-io holds the image locked before the restore is tried'
        $e = try { Restore-VmClone lab-01 -Store $store -Confirm:$false -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -BeLike 'VolumeInUse,*'
        $e.Exception.Message | Should -BeLike "*$system*"
        (Get-FileHash $system).Hash | Should -Be $before
        $holder.StandardInput.Close()
        if (-not $holder.WaitForExit(10000)) { $holder.Kill() }
        $holder.WaitForExit()
        Start-Sleep -Milliseconds 300
        Restore-VmClone lab-01 -Store $store -Confirm:$false | Out-Null
        & $assertAllClean
    }
}
