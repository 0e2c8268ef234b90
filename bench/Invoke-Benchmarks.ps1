<#
.SYNOPSIS
    Runs VmClone's benchmarks side by side with their references and regenerates bench/RESULTS.md.
.DESCRIPTION
    Called by `dotnet pwsh ./build.ps1 -Task Bench` (-BenchRuns, -FleetCount and -BenchOnly pass through).
    Needs qemu-img and qemu-io for the qemu columns, GNU time (/usr/bin/time) for qemu's peak memory.
    First the engine benchmarks (bench/VmClone.Bench: reads, rebase, convert), which write
    RESULTS.md; then the fleet benchmarks through the cmdlets (bench/Fleet.ps1), which append.
    With -Only, only the engine sections named run (a section's key, or any word of one:
    qcow2, vhd, reads, rebase-vmdk, ...; "fleet" for the fleet part), and the generator merges
    them into the figures of the earlier runs (kept in RESULTS.json beside RESULTS.md).
#>
[CmdletBinding()]
param(
    [string] $ModuleManifest,
    [string] $Configuration = 'Release',
    # Runs per figure, after one warm-up run; the median and min–max are reported.
    [int] $Runs = 5,
    # Clones per fleet operation (New-VmClone, Restore-VmClone, Invoke-VmRebase).
    [int] $FleetCount = 1000,
    # Only these sections (see above); none: all.
    [string[]] $Only = @()
)
$ErrorActionPreference = 'Stop'
$results = Join-Path $PSScriptRoot 'RESULTS.md'
$project = Join-Path $PSScriptRoot 'VmClone.Bench/VmClone.Bench.csproj'
$clock = [Diagnostics.Stopwatch]::StartNew()
# From build.ps1 the list arrives as one comma-separated argument (empty: all).
$Only = @($Only -split ',' | ForEach-Object { $_.Trim() } | Where-Object { $_ })
$engineOnly = @($Only | Where-Object { $_ -ne 'fleet' })
$fleet = $Only.Count -eq 0 -or $Only -contains 'fleet'
if ($Only.Count -eq 0 -or $engineOnly.Count -gt 0) {
    & dotnet run --project $project -c $Configuration -- $results $Runs ($engineOnly -join ',')
    if ($LASTEXITCODE -ne 0) { throw "benchmarks failed ($LASTEXITCODE); see the content checks in $results" }
}
$engine = $clock.Elapsed
if ($ModuleManifest -and $fleet) {
    if ($Only.Count -gt 0) {
        # The fleet part is appended anew: the earlier one and the whole-run line go.
        $text = Get-Content -Raw $results
        $at = $text.IndexOf("`n## Fleet operations")
        if ($at -ge 0) { Set-Content -Path $results -Value $text.Substring(0, $at) -NoNewline }
    }
    & (Join-Path $PSScriptRoot 'Fleet.ps1') -ModuleManifest $ModuleManifest -Count $FleetCount -Results $results
}
if ($Only.Count -gt 0) {
    Write-Host "Sections $($Only -join ', ') merged into $results"
    return
}
# Single quotes: a backtick inside double quotes is PowerShell's escape character.
$command = '`dotnet pwsh ./build.ps1 -Task Bench -BenchRuns {0} -FleetCount {1}`' -f $Runs, $FleetCount
$line = "`nWhole run: {0:N0} min (engine benchmarks {1:N0} min, fleet {2:N0} min); $command." -f
    $clock.Elapsed.TotalMinutes, $engine.TotalMinutes, ($clock.Elapsed - $engine).TotalMinutes
Add-Content -Path $results -Value $line
Write-Host $line
