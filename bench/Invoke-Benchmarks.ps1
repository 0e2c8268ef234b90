<#
.SYNOPSIS
    Runs VmClone's benchmarks side by side with their references and regenerates bench/RESULTS.md.
.DESCRIPTION
    Called by `dotnet pwsh ./build.ps1 -Task Bench`. Needs qemu-img for the qemu columns.
#>
[CmdletBinding()]
param(
    [string] $ModuleManifest,
    [string] $Configuration = 'Release',
    [int] $Runs = 5,
    [int] $FleetCount = 1000
)
$ErrorActionPreference = 'Stop'
$project = Join-Path $PSScriptRoot 'VmClone.Bench/VmClone.Bench.csproj'
& dotnet run --project $project -c $Configuration -- (Join-Path $PSScriptRoot 'RESULTS.md') $Runs
if ($LASTEXITCODE -ne 0) { throw "benchmarks failed ($LASTEXITCODE)" }
if ($ModuleManifest) {
    & (Join-Path $PSScriptRoot 'Fleet.ps1') -ModuleManifest $ModuleManifest -Count $FleetCount
}
