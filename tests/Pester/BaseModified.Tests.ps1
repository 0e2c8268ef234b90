# A base modified behind VmClone's back, as an administrator meets it at the prompt: its clones
# show BaseModified, every per-clone error names the clone, and the advice Test-VmStore gives is
# what actually recovers them (accept the changed files as a new base and rebase onto it).
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'A modified <Format> base (<How>)' -ForEach @(
    @{ Format = 'Vhdx'; How = 'written with a new identity' }
    @{ Format = 'Vhdx'; How = 'written, clones re-linked to accept it' }
    @{ Format = 'Vmdk'; How = 'written with a new identity' }
    @{ Format = 'Vmdk'; How = 'written, clones re-linked to accept it' }
    @{ Format = 'Vhd'; How = 'written with a new identity' }
    @{ Format = 'Vhd'; How = 'written, clones re-linked to accept it' }
) {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $source = Join-Path $dir 'system.vhdx'
        New-VmDisk $source 64MB | Out-Null
        Write-DiskBytes $source 0 ([Text.Encoding]::UTF8.GetBytes('the prepared system'))
        New-VmBase win11 -Store $store -Format $Format -Volume @(
            @{ Name = 'system'; Type = 'System'; Path = $source }
            @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 32MB }
            @{ Name = 'data'; Type = 'Data'; SizeBytes = 32MB }) | Out-Null
        New-VmClone lab-01, lab-02 -Base win11 -Store $store | Out-Null
        $data = (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq data).Path
        Write-DiskBytes $data 4096 ([Text.Encoding]::UTF8.GetBytes('the user''s files'))
        $dataHash = Get-DiskContentHash $data

        $system = (Get-VmVolume -Base win11 -Store $store | Where-Object Name -eq system).Path
        Set-ItemProperty $system -Name IsReadOnly -Value $false
        Write-DiskBytes $system 0 ([Text.Encoding]::UTF8.GetBytes('tampered'))
        if ($How -like '*re-linked*') {
            foreach ($c in 'lab-01', 'lab-02') {
                $child = (Get-VmVolume -Clone $c -Store $store | Where-Object Name -eq system).Path
                Set-VmDisk $child $system -IgnoreIdMismatch | Out-Null
            }
        }
    }
    AfterEach { Remove-TestFolder $dir }

    It 'shows its clones as BaseModified, by name and piped' {
        (Get-VmClone -Store $store).State | Should -Be @('BaseModified', 'BaseModified')
        (Get-VmClone lab-02 -Store $store).State | Should -Be 'BaseModified'
        (Get-VmBase win11 -Store $store | Get-VmClone).State | Should -Be @('BaseModified', 'BaseModified')
        (Get-VmBase win11 -Store $store).IsModified | Should -BeTrue
    }

    It 'names the clone as the target of every per-clone error, by parameter and piped' {
        Restore-VmClone lab-01, lab-02 -Store $store -Force -ErrorVariable byName -ErrorAction SilentlyContinue
        Get-VmClone -Store $store | Restore-VmClone -Force -ErrorVariable piped -ErrorAction SilentlyContinue
        Clear-VmTemporaryVolume lab-01, lab-02 -Store $store -ErrorVariable cleared -ErrorAction SilentlyContinue
        foreach ($errors in $byName, $piped) {
            $errors.Count | Should -Be 2
            $errors.FullyQualifiedErrorId | Should -Be (@('BaseModified,VmClone.PowerShell.Commands.RestoreVmCloneCommand') * 2)
            $errors.TargetObject | Should -Be @('lab-01', 'lab-02')
        }
        $cleared.TargetObject | Should -Be @('lab-01', 'lab-02')
        $byName[0].Exception.Message | Should -BeLike '*New-VmBase*Invoke-VmRebase*'
        $byName[0].Exception.Message | Should -BeLike '*backup*'
    }

    It 'advises in Test-VmStore what recovers, and following it leaves every clone Ready with its data' {
        $report = Test-VmStore -Store $store
        $modified = $report.Problems | Where-Object Kind -eq BaseModified
        $modified.Subject | Should -Contain 'base win11'
        $modified.Subject | Should -Contain 'clone lab-01'
        $modified.Subject | Should -Contain 'clone lab-02'
        foreach ($p in $modified) {
            $p.Repair | Should -Not -BeLike '*Restore-VmClone*'
            $p.Repair | Should -BeLike '*New-VmBase*Invoke-VmRebase*Remove-VmBase*'
        }

        # The advice, as about_VmClone gives it.
        New-VmBase -Name win11-accepted -Store $store -Format $Format -Volume (Get-VmVolume -Base win11 -Store $store | Select-Object Name, Type, Path) | Out-Null
        Invoke-VmRebase -Base win11 -NewBase win11-accepted -Store $store -Force | Out-Null
        Remove-VmBase win11 -Store $store -Force
        (Get-VmClone -Store $store).State | Should -Be @('Ready', 'Ready')
        Get-DiskContentHash (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq data).Path | Should -Be $dataHash
        $text = Read-DiskBytes (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq system).Path 0 8
        [Text.Encoding]::UTF8.GetString($text) | Should -Be 'tampered'
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
    }
}
