# The store as a trust boundary: a clone folder or a record someone else wrote never makes a
# command delete, rewrite or read anything outside the store. Each affected cmdlet by parameter
# and piped, with the error id a script can match.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    function New-TestBase([string] $Name, [string] $DataText = 'base data') {
        $source = Join-Path $dir "$Name-system.vhdx"
        New-VmDisk $source -SizeBytes 64MB | Out-Null
        Write-DiskBytes $source 0 ([Text.Encoding]::UTF8.GetBytes("$Name system"))
        $data = Join-Path $dir "$Name-data.vhdx"
        New-VmDisk $data -SizeBytes 64MB | Out-Null
        Write-DiskBytes $data 0 ([Text.Encoding]::UTF8.GetBytes($DataText))
        New-VmBase $Name -Store $store -Volume @(
            @{ Name = 'system'; Type = 'System'; Path = $source }
            @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 64MB }
            @{ Name = 'data'; Type = 'Data'; Path = $data }) | Out-Null
    }

    # Points one volume of the clone's manifest somewhere else.
    function Set-ManifestFile([string] $Clone, [string] $Volume, [string] $File) {
        $path = Join-Path $store "clones/$Clone/clone.json"
        $m = Get-Content $path -Raw | ConvertFrom-Json
        ($m.volumes | Where-Object name -EQ $Volume).file = $File
        $m | ConvertTo-Json -Depth 5 | Set-Content $path
    }

    function Get-FileHashText([string] $Path) { (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash }

    # A standalone disk outside the store holding a secret at offset 0.
    function New-SecretDisk([string] $Path) {
        New-VmDisk $Path -SizeBytes 64MB | Out-Null
        Write-DiskBytes $Path 0 ([Text.Encoding]::UTF8.GetBytes($secret))
        $Path
    }

    function Test-SecretInStore {
        foreach ($f in Get-ChildItem $store -Recurse -File -Force) {
            if ($f.LinkTarget -or $f.Length -eq 0) { continue }
            if ([Text.Encoding]::Latin1.GetString([IO.File]::ReadAllBytes($f.FullName)).Contains($secret)) { return $true }
        }
        $false
    }

    $secret = 'SECRET-pester-outside-the-store'
}

Describe 'Store records that point outside the store' {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestBase win11
        New-VmClone lab-01 -Base win11 -Store $store | Out-Null
        $victim = Join-Path $dir 'victim.vhdx'
        New-VmDisk $victim -SizeBytes 64MB | Out-Null
        $victimHash = Get-FileHashText $victim
    }
    AfterEach { Remove-TestFolder $dir }

    It 'Restore-VmClone refuses a manifest naming <Case> and deletes nothing (by parameter)' -ForEach @(
        @{ Case = 'an absolute path' ; File = { $victim } }
        @{ Case = "'..'" ; File = { '../../../victim.vhdx' } }
        @{ Case = "a base's volume" ; File = { '../../bases/win11/system.vhdx' } }
    ) {
        Set-ManifestFile lab-01 system (& $File)
        $baseSystem = Join-Path $store 'bases/win11/system.vhdx'
        $baseHash = Get-FileHashText $baseSystem
        Restore-VmClone lab-01 -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -Be 'ManifestInvalid,VmClone.PowerShell.Commands.RestoreVmCloneCommand'
        $err[0].TargetObject | Should -Be 'lab-01'
        Get-FileHashText $victim | Should -Be $victimHash
        Get-FileHashText $baseSystem | Should -Be $baseHash
        (Get-VmClone lab-01 -Store $store).State | Should -Be 'ManifestInvalid'
    }

    It 'Restore-VmClone refuses it piped from Get-VmClone' {
        Set-ManifestFile lab-01 system $victim
        Get-VmClone lab-01 -Store $store | Restore-VmClone -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'ManifestInvalid,VmClone.PowerShell.Commands.RestoreVmCloneCommand'
        Test-Path $victim | Should -BeTrue
    }

    It 'Clear-VmTemporaryVolume refuses it by parameter and piped' {
        Set-ManifestFile lab-01 temp $victim
        Clear-VmTemporaryVolume lab-01 -Store $store -ErrorVariable err1 -ErrorAction SilentlyContinue
        'lab-01' | Clear-VmTemporaryVolume -Store $store -ErrorVariable err2 -ErrorAction SilentlyContinue
        foreach ($e in $err1[0], $err2[0]) {
            $e.FullyQualifiedErrorId | Should -Be 'ManifestInvalid,VmClone.PowerShell.Commands.ClearVmTemporaryVolumeCommand'
        }
        Get-FileHashText $victim | Should -Be $victimHash
    }

    It 'Invoke-VmRebase never re-parents a disk outside the store, by parameter and piped' {
        New-TestBase win11-v2 'other data'
        $outside = Join-Path $dir 'outside-child.vhdx'
        New-VmDisk $outside -ParentPath (Join-Path $store 'bases/win11/data.vhdx') | Out-Null
        $hash = Get-FileHashText $outside
        Set-ManifestFile lab-01 data '../../../outside-child.vhdx'
        Invoke-VmRebase lab-01 -NewBase win11-v2 -Store $store -Force -ErrorVariable err1 -ErrorAction SilentlyContinue
        Get-VmClone lab-01 -Store $store | Invoke-VmRebase -NewBase win11-v2 -Store $store -Force -ErrorVariable err2 -ErrorAction SilentlyContinue
        foreach ($e in $err1[0], $err2[0]) {
            $e.FullyQualifiedErrorId | Should -Be 'ManifestInvalid,VmClone.PowerShell.Commands.InvokeVmRebaseCommand'
        }
        Get-FileHashText $outside | Should -Be $hash
    }

    It 'Test-VmStore -Repair reports a hand-written journal naming an outside parent and does not finish it' {
        $secretDisk = New-SecretDisk (Join-Path $dir 'secret.vhdx')
        $folder = Join-Path $store 'clones/lab-01'
        $systemHash = Get-FileHashText (Join-Path $folder 'system.vhdx')
        $manifest = Get-Content (Join-Path $folder 'clone.json') -Raw | ConvertFrom-Json
        $manifest.revision = [guid]::NewGuid().ToString('N')
        $plan = [ordered]@{
            operation = 'Restore'; store = $store; subject = 'lab-01'; subjectKind = 'clone'; folder = $folder
            fromBase = 'win11'; toBase = 'win11'; phase = 'Committing'; manifestDigest = $null; baseManifest = $null
            cloneManifest = $manifest
            volumes = @([ordered]@{
                volume = 'system'; type = 'System'; action = 'Replace'; format = 'Vhdx'; path = (Join-Path $folder 'system.vhdx')
                source = $secretDisk; supersedes = $null; virtualSize = 0; logicalSectorSize = 512; reason = ''; inPlace = $true })
        }
        $staging = Join-Path $store 'clones/.staging-lab-01'
        New-Item -ItemType Directory $staging | Out-Null
        $plan | ConvertTo-Json -Depth 6 | Set-Content (Join-Path $staging 'plan.json')
        $report = Test-VmStore -Store $store -Repair
        $report.IsHealthy | Should -BeFalse
        $p = $report.Problems | Where-Object { $_.Kind -eq 'ManifestInvalid' -and $_.Path -like '*plan.json' }
        $p | Should -Not -BeNullOrEmpty
        $p.Repaired | Should -BeFalse
        Test-Path (Join-Path $staging 'plan.json') | Should -BeTrue
        Get-FileHashText (Join-Path $folder 'system.vhdx') | Should -Be $systemHash
        # The next command on the clone refuses it too.
        Restore-VmClone lab-01 -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'ManifestInvalid,VmClone.PowerShell.Commands.RestoreVmCloneCommand'
        Test-SecretInStore | Should -BeFalse
    }
}

Describe 'Links and special files in a clone folder' {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestBase win11
        New-VmClone lab-01 -Base win11 -Store $store | Out-Null
        $folder = Join-Path $store 'clones/lab-01'
    }
    AfterEach { Remove-TestFolder $dir }

    It 'Get-VmClone does not call a clone Ready whose data volume links to an outside disk, and New-VmBase -FromClone refuses it (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        $secretDisk = New-SecretDisk (Join-Path $dir 'secret.vhdx')
        Remove-Item (Join-Path $folder 'data.vhdx') -Force
        New-Item -ItemType SymbolicLink -Path (Join-Path $folder 'data.vhdx') -Target $secretDisk | Out-Null
        (Get-VmClone lab-01 -Store $store).State | Should -Not -Be 'Ready'
        if ($How -eq 'piped') { Get-VmClone lab-01 -Store $store | New-VmBase -Name copy -Store $store -ErrorVariable err -ErrorAction SilentlyContinue }
        else { New-VmBase -Name copy -FromClone lab-01 -Store $store -ErrorVariable err -ErrorAction SilentlyContinue }
        $err[0].FullyQualifiedErrorId | Should -Be 'VolumeOutsideStore,VmClone.PowerShell.Commands.NewVmBaseCommand'
        Test-SecretInStore | Should -BeFalse
        (Test-VmStore -Store $store).Problems.Kind | Should -Contain 'VolumeNotContained'
    }

    It 'Remove-VmClone of a linked clone folder leaves what it leads to alone (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        $outside = Join-Path $dir 'victim-dir'
        New-Item -ItemType Directory $outside | Out-Null
        $keep = Join-Path $outside 'keep.vhdx'
        Set-Content $keep 'keep me'
        Set-ItemProperty $keep -Name IsReadOnly -Value $true
        Copy-Item (Join-Path $folder 'clone.json') $outside
        Remove-Item $folder -Recurse -Force
        New-Item -ItemType SymbolicLink -Path $folder -Target $outside | Out-Null
        if ($How -eq 'piped') { 'lab-01' | Remove-VmClone -Store $store -Force -ErrorAction SilentlyContinue }
        else { Remove-VmClone lab-01 -Store $store -Force -ErrorAction SilentlyContinue }
        Test-Path $keep | Should -BeTrue
        (Get-Item $keep).IsReadOnly | Should -BeTrue
        Test-Path (Join-Path $outside 'clone.json') | Should -BeTrue
    }

    It 'Remove-VmClone deletes a link inside the clone folder, never its target' {
        $outside = Join-Path $dir 'keep.vhdx'
        Set-Content $outside 'keep me'
        Set-ItemProperty $outside -Name IsReadOnly -Value $true
        New-Item -ItemType SymbolicLink -Path (Join-Path $folder 'extra.vhdx') -Target $outside | Out-Null
        Get-VmClone lab-01 -Store $store | Remove-VmClone -Store $store -Force
        Test-Path $folder | Should -BeFalse
        (Get-Item $outside).IsReadOnly | Should -BeTrue
    }

    It 'Restore-VmClone and Remove-VmClone end on a FIFO in place of a volume' -Skip:$IsWindows {
        $system = Join-Path $folder 'system.vhdx'
        Remove-Item $system -Force
        & mkfifo $system
        $job = Start-ThreadJob {
            param($module, $store)
            Import-Module $module
            Restore-VmClone lab-01 -Store $store -Force -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId
        } -ArgumentList $env:VMCLONE_MODULE, $store
        $done = Wait-Job $job -Timeout 60
        $done | Should -Not -BeNullOrEmpty
        Receive-Job $job | Should -Be 'VolumeNotRegularFile,VmClone.PowerShell.Commands.RestoreVmCloneCommand'
        (Get-VmClone lab-01 -Store $store).State | Should -Be 'Broken'
        Remove-VmClone lab-01 -Store $store -Force
        Test-Path $folder | Should -BeFalse
    }
}

Describe 'Disk-level commands on a file inside a store' {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestBase win11
        New-TestBase win11-v2 'other data'
        New-VmClone lab-01 -Base win11 -Store $store | Out-Null
        $data = Join-Path $store 'clones/lab-01/data.vhdx'
        $secretDisk = New-SecretDisk (Join-Path $dir 'secret.vhdx')
        # The data volume swapped for a child of a disk outside the store.
        # (made outside and moved in: New-VmDisk itself refuses such a child in a store)
        $swap = Join-Path $dir 'swap.vhdx'
        New-VmDisk $swap -ParentPath $secretDisk | Out-Null
        Move-Item $swap $data -Force
        $newParent = Join-Path $store 'bases/win11-v2/data.vhdx'
    }
    AfterEach { Remove-TestFolder $dir }

    It 'Set-VmDisk -PreserveContent does not copy an outside parent into the store (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        if ($How -eq 'piped') { Get-Item $data | Set-VmDisk -ParentPath $newParent -PreserveContent -ErrorVariable err -ErrorAction SilentlyContinue }
        else { Set-VmDisk -Path $data -ParentPath $newParent -PreserveContent -ErrorVariable err -ErrorAction SilentlyContinue }
        $err[0].FullyQualifiedErrorId | Should -Be 'DiskParentOutsideRoot,VmClone.PowerShell.Commands.SetVmDiskCommand'
        Test-SecretInStore | Should -BeFalse
    }

    It 'Get-VmDisk -Chain and Test-VmDisk stop at the store boundary (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        if ($How -eq 'piped') { $result = Get-Item $data | Test-VmDisk }
        else { $result = Test-VmDisk -Path $data }
        $result.IsHealthy | Should -BeFalse
        ($result.Problems.Description -join ' ') | Should -BeLike '*outside*'
        $chain = Get-VmDisk -Path $data -Chain
        $chain.Count | Should -Be 1
        $chain[0].ChainProblem | Should -BeLike '*outside*'
    }

    It 'Merge-VmDisk does not write into a parent outside the store (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        $hash = Get-FileHashText $secretDisk
        if ($How -eq 'piped') { Get-Item $data | Merge-VmDisk -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue }
        else { Merge-VmDisk -Path $data -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue }
        $err[0].FullyQualifiedErrorId | Should -Be 'DiskParentOutsideRoot,VmClone.PowerShell.Commands.MergeVmDiskCommand'
        Get-FileHashText $secretDisk | Should -Be $hash
    }

    It 'New-VmDisk -ParentPath refuses a child in the store over a parent outside it (<How>)' -ForEach @(
        @{ How = 'by parameter' }
        @{ How = 'piped' }
    ) {
        $child = Join-Path $store 'clones/lab-01/extra.vhdx'
        if ($How -eq 'piped') { $child | New-VmDisk -ParentPath $secretDisk -ErrorVariable err -ErrorAction SilentlyContinue }
        else { New-VmDisk -Path $child -ParentPath $secretDisk -ErrorVariable err -ErrorAction SilentlyContinue }
        $err[0].FullyQualifiedErrorId | Should -Be 'DiskParentOutsideRoot,VmClone.PowerShell.Commands.NewVmDiskCommand'
        Test-Path $child | Should -BeFalse
    }

    It 'Get-VmDisk refuses a store volume that is a link leading out of the store' {
        Remove-Item $data -Force
        New-Item -ItemType SymbolicLink -Path $data -Target $secretDisk | Out-Null
        Get-VmDisk -Path $data -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'VolumeOutsideStore,VmClone.PowerShell.Commands.GetVmDiskCommand'
        Get-Item $data | Convert-VmDisk -DestinationPath (Join-Path $dir 'copy.vhdx') -ErrorVariable err2 -ErrorAction SilentlyContinue
        $err2[0].FullyQualifiedErrorId | Should -Be 'VolumeOutsideStore,VmClone.PowerShell.Commands.ConvertVmDiskCommand'
    }
}

Describe 'Lock files' {
    It 'are readable and writable by their owner only' -Skip:$IsWindows {
        $dir = New-TestFolder
        try {
            $store = Join-Path $dir 'store'
            New-TestBase win11
            New-VmClone lab-01 -Base win11 -Store $store | Out-Null
            Restore-VmClone lab-01 -Store $store -Force
            [IO.File]::GetUnixFileMode((Join-Path $store '.locks')) | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite, UserExecute')
            foreach ($f in Get-ChildItem (Join-Path $store '.locks') -Filter *.lock) {
                [IO.File]::GetUnixFileMode($f.FullName) | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite')
            }
        }
        finally { Remove-TestFolder $dir }
    }
}
