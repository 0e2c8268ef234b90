# Every example in every cmdlet's help is run, as a user would paste it, in a fresh folder
# holding base.vhdx and child.vhdx (an empty folder for New-VmDisk, whose examples make their
# own). The default store ($env:VMCLONE_STORE) is a store in that folder; for the store cmdlets it
# holds a base win11 (system, temp, data) and its clones lab-01 and lab-02. An example that
# fails, or writes an error, fails here.
BeforeDiscovery {
    Import-Module $env:VMCLONE_MODULE -Force
    $script:examples = foreach ($command in Get-Command -Module VmClone -CommandType Cmdlet) {
        $n = 0
        foreach ($e in (Get-Help $command.Name -Full).examples.example) {
            $n++
            @{ Command = $command.Name; Number = $n; Code = $e.code }
        }
    }
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Help example <Number> of <Command>' -ForEach $examples {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        $savedStore = $env:VMCLONE_STORE
        $env:VMCLONE_STORE = Join-Path $dir 'store'
        if ($Command -ne 'New-VmDisk') {
            New-VmDisk ./base.vhdx 1GB | Out-Null
            New-VmDisk ./child.vhdx -ParentPath ./base.vhdx | Out-Null
        }
        if ((Get-Command $Command).ImplementingType.IsSubclassOf([VmClone.PowerShell.VmStoreCmdlet])) {
            New-VmBase win11 -Volume @(
                @{ Name = 'system'; Type = 'System'; Path = './base.vhdx' }
                @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 64MB }
                @{ Name = 'data'; Type = 'Data'; SizeBytes = 64MB }) | Out-Null
            New-VmClone lab-01, lab-02 -Base win11 | Out-Null
        }
    }
    AfterEach { $env:VMCLONE_STORE = $savedStore; Pop-Location; Remove-TestFolder $dir }

    It 'runs without error' {
        $errors = $null
        $null = Invoke-Expression $Code -ErrorVariable errors -WarningAction SilentlyContinue 2>&1
        $errors | Should -BeNullOrEmpty
    }
}
