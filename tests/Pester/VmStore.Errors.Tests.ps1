# What a user gets when something is wrong: a clear error with a stable id, the input as target,
# and nothing half-made. Also -WhatIf, -Force, piping, the default store and tab completion.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    function New-TestBase([string] $Name, [long] $Size = 64MB, [string] $DataText = 'base data') {
        $source = Join-Path $dir "$Name-system.vhdx"
        New-VmDisk $source -SizeBytes $Size | Out-Null
        Write-DiskBytes $source 0 ([Text.Encoding]::UTF8.GetBytes("$Name system"))
        $data = Join-Path $dir "$Name-data.vhdx"
        New-VmDisk $data -SizeBytes $Size | Out-Null
        if ($DataText) { Write-DiskBytes $data 0 ([Text.Encoding]::UTF8.GetBytes($DataText)) }
        New-VmBase $Name -Store $store -Volume @(
            @{ Name = 'system'; Type = 'System'; Path = $source }
            @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = $Size }
            @{ Name = 'data'; Type = 'Data'; Path = $data })
    }

    # Every file under the store with its length and write time.
    function Get-StoreSnapshot {
        Get-ChildItem $store -Recurse -Force | Sort-Object FullName |
            ForEach-Object { '{0} {1} {2:o}' -f $_.FullName, $(if ($_.PSIsContainer) { '-' } else { $_.Length }), $_.LastWriteTimeUtc }
    }

    function Get-Caught([scriptblock] $Script) {
        try { & $Script; $null } catch { $_ }
    }
}

Describe 'Store errors and conventions' {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestBase win11 | Out-Null
        New-VmClone lab-01 -Base win11 -Store $store | Out-Null
    }
    AfterEach { Remove-TestFolder $dir }

    It 'refuses a rebase onto a base with another outline, per clone, and changes nothing' {
        New-TestBase small 32MB | Out-Null
        New-VmClone lab-02 -Base win11 -Store $store | Out-Null
        $before = Get-StoreSnapshot
        $out = Invoke-VmRebase lab-01, lab-02 -NewBase small -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $err.Count | Should -Be 2
        $err[0].FullyQualifiedErrorId | Should -Be 'OutlineMismatch,VmClone.PowerShell.Commands.InvokeVmRebaseCommand'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
        $err[0].TargetObject | Should -Be 'lab-01'
        $err[0].Exception.Message | Should -BeLike "*volume 'system' is 67108864 bytes in the clone but only 33554432 in the base, and a volume never shrinks*"
        Get-StoreSnapshot | Should -Be $before
    }

    It 'rebases the clones that fit and reports the one that does not' {
        New-TestBase win11-v2 | Out-Null
        # A larger outline fits (its volumes grow); a smaller one never does.
        New-TestBase big 128MB | Out-Null
        New-VmClone odd -Base big -Store $store | Out-Null
        $out = Invoke-VmRebase lab-01, odd -NewBase win11-v2 -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $out.Name | Should -Be 'lab-01'
        $err.Count | Should -Be 1
        $err[0].TargetObject | Should -Be 'odd'
        (Get-VmClone odd -Store $store).Base | Should -Be 'big'
    }

    It 'prints the plan of every clone and volume with -WhatIf and changes nothing' {
        New-TestBase win11-v2 | Out-Null
        $before = Get-StoreSnapshot
        # What-if messages go to the host, so the transcript is where a user would see them.
        $transcript = Join-Path $dir 'whatif.txt'
        Start-Transcript -LiteralPath $transcript | Out-Null
        try { Invoke-VmRebase -Base win11 -NewBase win11-v2 -Store $store -WhatIf }
        finally { Stop-Transcript | Out-Null }
        $text = Get-Content -LiteralPath $transcript -Raw
        $text | Should -BeLike "*Rebase clone 'lab-01' from base 'win11' onto 'win11-v2'*"
        $text | Should -BeLike '*system (System): replace by a child of*win11-v2*system.vhdx*'
        $text | Should -BeLike '*temp (Temporary): reset to a child of*'
        $text | Should -BeLike "*data (Data): re-parent onto*keeping its content*"
        Get-StoreSnapshot | Should -Be $before
        Restore-VmClone lab-01 -Store $store -WhatIf
        Remove-VmClone lab-01 -Store $store -WhatIf
        Remove-VmBase win11-v2 -Store $store -WhatIf
        New-VmClone lab-09 -Base win11 -Store $store -WhatIf
        Clear-VmTemporaryVolume lab-01 -Store $store -WhatIf
        Get-StoreSnapshot | Should -Be $before
    }

    It 'says with -WhatIf that Remove-VmClone deletes the other files in the clone folder, and keeps them then' {
        $vmx = Join-Path $store 'clones/lab-01/lab-01.vmx'
        Set-Content -LiteralPath $vmx -Value 'displayName = "lab-01"'
        $transcript = Join-Path $dir 'remove-whatif.txt'
        Start-Transcript -LiteralPath $transcript | Out-Null
        try { Remove-VmClone lab-01 -Store $store -WhatIf; 'lab-01' | Remove-VmClone -Store $store -WhatIf }
        finally { Stop-Transcript | Out-Null }
        $text = Get-Content -LiteralPath $transcript -Raw
        ([regex]::Matches($text, 'lab-01\.vmx \(not a volume, in the folder\): delete')).Count | Should -Be 2
        Test-Path -LiteralPath $vmx | Should -BeTrue
        Remove-Item -LiteralPath $vmx
    }

    It 'reports an unknown base naming it, with the clone as the target of the error (one error per clone in a fleet log)' {
        $e = Get-Caught { New-VmClone lab-02 -Base nope -Store $store -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -Be 'BaseNotFound,VmClone.PowerShell.Commands.NewVmCloneCommand'
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $e.TargetObject | Should -Be 'lab-02'
        $e.Exception.Message | Should -BeLike "*'nope'*"
        $e.Exception.Message | Should -BeLike '*win11*'
        Test-Path (Join-Path $store 'clones/lab-02') | Should -BeFalse
        (Get-Caught { Get-VmBase nope -Store $store -ErrorAction Stop }).FullyQualifiedErrorId | Should -Be 'BaseNotFound,VmClone.PowerShell.Commands.GetVmBaseCommand'
        (Get-Caught { Get-VmClone nope -Store $store -ErrorAction Stop }).FullyQualifiedErrorId | Should -Be 'CloneNotFound,VmClone.PowerShell.Commands.GetVmCloneCommand'
        Get-VmClone nope* -Store $store | Should -BeNullOrEmpty
    }

    It 'refuses a duplicate clone name and still makes the others' {
        Write-DiskBytes (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq data).Path 0 ([byte[]](1, 2, 3))
        $before = Get-DiskContentHash (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq data).Path
        $made = 'lab-01', 'lab-02' | New-VmClone -Base win11 -Store $store -ErrorVariable err -ErrorAction SilentlyContinue
        $made.Name | Should -Be 'lab-02'
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -Be 'CloneExists,VmClone.PowerShell.Commands.NewVmCloneCommand'
        $err[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        $err[0].TargetObject | Should -Be 'lab-01'
        Get-DiskContentHash (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq data).Path | Should -Be $before
    }

    It 'refuses the invalid name <_> before touching any file' -ForEach @('', '..', '../evil', 'a/b', 'a\b', 'CON', 'nul', 'COM1', 'lab 01', ('x' * 65), '.hidden') {
        $before = Get-StoreSnapshot
        $e = Get-Caught { New-VmClone -Name $_ -Base win11 -Store $store -ErrorAction Stop }
        if ($_ -eq '') {
            $e.FullyQualifiedErrorId | Should -BeLike 'ParameterArgumentValidationError*'
        }
        else {
            $e.FullyQualifiedErrorId | Should -Be 'InvalidName,VmClone.PowerShell.Commands.NewVmCloneCommand'
            $e.CategoryInfo.Category | Should -Be 'InvalidArgument'
            $e.Exception.Message | Should -BeLike '*not a valid clone name*'
        }
        (Get-Caught { New-VmBase -Name ($_ + '') -Store $store -Volume @{ Name = 's'; Type = 'System'; SizeBytes = 1MB } -ErrorAction Stop }) | Should -Not -BeNullOrEmpty
        (Get-Caught { New-VmBase -Name ok -Store $store -Volume @{ Name = "v$_/"; Type = 'System'; SizeBytes = 1MB } -ErrorAction Stop }).FullyQualifiedErrorId | Should -BeLike 'InvalidName,*'
        Get-StoreSnapshot | Should -Be $before
    }

    It 'refuses a bad volume specification clearly' {
        $e = Get-Caught { New-VmBase b2 -Store $store -Volume @{ Name = 'system'; Type = 'System' } -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -Be 'InvalidVolumeSpec,VmClone.PowerShell.Commands.NewVmBaseCommand'
        $e = Get-Caught { New-VmBase b2 -Store $store -Volume @{ Name = 'system'; Type = 'Bogus'; SizeBytes = 1MB } -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -Be 'InvalidVolumeSpec,VmClone.PowerShell.Commands.NewVmBaseCommand'
        $e.Exception.Message | Should -BeLike '*System, Temporary or Data*'
        $e = Get-Caught { New-VmBase b2 -Store $store -Volume @{ Name = 'system'; Typ = 'System'; SizeBytes = 1MB } -ErrorAction Stop }
        $e.Exception.Message | Should -BeLike "*'Typ' is not part of a volume specification*"
        $e = Get-Caught { New-VmBase win11 -Store $store -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 1MB } -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -Be 'BaseExists,VmClone.PowerShell.Commands.NewVmBaseCommand'
        Test-Path (Join-Path $store 'bases/b2') | Should -BeFalse
    }

    It 'refuses to remove a base while clones depend on it, naming them' {
        New-VmClone lab-02 -Base win11 -Store $store | Out-Null
        $e = Get-Caught { Remove-VmBase win11 -Store $store -Force -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -Be 'BaseInUse,VmClone.PowerShell.Commands.RemoveVmBaseCommand'
        $e.CategoryInfo.Category | Should -Be 'ResourceBusy'
        $e.Exception.Message | Should -BeLike "*clone 'lab-01'*clone 'lab-02'*"
        (Get-VmBase win11 -Store $store).Volumes.Count | Should -Be 3
    }

    It 'finds a base modified behind its back and refuses to build on it' {
        $system = (Get-VmVolume -Base win11 -Store $store | Where-Object Name -eq system).Path
        Set-ItemProperty $system -Name IsReadOnly -Value $false
        Write-DiskBytes $system 0 ([Text.Encoding]::UTF8.GetBytes('tampered'))
        (Get-VmClone lab-01 -Store $store).State | Should -Be 'BaseModified'
        (Get-VmBase win11 -Store $store).IsModified | Should -BeTrue
        $before = Get-StoreSnapshot
        $e = Get-Caught { Restore-VmClone lab-01 -Store $store -Force -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -Be 'BaseModified,VmClone.PowerShell.Commands.RestoreVmCloneCommand'
        $e.CategoryInfo.Category | Should -Be 'InvalidData'
        (Get-Caught { New-VmClone lab-02 -Base win11 -Store $store -ErrorAction Stop }).FullyQualifiedErrorId | Should -Be 'BaseModified,VmClone.PowerShell.Commands.NewVmCloneCommand'
        (Get-Caught { Get-VmClone lab-01 -Store $store | New-VmBase -Name copy -ErrorAction Stop }).FullyQualifiedErrorId | Should -Be 'BaseModified,VmClone.PowerShell.Commands.NewVmBaseCommand'
        Get-StoreSnapshot | Should -Be $before
        $report = Test-VmStore -Store $store -Repair
        $report.IsHealthy | Should -BeFalse
        $modified = $report.Problems | Where-Object Kind -eq BaseModified
        $modified.Subject | Should -Contain 'base win11'
        $modified.Subject | Should -Contain 'clone lab-01'
        ($report.Problems | Where-Object Kind -eq BaseNotReadOnly).Repaired | Should -BeTrue
        [VmClone.Disks.ReadOnlyFile]::IsMarked($system) | Should -BeTrue
    }

    It 'keeps working when the whole store is moved' {
        $data = (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq data).Path
        Write-DiskBytes $data 4096 ([Text.Encoding]::UTF8.GetBytes('my files'))
        $hash = Get-DiskContentHash $data
        $moved = Join-Path $dir 'moved/elsewhere'
        New-Item -ItemType Directory (Split-Path $moved) | Out-Null
        Move-Item $store $moved
        $clone = Get-VmClone lab-01 -Store $moved
        $clone.State | Should -Be 'Ready'
        $clone.Volumes[0].ParentPath | Should -BeLike "$moved*"
        Get-DiskContentHash (Get-VmVolume -Clone lab-01 -Store $moved | Where-Object Name -eq data).Path | Should -Be $hash
        Restore-VmClone lab-01 -Store $moved -Force
        New-VmClone lab-02 -Base win11 -Store $moved | Out-Null
        (Test-VmStore -Store $moved).IsHealthy | Should -BeTrue
    }

    It 'does not follow a parent outside the store' {
        Copy-Item $store (Join-Path $dir 'copy') -Recurse
        Remove-Item (Join-Path $dir 'copy/bases/win11') -Recurse -Force
        (Get-VmClone lab-01 -Store (Join-Path $dir 'copy')).State | Should -Be 'Broken'
        $report = Test-VmStore -Store (Join-Path $dir 'copy')
        $report.IsHealthy | Should -BeFalse
        ($report.Problems | Where-Object Kind -eq ChainBroken).Description | Should -BeLike '*outside*'
    }

    It 'uses $env:VMCLONE_STORE when -Store is not given, and objects carry their store' {
        $saved = $env:VMCLONE_STORE
        try {
            $env:VMCLONE_STORE = $store
            (Get-VmClone).Name | Should -Be 'lab-01'
            $env:VMCLONE_STORE = Join-Path $dir 'other'
            # A store that does not exist is said to be missing, not listed as empty.
            (Get-Caught { Get-VmClone -ErrorAction Stop }).FullyQualifiedErrorId | Should -Be 'StoreNotFound,VmClone.PowerShell.Commands.GetVmCloneCommand'
            Get-VmClone -Store $store | Restore-VmClone -Force -PassThru | ForEach-Object Store | Should -Be $store
            Get-VmBase -Store $store | Get-VmVolume | Should -HaveCount 3
            Test-Path (Join-Path $dir 'other') | Should -BeFalse
        }
        finally { $env:VMCLONE_STORE = $saved }
    }

    It 'does not turn a folder with other files into a store' {
        $e = Get-Caught { New-VmBase b -Store $dir -Volume @{ Name = 's'; Type = 'System'; SizeBytes = 1MB } -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -Be 'NotAStore,VmClone.PowerShell.Commands.NewVmBaseCommand'
        Test-Path (Join-Path $dir 'store.json') | Should -BeFalse
    }

    It 'completes base and clone names from the store given by -Store' {
        New-VmClone lab-02, kiosk -Base win11 -Store $store | Out-Null
        $r = TabExpansion2 -inputScript "Get-VmClone -Store '$store' -Name lab" -cursorColumn ("Get-VmClone -Store '$store' -Name lab".Length)
        $r.CompletionMatches.CompletionText | Should -Be @('lab-01', 'lab-02')
        $r = TabExpansion2 -inputScript "New-VmClone x -Store '$store' -Base w" -cursorColumn ("New-VmClone x -Store '$store' -Base w".Length)
        $r.CompletionMatches.CompletionText | Should -Be @('win11')
    }

    It 'asks before destructive work unless -Force, and -Force never overrides -WhatIf' {
        (Get-Command Remove-VmClone).ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false).ConfirmImpact | Should -Be 'High'
        foreach ($name in 'Remove-VmBase', 'Restore-VmClone', 'Invoke-VmRebase') {
            (Get-Command $name).ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false).ConfirmImpact | Should -Be 'High'
            (Get-Command $name).Parameters.Keys | Should -Contain 'Force'
        }
        Remove-VmClone lab-01 -Store $store -Force -WhatIf
        Get-VmClone lab-01 -Store $store | Should -Not -BeNullOrEmpty
    }

    It 'repairs an operation that was cut off' {
        $staging = Join-Path $store 'clones/.staging-lab-01'
        New-Item -ItemType Directory $staging | Out-Null
        Set-Content (Join-Path $staging 'system.vhdx') 'half written'
        (Get-VmClone lab-01 -Store $store).State | Should -Be 'Interrupted'
        $report = Test-VmStore -Store $store
        $report.IsHealthy | Should -BeFalse
        $report.Problems[0].Kind | Should -Be 'InterruptedOperation'
        $report.Problems[0].Subject | Should -Be 'clone lab-01'
        $fixed = Test-VmStore -Store $store -Repair
        $fixed.IsHealthy | Should -BeTrue
        $fixed.Problems[0].Repair | Should -BeLike 'undid*'
        Test-Path $staging | Should -BeFalse
        (Get-VmClone lab-01 -Store $store).State | Should -Be 'Ready'
    }
}
