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

    # sha256 of a disk's content as qemu reads it (fixed and dynamic VHD only: qemu ignores a differencing disk's parent).
    function Get-QemuContentHash([string] $Path, [string] $Format) {
        $raw = Join-Path ([IO.Path]::GetTempPath()) ('vmclone-qemu-' + [guid]::NewGuid().ToString('N') + '.raw')
        try {
            qemu-img convert -f $Format -O raw $Path $raw
            $LASTEXITCODE | Should -Be 0
            (Get-FileHash -Algorithm SHA256 $raw).Hash.ToLowerInvariant()
        }
        finally { Remove-Item -LiteralPath $raw -Force -ErrorAction SilentlyContinue }
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
