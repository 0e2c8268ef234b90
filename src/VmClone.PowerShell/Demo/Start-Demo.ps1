<#
.SYNOPSIS
    A short tour of VmClone on a throw-away store: a base with three volumes,
    linked clones, writes, restore, a new base from a clone, a rebase, and the
    store's health check.
#>
[CmdletBinding()]
param([Parameter(Mandatory)] [string] $ModuleManifest)
$ErrorActionPreference = 'Stop'
Import-Module $ModuleManifest -Force

$work = Join-Path ([IO.Path]::GetTempPath()) ("vmclone-demo-" +
    [guid]::NewGuid().ToString('N').Substring(0, 8))
New-Item -ItemType Directory -Path $work | Out-Null
Push-Location $work
$env:VMCLONE_STORE = Join-Path $work 'store'    # every command uses this store
try {
    function Write-Step([string] $text) {
        Write-Host "`n== $text" -ForegroundColor Cyan
    }
    function Get-Vol([string] $clone, [string] $volume) {
        (Get-VmVolume -Clone $clone | Where-Object Name -eq $volume).Path
    }
    function Write-Text([string] $path, [string] $text) {
        $disk = [VmClone.Disks.VirtualDisk]::Open($path, 'ReadWrite')
        try {
            $bytes = [byte[]]::new(40)    # a 40-byte "file" at the start
            [Text.Encoding]::UTF8.GetBytes($text).CopyTo($bytes, 0)
            $disk.Content.Write($bytes, 0, $bytes.Length)
        } finally { $disk.Dispose() }
    }
    function Read-Text([string] $path) {
        $disk = [VmClone.Disks.VirtualDisk]::Open($path, 'Read')
        try {
            $buffer = [byte[]]::new(40)
            [void] $disk.Content.Read($buffer, 0, $buffer.Length)
            [Text.Encoding]::UTF8.GetString($buffer).TrimEnd([char]0)
        } finally { $disk.Dispose() }
    }
    function Show-Lab {
        Get-VmClone | ForEach-Object {
            [pscustomobject]@{
                Clone  = $_.Name
                Base   = $_.Base
                System = Read-Text (Get-Vol $_.Name 'system')
                Data   = Read-Text (Get-Vol $_.Name 'users')
            }
        } | Format-Table -AutoSize | Out-Host
    }

    Write-Step "A base: system from a file, pagefile and users empty ($work)"
    New-VmDisk ./win11.vhdx -SizeBytes 1GB | Out-Null
    Write-Text (Resolve-Path ./win11.vhdx).Path 'Windows 11, October build'
    New-VmBase -Name win11-10 -Volume @(
        @{ Name = 'system';   Type = 'System';    Path = './win11.vhdx' }
        @{ Name = 'pagefile'; Type = 'Temporary'; SizeBytes = 256MB }
        @{ Name = 'users';    Type = 'Data';      SizeBytes = 512MB }
    ) | Out-Host

    Write-Step 'Three linked clones, made in milliseconds (no data copied)'
    $t = Measure-Command {
        'lab-01', 'lab-02', 'lab-03' | New-VmClone -Base win11-10
    }
    'made 3 clones in {0:N0} ms' -f $t.TotalMilliseconds
    Get-VmVolume -Clone lab-01 | Out-Host

    Write-Step 'Each clone writes to its system and data volumes'
    foreach ($c in 'lab-01', 'lab-02', 'lab-03') {
        Write-Text (Get-Vol $c 'system') "$c broke its system"
        Write-Text (Get-Vol $c 'users') "$c's documents"
    }
    Write-Text (Get-Vol 'lab-03' 'system') 'November updates on lab-03'
    Get-VmClone | Sort-Object DivergedBytes -Descending | Out-Host

    Write-Step 'Restore lab-01: its system is the base again, its data stays'
    Restore-VmClone lab-01 -Force
    Show-Lab

    Write-Step 'lab-03 (updated) becomes the new base; all clones move onto it'
    Get-VmClone lab-03 | New-VmBase -Name win11-11 | Out-Null
    Invoke-VmRebase -Base win11-10 -NewBase win11-11 -WhatIf
    Get-VmClone -Base win11-10 | Invoke-VmRebase -NewBase win11-11 -Force |
        Out-Null
    Show-Lab

    Write-Step 'Nothing depends on the old base any more: remove it'
    Remove-VmBase win11-10 -Force
    Get-VmBase | Out-Host

    Write-Step 'The store checks out; then someone writes to the base...'
    Test-VmStore | Out-Host
    $system = (Get-VmVolume -Base win11-11 | Where-Object Name -eq system).Path
    Set-ItemProperty $system -Name IsReadOnly -Value $false
    Write-Text $system 'tampered'
    (Test-VmStore).Problems | Format-Table Kind, Subject | Out-Host
}
finally {
    Pop-Location
    Get-ChildItem $work -Recurse -File |
        ForEach-Object { $_.IsReadOnly = $false }
    Remove-Item -LiteralPath $work -Recurse -Force
}
