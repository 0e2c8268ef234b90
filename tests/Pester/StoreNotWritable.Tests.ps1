# A store that cannot be written is said to be so at once: a read-only file system, or a lock
# folder nobody may write, is StoreNotWritable with the reason, not a 30-second wait ending in
# "in use by another VmClone command" (CloneBusy, StoreBusy) or the runtime's own text.
BeforeDiscovery {
    $canMount = $false
    if ($IsLinux -and (& id -u) -eq '0') {
        $probe = Join-Path ([IO.Path]::GetTempPath()) ('vmclone-mount-probe-' + [guid]::NewGuid().ToString('N').Substring(0, 6))
        New-Item -ItemType Directory -Path $probe | Out-Null
        & mount -t tmpfs -o size=1m none $probe 2>$null
        if ($LASTEXITCODE -eq 0) { $canMount = $true; & umount $probe }
        Remove-Item -LiteralPath $probe
    }
    $canChattr = $IsLinux -and (& id -u) -eq '0' -and [bool](Get-Command chattr -CommandType Application -ErrorAction SilentlyContinue)
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    function Get-Caught([scriptblock] $Script) { try { & $Script; $null } catch { $_ } }
}

Describe 'A store on a read-only file system' -Skip:(-not $canMount) {
    BeforeAll {
        $dir = New-TestFolder
        $mount = Join-Path $dir 'mnt'
        New-Item -ItemType Directory -Path $mount | Out-Null
        & mount -t tmpfs -o size=512m none $mount
        $store = Join-Path $mount 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir
        & mount -o remount,ro $mount
    }
    AfterAll {
        & umount $mount
        Remove-TestFolder $dir
    }

    It '<_> says at once that the store cannot be written, and why' -ForEach @(
        'Restore-VmClone', 'Clear-VmTemporaryVolume', 'Remove-VmClone', 'New-VmClone', 'Test-VmStore -Repair') {
        $command = $_
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $e = Get-Caught {
            switch ($command) {
                'Restore-VmClone' { Restore-VmClone lab-01 -Store $store -Force -ErrorAction Stop }
                'Clear-VmTemporaryVolume' { Clear-VmTemporaryVolume lab-01 -Store $store -ErrorAction Stop }
                'Remove-VmClone' { Remove-VmClone lab-01 -Store $store -Force -ErrorAction Stop }
                'New-VmClone' { New-VmClone lab-09 -Base win11 -Store $store -ErrorAction Stop }
                'Test-VmStore -Repair' { Test-VmStore -Store $store -Repair -ErrorAction Stop }
            }
        }
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 10 -Because 'a read-only store is not busy: nothing is worth waiting for'
        ($e.FullyQualifiedErrorId -split ',')[0] | Should -Be 'StoreNotWritable'
        $e.CategoryInfo.Category | Should -Be 'WriteError'
        $e.Exception.Message | Should -BeLike "*$store*read-only*"
        $e.Exception.Message | Should -Not -BeLike '*in use by*'
    }

    It 'still reads: Get-VmClone and Test-VmStore' {
        (Get-VmClone -Store $store).Name | Should -Be 'lab-01', 'lab-02'
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }
}

Describe 'A store whose lock folder may not be written' -Skip:(-not $canChattr) {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01 -Folder $dir
        # Emptied, then immutable: not even root may create a lock file in it.
        Get-ChildItem -LiteralPath (Join-Path $store '.locks') -Force | Remove-Item -Force
        & chattr +i (Join-Path $store '.locks')
    }
    AfterAll {
        & chattr -i (Join-Path $store '.locks')
        Remove-TestFolder $dir
    }

    It 'is StoreNotWritable naming the folder, by parameter and piped, at once' {
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $e = Get-Caught { Restore-VmClone lab-01 -Store $store -Force -ErrorAction Stop }
        ($e.FullyQualifiedErrorId -split ',')[0] | Should -Be 'StoreNotWritable'
        $e.Exception.Message | Should -BeLike "*$(Join-Path $store '.locks')*"
        $e.Exception.Message | Should -Not -BeLike 'Access to the path*'
        $err = $null
        'lab-01' | Restore-VmClone -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
        ($err[0].FullyQualifiedErrorId -split ',')[0] | Should -Be 'StoreNotWritable'
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 10
    }
}
