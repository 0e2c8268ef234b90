<#
.SYNOPSIS
    Moves clones onto a new base, unattended; the exit code says whether every clone made it.
.DESCRIPTION
    Written for Task Scheduler, cron, a systemd timer or a CI job: it asks no questions, logs
    every step (to the output and, with -LogPath, to a file), and reports through its exit code:
      0  every clone was rebased (or there was nothing to do)
      1  at least one clone failed; the others were rebased; the log names each failure
      2  the run could not start or was stopped (no store, no such base, store busy, Ctrl+C,
         SIGTERM from systemd or kill ...); the log still names every clone rebased before
         the stop, and a clone cut off in the middle is finished or undone by the next command
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
    if ($LogPath) { Add-Content -LiteralPath $LogPath -Value $line }
    Write-Output $line
}

# SIGTERM (systemd stopping the unit, kill, a container shutting down) stops the run the way
# Ctrl+C does, so that it is logged and the exit code is 2, not whatever the runtime gives a
# killed process: the handler raises SIGINT, which PowerShell answers by stopping the pipeline;
# where SIGINT is ignored (a job started in the background by a non-interactive shell), the run
# stops after the next clone is done. Windows has no SIGTERM: a stopped scheduled task ends the
# process outright.
if (-not $IsWindows -and -not ('VmCloneSample.Termination' -as [type])) {
    Add-Type -TypeDefinition @'
namespace VmCloneSample {
    using System.Runtime.InteropServices;
    public static class Termination {
        [DllImport("libc")] private static extern int kill(int pid, int signal);
        private static PosixSignalRegistration registration;
        public static volatile bool Requested;
        public static void Register() {
            registration = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => {
                context.Cancel = true;
                Requested = true;
                kill(System.Environment.ProcessId, 2);
            });
        }
    }
}
'@
    [VmCloneSample.Termination]::Register()
}
function Test-TerminationRequested { -not $IsWindows -and [VmCloneSample.Termination]::Requested }

$finished = $false
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

    # Per-clone failures are non-terminating: the other clones go on. Each clone is logged as
    # soon as it is done or failed (errors merged into the output by 2>&1), so a run stopped
    # half way has logged every clone it finished. Anything that stops the whole command lands
    # in catch.
    $rebased = 0
    $failed = 0
    $clones | Invoke-VmRebase -NewBase $NewBase -Force -ThrottleLimit $ThrottleLimit -ErrorAction Continue 2>&1 | ForEach-Object {
        if ($_ -is [System.Management.Automation.ErrorRecord]) {
            $failed++
            Write-Log "FAILED $($_.TargetObject): [$($_.FullyQualifiedErrorId)] $($_.Exception.Message)"
        }
        else {
            $rebased++
            Write-Log "rebased $($_.Name) onto $($_.Base)"
        }
        if (Test-TerminationRequested) { throw [System.OperationCanceledException]::new('SIGTERM') }
    }

    if ($RemoveOldBase -and $Base -and $failed -eq 0) {
        Remove-VmBase @storeArgs -Name $Base -Force
        Write-Log "removed base $Base"
    }
    Write-Log "$rebased rebased, $failed failed."
    $finished = $true
    if ($failed -gt 0) { exit 1 }
    exit 0
}
catch {
    if (-not (Test-TerminationRequested)) {
        $finished = $true
        Write-Log "STOPPED: [$($_.FullyQualifiedErrorId)] $($_.Exception.Message)"
        exit 2
    }
}
finally {
    # Reached without either of the above only when the run was stopped (Ctrl+C, SIGTERM).
    if (-not $finished) {
        # Inline, not Write-Log: while the pipeline is being stopped, calling a function or
        # writing to the pipeline stops the block again, and the exit code would be lost.
        $line = '{0:yyyy-MM-dd HH:mm:ss} STOPPED by a signal; the clones logged above as rebased are done, run again to rebase the rest.' -f (Get-Date)
        if ($LogPath) { Add-Content -LiteralPath $LogPath -Value $line }
        [Console]::Out.WriteLine($line)
        # Not `exit 2`: from an advanced script being stopped, that still ends pwsh with 0.
        [Environment]::Exit(2)
    }
}
