# Helpers shared by the Pester tests: temp folders, bytes through the engine API, oracles.
Set-StrictMode -Version Latest

function New-TestFolder {
    $path = Join-Path ([IO.Path]::GetTempPath()) ('vmclone-pester-' + [guid]::NewGuid().ToString('N').Substring(0, 10))
    (New-Item -ItemType Directory -Path $path).FullName
}

function Remove-TestFolder([string] $Path) {
    if ($Path -and (Test-Path -LiteralPath $Path)) {
        Get-ChildItem -LiteralPath $Path -Recurse -File | ForEach-Object { $_.Attributes = 'Normal' }
        Remove-Item -LiteralPath $Path -Recurse -Force
    }
}

# Writes bytes into a disk's virtual content through the public engine API.
function Write-DiskBytes([string] $Path, [long] $Offset, [byte[]] $Bytes) {
    $disk = [VmClone.Disks.VirtualDisk]::Open($Path, [IO.FileAccess]::ReadWrite)
    try {
        $disk.Content.Position = $Offset
        $disk.Content.Write($Bytes, 0, $Bytes.Length)
    }
    finally { $disk.Dispose() }
}

function Read-DiskBytes([string] $Path, [long] $Offset, [int] $Count) {
    $disk = [VmClone.Disks.VirtualDisk]::Open($Path, [IO.FileAccess]::Read)
    try {
        $buffer = [byte[]]::new($Count)
        $disk.Content.Position = $Offset
        $read = 0
        while ($read -lt $Count) {
            $n = $disk.Content.Read($buffer, $read, $Count - $read)
            if ($n -le 0) { break }
            $read += $n
        }
        , $buffer
    }
    finally { $disk.Dispose() }
}

# sha256 of a disk's whole virtual content as read by VmClone.
function Get-DiskContentHash([string] $Path) {
    $disk = [VmClone.Disks.VirtualDisk]::Open($Path, [IO.FileAccess]::Read)
    try {
        $sha = [Security.Cryptography.SHA256]::Create()
        try { ([BitConverter]::ToString($sha.ComputeHash($disk.Content)) -replace '-', '').ToLowerInvariant() }
        finally { $sha.Dispose() }
    }
    finally { $disk.Dispose() }
}

function Get-RandomBytes([int] $Count, [int] $Seed = 1) {
    $bytes = [byte[]]::new($Count)
    [Random]::new($Seed).NextBytes($bytes)
    , $bytes
}

function Test-Oracle([string] $Tool) {
    [bool](Get-Command $Tool -CommandType Application -ErrorAction SilentlyContinue)
}

# Skip oracle tests on a machine without the oracle, but never under CI=true.
function Get-OracleSkip([string] $Tool) {
    ($env:CI -ne 'true') -and -not (Test-Oracle $Tool)
}

Export-ModuleMember -Function *
