# Every fleet command ends when a store-wide step fails: a store.json of a newer format, one that
# cannot be read, or the store lock held by another command (a repair) past the lock timeout.
# Each clone then gets its own error, with the clone as target, whatever -ThrottleLimit says.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'A fleet command whose store-wide step fails' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir
        Get-VmClone lab-01 -Store $store | New-VmBase -Name win11-v2 -Store $store | Out-Null
        $storeJson = Join-Path $store 'store.json'
        $original = Get-Content -LiteralPath $storeJson -Raw

        # One child pwsh runs every fleet command with both throttle limits and prints, per run,
        # how many errors came back, their ids and their targets.
        $commands = [ordered]@{
            Restore = "Restore-VmClone lab-01, lab-02 -Store `$s -Force"
            Clear   = "Clear-VmTemporaryVolume lab-01, lab-02 -Store `$s"
            New     = "New-VmClone lab-08, lab-09 -Base win11 -Store `$s"
            Rebase  = "Invoke-VmRebase lab-01, lab-02 -NewBase win11-v2 -Store `$s -Force"
            Remove  = "Remove-VmClone lab-01, lab-02 -Store `$s -Force"
        }
        $runs = foreach ($name in $commands.Keys) {
            foreach ($limit in 1, 3) {
                "`$err = `$null; $($commands[$name]) -ThrottleLimit $limit -ErrorVariable err -ErrorAction SilentlyContinue | Out-Null; " +
                "'$name-$limit ' + `$err.Count + ' ' + ((`$err | ForEach-Object { (`$_.FullyQualifiedErrorId -split ',')[0] + '@' + `$_.TargetObject }) -join ' ')"
            }
        }
        $script:childScript = "Import-Module '$env:VMCLONE_MODULE'`n`$s = '$store'`n" + ($runs -join "`n") + "`n'finished'"

        function Invoke-Fleet {
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $child = Invoke-TestPwsh -Arguments @('-Command', $script:childScript) -TimeoutSeconds 120 -Environment @{ VMCLONE_LOCK_TIMEOUT_SECONDS = '1' }
            $child | Add-Member Elapsed $watch.Elapsed -PassThru
        }

        function Assert-EveryRunEnded($child, [string] $ErrorId) {
            $child.TimedOut | Should -BeFalse -Because ($child.Output -join "`n")
            $child.Output | Should -Contain 'finished'
            foreach ($name in 'Restore', 'Clear', 'New', 'Rebase', 'Remove') {
                foreach ($limit in 1, 3) {
                    $line = @($child.Output | Where-Object { $_ -like "$name-$limit *" })
                    $line.Count | Should -Be 1 -Because ($child.Output -join "`n")
                    $parts = $line[0] -split ' '
                    $parts[1] | Should -Be '2' -Because "each of the two clones gets its own error ($($line[0]))"
                    $targets = if ($name -eq 'New') { 'lab-08', 'lab-09' } else { 'lab-01', 'lab-02' }
                    $parts[2..3] | Should -Be @($targets | ForEach-Object { "$ErrorId@$_" }) -Because $line[0]
                }
            }
        }
    }
    AfterAll { Remove-TestFolder $dir }
    AfterEach { Set-Content -LiteralPath $storeJson -Value $original -NoNewline }

    It 'ends with an error per clone when store.json has a newer format version' {
        ($original | ConvertFrom-Json | ForEach-Object { $_.FormatVersion = 99; $_ } | ConvertTo-Json) | Set-Content -LiteralPath $storeJson
        Assert-EveryRunEnded (Invoke-Fleet) 'StoreFormatUnsupported'
        Set-Content -LiteralPath $storeJson -Value $original -NoNewline
        (Get-VmClone -Store $store).Name | Should -Be 'lab-01', 'lab-02'
    }

    It 'ends with an error per clone when store.json cannot be read' {
        Set-Content -LiteralPath $storeJson -Value '{ this is not json'
        Assert-EveryRunEnded (Invoke-Fleet) 'ManifestInvalid'
    }

    It 'ends with an error per clone when another command holds the store past the lock timeout' {
        # What Test-VmStore -Repair holds: the store lock, exclusive.
        $held = [IO.File]::Open((Join-Path $store '.lock'), 'OpenOrCreate', 'ReadWrite', 'None')
        try {
            $child = Invoke-Fleet
        }
        finally { $held.Dispose() }
        Assert-EveryRunEnded $child 'StoreBusy'
        $child.Elapsed.TotalSeconds | Should -BeLessThan 90
        (Get-VmClone -Store $store).Name | Should -Be 'lab-01', 'lab-02'
    }
}
