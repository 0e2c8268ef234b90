# Parallel use: fleet commands with -ThrottleLimit, and ForEach-Object -Parallel over clones.
# Results and errors must come out on the pipeline thread (PowerShell throws otherwise), in
# input order, with every progress bar closed; the store must be healthy afterwards.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Fleet commands with -ThrottleLimit' {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $names = 1..5 | ForEach-Object { 'lab-{0:d2}' -f $_ }
        New-TestFleet $store -Clone $names -Folder $dir -DataInBase
        New-VmBase other -Store $store -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 16MB } | Out-Null
        New-VmClone odd -Base other -Store $store | Out-Null
        $hashes = @{}
        foreach ($n in $names) {
            $data = Join-Path $store "clones/$n/data.vhdx"
            Write-DiskBytes $data (2MB + 4096) ([Text.Encoding]::UTF8.GetBytes("files of $n"))
            $hashes[$n] = Get-DiskContentHash $data
        }
        Get-VmClone lab-01 -Store $store | New-VmBase -Name win11-v2 | Out-Null
        # The new base's data volume differs from the old one's: a rebase re-parents real data.
        Write-DiskBytes (Join-Path $store 'clones/lab-01/data.vhdx') 5MB (Get-RandomBytes 8192 3)
        $hashes['lab-01'] = Get-DiskContentHash (Join-Path $store 'clones/lab-01/data.vhdx')
    }
    AfterEach { Remove-TestFolder $dir }

    It 'rebases in parallel: results in input order, the failure reported for its clone, data kept' {
        $order = 'lab-03', 'odd', 'lab-01', 'lab-05', 'lab-02', 'lab-04'
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$env:VMCLONE_MODULE'; `$ProgressPreference = 'Continue'; Invoke-VmRebase $($order -join ',') -NewBase win11-v2 -Store '$store' -Force -ThrottleLimit 3")
            $out = @($ps.Invoke())
            $out.Name | Should -Be ($order | Where-Object { $_ -ne 'odd' })
            $out.Base | Sort-Object -Unique | Should -Be 'win11-v2'
            @($ps.Streams.Error).Count | Should -Be 1
            $ps.Streams.Error[0].TargetObject | Should -Be 'odd'
            $ps.Streams.Error[0].FullyQualifiedErrorId | Should -BeLike 'OutlineMismatch,*'
            # Every progress bar that was opened was closed.
            $progress = @($ps.Streams.Progress)
            $progress | Should -Not -BeNullOrEmpty
            foreach ($id in $progress.ActivityId | Sort-Object -Unique) {
                ($progress | Where-Object ActivityId -eq $id)[-1].RecordType | Should -Be 'Completed' -Because "activity $id"
            }
        }
        finally { $ps.Dispose() }
        foreach ($n in $hashes.Keys) { Get-DiskContentHash (Join-Path $store "clones/$n/data.vhdx") | Should -Be $hashes[$n] -Because $n }
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }

    It 'gives the same result one clone at a time (-ThrottleLimit 1)' {
        $out = @(Get-VmClone lab-* -Store $store | Invoke-VmRebase -NewBase win11-v2 -Force -ThrottleLimit 1)
        $out.Name | Should -Be @($names)
        foreach ($n in $hashes.Keys) { Get-DiskContentHash (Join-Path $store "clones/$n/data.vhdx") | Should -Be $hashes[$n] }
    }

    It 'passes results on while its batch is open: Restore -PassThru | Clear-VmTemporaryVolume' {
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $out = @(Get-VmClone lab-* -Store $store | Restore-VmClone -Force -PassThru -ThrottleLimit 4 | Clear-VmTemporaryVolume -PassThru -ThrottleLimit 2)
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 20 -Because 'no command waits for the store lock another one of the same pipeline holds'
        $out.Name | Should -Be @($names)
        $out.LastRestored | Should -Not -BeNullOrEmpty
    }

    It 'creates and removes clones in parallel' {
        $new = 1..6 | ForEach-Object { 'kiosk-{0:d2}' -f $_ }
        $made = @($new | New-VmClone -Base win11 -Store $store -ThrottleLimit 3)
        $made.Name | Should -Be $new
        Remove-VmClone $new -Store $store -Force -ThrottleLimit 3
        Get-VmClone kiosk-* -Store $store | Should -BeNullOrEmpty
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }
}

Describe 'ForEach-Object -Parallel over clones' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $names = 1..6 | ForEach-Object { 'lab-{0:d2}' -f $_ }
        New-TestFleet $store -Clone $names -Folder $dir
    }
    AfterAll { Remove-TestFolder $dir }

    It 'writes, restores and writes again different clones in parallel runspaces' {
        $module = $env:VMCLONE_MODULE
        $helpers = Join-Path $PSScriptRoot 'TestHelpers.psm1'
        $results = Get-VmClone -Store $store | ForEach-Object -ThrottleLimit 6 -Parallel {
            Import-Module $using:module
            Import-Module $using:helpers
            $c = $_
            $system = Join-Path $c.Path 'system.vhdx'
            $data = Join-Path $c.Path 'data.vhdx'
            foreach ($round in 1..3) {
                Write-DiskBytes $system 0 ([Text.Encoding]::UTF8.GetBytes("scratch $round of $($c.Name)"))
                Write-DiskBytes $data ($round * 1MB) ([Text.Encoding]::UTF8.GetBytes("data $round of $($c.Name)"))
                Restore-VmClone -Name $c.Name -Store $c.Store -Force -ErrorAction Stop
            }
            [pscustomobject]@{
                Name   = $c.Name
                System = [Text.Encoding]::UTF8.GetString((Read-DiskBytes $system 0 12))
                Data   = [Text.Encoding]::UTF8.GetString((Read-DiskBytes $data 3MB 14))
            }
        }
        @($results).Count | Should -Be 6
        foreach ($r in $results) {
            $r.System | Should -Be 'win11 system'
            $r.Data | Should -Be "data 3 of $($r.Name)".Substring(0, 14)
        }
        (Get-VmClone -Store $store).State | Sort-Object -Unique | Should -Be 'Ready'
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }
}
