# Rename-VmBase by parameter and piped: the base's folder and manifest take the new name, every
# clone is re-pointed (metadata only) and reads as before, with no BaseModified; -WhatIf changes
# nothing and names every file that changes; a taken or invalid name and a volume in use are refused.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:noQemu = Get-OracleSkip 'qemu-img'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force


    function Get-FleetHashes {
        foreach ($c in (Get-VmClone -Store $store).Name) {
            foreach ($v in 'system', 'temp', 'data') { "$c/$v " + (Get-DiskContentHash (Get-TestVolumePath $store $c $v)) }
        }
    }

    # The bytes of every base file: a rename must not write one.
    function Get-BaseFileHashes([string] $Base) {
        Get-ChildItem (Join-Path $store "bases/$Base") -Filter '*.vhdx' | Sort-Object Name | ForEach-Object { "$($_.Name) " + (Get-FileHash -LiteralPath $_.FullName).Hash }
    }
}

Describe 'Rename-VmBase' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir -DataInBase
        foreach ($c in 'lab-01', 'lab-02') {
            Write-DiskText (Get-TestVolumePath $store $c 'system') 8MB "$c installed software"
            Write-DiskText (Get-TestVolumePath $store $c 'data') 3MB "$c documents"
        }
    }
    AfterAll { Remove-TestFolder $dir }

    It 'changes nothing with -WhatIf and names every file that changes' {
        $before = Get-TestSnapshot $store
        $said = Get-WhatIfText { Rename-VmBase win11 -NewName win11-lab -Store $store -WhatIf }
        $said | Should -BeLike "*Rename base 'win11' to 'win11-lab'*"
        $said | Should -BeLike '*bases/win11 -> bases/win11-lab*'
        $said | Should -BeLike '*bases/win11-lab/base.json*'
        foreach ($c in 'lab-01', 'lab-02') {
            $said | Should -BeLike "*clones/$c/clone.json: its base becomes 'win11-lab'*"
            foreach ($v in 'system', 'temp', 'data') { $said | Should -BeLike "*clone '$c' $v (*): parent link re-pointed to 'bases/win11-lab/$v.vhdx'*" }
        }
        Get-TestSnapshot $store | Should -Be $before
    }

    It 'renames by parameter: every clone re-pointed, reading as before, no base file written' {
        $hashes = Get-FleetHashes
        $files = Get-BaseFileHashes win11
        Rename-VmBase win11 -NewName win11-2026-11 -Store $store | Should -BeNullOrEmpty
        (Get-VmBase -Store $store).Name | Should -Be 'win11-2026-11'
        (Get-VmClone -Base win11-2026-11 -Store $store).Name | Should -Be 'lab-01', 'lab-02'
        Get-VmClone -Store $store | ForEach-Object { $_.State | Should -Be 'Ready' }
        Get-FleetHashes | Should -Be $hashes
        Get-BaseFileHashes win11-2026-11 | Should -Be $files
        $report = Test-VmStore -Store $store
        $report.IsHealthy | Should -BeTrue
        $report.Problems | Should -BeNullOrEmpty
        (Get-VmDisk (Get-TestVolumePath $store lab-01 'system') -Chain)[1].Path | Should -BeLike '*bases/win11-2026-11/system.vhdx'
    }

    It 'renames piped with -PassThru, and the clones work on the renamed base' {
        $hashes = Get-FleetHashes
        $renamed = Get-VmBase win11-2026-11 -Store $store | Rename-VmBase -NewName win11-lab -PassThru
        $renamed.Name | Should -Be 'win11-lab'
        Get-FleetHashes | Should -Be $hashes
        Restore-VmClone lab-01 -Store $store -Force
        New-VmClone lab-03 -Base win11-lab -Store $store | Out-Null
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }

    It 'is read identically by qemu-img after the rename' -Skip:$noQemu {
        $qDir = Join-Path $dir 'vmdk'
        $qStore = Join-Path $qDir 'store'
        New-Item -ItemType Directory $qDir | Out-Null
        New-TestFleet $qStore -Clone lab-01 -Folder $qDir -DataInBase -Format Qcow2
        Write-DiskText ((Get-VmVolume -Clone lab-01 -Store $qStore | Where-Object Name -eq data).Path) 3MB 'lab-01 documents'
        $data = (Get-VmVolume -Clone lab-01 -Store $qStore | Where-Object Name -eq data).Path
        $raw = Join-Path $qDir 'before.raw'
        qemu-img convert -O raw $data $raw
        Rename-VmBase win11 -NewName win11-q -Store $qStore
        $after = Join-Path $qDir 'after.raw'
        qemu-img convert -O raw $data $after
        $LASTEXITCODE | Should -Be 0
        (Get-FileHash $after).Hash | Should -Be (Get-FileHash $raw).Hash
    }

    It 'refuses a name another base has with BaseExists, and an invalid one with InvalidName' -ForEach @(
        @{ NewName = 'other'; Id = 'BaseExists' }
        @{ NewName = 'NUL'; Id = 'InvalidName' }) {
        if (-not (Get-VmBase other -Store $store -ErrorAction SilentlyContinue)) {
            New-VmBase other -Store $store -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 16MB } | Out-Null
        }
        $before = Get-TestSnapshot $store
        $err = $null
        Rename-VmBase win11-lab -NewName $NewName -Store $store -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -Be "$Id,VmClone.PowerShell.Commands.RenameVmBaseCommand"
        Get-TestSnapshot $store | Should -Be $before
    }
}

Describe 'Rename-VmBase while a clone is in use' -Skip:(-not $IsLinux) {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir
        $system = Get-TestVolumePath $store lab-02 'system'
        $ready = "$system.held"
        $script = "import fcntl, sys, time`nf = open(sys.argv[1], 'rb+')`nfcntl.lockf(f, fcntl.LOCK_EX)`nopen(sys.argv[2], 'w').close()`ntime.sleep(120)"
        $lock = Start-Process -FilePath 'python3' -ArgumentList @('-c', "`"$script`"", "`"$system`"", "`"$ready`"") -PassThru
        $watch = [Diagnostics.Stopwatch]::StartNew()
        while (-not (Test-Path -LiteralPath $ready) -and $watch.Elapsed.TotalSeconds -lt 30) { Start-Sleep -Milliseconds 20 }
        Remove-Item -LiteralPath $ready -ErrorAction SilentlyContinue
    }
    AfterAll {
        if ($lock -and -not $lock.HasExited) { $lock.Kill(); $lock.WaitForExit() }
        Remove-TestFolder $dir
    }

    It 'is refused with VolumeInUse, naming the clone''s file, and nothing moves' {
        $e = try { Rename-VmBase win11 -NewName win11-v9 -Store $store -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'VolumeInUse,VmClone.PowerShell.Commands.RenameVmBaseCommand'
        $e.Exception.Message | Should -BeLike "*$system*"
        (Get-VmBase -Store $store).Name | Should -Be 'win11'
        (Get-VmClone -Base win11 -Store $store).Name | Should -Be 'lab-01', 'lab-02'
    }
}
