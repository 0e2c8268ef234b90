BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:noQemu = Get-OracleSkip 'qemu-img'
    # libvhdi's python binding (Debian's python3), the only reader of differencing VHDs besides Windows.
    $script:noVhdi = ($env:CI -ne 'true') -and -not ((Test-Path /usr/bin/python3) -and $(& /usr/bin/python3 -c 'import pyvhdi' 2>$null; $LASTEXITCODE -eq 0))
    $script:noFlock = -not (Get-Command flock -CommandType Application -ErrorAction SilentlyContinue)
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    # sha256 of a VHD chain's content as libvhdi reads it: the paths from the base up, each
    # layer linked to the one below with set_parent (every file object kept referenced, as
    # libvhdi reads through the parent it was given).
    function Get-LibvhdiHash([string[]] $Chain) {
        $script = @'
import sys, pyvhdi, hashlib
files = []
for p in sys.argv[1:]:
    f = pyvhdi.file(); f.open(p); files.append(f)
for i in range(1, len(files)):
    files[i].set_parent(files[i - 1])
top = files[-1]; h = hashlib.sha256(); n = top.get_media_size(); o = 0
while o < n:
    d = top.read_buffer_at_offset(min(1 << 22, n - o), o); h.update(d); o += len(d)
print(h.hexdigest())
'@
        $out = & /usr/bin/python3 -c $script @Chain
        $LASTEXITCODE | Should -Be 0
        ($out | Select-Object -Last 1).Trim()
    }

    # The layers of a disk's chain from the base up, as VmClone opens them.
    function Get-ChainPaths([string] $Path) {
        $disk = [VmClone.Disks.VirtualDisk]::Open($Path, [IO.FileAccess]::Read)
        try { $paths = @($disk.Layers | ForEach-Object Path); [array]::Reverse($paths); , $paths }
        finally { $disk.Dispose() }
    }

    # libvhdi reads the disk's whole chain as VmClone does.
    function Assert-LibvhdiAgrees([string] $Path) {
        $chain = Get-ChainPaths $Path
        "$Path $(Get-LibvhdiHash $chain)" | Should -Be "$Path $(Get-DiskContentHash $Path)"
    }

}

Describe 'a VHD store' {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01 -Folder $dir -Format Vhd -DataInBase
        $allVolumes = {
            @(Get-VmVolume -Base win11 -Store $store) + @(Get-VmClone -Store $store | ForEach-Object { Get-VmVolume -Clone $_.Name -Store $store })
        }
    }
    AfterEach {
        if ($holder -and -not $holder.HasExited) { $holder.Kill($true); $holder.WaitForExit() }
        Remove-TestFolder $dir
    }

    It 'keeps a base and clones as VHD differencing disks with W2ru and W2ku locators, libvhdi reading each clone as VmClone does through restore, clearing, rebase and removal' -Skip:$noVhdi {
        foreach ($v in & $allVolumes) { $v.Path | Should -BeLike '*.vhd' }
        $baseSystem = Get-TestVolumePath $store -Base win11 -Volume system
        (Get-VmDisk $baseSystem).Format | Should -Be 'Vhd'
        $system = Get-TestVolumePath $store lab-01 system
        $data = Get-TestVolumePath $store lab-01 data
        $info = Get-VmDisk $system
        $info.Type | Should -Be 'Differencing'
        $info.ParentPath | Should -Be $baseSystem
        # The locators as the engine writes them: W2ru relative (".\" or "..\", backslashes), W2ku absolute.
        $info.Details['ParentLocators'] | Should -BeLike 'Relative: ..\*\win11\*; Absolute: /*'
        $baseSystemHash = Get-DiskContentHash $baseSystem

        Write-DiskBytes $system 1MB (Get-RandomBytes 65536 1)
        Write-DiskBytes $data 3MB (Get-RandomBytes 100000 2)
        Assert-LibvhdiAgrees $system
        Assert-LibvhdiAgrees $data
        $dataHash = Get-DiskContentHash $data
        (Get-VmClone lab-01 -Store $store).State | Should -Be 'Ready'

        Restore-VmClone lab-01 -Store $store -Confirm:$false | Out-Null
        $system = Get-TestVolumePath $store lab-01 system
        Get-DiskContentHash $system | Should -Be $baseSystemHash
        Get-LibvhdiHash (Get-ChainPaths $system) | Should -Be $baseSystemHash
        Get-DiskContentHash (Get-TestVolumePath $store lab-01 data) | Should -Be $dataHash
        Assert-LibvhdiAgrees (Get-TestVolumePath $store lab-01 data)

        $temp = Get-TestVolumePath $store lab-01 temp
        Write-DiskBytes $temp 0 (Get-RandomBytes 65536 3)
        Clear-VmTemporaryVolume lab-01 -Store $store -Confirm:$false | Out-Null
        $temp = Get-TestVolumePath $store lab-01 temp
        (Read-DiskBytes $temp 0 65536) | Where-Object { $_ -ne 0 } | Should -BeNullOrEmpty
        Assert-LibvhdiAgrees $temp

        Write-DiskBytes (Get-TestVolumePath $store lab-01 system) 2MB (Get-RandomBytes 4096 4)
        New-VmBase win11-v2 -FromClone lab-01 -Store $store | Out-Null
        (Get-VmDisk (Get-TestVolumePath $store -Base win11-v2 -Volume system)).Format | Should -Be 'Vhd'
        Write-DiskBytes (Get-TestVolumePath $store lab-01 data) 5MB (Get-RandomBytes 5000 5)
        $dataHash = Get-DiskContentHash (Get-TestVolumePath $store lab-01 data)
        Invoke-VmRebase lab-01 -NewBase win11-v2 -Store $store -Confirm:$false | Out-Null
        (Get-VmClone lab-01 -Store $store).Base | Should -Be 'win11-v2'
        $data = Get-TestVolumePath $store lab-01 data
        Get-DiskContentHash $data | Should -Be $dataHash
        Get-LibvhdiHash (Get-ChainPaths $data) | Should -Be $dataHash
        $system = Get-TestVolumePath $store lab-01 system
        (Get-VmDisk $system).ParentPath | Should -Be (Get-TestVolumePath $store -Base win11-v2 -Volume system)
        Get-LibvhdiHash (Get-ChainPaths $system) | Should -Be (Get-DiskContentHash (Get-TestVolumePath $store -Base win11-v2 -Volume system))
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue

        Remove-VmClone lab-01 -Store $store -Confirm:$false
        Get-VmClone -Store $store | Should -BeNullOrEmpty
        Test-Path (Join-Path $store 'clones/lab-01') | Should -BeFalse
    }

    It 'refuses to restore a clone while another program holds its VHD, naming the file, and restores it once it has let go' -Skip:($noFlock -or -not $IsLinux) {
        $system = Get-TestVolumePath $store lab-01 system
        Write-DiskBytes $system 1MB (Get-RandomBytes 4096 6)
        # (Reading the file while flock holds it is refused: its length and time tell it unchanged.)
        $before = Get-Item $system | ForEach-Object { "$($_.Length) $($_.LastWriteTimeUtc.Ticks)" }
        $holder = Start-Process -FilePath 'flock' -ArgumentList @($system, 'sleep', '60') -PassThru
        Start-Sleep -Milliseconds 300
        $e = try { Restore-VmClone lab-01 -Store $store -Confirm:$false -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -BeLike 'VolumeInUse,*'
        $e.Exception.Message | Should -BeLike "*$system*"
        Get-Item $system | ForEach-Object { "$($_.Length) $($_.LastWriteTimeUtc.Ticks)" } | Should -Be $before
        $holder.Kill($true); $holder.WaitForExit()
        Restore-VmClone lab-01 -Store $store -Confirm:$false | Out-Null
        Get-DiskContentHash (Get-TestVolumePath $store lab-01 system) | Should -Be (Get-DiskContentHash (Get-TestVolumePath $store -Base win11 -Volume system))
    }
}

Describe 'VHD disks' {
    BeforeAll {
        # The footer's raw bytes (the copy at the end), and a footer byte changed in both copies with the checksum made right again.
        function Get-VhdFooter([string] $Path) {
            $fs = [IO.File]::OpenRead($Path)
            try { $fs.Position = $fs.Length - 512; $b = [byte[]]::new(512); $fs.ReadExactly($b, 0, 512); , $b } finally { $fs.Dispose() }
        }
        function Set-VhdFooterByte([string] $Path, [int] $Offset, [byte] $Value) {
            $fs = [IO.File]::Open($Path, 'Open', 'ReadWrite')
            try {
                foreach ($at in 0, ($fs.Length - 512)) {
                    $fs.Position = $at; $b = [byte[]]::new(512); $fs.ReadExactly($b, 0, 512)
                    $b[$Offset] = $Value
                    for ($i = 64; $i -lt 68; $i++) { $b[$i] = 0 }
                    $sum = 0; foreach ($x in $b) { $sum += $x }
                    $c = [uint32](-bnot [uint32]$sum -band 0xFFFFFFFF)
                    $b[64] = ($c -shr 24) -band 0xFF; $b[65] = ($c -shr 16) -band 0xFF; $b[66] = ($c -shr 8) -band 0xFF; $b[67] = $c -band 0xFF
                    $fs.Position = $at; $fs.Write($b, 0, 512)
                }
            }
            finally { $fs.Dispose() }
        }
        function Get-Pyvhdi([string] $Path, [string] $Property) {
            $out = & /usr/bin/python3 -c "import sys, pyvhdi; f = pyvhdi.file(); f.open(sys.argv[1]); print(getattr(f, sys.argv[2]))" $Path $Property
            ($out | Select-Object -Last 1).Trim()
        }
    }
    BeforeEach { $dir = New-TestFolder; Push-Location $dir }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    Context 'New-VmDisk' {
        It 'creates a dynamic VHD by its .vhd name, by parameter and piped, that qemu-img reads (-f vpc) as VmClone does' -Skip:$noQemu {
            (New-VmDisk ./a.vhd 64MB).Format | Should -Be 'Vhd'
            ('./p.vhd' | New-VmDisk -SizeBytes 16MB).Format | Should -Be 'Vhd'
            foreach ($p in 'a.vhd', 'p.vhd') {
                $path = Join-Path $dir $p
                Write-DiskBytes $path 1MB (Get-RandomBytes 300000 21)
                (Get-VmDisk $path).Type | Should -Be 'Dynamic'
                Get-QemuContentHash $path vpc | Should -Be (Get-DiskContentHash $path)
            }
            ((qemu-img info -f vpc --output=json ./a.vhd) -join "`n" | ConvertFrom-Json).'virtual-size' | Should -Be 64MB
        }

        It 'makes a differencing VHD under Hyper-V''s .avhd name, libvhdi reading it over its parent as VmClone does' -Skip:$noVhdi {
            New-VmDisk ./base.vhd 32MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'base.vhd') 0 (Get-RandomBytes 500000 22)
            $child = New-VmDisk ./child.avhd -ParentPath ./base.vhd
            $child.Format | Should -Be 'Vhd'
            $child.Type | Should -Be 'Differencing'
            Write-DiskBytes (Join-Path $dir 'child.avhd') 100000 (Get-RandomBytes 3000 23)
            Assert-LibvhdiAgrees (Join-Path $dir 'child.avhd')
        }
    }

    Context 'Get-VmDisk' {
        It 'shows a differencing VHD''s facts as a Vhd object, by parameter and piped, as libvhdi and the footer tell them' -Skip:$noVhdi {
            New-VmDisk ./base.vhd 64MB | Out-Null
            New-Item -ItemType Directory ./c | Out-Null
            New-VmDisk ./c/child.vhd -ParentPath ./base.vhd | Out-Null
            $base = Join-Path $dir 'base.vhd'; $child = Join-Path $dir 'c/child.vhd'
            foreach ($info in @((Get-VmDisk ./c/child.vhd), (Get-Item ./c/child.vhd | Get-VmDisk))) {
                $v = $info.Vhd
                $v | Should -Not -BeNullOrEmpty
                $v.DiskType | Should -Be 'Differencing'
                $v.BlockSize | Should -Be 2MB
                $v.CreatorApplication | Should -Be 'win'
                $v.CreatorHostOs | Should -Be 'Wi2k'
                $footer = Get-VhdFooter $child
                "$($v.Cylinders)/$($v.Heads)/$($v.SectorsPerTrack)" | Should -Be "$($footer[56] * 256 + $footer[57])/$($footer[58])/$($footer[59])"
                $v.SizeFrom | Should -Be 'CurrentSize'
                $v.UniqueId.ToString() | Should -Be (Get-Pyvhdi $child identifier)
                $v.ParentUniqueId.ToString() | Should -Be (Get-Pyvhdi $child parent_identifier)
                $v.ParentUniqueId | Should -Be (Get-VmDisk ./base.vhd).Vhd.UniqueId
                $v.ParentName | Should -Be (Get-Pyvhdi $child parent_filename)
                $v.ParentName | Should -Be $base
                $v.ParentTimestamp | Should -BeOfType [datetime]
                $v.Hidden | Should -Be 0
                $v.Locators.Code | Should -Be @('W2ru', 'W2ku')
                $v.Locators[0].StoredPath | Should -Be '..\base.vhd'
                $v.Locators[0].Kind | Should -Be 'Relative'
                $v.Locators[1].StoredPath | Should -Be $base
                $v.Locators[1].Kind | Should -Be 'Absolute'
                $v.Locators.ResolvedPath | Should -Be @($base, $base)
                $v.Locators.FileExists | Should -Be @($true, $true)
            }
            Remove-Item ./base.vhd
            $gone = Get-VmDisk ./c/child.vhd -WarningAction SilentlyContinue
            $gone.Vhd.Locators.FileExists | Should -Be @($false, $false)
        }

        It 'tells the creator, size rule and disk type of qemu-made VHDs, and keeps XenServer''s hidden byte as read (<Sub>)' -Skip:$noQemu -ForEach @(
            @{ Sub = 'dynamic'; Options = 'subformat=dynamic'; Type = 'Dynamic'; Creator = 'qemu'; From = 'Geometry' }
            @{ Sub = 'fixed'; Options = 'subformat=fixed'; Type = 'Fixed'; Creator = 'qemu'; From = 'Geometry' }
            @{ Sub = 'dynamic, force_size'; Options = 'subformat=dynamic,force_size=on'; Type = 'Dynamic'; Creator = 'qem2'; From = 'CurrentSize' }
        ) {
            qemu-img create -q -f vpc -o $Options ./q.vhd 20M
            $v = (Get-VmDisk ./q.vhd).Vhd
            $v.DiskType | Should -Be $Type
            $v.CreatorApplication | Should -Be $Creator
            $v.SizeFrom | Should -Be $From
            if ($Type -eq 'Fixed') { $v.BlockSize | Should -BeNullOrEmpty } else { $v.BlockSize | Should -Be 2MB }
            (Get-VmDisk ./q.vhd).VirtualSize | Should -Be ((qemu-img info -f vpc --output=json ./q.vhd) -join "`n" | ConvertFrom-Json).'virtual-size'
            if ($Type -eq 'Dynamic') {
                Set-VhdFooterByte (Join-Path $dir 'q.vhd') 85 1
                (Get-Item ./q.vhd | Get-VmDisk).Vhd.Hidden | Should -Be 1
            }
        }

        It 'leaves the VHD facts out of other formats' {
            New-VmDisk ./base.vhdx 64MB | Out-Null
            (Get-VmDisk ./base.vhdx).Vhd | Should -BeNullOrEmpty
        }
    }

    Context 'a chain deeper than XenServer takes' {
        BeforeEach {
            New-VmDisk ./l0.vhd 4MB | Out-Null
            for ($i = 1; $i -le 30; $i++) { New-VmDisk "./l$i.vhd" -ParentPath "./l$($i - 1).vhd" | Out-Null }
        }

        It 'is a typed warning of Get-VmDisk on the top of 31 files, by parameter and piped, none on 30' {
            $info = Get-VmDisk ./l30.vhd -WarningVariable w -WarningAction SilentlyContinue
            $info.ChainDepth | Should -Be 31
            $info.Warnings.Kind | Should -Be 'VhdChainTooDeepForXenServer'
            $info.Warnings[0].Path | Should -Be (Join-Path $dir 'l30.vhd')
            $w.Count | Should -Be 1
            "$($w[0])" | Should -BeLike '*31 files*30*Merge-VmDisk*'
            (Get-Item ./l30.vhd | Get-VmDisk -WarningAction SilentlyContinue).Warnings.Kind | Should -Be 'VhdChainTooDeepForXenServer'
            (Get-VmDisk ./l29.vhd -WarningVariable w29).Warnings | Should -BeNullOrEmpty
            $w29.Count | Should -Be 0
            $chain = Get-VmDisk ./l30.vhd -Chain -WarningAction SilentlyContinue
            $chain.Count | Should -Be 31
            @($chain | Where-Object { $_.Warnings.Count -gt 0 }).Path | Should -Be @((Join-Path $dir 'l30.vhd'))
        }

        It 'is a typed warning of Test-VmDisk, the chain still healthy, by parameter and piped' {
            foreach ($r in @((Test-VmDisk ./l30.vhd -WarningVariable w -WarningAction SilentlyContinue), (Get-Item ./l30.vhd | Test-VmDisk -WarningAction SilentlyContinue))) {
                $r.IsHealthy | Should -BeTrue
                $r.Warnings.Kind | Should -Be 'VhdChainTooDeepForXenServer'
            }
            $w.Count | Should -Be 1
            (Test-VmDisk ./l29.vhd).Warnings | Should -BeNullOrEmpty
        }
    }

    Context 'Test-VmDisk' {
        It 'finds a VHD VmClone wrote healthy and one with a damaged footer not, naming the checksum, by parameter and piped' {
            New-VmDisk ./good.vhd 16MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'good.vhd') 0 (Get-RandomBytes 70000 24)
            (Test-VmDisk ./good.vhd).IsHealthy | Should -BeTrue
            Copy-Item ./good.vhd ./bad.vhd
            $fs = [IO.File]::Open((Join-Path $dir 'bad.vhd'), 'Open', 'ReadWrite')
            try { foreach ($at in 0, ($fs.Length - 512)) { $fs.Position = $at + 40; $fs.WriteByte(0x7F) } } finally { $fs.Dispose() }
            foreach ($r in @((Test-VmDisk ./bad.vhd -ErrorAction Continue 2>$null), (Get-Item ./bad.vhd | Test-VmDisk -ErrorAction Continue 2>$null))) {
                $r.IsHealthy | Should -BeFalse
                ($r.Problems.Description -join "`n") | Should -BeLike '*checksum*'
                $r.Problems[0].Path | Should -Be (Join-Path $dir 'bad.vhd')
            }
        }
    }

    Context 'Convert-VmDisk' {
        It 'converts VHDX to VHD and back, qemu-img (-f vpc) reading the VHD as VmClone does (<_>)' -Skip:$noQemu -ForEach 'by parameter', 'piped' {
            New-VmDisk ./source.vhdx 64MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'source.vhdx') 3MB (Get-RandomBytes 500000 25)
            Write-DiskBytes (Join-Path $dir 'source.vhdx') 50MB (Get-RandomBytes 100000 26)
            $hash = Get-DiskContentHash (Join-Path $dir 'source.vhdx')
            $out = if ($_ -eq 'piped') { Get-Item ./source.vhdx | Convert-VmDisk -DestinationPath ./copy.vhd } else { Convert-VmDisk ./source.vhdx -DestinationPath ./copy.vhd }
            $out.Format | Should -Be 'Vhd'
            Get-QemuContentHash (Join-Path $dir 'copy.vhd') vpc | Should -Be $hash
            (Get-Item ./copy.vhd).Length | Should -BeLessThan 8MB
            Convert-VmDisk ./copy.vhd -DestinationPath ./back.vhdx | Out-Null
            Get-DiskContentHash (Join-Path $dir 'back.vhdx') | Should -Be $hash
        }
    }

    Context 'Merge-VmDisk' {
        It 'merges a differencing VHD into its parent, qemu-img (-f vpc) reading the merged dynamic disk as the child read' -Skip:$noQemu {
            New-VmDisk ./base.vhd 32MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'base.vhd') 0 (Get-RandomBytes 400000 27)
            New-VmDisk ./child.vhd -ParentPath ./base.vhd | Out-Null
            Write-DiskBytes (Join-Path $dir 'child.vhd') 300000 (Get-RandomBytes 500000 28)
            $hash = Get-DiskContentHash (Join-Path $dir 'child.vhd')
            Get-Item ./child.vhd | Merge-VmDisk -DestinationPath ./base.vhd | Out-Null
            Test-Path ./child.vhd | Should -BeFalse
            Get-QemuContentHash (Join-Path $dir 'base.vhd') vpc | Should -Be $hash
            (Test-VmDisk ./base.vhd).IsHealthy | Should -BeTrue
        }
    }

    Context 'Set-VmDisk' {
        It 're-points a differencing VHD at a copy of its parent (W2ru and W2ku rewritten), libvhdi reading it over the copy' -Skip:$noVhdi {
            New-VmDisk ./base.vhd 16MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'base.vhd') 0 (Get-RandomBytes 100000 29)
            New-VmDisk ./child.vhd -ParentPath ./base.vhd | Out-Null
            Write-DiskBytes (Join-Path $dir 'child.vhd') 50000 (Get-RandomBytes 1000 30)
            $hash = Get-DiskContentHash (Join-Path $dir 'child.vhd')
            New-Item -ItemType Directory ./moved | Out-Null
            Copy-Item ./base.vhd ./moved/base.vhd
            Set-VmDisk ./child.vhd -ParentPath ./moved/base.vhd
            Remove-Item ./base.vhd
            $v = (Get-VmDisk ./child.vhd).Vhd
            $v.Locators.StoredPath | Should -Be @('.\moved\base.vhd', (Join-Path $dir 'moved/base.vhd'))
            Get-LibvhdiHash @((Join-Path $dir 'moved/base.vhd'), (Join-Path $dir 'child.vhd')) | Should -Be $hash
        }

        It 'rebases a differencing VHD onto other content keeping every byte it shows (-PreserveContent), libvhdi agreeing' -Skip:$noVhdi {
            New-VmDisk ./old.vhd 16MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'old.vhd') 0 (Get-RandomBytes 600000 31)
            New-VmDisk ./new.vhd 16MB | Out-Null
            Write-DiskBytes (Join-Path $dir 'new.vhd') 200000 (Get-RandomBytes 900000 32)
            New-VmDisk ./child.vhd -ParentPath ./old.vhd | Out-Null
            Write-DiskBytes (Join-Path $dir 'child.vhd') 100000 (Get-RandomBytes 3000 33)
            $hash = Get-DiskContentHash (Join-Path $dir 'child.vhd')
            Get-Item ./child.vhd | Set-VmDisk -ParentPath ./new.vhd -PreserveContent
            Remove-Item ./old.vhd
            Get-DiskContentHash (Join-Path $dir 'child.vhd') | Should -Be $hash
            Get-LibvhdiHash @((Join-Path $dir 'new.vhd'), (Join-Path $dir 'child.vhd')) | Should -Be $hash
        }
    }
}

Describe 'what the help says of VHD' {
    It 'names the VHD store, the Vhd facts and the chain warning in about_VmClone and the cmdlets'' help, and README no longer lists them as missing' {
        $about = Get-Help about_VmClone | Out-String
        $about | Should -BeLike '*New-VmBase -Format Vhd*'
        $about | Should -BeLike '*VhdChainTooDeepForXenServer*'
        $about | Should -BeLike '*VHD     read: fixed, dynamic and differencing*'
        (Get-Help New-VmBase -Full | Out-String) | Should -BeLike '*-Format Vhd keeps the base in VHD*'
        (Get-Help Get-VmDisk -Full | Out-String) | Should -BeLike '*A VHD file also has a Vhd property*'
        (Get-Help Test-VmDisk -Full | Out-String) | Should -BeLike '*VhdChainTooDeepForXenServer*'
        (Get-Help New-VmDisk -Full | Out-String) | Should -BeLike '*.vhd/.avhd*'
        (Get-Help Convert-VmDisk -Full | Out-String) | Should -BeLike '*A VHD destination*'
        $readme = Get-Content -Raw (Join-Path $PSScriptRoot '../../README.md')
        $readme | Should -BeLike '*VHD in the disk commands and the store*'
        $readme | Should -Not -BeLike '*Not yet: VHD as a store base format*'
    }
}
