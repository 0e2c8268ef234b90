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

# A child pwsh of this one's version (installed, or run as a dotnet tool), -NoProfile
# -NonInteractive, with stdin closed, killed after -TimeoutSeconds. Returns its exit code,
# its output lines (stdout and stderr) and whether it had to be killed.
function Invoke-TestPwsh {
    param([string[]] $Arguments, [int] $TimeoutSeconds = 120, [hashtable] $Environment = @{})
    $exe = foreach ($name in 'pwsh', 'pwsh.exe') {
        $candidate = Join-Path $PSHOME $name
        if (Test-Path -LiteralPath $candidate -PathType Leaf) { $candidate; break }
    }
    $psi = [Diagnostics.ProcessStartInfo]::new()
    if ($exe) { $psi.FileName = $exe } else { $psi.FileName = 'dotnet'; $psi.ArgumentList.Add((Join-Path $PSHOME 'pwsh.dll')) }
    foreach ($a in @('-NoProfile', '-NonInteractive') + $Arguments) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.RedirectStandardInput = $true
    $psi.UseShellExecute = $false
    $psi.Environment['NO_COLOR'] = '1'
    foreach ($k in $Environment.Keys) { $psi.Environment[$k] = $Environment[$k] }
    $p = [Diagnostics.Process]::Start($psi)
    $p.StandardInput.Close()
    $stdout = $p.StandardOutput.ReadToEndAsync(); $stderr = $p.StandardError.ReadToEndAsync()
    $timedOut = -not $p.WaitForExit($TimeoutSeconds * 1000)
    if ($timedOut) { $p.Kill($true); $p.WaitForExit() }
    [pscustomobject]@{
        ExitCode = $p.ExitCode
        TimedOut = $timedOut
        Output   = @(($stdout.Result + $stderr.Result) -split '\r?\n' | Where-Object { $_ })
    }
}

# A store at $Root with base win11 (system with content, temp, data) and the given clones.
# With -DataInBase the base's data volume holds data, so the clones' data volumes are its children.
# -Format makes the store's volumes VMDK instead of VHDX.
function New-TestFleet([string] $Root, [string[]] $Clone = @('lab-01', 'lab-02'), [string] $Folder, [string] $Base = 'win11', [switch] $DataInBase, [string] $Format = 'Vhdx') {
    $tag = [guid]::NewGuid().ToString('N').Substring(0, 6)
    $system = Join-Path $Folder "system-$tag.vhdx"
    New-VmDisk $system 64MB | Out-Null
    Write-DiskBytes $system 0 ([Text.Encoding]::UTF8.GetBytes("$Base system"))
    $data = @{ Name = 'data'; Type = 'Data'; SizeBytes = 32MB }
    if ($DataInBase) {
        $data = @{ Name = 'data'; Type = 'Data'; Path = (Join-Path $Folder "data-$tag.vhdx") }
        New-VmDisk $data.Path 32MB | Out-Null
        Write-DiskBytes $data.Path 1MB (Get-RandomBytes 65536 7)
    }
    New-VmBase $Base -Store $Root -Format $Format -Volume @(
        @{ Name = 'system'; Type = 'System'; Path = $system }
        @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 32MB }
        $data) | Out-Null
    if ($Clone) { New-VmClone $Clone -Base $Base -Store $Root | Out-Null }
}

# The path of a clone's (or with -Base, a base's) volume.
function Get-TestVolumePath([string] $Store, [string] $Clone, [string] $Volume, [string] $Base) {
    if ($Base) { (Get-VmVolume -Base $Base -Store $Store | Where-Object Name -eq $Volume).Path }
    else { (Get-VmVolume -Clone $Clone -Store $Store | Where-Object Name -eq $Volume).Path }
}

function Write-DiskText([string] $Path, [long] $Offset, [string] $Text) {
    Write-DiskBytes $Path $Offset ([Text.Encoding]::UTF8.GetBytes($Text))
}

function Read-DiskText([string] $Path, [long] $Offset, [int] $Count) {
    [Text.Encoding]::UTF8.GetString((Read-DiskBytes $Path $Offset $Count))
}

# Every file under $Root with its length and last write time: what -WhatIf must leave as it is.
function Get-TestSnapshot([string] $Root) {
    Get-ChildItem -LiteralPath $Root -Recurse -Force | Sort-Object FullName |
        ForEach-Object { '{0} {1} {2}' -f $_.FullName, $(if ($_.PSIsContainer) { 'dir' } else { $_.Length }), $_.LastWriteTimeUtc.Ticks }
}

# Formats the store tests run in: VHDX, qcow2, VHD, and VMDK unless the engine says it is not written yet.
function Get-TestFormats {
    $vmdkSkip = $false
    $probe = Join-Path ([IO.Path]::GetTempPath()) ("vmclone-probe-" + [guid]::NewGuid().ToString('N').Substring(0, 8) + '.vmdk')
    try { [VmClone.Disks.VirtualDisk]::CreateDynamic($probe, 1MB).Dispose() }
    catch { if ($_.Exception.Message -like '*being written*') { $vmdkSkip = $true } else { throw } }
    finally { Remove-Item -LiteralPath $probe -Force -ErrorAction SilentlyContinue }
    @{ Format = 'Vhdx'; Skip = $false }
    @{ Format = 'Vmdk'; Skip = $vmdkSkip }
    @{ Format = 'Qcow2'; Skip = $false }
    @{ Format = 'Vhd'; Skip = $false }
}


# sha256 of a disk's content as qemu reads it (qemu-img convert to raw); a failed convert fails the test.
function Get-QemuContentHash([string] $Path, [string] $Format) {
    $raw = Join-Path ([IO.Path]::GetTempPath()) ('vmclone-qemu-' + [guid]::NewGuid().ToString('N') + '.raw')
    try {
        qemu-img convert -f $Format -O raw $Path $raw
        if ($LASTEXITCODE -ne 0) { throw "qemu-img convert -f $Format of '$Path' failed with exit code $LASTEXITCODE" }
        (Get-FileHash -Algorithm SHA256 $raw).Hash.ToLowerInvariant()
    }
    finally { Remove-Item -LiteralPath $raw -Force -ErrorAction SilentlyContinue }
}

# Holds a POSIX record lock on the whole file, as a running QEMU does, until the process is stopped.
function Start-RecordLock([string] $Path) {
    $ready = "$Path.held"
    $script = "import fcntl, sys, time`nf = open(sys.argv[1], 'rb+')`nfcntl.lockf(f, fcntl.LOCK_EX)`nopen(sys.argv[2], 'w').close()`ntime.sleep(120)"
    $p = Start-Process -FilePath 'python3' -ArgumentList @('-c', "`"$script`"", "`"$Path`"", "`"$ready`"") -PassThru
    $watch = [Diagnostics.Stopwatch]::StartNew()
    while (-not (Test-Path -LiteralPath $ready) -and $watch.Elapsed.TotalSeconds -lt 30) { Start-Sleep -Milliseconds 20 }
    Remove-Item -LiteralPath $ready -ErrorAction SilentlyContinue
    $p
}

# What -WhatIf prints: it goes to the host, not to a stream, so a transcript is where a user would see it.
function Get-WhatIfText([scriptblock] $Command) {
    $transcript = Join-Path ([IO.Path]::GetTempPath()) ('vmclone-whatif-' + [guid]::NewGuid().ToString('N') + '.txt')
    Start-Transcript -LiteralPath $transcript | Out-Null
    try { & $Command } finally { Stop-Transcript | Out-Null }
    try { Get-Content -LiteralPath $transcript -Raw }
    finally { Remove-Item -LiteralPath $transcript -Force -ErrorAction SilentlyContinue }
}

# Skip libvhdi tests on a machine without python3's pyvhdi, but never under CI=true.
function Get-LibvhdiSkip {
    ($env:CI -ne 'true') -and -not ((Test-Path /usr/bin/python3) -and $(& /usr/bin/python3 -c 'import pyvhdi' 2>$null; $LASTEXITCODE -eq 0))
}

# sha256 of each VHD's content as libvhdi reads it (qemu-img cannot open a differencing VHD's
# parent): its chain, as VmClone opens it, handed to libvhdi from the base up with set_parent.
# One python3 for all the paths; returns path -> hash.
function Get-LibvhdiContentHash([string[]] $Path) {
    $chains = foreach ($p in $Path) {
        $disk = [VmClone.Disks.VirtualDisk]::Open($p, [IO.FileAccess]::Read)
        try { $layers = @($disk.Layers | ForEach-Object Path); [array]::Reverse($layers); , $layers }
        finally { $disk.Dispose() }
    }
    $script = @'
import sys, json, pyvhdi, hashlib
for chain in json.loads(sys.stdin.read()):
    files = []
    for p in chain:
        f = pyvhdi.file(); f.open(p); files.append(f)
    for i in range(1, len(files)):
        files[i].set_parent(files[i - 1])
    top = files[-1]; h = hashlib.sha256(); n = top.get_media_size(); o = 0
    while o < n:
        d = top.read_buffer_at_offset(min(1 << 22, n - o), o); h.update(d); o += len(d)
    print(h.hexdigest(), flush=True)
    for f in reversed(files): f.close()
'@
    $result = @{}
    if (-not $Path) { return $result }
    $out = @(ConvertTo-Json -InputObject @($chains | ForEach-Object { , @($_) }) -Depth 3 -Compress | & /usr/bin/python3 -c $script)
    if ($LASTEXITCODE -ne 0 -or $out.Count -ne $Path.Count) { throw "libvhdi could not read every one of $($Path -join ', ') (exit code $LASTEXITCODE)" }
    for ($i = 0; $i -lt $Path.Count; $i++) { $result[$Path[$i]] = $out[$i].Trim() }
    $result
}

# sha256 of a disk's first $Length bytes as VmClone reads it, and whether everything after them
# reads as zeros: what a data volume keeps when a rebase onto a grown outline makes it larger.
function Get-DiskHeadHash([string] $Path, [long] $Length) {
    $disk = [VmClone.Disks.VirtualDisk]::Open($Path, [IO.FileAccess]::Read)
    try {
        $sha = [Security.Cryptography.IncrementalHash]::CreateHash([Security.Cryptography.HashAlgorithmName]::SHA256)
        $buffer = [byte[]]::new(1MB)
        $left = $Length
        while ($left -gt 0) {
            $n = $disk.Content.Read($buffer, 0, [Math]::Min($buffer.Length, $left))
            if ($n -le 0) { break }
            $sha.AppendData($buffer, 0, $n); $left -= $n
        }
        # A buffer reads as zeros when it hashes as zeros do (a byte-by-byte loop in script is slow).
        $zeros = $true
        $empty = [byte[]]::new($buffer.Length)
        while ($zeros -and ($n = $disk.Content.Read($buffer, 0, $buffer.Length)) -gt 0) {
            $got = [Security.Cryptography.SHA256]::HashData([IO.MemoryStream]::new($buffer, 0, $n))
            $none = [Security.Cryptography.SHA256]::HashData([IO.MemoryStream]::new($empty, 0, $n))
            $zeros = [Convert]::ToHexString($got) -eq [Convert]::ToHexString($none)
        }
        '{0} {1}' -f [Convert]::ToHexString($sha.GetHashAndReset()), $(if ($zeros) { 'then zeros' } else { 'then data' })
    }
    finally { $disk.Dispose() }
}

Export-ModuleMember -Function *
