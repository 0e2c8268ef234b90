# Rename-VmClone by parameter and piped: the folder and the manifest take the new name, every
# volume reads as before; -WhatIf changes nothing and names every file; a taken or invalid name
# and a volume in use are refused with nothing changed.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force


    function Get-CloneHashes([string] $Clone) {
        foreach ($v in 'system', 'temp', 'data') { Get-DiskContentHash (Get-TestVolumePath $store $Clone $v) }
    }
}

Describe 'Rename-VmClone' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02, lab-03 -Folder $dir -DataInBase
        foreach ($c in 'lab-01', 'lab-02') {
            Write-DiskText (Get-TestVolumePath $store $c 'system') 8MB "$c installed software"
            Write-DiskText (Get-TestVolumePath $store $c 'data') 3MB "$c documents"
        }
    }
    AfterAll { Remove-TestFolder $dir }

    It 'changes nothing with -WhatIf and names the folder, the manifest and every volume file' {
        $before = Get-TestSnapshot $store
        $said = Get-WhatIfText { Rename-VmClone lab-01 -NewName lab-99 -Store $store -WhatIf }
        $said | Should -BeLike "*Rename clone 'lab-01' to 'lab-99'*"
        $said | Should -BeLike '*clones/lab-01 -> clones/lab-99*'
        $said | Should -BeLike '*clones/lab-99/clone.json*'
        foreach ($v in 'system', 'temp', 'data') { $said | Should -BeLike "*moved from 'clones/lab-01/$v.vhdx'*" }
        Get-TestSnapshot $store | Should -Be $before
    }

    It 'renames by parameter: the clone keeps its base and every byte' {
        $hashes = Get-CloneHashes lab-01
        Rename-VmClone lab-01 -NewName lab-99 -Store $store | Should -BeNullOrEmpty
        (Get-VmClone -Store $store).Name | Should -Be 'lab-02', 'lab-03', 'lab-99'
        $c = Get-VmClone lab-99 -Store $store
        $c.Base | Should -Be 'win11'
        $c.State | Should -Be 'Ready'
        Get-CloneHashes lab-99 | Should -Be $hashes
        Test-Path (Join-Path $store 'clones/lab-01') | Should -BeFalse
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }

    It 'renames piped, and -PassThru writes the clone' {
        $hashes = Get-CloneHashes lab-02
        $renamed = Get-VmClone lab-02 -Store $store | Rename-VmClone -NewName kiosk-02 -PassThru
        $renamed.Name | Should -Be 'kiosk-02'
        Get-CloneHashes kiosk-02 | Should -Be $hashes
        Restore-VmClone kiosk-02 -Store $store -Force
        Read-DiskText (Get-TestVolumePath $store kiosk-02 'data') 3MB 18 | Should -Be 'lab-02 documents'
    }

    It 'refuses a name another clone has with CloneExists, and an invalid one with InvalidName' -ForEach @(
        @{ NewName = 'lab-03'; Id = 'CloneExists' }
        @{ NewName = 'LAB-03'; Id = 'CloneExists' }
        @{ NewName = 'a/b'; Id = 'InvalidName' }) {
        $before = Get-TestSnapshot $store
        $err = $null
        Rename-VmClone lab-99 -NewName $NewName -Store $store -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -Be "$Id,VmClone.PowerShell.Commands.RenameVmCloneCommand"
        Get-TestSnapshot $store | Should -Be $before
    }

    It 'refuses an unknown clone with CloneNotFound' {
        $err = $null
        'lab-42' | Rename-VmClone -NewName lab-43 -Store $store -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'CloneNotFound,VmClone.PowerShell.Commands.RenameVmCloneCommand'
    }
}

Describe 'Rename-VmClone of a clone in use' -Skip:(-not $IsLinux) {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01 -Folder $dir
        $system = Get-TestVolumePath $store lab-01 'system'
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

    It 'is refused with VolumeInUse, naming the file, and nothing moves' {
        $e = try { Rename-VmClone lab-01 -NewName lab-99 -Store $store -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'VolumeInUse,VmClone.PowerShell.Commands.RenameVmCloneCommand'
        $e.Exception.Message | Should -BeLike "*$system*"
        (Get-VmClone -Store $store).Name | Should -Be 'lab-01'
        @(Get-ChildItem (Join-Path $store 'clones') -Force | Where-Object Name -like '.*').Count | Should -Be 0
    }
}
