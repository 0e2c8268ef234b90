# VmClone in scheduled scripts: no prompt blocks a host that cannot ask, errors can be caught,
# -Verbose tells every step, and the sample scheduled rebase reports failure by its exit code.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:helpers = Join-Path $PSScriptRoot 'TestHelpers.psm1'
}

Describe 'A host that cannot prompt' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02, lab-03 -Folder $dir
        Get-VmClone lab-01 -Store $store | New-VmBase -Name win11-v2 | Out-Null
        # Every high-impact command, without -Force or -Confirm:$false, in pwsh -NonInteractive
        # (stdin closed): each must stop at once; then the same with the preference or switch.
        $script = @"
Import-Module '$env:VMCLONE_MODULE'
`$s = '$store'
foreach (`$run in @(
    { Restore-VmClone lab-01, lab-02 -Store `$s -ErrorAction Stop }
    { Invoke-VmRebase -Base win11 -NewBase win11-v2 -Store `$s -ErrorAction Stop }
    { Remove-VmClone lab-03 -Store `$s -ErrorAction Stop }
    { Remove-VmBase win11-v2 -Store `$s -ErrorAction Stop }
    { New-VmClone lab-09 -Base win11 -Store `$s -Confirm -ErrorAction Stop })) {
    try { & `$run | Out-Null; 'ran' } catch { 'stopped: ' + `$_.FullyQualifiedErrorId }
}
'clones: ' + ((Get-VmClone -Store `$s).Name -join ',')
Restore-VmClone lab-01 -Store `$s -Confirm:`$false -ErrorAction Stop | Out-Null; 'confirm-false: ran'
`$ConfirmPreference = 'None'
Remove-VmClone lab-03 -Store `$s -ErrorAction Stop; 'preference-none: ran'
'clones: ' + ((Get-VmClone -Store `$s).Name -join ',')
"@
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $child = Invoke-TestPwsh -Arguments @('-Command', $script) -TimeoutSeconds 90
        $elapsed = $watch.Elapsed
    }
    AfterAll { Remove-TestFolder $dir }

    It 'does not hang' {
        $child.TimedOut | Should -BeFalse
        $elapsed.TotalSeconds | Should -BeLessThan 60
        $child.ExitCode | Should -Be 0 -Because ($child.Output -join "`n")
    }

    It 'stops every command that would ask, with ConfirmationNotPossible, before touching a clone' {
        $stopped = @($child.Output | Where-Object { $_ -like 'stopped: *' })
        $stopped.Count | Should -Be 5 -Because ($child.Output -join "`n")
        foreach ($s in $stopped) { $s | Should -BeLike 'stopped: ConfirmationNotPossible,*' }
        $child.Output | Should -Contain 'clones: lab-01,lab-02,lab-03'
    }

    It 'proceeds with -Confirm:$false or $ConfirmPreference = None' {
        $child.Output | Should -Contain 'confirm-false: ran'
        $child.Output | Should -Contain 'preference-none: ran'
        $child.Output | Should -Contain 'clones: lab-01,lab-02'
    }
}

Describe 'A hook that must fail when VmClone refuses' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01 -Folder $dir
        $import = "Import-Module '$env:VMCLONE_MODULE'; `$s = '$store'; "
    }
    AfterAll { Remove-TestFolder $dir }

    It 'exits 0 and goes on without it, as about_VmClone_Scheduling warns' {
        $run = Invoke-TestPwsh -Arguments @('-Command', $import + "Restore-VmClone lab-01 -Store `$s; 'after'") -TimeoutSeconds 90
        ($run.Output -join "`n") | Should -Match 'ConfirmationNotPossible|cannot ask'
        $run.Output | Should -Contain 'after'
        $run.ExitCode | Should -Be 0
    }

    It 'fails with exit code 1, before the next statement, in the form <_> the topic shows' -ForEach @(
        '$ErrorActionPreference = "Stop"; Restore-VmClone lab-01; "after"'
        'Restore-VmClone lab-01 -ErrorAction Stop; "after"') {
        (Get-Help about_VmClone_Scheduling | Out-String) | Should -BeLike "*-Command '$([WildcardPattern]::Escape($_))'*"
        $run = Invoke-TestPwsh -Arguments @('-Command', $import + ($_ -replace 'lab-01', 'lab-01 -Store $s')) -TimeoutSeconds 90
        ($run.Output -join "`n") | Should -Match 'ConfirmationNotPossible|cannot ask'
        $run.Output | Should -Not -Contain 'after'
        $run.ExitCode | Should -Be 1 -Because ($run.Output -join "`n")
    }
}

Describe 'Errors a script can catch' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir
    }
    AfterAll { Remove-TestFolder $dir }

    It '<Command> -ErrorAction Stop throws the error with its id, one clone at a time or in parallel' -ForEach @(
        @{ Command = 'Restore-VmClone'; Run = { param($s, $t) Restore-VmClone lab-01, nope -Store $s -Force -ThrottleLimit $t -ErrorAction Stop } }
        @{ Command = 'Clear-VmTemporaryVolume'; Run = { param($s, $t) Clear-VmTemporaryVolume nope -Store $s -ThrottleLimit $t -ErrorAction Stop } }
        @{ Command = 'Invoke-VmRebase'; Run = { param($s, $t) Invoke-VmRebase lab-01, nope -NewBase win11 -Store $s -Force -ThrottleLimit $t -ErrorAction Stop } }
        @{ Command = 'Remove-VmClone'; Run = { param($s, $t) Remove-VmClone nope -Store $s -Force -ThrottleLimit $t -ErrorAction Stop } }
        @{ Command = 'New-VmClone'; Run = { param($s, $t) New-VmClone lab-01 -Base win11 -Store $s -ThrottleLimit $t -ErrorAction Stop } }
    ) {
        foreach ($limit in 1, 2) {
            $caught = $null
            try { & $Run $store $limit | Out-Null } catch { $caught = $_ }
            $caught | Should -Not -BeNullOrEmpty -Because "$Command -ThrottleLimit $limit"
            $caught.FullyQualifiedErrorId | Should -Match '^(CloneNotFound|CloneExists|InvalidOperation),'
        }
        (Get-VmClone -Store $store).Name | Should -Be @('lab-01', 'lab-02')
    }
}

Describe '-Verbose' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir
        Push-Location $dir
    }
    AfterAll { Pop-Location; Remove-TestFolder $dir }

    It 'tells what <Command> does, per base or clone and per volume' -ForEach @(
        @{ Command = 'New-VmClone'; Run = { New-VmClone lab-03, lab-04 -Base win11 -Store $store -Verbose }; Expect = "*lab-03*system (System)*", "*lab-04*done*" }
        @{ Command = 'Restore-VmClone'; Run = { Restore-VmClone lab-01, lab-02 -Store $store -Force -Verbose }; Expect = "*lab-01*system (System): replace*", "*lab-02*temp (Temporary): reset*", "*lab-02*data (Data): keep*", "*lab-01*done*" }
        @{ Command = 'Clear-VmTemporaryVolume'; Run = { Clear-VmTemporaryVolume lab-01 -Store $store -Verbose }; Expect = "*lab-01*temp (Temporary)*", "*lab-01*done*" }
        @{ Command = 'New-VmBase'; Run = { Get-VmClone lab-01 -Store $store | New-VmBase -Name win11-v2 -Verbose }; Expect = "*win11-v2*system (System)*" }
        @{ Command = 'Invoke-VmRebase'; Run = { Invoke-VmRebase lab-01, lab-02 -NewBase win11-v2 -Store $store -Force -Verbose }; Expect = "*lab-01*system (System): replace*", "*lab-02*done*" }
        @{ Command = 'Remove-VmClone'; Run = { Remove-VmClone lab-03, lab-04 -Store $store -Force -Verbose }; Expect = "*lab-03*", "*lab-04*done*" }
        @{ Command = 'Remove-VmBase'; Run = { New-VmBase scratch -Store $store -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 8MB } | Out-Null; Remove-VmBase scratch -Store $store -Force -Verbose }; Expect = "*scratch*system*" }
        @{ Command = 'Test-VmStore'; Run = { Test-VmStore -Store $store -Repair -Verbose }; Expect = "*Repair*" }
        @{ Command = 'New-VmDisk'; Run = { New-VmDisk ./v.vhdx 8MB -Verbose; New-VmDisk ./w.vhdx -ParentPath ./v.vhdx -Verbose }; Expect = "*v.vhdx*", "*w.vhdx*" }
        @{ Command = 'Set-VmDisk'; Run = { Set-VmDisk ./w.vhdx -ParentPath ./v.vhdx -Verbose }; Expect = "*w.vhdx*" }
        @{ Command = 'Convert-VmDisk'; Run = { Convert-VmDisk ./w.vhdx ./w.vmdk -Verbose }; Expect = "*w.vmdk*" }
        @{ Command = 'Merge-VmDisk'; Run = { Merge-VmDisk ./w.vhdx -Verbose }; Expect = "*w.vhdx*" }
    ) {
        $verbose = @(& $Run 4>&1 | Where-Object { $_ -is [Management.Automation.VerboseRecord] } | ForEach-Object Message)
        $verbose | Should -Not -BeNullOrEmpty -Because "$Command -Verbose must say what it does"
        foreach ($pattern in $Expect) {
            @($verbose | Where-Object { $_ -like $pattern }) | Should -Not -BeNullOrEmpty -Because "a verbose message like '$pattern' (got: $($verbose -join ' | '))"
        }
    }
}

Describe 'The sample scheduled rebase' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02, lab-03 -Folder $dir -DataInBase
        # A clone of another base whose outline does not match: its rebase must fail.
        New-VmBase other -Store $store -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 16MB } | Out-Null
        New-VmClone odd -Base other -Store $store | Out-Null
        Get-VmClone lab-01 -Store $store | New-VmBase -Name win11-v2 | Out-Null
        $data = Join-Path $store 'clones/lab-02/data.vhdx'
        Write-DiskBytes $data 0 ([Text.Encoding]::UTF8.GetBytes('lab-02 user files'))
        $dataHash = Get-DiskContentHash $data
        $sample = Join-Path (Split-Path $env:VMCLONE_MODULE) 'Samples/Invoke-ScheduledRebase.ps1'
        $log = Join-Path $dir 'rebase.log'
        $run = Invoke-TestPwsh -Arguments @('-File', $sample, '-Store', $store, '-NewBase', 'win11-v2', '-ThrottleLimit', '2', '-LogPath', $log) -TimeoutSeconds 120
    }
    AfterAll { Remove-TestFolder $dir }

    It 'is in the module folder' {
        Test-Path -LiteralPath $sample | Should -BeTrue
    }

    It 'exits 1 when a clone failed, after rebasing the others' {
        $run.TimedOut | Should -BeFalse
        $run.ExitCode | Should -Be 1 -Because ($run.Output -join "`n")
        $clones = Get-VmClone -Store $store
        ($clones | Where-Object Name -like 'lab-*').Base | Should -Be @('win11-v2', 'win11-v2', 'win11-v2')
        ($clones | Where-Object Name -eq 'odd').Base | Should -Be 'other'
        Get-DiskContentHash $data | Should -Be $dataHash
    }

    It 'logs every clone and the failure with its error id' {
        $text = Get-Content -LiteralPath $log -Raw
        $text | Should -Match 'rebased lab-02 onto win11-v2'
        $text | Should -Match 'FAILED odd: \[OutlineMismatch'
        $text | Should -Match '3 rebased, 1 failed'
    }

    It 'exits 2 when stopped half way by <_>, having logged every clone it rebased' -Skip:$IsWindows -ForEach 'SIGINT', 'SIGTERM' {
        $signal = $_
        $many = Join-Path $dir "many-$signal"
        New-TestFleet $many -Clone (1..60 | ForEach-Object { 'vm-{0:d2}' -f $_ }) -Folder $dir -DataInBase
        Get-VmClone vm-01 -Store $many | New-VmBase -Name win11-v2 | Out-Null
        $stopLog = Join-Path $dir "stopped-$signal.log"
        # Started the way cron or a systemd unit starts it: a session of its own, SIGINT at its
        # default. python3 (which the oracles need anyway) starts it, waits until two clones are
        # logged, sends the signal and reports the exit code.
        $pwsh = @(if (Test-Path -LiteralPath (Join-Path $PSHOME 'pwsh') -PathType Leaf) { Join-Path $PSHOME 'pwsh' } else { 'dotnet', (Join-Path $PSHOME 'pwsh.dll') })
        $command = $pwsh + @('-NoProfile', '-NonInteractive', '-File', $sample, '-Store', $many, '-Base', 'win11', '-NewBase', 'win11-v2', '-ThrottleLimit', '1', '-LogPath', $stopLog)
        $launcher = @'
import json, os, signal, subprocess, sys, time
command, log, name = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
deadline = time.time() + 60
while child.poll() is None and time.time() < deadline:
    if os.path.exists(log) and sum('rebased vm-' in line for line in open(log)) >= 2:
        break
    time.sleep(0.02)
child.send_signal(getattr(signal, name))
try:
    print(child.wait(timeout=60))
except subprocess.TimeoutExpired:
    child.kill()
    print('hung')
'@
        $launcherFile = Join-Path $dir 'stop-launcher.py'
        $commandFile = Join-Path $dir "stop-command-$signal.json"
        Set-Content -LiteralPath $launcherFile -Value $launcher
        ConvertTo-Json -InputObject $command | Set-Content -LiteralPath $commandFile
        $result = & python3 $launcherFile $commandFile $stopLog $signal 2>&1
        $exited = $result -ne 'hung'
        $exited | Should -BeTrue
        $result | Should -Be '2' -Because (Get-Content -LiteralPath $stopLog -Raw)
        $lines = @(Get-Content -LiteralPath $stopLog)
        $lines[-1] | Should -Match 'STOPPED by a signal; the clones logged above as rebased are done'
        ($lines -join "`n") | Should -Not -Match 'FAILED'
        $logged = @($lines | Where-Object { $_ -match 'rebased (vm-\d+) onto win11-v2' } | ForEach-Object { $Matches[1] })
        $logged.Count | Should -BeGreaterOrEqual 2
        $logged.Count | Should -BeLessThan 60 -Because 'the run was stopped half way'
        # Every clone the log names was rebased; a clone cut off in the middle is finished or
        # undone by the next command, and every clone still reads its data.
        Test-VmStore -Store $many -Repair | Out-Null
        $onNew = @(Get-VmClone -Store $many | Where-Object Base -eq 'win11-v2').Name
        foreach ($name in $logged) { $onNew | Should -Contain $name }
        (Get-VmClone -Store $many | Where-Object State -ne 'Ready') | Should -BeNullOrEmpty
    }

    It 'exits 2 when it cannot run at all' {
        $bad = Invoke-TestPwsh -Arguments @('-File', $sample, '-Store', $store, '-NewBase', 'no-such-base') -TimeoutSeconds 120
        $bad.ExitCode | Should -Be 2 -Because ($bad.Output -join "`n")
        ($bad.Output -join "`n") | Should -Match 'STOPPED: \[BaseNotFound'
    }
}
