<#
.SYNOPSIS
    Fleet-scale benchmarks through the cmdlets, side by side with qemu-img, appended to RESULTS.md.
.DESCRIPTION
    A 3-volume base (100 GiB virtual each; System, Temporary, Data) and -Count clones:
    New-VmClone in one call, Restore-VmClone and Invoke-VmRebase of all of them, each -Runs
    times (median, min–max), against
    qemu-img create -b / qemu-img rebase -u of as many VMDK children (qcow2 children for the
    qcow2 store, a sample of at most 100 clones' worth) in a shell loop, and the engine's own
    create API. Also: module import and first-command latency in a fresh pwsh.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModuleManifest,
    [int] $Count = 1000,
    # Each cmdlet figure is the median of this many runs over $Count clones (min–max beside it).
    [int] $Runs = 3,
    [string] $Results = (Join-Path $PSScriptRoot 'RESULTS.md')
)
$ErrorActionPreference = 'Stop'
Import-Module $ModuleManifest -Force
$work = Join-Path ([IO.Path]::GetTempPath()) ('vmclone-fleet-' + [guid]::NewGuid().ToString('N').Substring(0, 8))
New-Item -ItemType Directory $work | Out-Null
$rows = [Collections.Generic.List[object]]::new()
function Add-Row([string] $Name, [string] $Figure, [string] $Ratio = '', [string] $Reference = '', [switch] $PassThru) {
    $row = [pscustomobject]@{ Name = $Name; Figure = $Figure; Ratio = $Ratio; Reference = $Reference }
    $rows.Add($row)
    Write-Host "$Name`: $Figure"
    if ($PassThru) { $row }
}
# Per format: each cmdlet row and its rate, given ratios once the references have run.
$newRow = @{}; $newRate = @{}; $restoreRow = @{}; $restoreRate = @{}; $rebaseRow = @{}; $rebaseRate = @{}; $engine = @{}
function Rate([double] $seconds, [int] $n) { '{0:N0}/s ({1:N2} ms each)' -f ($n / $seconds), ($seconds * 1000 / $n) }
# Runs $block $Runs times (it gets the run's number, 0 first); the median rate, and its text with the range.
function Measure-Runs([int] $n, [scriptblock] $action) {
    $rates = foreach ($run in 0..($Runs - 1)) {
        $clock = [Diagnostics.Stopwatch]::StartNew()
        & $action $run | Out-Null
        $n / $clock.Elapsed.TotalSeconds
    }
    $rates = @($rates | Sort-Object)
    $median = $rates[[int][Math]::Floor(($rates.Count - 1) / 2)]
    [pscustomobject]@{ Rate = $median; Text = '{0:N0}/s ({1:N2} ms each; {2:N0}–{3:N0}/s)' -f $median, (1000 / $median), $rates[0], $rates[-1] }
}
function Seconds([scriptblock] $block) { (Measure-Command $block).TotalSeconds }
function Allocated([string] $path) {
    # Blocks really allocated (sparse files), not the apparent size.
    [long](& stat -c '%b*%B' $path | ForEach-Object { Invoke-Expression $_ })
}

try {
    $store = Join-Path $work 'store'
    $size = 100GB
    $formats = 'Vhdx', 'Vmdk', 'Qcow2'
    foreach ($format in $formats) {
        $base = "base-$format".ToLowerInvariant()
        New-VmBase -Store $store -Name $base -Format $format -Volume @(
            @{ Name = 'system'; Type = 'System'; SizeBytes = $size }
            @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = $size }
            @{ Name = 'data'; Type = 'Data'; SizeBytes = $size }) | Out-Null
        # Each run makes its own $Count clones; the first run's clones are then restored and rebased.
        $names = 1..$Count | ForEach-Object { '{0}-{1:D4}' -f $base, $_ }
        $m = Measure-Runs $Count { param($run) New-VmClone -Store $store -Base $base -Name ($names | ForEach-Object { "$_-$run" }) | Out-Null }
        $names = $names | ForEach-Object { "$_-0" }
        $newRate[$format] = $m.Rate
        $newRow[$format] = Add-Row "New-VmClone, $Count clones of a 3 x 100 GiB $format base, one call" $m.Text -PassThru
        $cloneDir = Join-Path $store "clones/$($names[0])"
        $bytes = (Get-ChildItem $cloneDir -File | ForEach-Object { Allocated $_.FullName } | Measure-Object -Sum).Sum
        Add-Row "  bytes allocated per clone ($format, 3 volumes + manifest)" ('{0:N0} KiB' -f ($bytes / 1KB))

        $m = Measure-Runs $Count { Restore-VmClone -Store $store -Name $names -Force | Out-Null }
        $restoreRate[$format] = $m.Rate
        $restoreRow[$format] = Add-Row "Restore-VmClone, $Count $format clones, one call" $m.Text -PassThru

        New-VmBase -Store $store -Name "$base-v2" -Format $format -Volume @(
            @{ Name = 'system'; Type = 'System'; SizeBytes = $size }
            @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = $size }
            @{ Name = 'data'; Type = 'Data'; SizeBytes = $size }) | Out-Null
        # Back and forth between the two bases: every run moves every clone.
        $m = Measure-Runs $Count { param($run) Invoke-VmRebase -Store $store -Name $names -NewBase $(if ($run % 2) { $base } else { "$base-v2" }) -Force | Out-Null }
        $rebaseRate[$format] = $m.Rate
        $rebaseRow[$format] = Add-Row "Invoke-VmRebase, $Count $format clones onto a new base, one call" $m.Text -PassThru
    }

    $api = Join-Path $work 'api'
    New-Item -ItemType Directory $api | Out-Null
    foreach ($format in $formats) {
        # The engine alone: three differencing children per clone, as New-VmClone makes, with
        # no store, manifest, journal or lock around them.
        $ext = $format.ToLowerInvariant()
        $parent = Join-Path $api "base.$ext"
        [VmClone.Disks.VirtualDisk]::CreateDynamic($parent, $size).Dispose()
        $t = Seconds { for ($i = 0; $i -lt $Count * 3; $i++) { [VmClone.Disks.VirtualDisk]::CreateDifferencing((Join-Path $api "c$i.$ext"), $parent).Dispose() } }
        $engine[$format] = $Count / $t
        Add-Row "VirtualDisk.CreateDifferencing (engine API), $($Count * 3) $format children in a loop ($Count clones' worth)" (Rate $t $Count)
        $newRow[$format].Ratio = '{0:P0}' -f ($newRate[$format] / $engine[$format])
        $newRow[$format].Reference = "engine API, $format"
    }

    if (Get-Command qemu-img -ErrorAction SilentlyContinue) {
        $q = Join-Path $work 'qemu'
        New-Item -ItemType Directory $q | Out-Null
        & qemu-img create -q -f vmdk (Join-Path $q 'base.vmdk') 100G
        & qemu-img create -q -f vmdk (Join-Path $q 'base2.vmdk') 100G
        $script = Join-Path $q 'loop.sh'
        # One VMDK child per clone volume, as a shell script would do it (3 per clone).
        Set-Content $script "cd '$q'; for i in `$(seq 1 $($Count * 3)); do qemu-img create -q -f vmdk -b base.vmdk -F vmdk c`$i.vmdk; done"
        $t = Seconds { & bash $script }
        $qemuCreate = $Count / $t
        $peak = & /usr/bin/time -f '%M' qemu-img create -q -f vmdk -b base.vmdk -F vmdk (Join-Path $q 'peak.vmdk') 2>&1
        Add-Row "qemu-img create -b, $($Count * 3) VMDK children in a shell loop ($Count clones' worth)" (Rate $t $Count) '' 'reference'
        $bytes = (1..3 | ForEach-Object { Allocated (Join-Path $q "c$_.vmdk") } | Measure-Object -Sum).Sum
        Add-Row '  bytes allocated per clone (qemu-img, 3 VMDK children)' ('{0:N0} KiB' -f ($bytes / 1KB))
        Add-Row '  peak memory of one qemu-img create' ('{0:N0} MiB' -f ([long]"$($peak | Select-Object -Last 1)" / 1KB))
        # qcow2 children of a qcow2 base, as a script for a KVM farm makes them: a sample of at
        # most 100 clones' worth gives the rate (a loop of qemu-img commands does not speed up).
        $sample = [Math]::Min($Count, 100)
        & qemu-img create -q -f qcow2 (Join-Path $q 'base.qcow2') 100G
        & qemu-img create -q -f qcow2 (Join-Path $q 'base2.qcow2') 100G
        Set-Content $script "cd '$q'; for i in `$(seq 1 $($sample * 3)); do qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 q`$i.qcow2; done"
        $t = Seconds { & bash $script }
        $qemuCreateQcow2 = $sample / $t
        Add-Row "qemu-img create -b, $($sample * 3) qcow2 children in a shell loop ($sample clones' worth)" (Rate $t $sample) '' 'reference'
        $bytes = (1..3 | ForEach-Object { Allocated (Join-Path $q "q$_.qcow2") } | Measure-Object -Sum).Sum
        Add-Row '  bytes allocated per clone (qemu-img, 3 qcow2 children)' ('{0:N0} KiB' -f ($bytes / 1KB))
        foreach ($format in $formats) {
            $reference = if ($format -eq 'Qcow2') { $qemuCreateQcow2 } else { $qemuCreate }
            $note = switch ($format) { 'Vmdk' { 'same format' } 'Qcow2' { 'same format' } default { 'qemu makes VMDK; its VHDX driver cannot create children' } }
            $newRow[$format].Ratio += ' · {0:P0}' -f ($newRate[$format] / $reference)
            $newRow[$format].Reference += " · qemu-img create -b loop ($note)"
            # Restoring a clone is what a script does by deleting a child and creating it anew.
            $restoreRow[$format].Ratio = '{0:P0}' -f ($restoreRate[$format] / $reference)
            $restoreRow[$format].Reference = "qemu-img create -b loop$(if ($format -eq 'Qcow2') { ', qcow2' }) (a script restores by re-creating the child)"
        }

        # qemu's vmdk driver cannot change a backing file; its own words are the figure.
        $err = & qemu-img rebase -u -f vmdk -b base2.vmdk -F vmdk (Join-Path $q 'c1.vmdk') 2>&1
        if ($LASTEXITCODE -eq 0) {
            Set-Content $script "cd '$q'; for i in `$(seq 1 $($Count * 3)); do qemu-img rebase -u -f vmdk -b base2.vmdk -F vmdk c`$i.vmdk; done"
            $t = Seconds { & bash $script }
            Add-Row "qemu-img rebase -u, $($Count * 3) VMDK children in a shell loop ($Count clones' worth)" (Rate $t $Count) '' 'reference'
            $rebaseRow['Vmdk'].Ratio = '{0:P0}' -f ($rebaseRate['Vmdk'] / ($Count / $t))
            $rebaseRow['Vmdk'].Reference = 'qemu-img rebase -u loop, same format'
        }
        else {
            Add-Row 'qemu-img rebase -u of a VMDK child' 'cannot: qemu-img fails' '' ('"{0}"' -f (($err | ForEach-Object { "$_".Trim() }) -join ' '))
        }
        # The nearest qemu reference: the same metadata-only rebase of qcow2 children. A sample of
        # at most 100 clones' worth gives its rate; a loop of qemu-img commands does not speed up.
        Set-Content $script "cd '$q'; for i in `$(seq 1 $($sample * 3)); do qemu-img rebase -u -f qcow2 -b base2.qcow2 -F qcow2 q`$i.qcow2; done"
        $t = Seconds { & bash $script }
        Add-Row "qemu-img rebase -u, $($sample * 3) qcow2 children in a shell loop ($sample clones' worth; the qcow2 store's reference, the nearest one for the others)" (Rate $t $sample) '' 'reference'
        foreach ($format in $formats) {
            if (-not $rebaseRow[$format].Ratio) {
                $rebaseRow[$format].Ratio = '{0:P0}' -f ($rebaseRate[$format] / ($sample / $t))
                $rebaseRow[$format].Reference = "qemu-img rebase -u loop, $(if ($format -eq 'Qcow2') { 'same format' } else { 'qcow2' })"
            }
        }
    }

    $pwsh = @('dotnet', (Join-Path $PSHOME 'pwsh.dll'))
    if (Test-Path (Join-Path $PSHOME 'pwsh') -PathType Leaf) { $pwsh = @(Join-Path $PSHOME 'pwsh') }
    $args0 = @($pwsh | Select-Object -Skip 1)
    $bare = 1..5 | ForEach-Object { Seconds { & $pwsh[0] @args0 -NoProfile -NonInteractive -Command '$null' } } | Sort-Object
    $import = 1..5 | ForEach-Object { Seconds { & $pwsh[0] @args0 -NoProfile -NonInteractive -Command "Import-Module '$ModuleManifest'" } } | Sort-Object
    $small = Join-Path $work 'small-store'
    New-VmBase -Store $small -Name one -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 1GB } | Out-Null
    New-VmClone -Store $small -Base one -Name c1 | Out-Null
    $first = 1..5 | ForEach-Object { Seconds { & $pwsh[0] @args0 -NoProfile -NonInteractive -Command "Import-Module '$ModuleManifest'; Get-VmClone -Store '$small' | Out-Null" } } | Sort-Object
    $t = Seconds { $script:listed = @(Get-VmClone -Store $store).Count }
    Add-Row "Get-VmClone listing $listed clones (sizes and drift of every volume)" (Rate $t $listed)
    Add-Row 'Fresh pwsh, no module (reference)' ('{0:N0} ms' -f ($bare[2] * 1000))
    Add-Row 'Fresh pwsh + Import-Module VmClone, added' ('{0:N0} ms' -f (($import[2] - $bare[2]) * 1000))
    Add-Row 'Fresh pwsh + import + first Get-VmClone (1 clone), added' ('{0:N0} ms' -f (($first[2] - $bare[2]) * 1000))
    # One process ran every cmdlet above, so its peak bounds each of them.
    Add-Row "Peak working set of the pwsh that ran all of the above ($listed clones, $($listed * 3) volumes)" ('{0:N0} MiB' -f ((Get-Process -Id $PID).PeakWorkingSet64 / 1MB)) '' 'one process for all cmdlets; not split per cmdlet'
}
finally {
    Get-ChildItem $work -Recurse -File -ErrorAction SilentlyContinue | ForEach-Object { $_.Attributes = 'Normal' }
    Remove-Item $work -Recurse -Force -ErrorAction SilentlyContinue
}

$text = [Text.StringBuilder]::new()
[void]$text.AppendLine()
[void]$text.AppendLine("## Fleet operations through the cmdlets ($Count clones; cmdlet figures: median of $Runs runs, min–max rate after it; references: one run)")
[void]$text.AppendLine()
[void]$text.AppendLine('| benchmark | figure | ratio | reference |')
[void]$text.AppendLine('|---|---|---|---|')
foreach ($r in $rows) { [void]$text.AppendLine("| $($r.Name) | $($r.Figure) | $($r.Ratio) | $($r.Reference) |") }
$text.ToString() | Write-Host
Add-Content -Path $Results -Value $text.ToString()
