# A clone's record gone wrong under it, as an admin meets it at the prompt: a clone.json that
# cannot be read, and a clone folder renamed by hand. Each is shown, counted and mended by
# Test-VmStore -Repair without losing a byte of the data volume.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'A clone whose clone.json cannot be read' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir -DataInBase
        $dataPath = Join-Path $store 'clones/lab-01/data.vhdx'
        Write-DiskBytes $dataPath 2MB ([Text.Encoding]::UTF8.GetBytes("lab-01's own documents"))
        $dataHash = Get-DiskContentHash $dataPath
        Set-Content (Join-Path $store 'clones/lab-01/clone.json') '{ "formatVersion": 1, "name": "lab-0'
    }
    AfterAll { Remove-TestFolder $dir }

    It 'is listed by Get-VmClone as Unreadable with the reason, also when named' {
        $all = Get-VmClone -Store $store -WarningVariable warned -WarningAction SilentlyContinue
        $all.Name | Should -Be 'lab-01', 'lab-02'
        $c = $all | Where-Object Name -eq 'lab-01'
        $c.State | Should -Be 'Unreadable'
        $c.Base | Should -Be 'win11'
        $c.Problem | Should -BeLike "*clone.json*cannot be read*Test-VmStore -Repair*"
        $warned | Should -BeLike "*lab-01*Unreadable*"
        (Get-VmClone lab-01 -Store $store -WarningAction SilentlyContinue).State | Should -Be 'Unreadable'
        (Get-VmBase win11 -Store $store | Get-VmClone -WarningAction SilentlyContinue).Name | Should -Be 'lab-01', 'lab-02'
    }

    It 'is counted for its base, which cannot be removed as if it had no clones' {
        (Get-VmBase win11 -Store $store).CloneCount | Should -Be 2
        Remove-VmClone lab-02 -Store $store -Force
        (Get-VmBase win11 -Store $store).CloneCount | Should -Be 1
        { Remove-VmBase win11 -Store $store -Force -ErrorAction Stop } | Should -Throw -ErrorId 'BaseInUse,*'
        Test-Path $dataPath | Should -BeTrue
    }

    It 'is listed by Test-VmStore, and -Repair rebuilds its manifest keeping the data volume' {
        $report = Test-VmStore -Store $store
        $report.IsHealthy | Should -BeFalse
        $report.Problems | Where-Object Subject -eq 'clone lab-01' | Should -Not -BeNullOrEmpty
        $repaired = Test-VmStore -Store $store -Repair -Confirm:$false
        $repaired.IsHealthy | Should -BeTrue
        ($repaired.Problems | Where-Object Subject -eq 'clone lab-01').Repair | Should -BeLike 'rebuilt the manifest*'
        $c = Get-VmClone lab-01 -Store $store
        $c.State | Should -Be 'Ready'
        $c.Base | Should -Be 'win11'
        ($c.Volumes | ForEach-Object { "$($_.Name):$($_.Type)" }) | Should -Be 'system:System', 'temp:Temporary', 'data:Data'
        Get-DiskContentHash $dataPath | Should -Be $dataHash
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }
}

Describe 'A clone whose folder was renamed' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01 -Folder $dir
        Write-DiskBytes (Join-Path $store 'clones/lab-01/system.vhdx') 1MB ([Text.Encoding]::UTF8.GetBytes('an app lab-01 installed'))
        Rename-Item (Join-Path $store 'clones/lab-01') 'lab-02'
        $baseHash = Get-DiskContentHash (Join-Path $store 'bases/win11/system.vhdx')
    }
    AfterAll { Remove-TestFolder $dir }

    It 'is Renamed in Get-VmClone and unhealthy in Test-VmStore, naming the folder and the old name' {
        $c = Get-VmClone lab-02 -Store $store -WarningAction SilentlyContinue
        $c.State | Should -Be 'Renamed'
        $c.Problem | Should -BeLike "*clones*lab-02'*'lab-01'*"
        $report = Test-VmStore -Store $store
        $report.IsHealthy | Should -BeFalse
        $p = $report.Problems | Where-Object Kind -eq 'CloneRenamed'
        $p.Subject | Should -Be 'clone lab-02'
        $p.Description | Should -BeLike "*lab-02*'lab-01'*"
    }

    It 'is refused at once by every command on it, with CloneRenamed saying how to mend it' {
        foreach ($run in @(
                { Restore-VmClone lab-02 -Store $store -Force -ErrorAction Stop },
                { Clear-VmTemporaryVolume lab-02 -Store $store -Confirm:$false -ErrorAction Stop },
                { Invoke-VmRebase lab-02 -NewBase win11 -Store $store -Force -ErrorAction Stop })) {
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $e = $null
            try { & $run } catch { $e = $_ }
            $watch.Elapsed.TotalSeconds | Should -BeLessThan 30
            $e.FullyQualifiedErrorId | Should -BeLike 'CloneRenamed,*'
            $e.Exception.Message | Should -BeLike '*Test-VmStore -Repair*'
        }
    }

    It 'is mended by Test-VmStore -Repair, and then restores to exactly its base' {
        $repaired = Test-VmStore -Store $store -Repair -Confirm:$false
        $repaired.IsHealthy | Should -BeTrue
        (Get-VmClone lab-02 -Store $store).State | Should -Be 'Ready'
        Restore-VmClone lab-02 -Store $store -Force -ErrorAction Stop
        Get-DiskContentHash (Join-Path $store 'clones/lab-02/system.vhdx') | Should -Be $baseHash
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }
}
