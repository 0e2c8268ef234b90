<#
.SYNOPSIS
    A short tour of VmClone on a throw-away folder: a base disk, a chain of children,
    bytes written through the chain and read back, and what the disk cmdlets show.
#>
[CmdletBinding()]
param([Parameter(Mandatory)] [string] $ModuleManifest)
$ErrorActionPreference = 'Stop'
Import-Module $ModuleManifest -Force

$work = Join-Path ([IO.Path]::GetTempPath()) ("vmclone-demo-" + [guid]::NewGuid().ToString('N').Substring(0, 8))
New-Item -ItemType Directory -Path $work | Out-Null
Push-Location $work
try {
    function Write-Step([string] $text) { Write-Host "`n== $text" -ForegroundColor Cyan }
    function Write-Text([string] $path, [long] $offset, [string] $text) {
        $disk = [VmClone.Disks.VirtualDisk]::Open((Resolve-Path $path).Path, [IO.FileAccess]::ReadWrite)
        try {
            $bytes = [Text.Encoding]::UTF8.GetBytes($text)
            $disk.Content.Position = $offset
            $disk.Content.Write($bytes, 0, $bytes.Length)
        } finally { $disk.Dispose() }
    }
    function Read-Text([string] $path, [long] $offset, [int] $length) {
        $disk = [VmClone.Disks.VirtualDisk]::Open((Resolve-Path $path).Path, [IO.FileAccess]::Read)
        try {
            $buffer = [byte[]]::new($length)
            $disk.Content.Position = $offset
            [void] $disk.Content.Read($buffer, 0, $length)
            [Text.Encoding]::UTF8.GetString($buffer).TrimEnd([char]0)
        } finally { $disk.Dispose() }
    }

    Write-Step "A 40 GiB dynamic base disk ($work)"
    New-VmDisk -Path ./base.vhdx -SizeBytes 40GB | Out-Host
    Write-Text ./base.vhdx 0 'Windows 11 base image, prepared 2026-10'
    Write-Text ./base.vhdx 20GB 'a file in the middle of the disk'

    Write-Step 'Two linked clones of it, created in milliseconds (metadata only)'
    $elapsed = Measure-Command {
        'lab-01.vhdx', 'lab-02.vhdx' | New-VmDisk -ParentPath ./base.vhdx | Out-Null
    }
    "created 2 children in {0:N1} ms" -f $elapsed.TotalMilliseconds
    Write-Text ./lab-01.vhdx 0 'lab-01 wrote over the start of its disk'

    Write-Step 'Each clone reads its own writes, and the base wherever it wrote nothing'
    'base.vhdx', 'lab-01.vhdx', 'lab-02.vhdx' | ForEach-Object {
        [pscustomobject]@{ Disk = $_; 'At 0' = Read-Text "./$_" 0 48; 'At 20 GiB' = Read-Text "./$_" 20GB 32 }
    } | Format-Table -AutoSize | Out-Host

    Write-Step 'The whole chain of lab-01, layer by layer'
    Get-VmDisk ./lab-01.vhdx -Chain | Format-Table Level, Format, Type, @{ n = 'Stored'; e = { [VmClone.PowerShell.SizeFormat]::Bytes($_.AllocatedSize) } }, Path -AutoSize | Out-Host

    Write-Step 'Every disk in the folder, from the pipeline'
    Get-ChildItem -Filter *.vhdx | Get-VmDisk | Sort-Object FileSize -Descending | Out-Host

    Write-Step 'Integrity check of every chain'
    Get-ChildItem -Filter *.vhdx | Test-VmDisk | Out-Host

    Write-Step 'Someone writes to the base behind the clones'' back...'
    Write-Text ./base.vhdx 4096 'changed!'
    Test-VmDisk ./lab-02.vhdx | Select-Object -ExpandProperty Problems | Format-List | Out-Host
}
finally {
    Pop-Location
    Remove-Item -LiteralPath $work -Recurse -Force
}
