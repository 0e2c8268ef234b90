# Crash safety and concurrent use against the built module, in real processes:
# - a child pwsh running a fleet command, killed at random instants: Invoke-VmRebase over the
#   fleet, Restore-VmClone over five clones, Restore-VmClone -Volume system over three,
#   New-VmClone, Rename-VmClone (three a command), Rename-VmBase of the fleet's base,
#   Import-VmClone of disks made outside the store, Optimize-VmDisk of three clones, and
#   Invoke-VmRebase of a few clones onto a base whose outline grew. Every other kill
#   Test-VmStore -Repair comes first and must find the operation not done or whole; then the
#   next command completes it, Test-VmStore is clean, every clone is on exactly one base and readable,
#   every data volume hashes as before (over its old length, zeros after). Kills by kind
#   (Rebase/Restore/RestoreVolume/NewClone/RenameClone/RenameBase/Import/Optimize/GrowRebase),
#   four times as many with VMCLONE_STRESS=1:
#     VHDX, 20 clones:  14/12/2/12/2/2/2/2/3 (51)
#     qcow2, 6 clones:   5/4/1/4/1/1/1/1/2 (20), qemu-img check also judging each changed volume
#     VHD, 6 clones:     2/2/1/2/1/1/1/1/2 (13), libvhdi also reading each changed volume
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
    # so that its start-up overlaps the previous round's checks. When $Folder/warm is there too it
    # first runs the command with -WhatIf (planning only: the code the command runs is compiled
    # then, so kill instants of a short command fall in the operation rather than in its first
    # call's start-up). It touches $Folder/started just before running the command.
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
if (Test-Path '$Folder/warm') {
    `$WhatIfPreference = `$true
    try { . '$Folder/go.ps1' *> `$null } catch { }
    `$WhatIfPreference = `$false
}
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

    # Every clone's data volume (or those of clones $Name) over its first 4 MiB (the fleet's
    # outline), and whether the rest reads as zeros: the same before and after a rebase onto a
    # grown outline.
    function Get-DataHashes([string] $Store, [string[]] $Name) {
        $h = @{}
        foreach ($c in $(if ($Name) { Get-VmClone -Name $Name -Store $Store } else { Get-VmClone -Store $Store })) {
            $h[$c.Name] = Get-DiskHeadHash ($c.Volumes | Where-Object Type -eq 'Data').Path 4MB
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
    # each with data and system bytes of its own. With -Grown also G: A's outline grown (system,
    # temp and data 8 MiB instead of 4), A's content, and data past A's end that no clone may show.
    function New-Fleet([string] $Folder, [int] $Count, [string] $Format = 'Vhdx', [switch] $Grown) {
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
        if ($Grown) {
            $bigSys = Join-Path $Folder 'big-system.vhdx'; $bigData = Join-Path $Folder 'big-data.vhdx'
            ([VmClone.Disks.VirtualDisk]::CreateDynamic($bigSys, 8MB)).Dispose()
            ([VmClone.Disks.VirtualDisk]::CreateDynamic($bigData, 8MB)).Dispose()
            Write-DiskBytes $bigSys 0 (Get-RandomBytes 200KB 1)
            Write-DiskBytes $bigSys 6MB (Get-RandomBytes 64KB 5)
            Write-DiskBytes $bigData 1MB (Get-RandomBytes 200KB 2)
            Write-DiskBytes $bigData 6MB (Get-RandomBytes 64KB 6)
            New-VmBase -Name G -Store $store -Format $Format -Volume @(
                @{ Name = 'system'; Type = 'System'; Path = $bigSys }
                @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 8MB }
                @{ Name = 'data'; Type = 'Data'; Path = $bigData }) | Out-Null
        }
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

    # Every $Extension file in the store, with what its length and last write say of its state.
    function Get-FileStamps([string] $Store, [string] $Extension = 'qcow2') {
        $stamps = @{}
        foreach ($f in Get-ChildItem -LiteralPath $Store -Recurse -File -Filter "*.$Extension" -Force -ErrorAction SilentlyContinue) {
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
    $noVhdi = Get-LibvhdiSkip
    $killStores = @(
        @{ Format = 'Vhdx'; Clones = 20; Kills = @{ Rebase = 14; Restore = 12; RestoreVolume = 2; NewClone = 12; RenameClone = 2; RenameBase = 2; Import = 2; Optimize = 2; GrowRebase = 3 }; Skip = $false }
        # Fewer kills on qcow2 and VHD, whose checks by qemu-img and libvhdi take longer: the same
        # code paths, with each engine's allocation order under them.
        @{ Format = 'Qcow2'; Clones = 6; Kills = @{ Rebase = 5; Restore = 4; RestoreVolume = 1; NewClone = 4; RenameClone = 1; RenameBase = 1; Import = 1; Optimize = 1; GrowRebase = 2 }; Skip = $noQemu }
        @{ Format = 'Vhd'; Clones = 6; Kills = @{ Rebase = 2; Restore = 2; RestoreVolume = 1; NewClone = 2; RenameClone = 1; RenameBase = 1; Import = 1; Optimize = 1; GrowRebase = 2 }; Skip = $noVhdi }
    )
}

Describe 'A command killed at any instant, on a <Format> store' -ForEach $killStores {
    BeforeAll {
        $folder = New-TestFolder
        $store = New-Fleet $folder $Clones $Format -Grown
        $hashes = Get-DataHashes $store
        $stress = $env:VMCLONE_STRESS -eq '1'
        $qcow2 = $Format -eq 'Qcow2'
        $vhd = $Format -eq 'Vhd'
        # Leaks of each qcow2 file as last checked, and the stamp it had then; for VHD, the stamp
        # each volume had when libvhdi last read it as VmClone does.
        $checked = @{}
        $judged = @{}

        # The rerun that finishes a killed command, here: only refusals $Allowed names may come
        # (a clone already made, a name already renamed away).
        function Invoke-Rerun([string] $Command, [string[]] $Allowed = @(), [string] $Because) {
            # A command line may hold several commands: their errors are collected from the error stream.
            $ErrorActionPreference = 'Continue'
            $errs = @(Invoke-Expression $Command 2>&1 | Where-Object { $_ -is [Management.Automation.ErrorRecord] })
            $unexpected = @($errs | Where-Object { $id = $_.FullyQualifiedErrorId; -not ($Allowed | Where-Object { $id -like "$_*" }) })
            $unexpected | ForEach-Object { "$($_.FullyQualifiedErrorId): $($_.Exception.Message)" } | Should -BeNullOrEmpty -Because $Because
        }

        # Clones $Name readable: each volume opens through its chain and reads at its start and its end.
        function Assert-Readable([string] $Store, [string[]] $Name, [string] $Because) {
            $buffer = [byte[]]::new(4096)
            foreach ($v in @(Get-VmClone -Name $Name -Store $Store | ForEach-Object Volumes)) {
                $disk = [VmClone.Disks.VirtualDisk]::Open($v.Path, [IO.FileAccess]::Read)
                try {
                    $disk.Content.Position = 0; $n = $disk.Content.Read($buffer, 0, 4096)
                    $disk.Content.Position = $disk.Content.Length - 4096; $n += $disk.Content.Read($buffer, 0, 4096)
                }
                finally { $disk.Dispose() }
                "$($v.Path) $n" | Should -Be "$($v.Path) 8192" -Because $Because
            }
        }

        function Get-VolumeHash([string] $Clone, [string] $Volume) {
            Get-DiskContentHash (Get-TestVolumePath $s.Store $Clone $Volume)
        }

        # The fleet as the kinds see it: the base it is on and the other one, each original clone's
        # name now (renames change it), and what a kind leaves for its checks.
        $s = @{ Store = $store; On = 'A'; Off = 'B'; Grown = 'G'; Names = [ordered]@{}; Subjects = @(); Round = 0; NewRound = 0 }
        foreach ($c in $hashes.Keys | Sort-Object) { $s.Names[$c] = $c }
        $restoreCount = if ($stress) { $Clones } else { [Math]::Min(5, $Clones) }

        # The kinds of killed command, in the order their rounds run. Each has:
        #   Command  { param($s) }           the command line the victim runs (what it needs
        #                                    is prepared here and kept in $s); $null: nothing left
        #   Accept   { param($s, $because) } right after the kill and Test-VmStore -Repair: the
        #                                    operation did not happen, or is whole
        #   Finish   { param($s, $command, $because) } the next command, which completes it
        #                                    (Invoke-Rerun), and what the fleet is then ($s)
        #   Check    { param($s, $because) } once finished: what the operation promised
        # Estimate, the first guess (ms) of how long it runs, and WarmUp, for a command short
        # next to its first call's start-up (see Start-Victim). After every kind: Test-VmStore
        # clean, every clone on exactly one base and readable, every data volume hashing as before,
        # qemu-img check (qcow2) or libvhdi (VHD) on each changed volume. To add a kind (say
        # Import-VmClone or Optimize-VmDisk): one more entry here and its kill count in $killStores.
        $kinds = @(
            @{ Kind = 'Rebase'; Estimate = 3000
                Command = { param($s) "Invoke-VmRebase -Base $($s.On) -NewBase $($s.Off) -Store '$($s.Store)' -Force" }
                Accept = { param($s, $because) @(Get-VmClone -Store $s.Store | Where-Object Base -notin $s.On, $s.Off) | Should -BeNullOrEmpty -Because $because }
                Finish = { param($s, $command, $because) Invoke-Rerun $command -Because $because; $s.On, $s.Off = $s.Off, $s.On }
                Check = { param($s, $because) @(Get-VmClone -Store $s.Store | Where-Object Base -ne $s.On) | Should -BeNullOrEmpty -Because $because }
            }
            # Five clones by default (every one under stress), to keep the suite short.
            @{ Kind = 'Restore'; Estimate = 1500
                Command = { param($s) $s.Subjects = @($s.Names.Values | Select-Object -First $restoreCount); "Restore-VmClone -Name $(($s.Subjects | ForEach-Object { "'$_'" }) -join ',') -Store '$($s.Store)' -Force" }
                Accept = { param($s, $because) }
                Finish = { param($s, $command, $because) Invoke-Rerun $command -Because $because }
                Check = { param($s, $because)
                    $base = Get-DiskContentHash (Get-TestVolumePath $s.Store -Base $s.On -Volume system)
                    foreach ($c in $s.Subjects) { "$c $(Get-VolumeHash $c system)" | Should -Be "$c $base" -Because $because } }
            }
            # The system volume of the last three clones, each given new system and temporary bytes
            # first: system reads as its base's afterwards (or, right after a kill, as before), and
            # the temporary volume, not named, is kept.
            @{ Kind = 'RestoreVolume'; WarmUp = $true; Estimate = 800
                Command = { param($s)
                    $s.Round++
                    $s.Subjects = @($s.Names.Values | Select-Object -Last 3)
                    $s.Before = @{}
                    foreach ($c in $s.Subjects) {
                        Write-DiskBytes (Get-TestVolumePath $s.Store $c system) 2MB (Get-RandomBytes 32KB (100 + $s.Round))
                        Write-DiskBytes (Get-TestVolumePath $s.Store $c temp) 1MB (Get-RandomBytes 32KB (200 + $s.Round))
                        $s.Before[$c] = @{ System = Get-VolumeHash $c system; Temp = Get-VolumeHash $c temp }
                    }
                    $s.BaseSystem = Get-DiskContentHash (Get-TestVolumePath $s.Store -Base $s.On -Volume system)
                    "Restore-VmClone -Name $(($s.Subjects | ForEach-Object { "'$_'" }) -join ',') -Volume system -Store '$($s.Store)' -Force" }
                Accept = { param($s, $because)
                    foreach ($c in $s.Subjects) {
                        (Get-VolumeHash $c system) | Should -BeIn @($s.Before[$c].System, $s.BaseSystem) -Because "$c's system, $because"
                        "$c $(Get-VolumeHash $c temp)" | Should -Be "$c $($s.Before[$c].Temp)" -Because $because } }
                Finish = { param($s, $command, $because) Invoke-Rerun $command -Because $because }
                Check = { param($s, $because)
                    foreach ($c in $s.Subjects) {
                        "$c $(Get-VolumeHash $c system)" | Should -Be "$c $($s.BaseSystem)" -Because $because
                        "$c $(Get-VolumeHash $c temp)" | Should -Be "$c $($s.Before[$c].Temp)" -Because $because } }
            }
            @{ Kind = 'NewClone'; Estimate = 800
                Command = { param($s)
                    $s.NewRound++
                    $s.Subjects = @(1..4 | ForEach-Object { "new-$($s.NewRound)-$_" })
                    "New-VmClone -Name $(($s.Subjects | ForEach-Object { "'$_'" }) -join ',') -Base $($s.On) -Store '$($s.Store)'" }
                Accept = { param($s, $because) }
                Finish = { param($s, $command, $because) Invoke-Rerun $command 'CloneExists' -Because $because }
                Check = { param($s, $because) foreach ($c in $s.Subjects) { (Get-VmClone $c -Store $s.Store).Base | Should -Be $s.On -Because "$c, $because" } }
            }
            # Three clones a command, one Rename-VmClone each: a kill lands in one of them.
            @{ Kind = 'RenameClone'; WarmUp = $true; Estimate = 600
                Command = { param($s)
                    $s.Round++
                    $originals = @($s.Names.Keys)
                    $s.Renames = [ordered]@{}
                    foreach ($i in 0..2) { $o = $originals[($s.Round * 3 + $i) % $originals.Count]; $s.Renames[$o] = @{ From = $s.Names[$o]; To = "$o-r$($s.Round)" } }
                    ($s.Renames.Values | ForEach-Object { "Rename-VmClone -Name '$($_.From)' -NewName '$($_.To)' -Store '$($s.Store)'" }) -join '; ' }
                Accept = { param($s, $because)
                    foreach ($r in $s.Renames.Values) {
                        $there = @(Get-VmClone -Store $s.Store | Where-Object Name -in $r.From, $r.To)
                        "$($r.From) -> $($r.To): $($there.Name -join ', ')" | Should -Match ': [^,]+$' -Because "exactly one of the names, $because"
                        $there[0].Base | Should -Be $s.On -Because $because } }
                # A rename finished already finds its old name gone: CloneNotFound, and Check sees the new one.
                Finish = { param($s, $command, $because)
                    Invoke-Rerun $command 'CloneNotFound' -Because $because
                    foreach ($o in $s.Renames.Keys) { $s.Names[$o] = $s.Renames[$o].To } }
                Check = { param($s, $because)
                    foreach ($r in $s.Renames.Values) {
                        (Get-VmClone $r.To -Store $s.Store).Base | Should -Be $s.On -Because "$($r.To), $because"
                        @(Get-VmClone -Store $s.Store | Where-Object Name -eq $r.From) | Should -BeNullOrEmpty -Because "$($r.From) was renamed, $because" } }
            }
            # The base the fleet is on, re-pointing every clone's links to it.
            @{ Kind = 'RenameBase'; WarmUp = $true; Estimate = 1500
                Command = { param($s) $s.Round++; $s.To = "$($s.On -replace '-r\d+$')-r$($s.Round)"; "Rename-VmBase -Name '$($s.On)' -NewName '$($s.To)' -Store '$($s.Store)'" }
                Accept = { param($s, $because)
                    @(Get-VmBase -Store $s.Store | Where-Object Name -in $s.On, $s.To).Count | Should -Be 1 -Because "exactly one of $($s.On) and $($s.To), $because"
                    $name = (Get-VmBase -Store $s.Store | Where-Object Name -in $s.On, $s.To).Name
                    @(Get-VmClone -Store $s.Store | Where-Object Base -notin $name, $s.Off) | Should -BeNullOrEmpty -Because $because }
                Finish = { param($s, $command, $because) Invoke-Rerun $command 'BaseNotFound' -Because $because; $s.On = $s.To }
                Check = { param($s, $because)
                    @(Get-VmBase -Store $s.Store | Where-Object Name -eq $s.To).Count | Should -Be 1 -Because $because
                    @(Get-VmClone -Store $s.Store | Where-Object Base -ne $s.On) | Should -BeNullOrEmpty -Because $because }
            }
            # A clone adopted from differencing disks of the fleet's base made outside the store,
            # each with bytes of its own: after a kill and a repair the import did not happen (the
            # files where and as they were) or the clone reads as the files did.
            @{ Kind = 'Import'; WarmUp = $true; Estimate = 800
                Command = { param($s)
                    $s.Round++
                    $s.Imported = "imp-$($s.Round)"
                    $s.Subjects = @($s.Imported)
                    $s.Files = [ordered]@{}
                    $outside = Join-Path (Split-Path $s.Store) "made-elsewhere-$($s.Round)"
                    New-Item -ItemType Directory -Path $outside -Force | Out-Null
                    foreach ($v in 'system', 'data') {
                        $parent = Get-TestVolumePath $s.Store -Base $s.On -Volume $v
                        $path = Join-Path $outside "$v$([IO.Path]::GetExtension($parent))"
                        New-VmDisk $path -ParentPath $parent | Out-Null
                        Write-DiskBytes $path 1MB (Get-RandomBytes 64KB (400 + $s.Round))
                        $s.Files[$v] = @{ Path = $path; Hash = Get-DiskContentHash $path }
                    }
                    $volumes = ($s.Files.Keys | ForEach-Object { "@{ Name = '$_'; Path = '$($s.Files[$_].Path)' }" }) -join ', '
                    "Import-VmClone -Name '$($s.Imported)' -Base $($s.On) -Volume $volumes -Store '$($s.Store)' -Confirm:`$false | Out-Null" }
                Accept = { param($s, $because)
                    if (@(Get-VmClone -Store $s.Store | Where-Object Name -eq $s.Imported)) { return }
                    foreach ($v in $s.Files.Keys) {
                        "$v $(Get-DiskContentHash $s.Files[$v].Path)" | Should -Be "$v $($s.Files[$v].Hash)" -Because "no clone, so $($s.Files[$v].Path) is as it was, $because" } }
                # An import that finished already finds its name taken.
                Finish = { param($s, $command, $because) Invoke-Rerun $command 'CloneExists' -Because $because }
                Check = { param($s, $because)
                    (Get-VmClone $s.Imported -Store $s.Store).Base | Should -Be $s.On -Because $because
                    foreach ($v in $s.Files.Keys) {
                        "$v $(Get-VolumeHash $s.Imported $v)" | Should -Be "$v $($s.Files[$v].Hash)" -Because $because
                        Test-Path -LiteralPath $s.Files[$v].Path | Should -BeFalse -Because "a moved file leaves its old place, $because" } }
            }
            # Three clones a round, each given a run of zeros over new data in its system volume
            # first (something to give back): a compacted volume is renamed over the old one, so
            # right after a kill every volume reads as before, whole, whichever file it is.
            @{ Kind = 'Optimize'; WarmUp = $true; Estimate = 800
                Command = { param($s)
                    $s.Round++
                    $s.Subjects = @($s.Names.Values | Select-Object -Skip 3 -First 3)
                    $s.Before = @{}
                    foreach ($c in $s.Subjects) {
                        Write-DiskBytes (Get-TestVolumePath $s.Store $c system) 3MB (Get-RandomBytes 64KB (300 + $s.Round))
                        Write-DiskBytes (Get-TestVolumePath $s.Store $c system) 1MB ([byte[]]::new(256KB))
                        $s.Before[$c] = @{ System = Get-VolumeHash $c system; Temp = Get-VolumeHash $c temp }
                    }
                    "Optimize-VmDisk -Name $(($s.Subjects | ForEach-Object { "'$_'" }) -join ',') -Store '$($s.Store)' -Confirm:`$false" }
                Accept = { param($s, $because)
                    foreach ($c in $s.Subjects) {
                        "$c $(Get-VolumeHash $c system) $(Get-VolumeHash $c temp)" | Should -Be "$c $($s.Before[$c].System) $($s.Before[$c].Temp)" -Because $because } }
                Finish = { param($s, $command, $because) Invoke-Rerun $command -Because $because }
                Check = { param($s, $because)
                    foreach ($c in $s.Subjects) {
                        "$c $(Get-VolumeHash $c system) $(Get-VolumeHash $c temp)" | Should -Be "$c $($s.Before[$c].System) $($s.Before[$c].Temp)" -Because $because
                        @(Get-ChildItem -Force (Split-Path (Get-TestVolumePath $s.Store $c system)) -Filter '.vmclone-staging-*') | Should -BeNullOrEmpty -Because "$c keeps no staging copy, $because" } }
            }
            # A few clones a round onto G, whose system, temp and data volumes are twice as large:
            # the data keeps its content over the old 4 MiB and reads zeros after (the common data
            # check), system reads G's (its bytes past the old end included).
            @{ Kind = 'GrowRebase'; WarmUp = $true; Estimate = 2000
                Command = { param($s)
                    $s.Subjects = @(Get-VmClone -Store $s.Store | Where-Object { $_.Base -ne $s.Grown -and $_.Name -in $s.Names.Values } | Select-Object -First $(if ($Clones -ge 20) { 4 } else { 2 }) | ForEach-Object Name)
                    if (-not $s.Subjects) { return $null }
                    "Invoke-VmRebase -Name $(($s.Subjects | ForEach-Object { "'$_'" }) -join ',') -NewBase $($s.Grown) -Store '$($s.Store)' -Force" }
                Accept = { param($s, $because) foreach ($c in $s.Subjects) { (Get-VmClone $c -Store $s.Store).Base | Should -BeIn @($s.On, $s.Grown) -Because "$c, $because" } }
                Finish = { param($s, $command, $because) Invoke-Rerun $command -Because $because }
                Check = { param($s, $because)
                    $system = Get-DiskContentHash (Get-TestVolumePath $s.Store -Base $s.Grown -Volume system)
                    foreach ($c in $s.Subjects) {
                        (Get-VmClone $c -Store $s.Store).Base | Should -Be $s.Grown -Because "$c, $because"
                        foreach ($v in Get-VmVolume -Clone $c -Store $s.Store) { "$c $($v.Name) $((Get-VmDisk $v.Path).VirtualSize)" | Should -Be "$c $($v.Name) $(8MB)" -Because $because }
                        "$c $(Get-VolumeHash $c system)" | Should -Be "$c $system" -Because $because
                    } }
            }
        )
        $plan = foreach ($kind in $kinds) { $kind + @{ Kills = $(if ($stress) { 4 * $Kills[$kind.Kind] } else { $Kills[$kind.Kind] }) } }
    }
    AfterAll { Remove-TestFolder $folder }

    It 'is finished or undone by Test-VmStore -Repair or the next command, with every clone readable and every data volume intact' -Skip:$Skip {
        if ($qcow2) {
            (Get-VmDisk (Get-VmVolume -Base A -Store $store)[0].Path).Format | Should -Be 'Qcow2'
            $start = Get-QemuChecks (Get-StoreVolumePaths $store)
            $start.Keys | Where-Object { $start[$_].Exit -ne 0 } | Should -BeNullOrEmpty -Because 'the fleet is made without any kill'
            $stamps = Get-FileStamps $store
            foreach ($p in $start.Keys) { $checked[$p] = @{ Stamp = $stamps[$p]; Exit = 0; Corruptions = 0; Leaks = 0 } }
        }
        if ($vhd) { (Get-VmDisk (Get-VmVolume -Base A -Store $store)[0].Path).Format | Should -Be 'Vhd' }
        try {
        $rng = [Random]::new(20261101)
        $victims = [Collections.Generic.Queue[object]]::new()
        $n = 0
        $victims.Enqueue((Start-Victim (Join-Path $folder "victim-$n"))); $n++
        $killed = 0; $finishedBeforeKill = 0; $repaired = 0; $asked = 0
        $estimate = @{}
        foreach ($round in $plan) {
            $estimate[$round.Kind] = $round.Estimate
            # Rounds go on until that many commands were really killed (one that finished
            # before its kill instant does not count), at most twice as many rounds and two more.
            $killedBefore = $killed
            for ($k = 0; ($killed - $killedBefore) -lt $round.Kills -and $k -lt 2 * $round.Kills + 2; $k++) {
                $s.Subjects = @()
                $command = & $round.Command $s
                if (-not $command) { break }
                $asked++
                $victim = $victims.Dequeue()
                $victims.Enqueue((Start-Victim (Join-Path $folder "victim-$n"))); $n++
                if ($round.WarmUp) { Set-Content (Join-Path $victim.Folder 'warm') 'x' }
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
                # Work folders the kill left (an operation under way): what the repair or the next command meets.
                $left = @(Get-ChildItem -LiteralPath (Join-Path $store 'clones'), (Join-Path $store 'bases') -Directory -Force -Filter '.*' -ErrorAction SilentlyContinue).Count
                $because = "'$command' killed at $delay ms"
                if ($qcow2) {
                    # What the kill left: each qcow2 file it changed is checked now, before the rerun.
                    $stamps = Get-FileStamps $store
                    $changed = @($stamps.Keys | Where-Object { -not $checked.ContainsKey($_) -or $checked[$_].Stamp -ne $stamps[$_] })
                    $afterKill = Get-QemuChecks $changed
                    foreach ($p in $changed) {
                        $afterKill[$p].Corruptions | Should -Be 0 -Because "qemu-img check of $p right after the kill of $because"
                        $checked[$p] = @{ Stamp = $stamps[$p]; Exit = $afterKill[$p].Exit; Corruptions = 0; Leaks = $afterKill[$p].Leaks }
                    }
                }
                $ran = [Diagnostics.Stopwatch]::StartNew()
                # Every other kill, Test-VmStore -Repair finds the store first: it finishes or
                # undoes what the kill left, and the kind accepts what it sees. Otherwise the next
                # command meets the store as the kill left it.
                $repair = ($asked % 2) -eq 0
                if ($repair) {
                    $repaired++
                    $report = Test-VmStore -Store $store -Repair
                    $report.Problems | Where-Object { -not $_.Repaired } | ForEach-Object Description | Should -BeNullOrEmpty -Because "Test-VmStore -Repair after $because"
                    (Test-VmStore -Store $store).Problems | ForEach-Object Description | Should -BeNullOrEmpty -Because "after the repair of $because"
                    & $round.Accept $s "after the repair of $because"
                }
                & $round.Finish $s $command "rerunning after $because$(if ($repair) { ' and a repair' })"
                $rerunMs = $ran.ElapsedMilliseconds
                # Kill within the time the command takes (a rerun that had everything left to do).
                $estimate[$round.Kind] = [int][Math]::Max($estimate[$round.Kind] * 0.8, [Math]::Max(300, $rerunMs * 1.2))
                $because = "after $because$(if ($repair) { ', a repair' }) and the next command"
                $report = Test-VmStore -Store $store
                $report.Problems | ForEach-Object Description | Should -BeNullOrEmpty -Because $because
                & $round.Check $s $because
                Assert-OneBase $store
                # The fleet's own clones (those New-VmClone adds hold no data of their own).
                $now = Get-DataHashes $store @($s.Names.Values)
                foreach ($c in $hashes.Keys) { "$c $($now[$s.Names[$c]])" | Should -Be "$c $($hashes[$c])" -Because "data of $c (now $($s.Names[$c])) $because" }
                # Every clone of the fleet and every one the command touched; Test-VmStore above
                # opened every chain of the store.
                Assert-Readable $store @(@($s.Names.Values) + @($s.Subjects) | Where-Object { $_ } | Sort-Object -Unique) $because
                if ($qcow2) {
                    # Every volume the store names, after the rerun: qemu-img opens it and finds no
                    # corruption; leaks only where the kill left them (no more than the file at that
                    # path had right after the kill): a file the rerun made or made anew has none,
                    # and the rerun adds none anywhere.
                    # A file whose length and last write are those it had when last checked is the
                    # same file: its verdict then stands (clean, or the leaks counted then).
                    $volumes = @(Get-StoreVolumePaths $store)
                    $stamps = Get-FileStamps $store
                    $afterRerun = Get-QemuChecks @($volumes | Where-Object { -not $checked.ContainsKey($_) -or $checked[$_].Stamp -ne $stamps[$_] -or $checked[$_].Exit -notin 0, 3 })
                    foreach ($p in $volumes) {
                        $r = if ($afterRerun.ContainsKey($p)) { $afterRerun[$p] } else { $checked[$p] }
                        "$p exit=$($r.Exit) corruptions=$($r.Corruptions)" | Should -Match ' exit=[03] corruptions=0$' -Because "qemu-img check $because"
                        $allowed = if ($checked.ContainsKey($p)) { $checked[$p].Leaks } else { 0 }
                        $r.Leaks | Should -BeLessOrEqual $allowed -Because "$p had $allowed leaked cluster(s) right after the kill; $because"
                        $checked[$p] = @{ Stamp = $stamps[$p]; Exit = $r.Exit; Corruptions = $r.Corruptions; Leaks = $r.Leaks }
                    }
                }
                if ($vhd) {
                    # libvhdi reads every volume the store names whose file changed since it last
                    # read it (a renamed or re-pointed file is changed) as VmClone does.
                    $stamps = Get-FileStamps $store 'vhd'
                    $volumes = @(Get-StoreVolumePaths $store | Where-Object { $judged[$_] -ne $stamps[$_] })
                    $libvhdi = Get-LibvhdiContentHash $volumes
                    foreach ($p in $volumes) {
                        "$p $($libvhdi[$p])" | Should -Be "$p $(Get-DiskContentHash $p)" -Because "libvhdi $because"
                        $judged[$p] = $stamps[$p]
                    }
                }
                Write-Host ("    {0} #{1}: {2} after {3} ms ({4} work folder(s) left){5}, rerun {6} ms, checked {7} ms" -f $round.Kind, $k, $(if ($victim.Process.ExitCode -eq 0 -and (Test-Path (Join-Path $victim.Folder 'done'))) { 'finished' } else { 'killed' }), $delay, $left, $(if ($repair) { ', repaired' } else { '' }), $rerunMs, $ran.ElapsedMilliseconds)
            }
        }
        }
        finally {
            while ($victims.Count) { $v = $victims.Dequeue(); if (-not $v.Process.HasExited) { $v.Process.Kill() }; $v.Process.WaitForExit() }
        }
        Write-Host "  killed $killed commands at random instants ($finishedBeforeKill more had finished before their kill); $repaired found by Test-VmStore -Repair first, each completed by the next command"
        # GrowRebase has clones for a few rounds only; every other kind as many kills as asked.
        $killed | Should -BeGreaterOrEqual ([int](($plan | Where-Object Kind -ne 'GrowRebase' | Measure-Object -Property Kills -Sum).Sum * 0.9))
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
