# What the progress bars of a fleet command tell the user: the overall bar counts the clones done
# out of a total known up front (names given to the parameter, -Base) and never reads 100 % before
# the last clone; fed one clone at a time from the pipeline it shows a count and no percentage;
# each clone's own bar names the command and the clone (a clone whose work reports progress:
# restoring and cleaning rewrite a few KiB in place and show no bar of their own).
BeforeDiscovery {
    $script:commands = @(
        @{ Command = 'Restore-VmClone'; ByParameter = 'Restore-VmClone lab-01, lab-02, lab-03, lab-04 -Store $s -Force'; Piped = '$names | Restore-VmClone -Store $s -Force'; Child = $false }
        @{ Command = 'Clear-VmTemporaryVolume'; ByParameter = 'Clear-VmTemporaryVolume lab-01, lab-02, lab-03, lab-04 -Store $s'; Piped = '$names | Clear-VmTemporaryVolume -Store $s'; Child = $false }
        @{ Command = 'New-VmClone'; ByParameter = 'New-VmClone kiosk-01, kiosk-02, kiosk-03, kiosk-04 -Base win11 -Store $s'; Piped = '$new | New-VmClone -Base win11 -Store $s'; Child = $true }
        @{ Command = 'Invoke-VmRebase'; ByParameter = 'Invoke-VmRebase -Base win11 -NewBase win11-v2 -Store $s -Force'; Piped = '$names | Invoke-VmRebase -NewBase win11-v2 -Store $s -Force'; Child = $true }
        @{ Command = 'Remove-VmClone'; ByParameter = 'Remove-VmClone lab-01, lab-02, lab-03, lab-04 -Store $s -Force'; Piped = '$names | Remove-VmClone -Store $s -Force'; Child = $false }
    )
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    # Runs $Script in a runspace of its own, as a user would at the prompt, and returns what the
    # Progress stream received.
    function Get-FleetProgress([string] $Script, [int] $ThrottleLimit) {
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$env:VMCLONE_MODULE'; `$ProgressPreference = 'Continue'; `$s = '$store'; " +
                "`$names = 'lab-01', 'lab-02', 'lab-03', 'lab-04'; `$new = 'kiosk-01', 'kiosk-02', 'kiosk-03', 'kiosk-04'; " +
                "$Script -ThrottleLimit $ThrottleLimit | Out-Null")
            $null = $ps.Invoke()
            @($ps.Streams.Error) | Should -BeNullOrEmpty
            , @($ps.Streams.Progress)
        }
        finally { $ps.Dispose() }
    }
}

Describe 'Fleet progress: <Command>' -ForEach $commands {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02, lab-03, lab-04 -Folder $dir -DataInBase
        # The new base's data volume differs from the old one's: a rebase re-parents real data, and says so.
        Write-DiskBytes (Join-Path $store 'clones/lab-01/data.vhdx') 5MB (Get-RandomBytes 8192 3)
        Get-VmClone lab-01 -Store $store | New-VmBase -Name win11-v2 | Out-Null
    }
    AfterEach { Remove-TestFolder $dir }

    Context 'by parameter' {
        It 'counts done out of four, from 0 % to 100 % only at the end (-ThrottleLimit <_>)' -ForEach 1, 3 {
            $progress = Get-FleetProgress $ByParameter $_
            $overall = @($progress | Where-Object { $_.ActivityId -eq 1 -and $_.RecordType -eq 'Processing' })
            $overall | Should -Not -BeNullOrEmpty
            $overall[0].PercentComplete | Should -BeLessThan 100 -Because 'the first clone is not the whole fleet'
            $overall[-1].PercentComplete | Should -Be 100
            $overall[-1].StatusDescription | Should -Be '4 of 4 done'
            $percents = @($overall.PercentComplete)
            $percents | Should -Be @($percents | Sort-Object) -Because 'the bar never goes back'
            foreach ($r in $overall) {
                $r.StatusDescription | Should -Match '^\d of 4 done$'
                $done = [int]($r.StatusDescription -split ' ')[0]
                $r.PercentComplete | Should -Be (25 * $done) -Because $r.StatusDescription
            }
            ($progress | Where-Object ActivityId -eq 1)[-1].RecordType | Should -Be 'Completed'
        }

        It 'names the command and the clone in each clone''s own bar' {
            $progress = Get-FleetProgress $ByParameter 1
            $children = @($progress | Where-Object { $_.ActivityId -ne 1 })
            if ($Child) { $children | Should -Not -BeNullOrEmpty }
            foreach ($r in $children) {
                $r.ParentActivityId | Should -Be 1
                $r.Activity | Should -Match "^$Command (lab|kiosk)-0[1-4]$"
                $r.StatusDescription | Should -Not -BeNullOrEmpty
            }
            if ($Child) {
                @($children.Activity | Sort-Object -Unique).Count | Should -Be 4 -Because 'every clone has its own bar'
            }
        }
    }

    Context 'piped' {
        It 'shows a count of the clones done and no percentage (-ThrottleLimit <_>)' -ForEach 1, 3 {
            $progress = Get-FleetProgress $Piped $_
            $overall = @($progress | Where-Object { $_.ActivityId -eq 1 -and $_.RecordType -eq 'Processing' })
            $overall | Should -Not -BeNullOrEmpty
            foreach ($r in $overall) {
                $r.PercentComplete | Should -Be -1 -Because 'the total of piped input is not known'
                $r.StatusDescription | Should -Match '^\d done$'
            }
            $overall[-1].StatusDescription | Should -Be '4 done'
            ($progress | Where-Object ActivityId -eq 1)[-1].RecordType | Should -Be 'Completed'
        }
    }
}
