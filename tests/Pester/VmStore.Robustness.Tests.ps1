# Crash safety and concurrent use against the built module, in real processes:
# - a child pwsh running Invoke-VmRebase over 20 clones, Restore-VmClone over them, or
#   New-VmClone, killed at random instants; after each kill the same command run again
#   completes it, Test-VmStore is clean, every data volume hashes as before, every clone is on
#   exactly one base (50 kills by default, VMCLONE_STRESS=1 for 200); the same on a qcow2
#   store (6 clones, 15 kills), where qemu-img check also judges every volume after each rerun;
# - several processes and runspaces changing overlapping clones at once;
# - a volume another process holds open is never replaced;
# - a full disk (a small tmpfs, when running as root) leaves nothing half-made.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    function Get-PwshCommand {
        foreach ($name in 'pwsh', 'pwsh.exe') {
            $exe = Join-Path $PSHOME $name
            if (Test-Path -LiteralPath $exe -PathType Leaf) { return , @($exe) }
        }
        , @('dotnet', (Join-Path $PSHOME 'pwsh.dll'))
    }

    # A child pwsh that imports the module and then waits for its command in $Folder/go.ps1,
    # so that its start-up overlaps the previous round's checks. It touches $Folder/started
    # just before running the command.
    function Start-Victim([string] $Folder) {
        New-Item -ItemType Directory -Path $Folder -Force | Out-Null
        $script = @"
`$ErrorActionPreference = 'Continue'
Import-Module '$env:VMCLONE_MODULE'
`$wait = [Diagnostics.Stopwatch]::StartNew()
while (-not (Test-Path '$Folder/go.ps1')) {
    if (`$wait.Elapsed.TotalMinutes -gt 10 -or -not (Test-Path '$Folder')) { exit 3 }
    Start-Sleep -Milliseconds 20
}
Start-Sleep -Milliseconds 20
Set-Content '$Folder/started' 'x'
. '$Folder/go.ps1'
Set-Content '$Folder/done' 'x'
"@
        Set-Content (Join-Path $Folder 'victim.ps1') $script
        $pwsh = Get-PwshCommand
        $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', (Join-Path $Folder 'victim.ps1'))
        $psi = [Diagnostics.ProcessStartInfo]::new($pwsh[0])
        foreach ($a in $arguments) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $psi.UseShellExecute = $false
        $p = [Diagnostics.Process]::Start($psi)
        $p.BeginOutputReadLine(); $p.BeginErrorReadLine()
        [pscustomobject]@{ Process = $p; Folder = $Folder }
    }

    function Get-DataHashes([string] $Store) {
        $h = @{}
        foreach ($c in Get-VmClone -Store $Store) {
            $h[$c.Name] = Get-DiskContentHash ($c.Volumes | Where-Object Type -eq 'Data').Path
        }
        $h
    }

    # Every clone's volumes lead into exactly one base, the one its manifest names (as the disks say).
    function Assert-OneBase([string] $Store) {
        foreach ($c in Get-VmClone -Store $Store) {
            $bases = @($c.Volumes | Where-Object ParentPath | ForEach-Object { Split-Path (Split-Path $_.ParentPath -Parent) -Leaf } | Sort-Object -Unique)
            if ($bases.Count -gt 1 -or ($bases.Count -eq 1 -and $bases[0] -ne $c.Base)) {
                throw "clone $($c.Name) on $($c.Base) depends on $($bases -join ', ')"
            }
        }
    }

    # A store of bases A and B (B made from a clone of A) in -Format, and $Count clones of A,
    # each with data and system bytes of its own.
    function New-Fleet([string] $Folder, [int] $Count, [string] $Format = 'Vhdx') {
        $store = Join-Path $Folder 'store'
        $sys = Join-Path $Folder 'system.vhdx'; $data = Join-Path $Folder 'data.vhdx'
        ([VmClone.Disks.VirtualDisk]::CreateDynamic($sys, 4MB)).Dispose()
        ([VmClone.Disks.VirtualDisk]::CreateDynamic($data, 4MB)).Dispose()
        Write-DiskBytes $sys 0 (Get-RandomBytes 200KB 1)
        Write-DiskBytes $data 1MB (Get-RandomBytes 200KB 2)
        New-VmBase -Name A -Store $store -Format $Format -Volume @(
            @{ Name = 'system'; Type = 'System'; Path = $sys }
            @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 4MB }
            @{ Name = 'data'; Type = 'Data'; Path = $data }) | Out-Null
        New-VmClone -Name build -Base A -Store $store | Out-Null
        $bv = Get-VmVolume -Clone build -Store $store
        Write-DiskBytes ($bv | Where-Object Name -eq system).Path 2MB (Get-RandomBytes 100KB 3)
        Write-DiskBytes ($bv | Where-Object Name -eq data).Path 3MB (Get-RandomBytes 64KB 4)
        # B takes build's data (not A's, the default), so re-parenting a clone's data onto B has ranges to copy.
        Get-VmClone build -Store $store | New-VmBase -Name B -DataFrom Clone | Out-Null
        Remove-VmClone build -Store $store -Force
        $names = 1..$Count | ForEach-Object { 'lab-{0:d2}' -f $_ }
        New-VmClone -Name $names -Base A -Store $store | Out-Null
        $i = 10
        foreach ($n in $names) {
            $vols = Get-VmVolume -Clone $n -Store $store
            Write-DiskBytes ($vols | Where-Object Name -eq data).Path (($i % 3) * 1MB) (Get-RandomBytes 64KB $i)
            Write-DiskBytes ($vols | Where-Object Name -eq system).Path 3MB (Get-RandomBytes 16KB $i)
            $i++
        }
        $store
    }

    # qemu-img check of the qcow2 files at $Paths (one run each): path -> @{ Exit; Corruptions;
    # Leaks } (Exit 0 clean, 3 leaks only, 2 corrupt, 1 not checked: a file qemu cannot open).
    function Get-QemuChecks([string[]] $Paths) {
        $result = @{}
        foreach ($path in $Paths) {
            $json = qemu-img check -f qcow2 --output=json $path 2>$null
            $exit = $LASTEXITCODE
            $report = try { ($json -join "`n") | ConvertFrom-Json } catch { $null }
            $result[$path] = @{
                Exit = $exit
                Corruptions = $(if ($report -and $report.PSObject.Properties['corruptions']) { $report.corruptions } else { 0 })
                Leaks = $(if ($report -and $report.PSObject.Properties['leaks']) { $report.leaks } else { 0 })
            }
        }
        $result
    }

    # Every qcow2 file in the store, with what its length and last write say of its state.
    function Get-Qcow2Stamps([string] $Store) {
        $stamps = @{}
        foreach ($f in Get-ChildItem -LiteralPath $Store -Recurse -File -Filter '*.qcow2' -Force -ErrorAction SilentlyContinue) {
            $stamps[$f.FullName] = "$($f.Length) $($f.LastWriteTimeUtc.Ticks)"
        }
        $stamps
    }

    # The files every base and clone of the store names as its volumes.
    function Get-StoreVolumePaths([string] $Store) {
        @(Get-VmBase -Store $Store | ForEach-Object { Get-VmVolume -Base $_.Name -Store $Store }) +
        @(Get-VmClone -Store $Store | ForEach-Object { Get-VmVolume -Clone $_.Name -Store $Store }) | ForEach-Object Path
    }
}

BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $noQemu = Get-OracleSkip 'qemu-img'
    $killStores = @(
        @{ Format = 'Vhdx'; Clones = 20; Kills = @{ Rebase = 16; Restore = 17; NewClone = 17 }; Skip = $false }
        # Fewer kills on qcow2, whose checks by qemu-img take longer: the same code paths, with
        # the qcow2 engine's allocation order under them.
        @{ Format = 'Qcow2'; Clones = 6; Kills = @{ Rebase = 5; Restore = 5; NewClone = 5 }; Skip = $noQemu }
    )
}

Describe 'A command killed at any instant, on a <Format> store' -ForEach $killStores {
    BeforeAll {
        $folder = New-TestFolder
        $store = New-Fleet $folder $Clones $Format
        $hashes = Get-DataHashes $store
        $stress = $env:VMCLONE_STRESS -eq '1'
        $plan = @(
            @{ Kind = 'Rebase'; Kills = $(if ($stress) { 80 } else { $Kills.Rebase }) }
            @{ Kind = 'Restore'; Kills = $(if ($stress) { 60 } else { $Kills.Restore }) }
            @{ Kind = 'NewClone'; Kills = $(if ($stress) { 60 } else { $Kills.NewClone }) }
        )
        $qcow2 = $Format -eq 'Qcow2'
        # Leaks of each qcow2 file as last checked, and the stamp it had then.
        $checked = @{}
    }
    AfterAll { Remove-TestFolder $folder }

    It 'is completed by running it again, with every data volume intact' -Skip:$Skip {
        if ($qcow2) {
            (Get-VmDisk (Get-VmVolume -Base A -Store $store)[0].Path).Format | Should -Be 'Qcow2'
            $start = Get-QemuChecks (Get-StoreVolumePaths $store)
            $start.Keys | Where-Object { $start[$_].Exit -ne 0 } | Should -BeNullOrEmpty -Because 'the fleet is made without any kill'
            $stamps = Get-Qcow2Stamps $store
            foreach ($p in $start.Keys) { $checked[$p] = @{ Stamp = $stamps[$p]; Exit = 0; Corruptions = 0; Leaks = 0 } }
        }
        try {
        $rng = [Random]::new(20261101)
        $victims = [Collections.Generic.Queue[object]]::new()
        $n = 0
        $victims.Enqueue((Start-Victim (Join-Path $folder "victim-$n"))); $n++
        $on = 'A'
        $killed = 0; $finishedBeforeKill = 0; $newRound = 0
        $estimate = @{ Rebase = 3000; Restore = 1500; NewClone = 800 }
        $restoreNames = ((1..$(if ($stress) { 20 } else { 5 })) | ForEach-Object { "'lab-{0:d2}'" -f $_ }) -join ','
        foreach ($round in $plan) {
            # Rounds go on until that many commands were really killed (one that finished
            # before its kill instant does not count), at most twice as many rounds and two more.
            $killedBefore = $killed
            for ($k = 0; ($killed - $killedBefore) -lt $round.Kills -and $k -lt [Math]::Max([int]($round.Kills * 1.5), 2 * $round.Kills + 2); $k++) {
                $victim = $victims.Dequeue()
                $victims.Enqueue((Start-Victim (Join-Path $folder "victim-$n"))); $n++
                switch ($round.Kind) {
                    'Rebase' {
                        $to = if ($on -eq 'A') { 'B' } else { 'A' }
                        $command = "Invoke-VmRebase -Base $on -NewBase $to -Store '$store' -Force"
                    }
                    # Every clone under stress; five by default, to keep the suite short.
                    'Restore' { $command = "Restore-VmClone -Name $restoreNames -Store '$store' -Force" }
                    'NewClone' {
                        $newRound++
                        $names = (1..4 | ForEach-Object { "'new-$newRound-$_'" }) -join ','
                        $command = "New-VmClone -Name $names -Base $on -Store '$store'"
                    }
                }
                Set-Content (Join-Path $victim.Folder 'go.ps1') $command
                $sw = [Diagnostics.Stopwatch]::StartNew()
                while (-not (Test-Path (Join-Path $victim.Folder 'started')) -and -not $victim.Process.HasExited -and $sw.ElapsedMilliseconds -lt 60000) { Start-Sleep -Milliseconds 5 }
                $startedAt = [DateTime]::Now
                $delay = $rng.Next(0, $estimate[$round.Kind])
                Start-Sleep -Milliseconds $delay
                if ($victim.Process.HasExited) {
                    $finishedBeforeKill++
                    # A command that ran to its end shows how long this store's commands take
                    # on this machine: later kill instants are drawn within that, so a small
                    # fleet on a fast machine is killed as often as a large one on a slow one.
                    $took = ($victim.Process.ExitTime - $startedAt).TotalMilliseconds
                    $estimate[$round.Kind] = [int][Math]::Max(20, [Math]::Min($estimate[$round.Kind], $took * 0.9))
                }
                else { $victim.Process.Kill(); $killed++ }
                $victim.Process.WaitForExit()
                if ($qcow2) {
                    # What the kill left: each qcow2 file it changed is checked now, before the rerun.
                    $stamps = Get-Qcow2Stamps $store
                    $changed = @($stamps.Keys | Where-Object { -not $checked.ContainsKey($_) -or $checked[$_].Stamp -ne $stamps[$_] })
                    $afterKill = Get-QemuChecks $changed
                    foreach ($p in $changed) {
                        $afterKill[$p].Corruptions | Should -Be 0 -Because "qemu-img check of $p right after a kill at $delay ms of '$command'"
                        $checked[$p] = @{ Stamp = $stamps[$p]; Exit = $afterKill[$p].Exit; Corruptions = 0; Leaks = $afterKill[$p].Leaks }
                    }
                }
                $ran = [Diagnostics.Stopwatch]::StartNew()
                # The same command again, here: it finishes what is left.
                $errs = @()
                Invoke-Expression "$command -ErrorAction SilentlyContinue -ErrorVariable +errs" | Out-Null
                $unexpected = @($errs | Where-Object { $_.FullyQualifiedErrorId -notlike 'CloneExists*' })
                $unexpected | Should -BeNullOrEmpty -Because "rerunning '$command' after a kill at $delay ms"
                $rerunMs = $ran.ElapsedMilliseconds
                if ($round.Kind -eq 'Rebase') { $on = $to }
                # Kill within the time the command takes (a rerun that had everything left to do).
                $estimate[$round.Kind] = [int][Math]::Max($estimate[$round.Kind] * 0.8, [Math]::Max(300, $rerunMs * 1.2))
                $report = Test-VmStore -Store $store
                $report.Problems | ForEach-Object Description | Should -BeNullOrEmpty -Because "after '$command' was killed at $delay ms and run again"
                @(Get-VmClone -Store $store | Where-Object Base -ne $on) | Should -BeNullOrEmpty
                Assert-OneBase $store
                $now = Get-DataHashes $store
                foreach ($c in $hashes.Keys) { $now[$c] | Should -Be $hashes[$c] -Because "data of $c after a kill at $delay ms" }
                if ($qcow2) {
                    # Every volume the store names, after the rerun: qemu-img opens it and finds no
                    # corruption; leaks only where the kill left them (no more than the file at that
                    # path had right after the kill): a file the rerun made or made anew has none,
                    # and the rerun adds none anywhere.
                    # A file whose length and last write are those it had when last checked is the
                    # same file: its verdict then stands (clean, or the leaks counted then).
                    $volumes = @(Get-StoreVolumePaths $store)
                    $stamps = Get-Qcow2Stamps $store
                    $afterRerun = Get-QemuChecks @($volumes | Where-Object { -not $checked.ContainsKey($_) -or $checked[$_].Stamp -ne $stamps[$_] -or $checked[$_].Exit -notin 0, 3 })
                    foreach ($p in $volumes) {
                        $r = if ($afterRerun.ContainsKey($p)) { $afterRerun[$p] } else { $checked[$p] }
                        "$p exit=$($r.Exit) corruptions=$($r.Corruptions)" | Should -Match ' exit=[03] corruptions=0$' -Because "qemu-img check after '$command' was killed at $delay ms and run again"
                        $allowed = if ($checked.ContainsKey($p)) { $checked[$p].Leaks } else { 0 }
                        $r.Leaks | Should -BeLessOrEqual $allowed -Because "$p had $allowed leaked cluster(s) right after the kill of '$command' at $delay ms"
                        $checked[$p] = @{ Stamp = $stamps[$p]; Exit = $r.Exit; Corruptions = $r.Corruptions; Leaks = $r.Leaks }
                    }
                }
                Write-Host ("    {0} #{1}: {2} after {3} ms, rerun {4} ms, checked {5} ms" -f $round.Kind, $k, $(if ($victim.Process.ExitCode -eq 0 -and (Test-Path (Join-Path $victim.Folder 'done'))) { 'finished' } else { 'killed' }), $delay, $rerunMs, $ran.ElapsedMilliseconds)
            }
        }
        }
        finally {
            while ($victims.Count) { $v = $victims.Dequeue(); if (-not $v.Process.HasExited) { $v.Process.Kill() }; $v.Process.WaitForExit() }
        }
        Write-Host "  killed $killed commands at random instants ($finishedBeforeKill more had finished before their kill); each completed by running it again"
        $killed | Should -BeGreaterOrEqual ([int](($plan | Measure-Object -Property Kills -Sum).Sum * 0.9))
    }
}

Describe 'Concurrent use of one store' {
    BeforeAll {
        $folder = New-TestFolder
        $store = New-Fleet $folder 6
        $hashes = Get-DataHashes $store
    }
    AfterAll { Remove-TestFolder $folder }

    It 'serializes processes changing overlapping clones, and nothing is corrupted' {
        $pwsh = Get-PwshCommand
        $procs = foreach ($p in 1..3) {
            $script = @"
`$ErrorActionPreference = 'Continue'
Import-Module '$env:VMCLONE_MODULE'
`$r = [Random]::new($p)
`$errors = @()
foreach (`$i in 1..6) {
    `$clones = 'lab-01', 'lab-02', 'lab-03', 'lab-04', 'lab-05', 'lab-06' | Get-Random -Count 3 -SetSeed (`$r.Next())
    switch (`$r.Next(3)) {
        0 { Restore-VmClone -Name `$clones -Store '$store' -Force -ErrorVariable +errors -ErrorAction SilentlyContinue | Out-Null }
        1 { Clear-VmTemporaryVolume -Name `$clones -Store '$store' -ErrorVariable +errors -ErrorAction SilentlyContinue | Out-Null }
        2 { `$base = (Get-VmClone `$clones[0] -Store '$store').Base; `$to = if (`$base -eq 'A') { 'B' } else { 'A' }
            Invoke-VmRebase -Name `$clones -NewBase `$to -Store '$store' -Force -ErrorVariable +errors -ErrorAction SilentlyContinue | Out-Null }
    }
}
`$errors | ForEach-Object { "`$(`$_.FullyQualifiedErrorId): `$(`$_.Exception.Message)" } | Set-Content '$folder/errors-$p.txt'
"@
            Set-Content (Join-Path $folder "worker-$p.ps1") $script
            $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', (Join-Path $folder "worker-$p.ps1"))
            Start-Process -FilePath $pwsh[0] -ArgumentList $arguments -PassThru -NoNewWindow -RedirectStandardOutput (Join-Path $folder "out-$p.txt")
        }
        # Runspaces of this process at the same time, on the same clones.
        $module = $env:VMCLONE_MODULE
        1..4 | ForEach-Object -ThrottleLimit 4 -Parallel {
            Import-Module $using:module
            Restore-VmClone -Name ('lab-0{0}' -f (($_ % 3) + 1)) -Store $using:store -Force -ErrorAction SilentlyContinue | Out-Null
        }
        $procs | ForEach-Object { $_.WaitForExit() }
        $errors = @(Get-Content (Join-Path $folder 'errors-*.txt') -ErrorAction SilentlyContinue | Where-Object { $_ })
        # Only refusals that say why are allowed: a rebase planned against a clone another process just moved.
        $errors | Where-Object { $_ -notmatch '^(CloneChanged|CloneBusy|OutlineMismatch)' } | Should -BeNullOrEmpty
        Write-Host "  3 processes x 6 operations on 3 of 6 clones each, plus 4 runspaces: $($errors.Count) refusal(s), each with a reason"
        (Test-VmStore -Store $store).Problems | ForEach-Object Description | Should -BeNullOrEmpty
        Assert-OneBase $store
        $now = Get-DataHashes $store
        foreach ($c in $hashes.Keys) { $now[$c] | Should -Be $hashes[$c] }
    }

    It 'refuses a clone another command holds, naming the process' {
        $holder = [VmClone.Core.Store.VmStore]::At($store)
        $pwsh = Get-PwshCommand
        $script = "Import-Module '$env:VMCLONE_MODULE'; `$f = [IO.File]::Open('$store/.locks/clone-lab-04.lock', 'OpenOrCreate', 'ReadWrite', 'None'); Set-Content '$folder/held' x; Start-Sleep 60"
        $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-Command', $script)
        $p = Start-Process -FilePath $pwsh[0] -ArgumentList $arguments -PassThru -NoNewWindow
        try {
            $sw = [Diagnostics.Stopwatch]::StartNew()
            while (-not (Test-Path "$folder/held") -and $sw.ElapsedMilliseconds -lt 60000) { Start-Sleep -Milliseconds 20 }
            $env:VMCLONE_LOCK_TIMEOUT_SECONDS = '1'
            $err = $null
            Restore-VmClone lab-04 -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'CloneBusy*'
            $err[0].Exception.Message | Should -BeLike "*lab-04*in use*"
            Restore-VmClone lab-05 -Store $store -Force -PassThru | Should -Not -BeNullOrEmpty
        }
        finally {
            Remove-Item Env:VMCLONE_LOCK_TIMEOUT_SECONDS -ErrorAction SilentlyContinue
            $p.Kill(); $p.WaitForExit()
        }
        # The lock died with its process.
        Restore-VmClone lab-04 -Store $store -Force -PassThru | Should -Not -BeNullOrEmpty
    }

    It 'never replaces a volume another program holds open, and names the file' -Skip:(-not (Get-Command flock -CommandType Application -ErrorAction SilentlyContinue)) {
        $system = (Get-VmVolume -Clone lab-06 -Store $store | Where-Object Name -eq system).Path
        $before = Get-Item $system | ForEach-Object { "$($_.Length) $($_.LastWriteTimeUtc.Ticks)" }
        $p = Start-Process -FilePath 'flock' -ArgumentList @($system, 'sleep', '60') -PassThru
        try {
            Start-Sleep -Milliseconds 300
            $err = $null
            Restore-VmClone lab-06 -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'VolumeInUse*'
            $err[0].Exception.Message | Should -BeLike "*$system*"
            Get-Item $system | ForEach-Object { "$($_.Length) $($_.LastWriteTimeUtc.Ticks)" } | Should -Be $before
        }
        finally { $p.Kill($true); $p.WaitForExit() }  # flock and the sleep that inherited its lock
        Restore-VmClone lab-06 -Store $store -Force -PassThru | Should -Not -BeNullOrEmpty
    }
}

BeforeDiscovery {
    $isRoot = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'A full disk' {
    BeforeAll {
        $isRoot = $IsLinux -and ((& id -u) -eq '0')
        $folder = New-TestFolder
        $mounted = $false
        if ($isRoot) {
            $mount = Join-Path $folder 'small'
            New-Item -ItemType Directory $mount | Out-Null
            # Room for base A (what its import copies at most: a 64 MiB VHDX's first 32 MiB
            # block and the file's metadata), not for a base of c1 as well.
            & mount -t tmpfs -o size=48m tmpfs $mount 2>$null
            $mounted = $LASTEXITCODE -eq 0
        }
        $skip = -not $mounted -and $env:CI -ne 'true'
    }
    AfterAll {
        if ($mounted) { & umount $mount }
        Remove-TestFolder $folder
    }

    It 'fails with DiskFull and leaves nothing half-made' -Skip:(-not $isRoot -and $env:CI -ne 'true') {
        $mounted | Should -BeTrue -Because 'a small tmpfs is needed (root, mount -t tmpfs)'
        $store = Join-Path $mount 'store'
        $src = Join-Path $folder 'big.vhdx'
        ([VmClone.Disks.VirtualDisk]::CreateDynamic($src, 64MB)).Dispose()
        Write-DiskBytes $src 0 (Get-RandomBytes 9MB 5)
        New-VmBase -Name A -Store $store -Volume @{ Name = 'system'; Type = 'System'; Path = $src } | Out-Null
        New-VmClone c1 -Base A -Store $store | Out-Null
        Write-DiskBytes (Get-VmVolume -Clone c1 -Store $store).Path 32MB (Get-RandomBytes 20MB 6)
        $before = Get-ChildItem $store -Recurse -File | Where-Object FullName -notlike '*/.locks/*' | ForEach-Object { "$($_.FullName) $($_.Length)" }
        $err = $null
        Get-VmClone c1 -Store $store | New-VmBase -Name B -ErrorVariable err -ErrorAction SilentlyContinue | Out-Null
        $err[0].FullyQualifiedErrorId | Should -BeLike 'DiskFull*'
        $err[0].Exception.Message | Should -BeLike '*not enough free space*'
        # Refused before anything was written, with the numbers.
        $err[0].Exception.Message | Should -BeLike "*needs at most * bytes * in '$store*', and only * bytes * are free there*"
        $err[0].Exception.Data['BytesNeeded'] | Should -BeGreaterThan $err[0].Exception.Data['BytesFree']
        Get-ChildItem (Join-Path $store 'bases') -Force | ForEach-Object Name | Should -Be @('A')
        Get-ChildItem $store -Recurse -File | Where-Object FullName -notlike '*/.locks/*' | ForEach-Object { "$($_.FullName) $($_.Length)" } | Should -Be $before
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }
}
