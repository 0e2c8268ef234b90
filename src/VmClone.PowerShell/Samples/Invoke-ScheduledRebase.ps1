<#
.SYNOPSIS
    Moves clones onto a new base, unattended; the exit code says whether every clone made it.
.DESCRIPTION
    Written for Task Scheduler, cron, a systemd timer or a CI job: it asks no questions, logs
    every step (to the output and, with -LogPath, to a file), and reports through its exit code:
      0  every clone was rebased (or there was nothing to do)
      1  at least one clone failed; the others were rebased; the log names each failure
      2  the run could not start or was stopped (no store, no such base, store busy ...)
    A clone that fails keeps its old base and its data; run the script again once the cause is
    fixed, it only picks up the clones still on an old base. With -RemoveOldBase the old base is
    removed when no clone depends on it any more.
.EXAMPLE
    pwsh -NoProfile -NonInteractive -File Invoke-ScheduledRebase.ps1 -Base win11-2026-10 -NewBase win11-2026-11 -LogPath /var/log/vmclone-rebase.log
.EXAMPLE
    # Windows Task Scheduler, every first Sunday at 03:00
    $action = New-ScheduledTaskAction -Execute pwsh.exe -Argument '-NoProfile -NonInteractive -File C:\VmClone\Invoke-ScheduledRebase.ps1 -Base win11-2026-10 -NewBase win11-2026-11 -RemoveOldBase'
    Register-ScheduledTask -TaskName 'VmClone rebase' -Action $action -Trigger (New-ScheduledTaskTrigger -Weekly -WeeksInterval 4 -DaysOfWeek Sunday -At 3am)
#>
[CmdletBinding()]
param(
    # The base the clones are to depend on from now on.
    [Parameter(Mandatory)] [string] $NewBase,
    # Only the clones of this base (all clones not yet on -NewBase when omitted).
    [string] $Base,
    # Only clones whose names match (wildcards allowed).
    [string[]] $Name = '*',
    # The store; by default $env:VMCLONE_STORE, else the per-user store.
    [string] $Store,
    # How many clones are rebased at the same time.
    [ValidateRange(1, 64)] [int] $ThrottleLimit = [Math]::Min(64, 2 * [Environment]::ProcessorCount),
    # A file the log is appended to.
    [string] $LogPath,
    # Remove -Base once no clone depends on it.
    [switch] $RemoveOldBase
)
$ErrorActionPreference = 'Stop'

function Write-Log([string] $Message) {
    $line = '{0:yyyy-MM-dd HH:mm:ss} {1}' -f (Get-Date), $Message
    Write-Output $line
    if ($LogPath) { Add-Content -LiteralPath $LogPath -Value $line }
}

try {
    # Beside the module (Samples/ in the VmClone folder), else wherever PowerShell finds it.
    if (-not (Get-Module VmClone)) {
        $beside = Join-Path (Split-Path -Parent $PSScriptRoot) 'VmClone.psd1'
        if (Test-Path -LiteralPath $beside) { Import-Module $beside } else { Import-Module VmClone }
    }
    $storeArgs = @{}
    if ($Store) { $storeArgs.Store = $Store }
    $filter = @{}
    if ($Base) { $filter.Base = $Base }

    $null = Get-VmBase @storeArgs -Name $NewBase                  # stops here if it does not exist
    $clones = @(Get-VmClone @storeArgs @filter -Name $Name | Where-Object Base -ne $NewBase)
    Write-Log "$($clones.Count) clone(s) to rebase onto $NewBase, $ThrottleLimit at a time."

    # Per-clone failures are non-terminating: the other clones go on, and each failure is
    # collected in $failures. Anything that stops the whole command lands in catch.
    $failures = @()
    $rebased = @($clones | Invoke-VmRebase -NewBase $NewBase -Force -ThrottleLimit $ThrottleLimit -ErrorAction SilentlyContinue -ErrorVariable failures)
    foreach ($c in $rebased) { Write-Log "rebased $($c.Name) onto $($c.Base)" }
    foreach ($e in $failures) { Write-Log "FAILED $($e.TargetObject): [$($e.FullyQualifiedErrorId)] $($e.Exception.Message)" }

    if ($RemoveOldBase -and $Base -and $failures.Count -eq 0) {
        Remove-VmBase @storeArgs -Name $Base -Force
        Write-Log "removed base $Base"
    }
    Write-Log "$($rebased.Count) rebased, $($failures.Count) failed."
    if ($failures.Count -gt 0) { exit 1 }
    exit 0
}
catch {
    Write-Log "STOPPED: [$($_.FullyQualifiedErrorId)] $($_.Exception.Message)"
    exit 2
}
