<#
.SYNOPSIS
    Runs VmClone's benchmarks side by side with their references and regenerates bench/RESULTS.md.
.DESCRIPTION
    Called by `dotnet pwsh ./build.ps1 -Task Bench` (-BenchRuns and -FleetCount pass through).
    Needs qemu-img and qemu-io for the qemu columns, GNU time (/usr/bin/time) for qemu's peak memory.
    First the engine benchmarks (bench/VmClone.Bench: reads, rebase, convert), which write
    RESULTS.md; then the fleet benchmarks through the cmdlets (bench/Fleet.ps1), which append.
#>
[CmdletBinding()]
param(
    [string] $ModuleManifest,
    [string] $Configuration = 'Release',
    # Runs per figure, after one warm-up run; the median and min–max are reported.
    [int] $Runs = 5,
    # Clones per fleet operation (New-VmClone, Restore-VmClone, Invoke-VmRebase).
    [int] $FleetCount = 1000
)
$ErrorActionPreference = 'Stop'
$results = Join-Path $PSScriptRoot 'RESULTS.md'
$project = Join-Path $PSScriptRoot 'VmClone.Bench/VmClone.Bench.csproj'
$clock = [Diagnostics.Stopwatch]::StartNew()
& dotnet run --project $project -c $Configuration -- $results $Runs
if ($LASTEXITCODE -ne 0) { throw "benchmarks failed ($LASTEXITCODE); see the content checks in $results" }
$engine = $clock.Elapsed
if ($ModuleManifest) {
    & (Join-Path $PSScriptRoot 'Fleet.ps1') -ModuleManifest $ModuleManifest -Count $FleetCount -Results $results
}
# Single quotes: a backtick inside double quotes is PowerShell's escape character.
$command = '`dotnet pwsh ./build.ps1 -Task Bench -BenchRuns {0} -FleetCount {1}`' -f $Runs, $FleetCount
$line = "`nWhole run: {0:N0} min (engine benchmarks {1:N0} min, fleet {2:N0} min); $command." -f
    $clock.Elapsed.TotalMinutes, $engine.TotalMinutes, ($clock.Elapsed - $engine).TotalMinutes
Add-Content -Path $results -Value $line
Write-Host $line
