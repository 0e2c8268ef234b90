# A mistyped -Store is never silent: reading and changing commands on a folder that does not
# exist, or that is not a store, fail with StoreNotFound and create nothing; only New-VmBase
# makes a store.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

BeforeDiscovery {
    $commands = @(
        @{ Name = 'Get-VmClone'; Run = { param($s) Get-VmClone -Store $s -ErrorAction Stop } }
        @{ Name = 'Get-VmClone lab-01'; Run = { param($s) Get-VmClone lab-01 -Store $s -ErrorAction Stop } }
        @{ Name = 'Get-VmBase'; Run = { param($s) Get-VmBase -Store $s -ErrorAction Stop } }
        @{ Name = 'Get-VmVolume'; Run = { param($s) Get-VmVolume -Clone lab-01 -Store $s -ErrorAction Stop } }
        @{ Name = 'Test-VmStore'; Run = { param($s) Test-VmStore -Store $s -ErrorAction Stop } }
        @{ Name = 'Test-VmStore -Repair'; Run = { param($s) Test-VmStore -Store $s -Repair -ErrorAction Stop } }
        @{ Name = 'Restore-VmClone'; Run = { param($s) Restore-VmClone lab-01 -Store $s -Force -ErrorAction Stop } }
        @{ Name = 'Clear-VmTemporaryVolume'; Run = { param($s) Clear-VmTemporaryVolume lab-01 -Store $s -ErrorAction Stop } }
        @{ Name = 'Remove-VmClone'; Run = { param($s) Remove-VmClone lab-01 -Store $s -Force -ErrorAction Stop } }
        @{ Name = 'Remove-VmBase'; Run = { param($s) Remove-VmBase win11 -Store $s -Force -ErrorAction Stop } }
        @{ Name = 'Invoke-VmRebase'; Run = { param($s) Invoke-VmRebase lab-01 -NewBase win11 -Store $s -Force -ErrorAction Stop } }
        @{ Name = 'New-VmClone'; Run = { param($s) New-VmClone lab-09 -Base win11 -Store $s -ErrorAction Stop } }
        @{ Name = 'piped Restore-VmClone'; Run = { param($s) 'lab-01' | Restore-VmClone -Store $s -Force -ErrorAction Stop } }
        @{ Name = 'piped Get-VmClone'; Run = { param($s) [pscustomobject]@{ Name = 'lab-01'; Store = $s } | Get-VmClone -ErrorAction Stop } })
}

Describe 'A -Store that is not a store' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01 -Folder $dir
        $foreign = Join-Path $dir 'documents'
        New-Item -ItemType Directory -Path $foreign | Out-Null
        Set-Content -LiteralPath (Join-Path $foreign 'notes.txt') -Value 'not a store'
    }
    AfterAll { Remove-TestFolder $dir }

    It '<Name> on a folder that does not exist fails with StoreNotFound and creates nothing' -ForEach $commands {
        $missing = Join-Path $dir 'stroe'
        $e = try { & $Run $missing | Out-Null; $null } catch { $_ }
        $e | Should -Not -BeNullOrEmpty -Because 'a mistyped store must not look like an empty one'
        ($e.FullyQualifiedErrorId -split ',')[0] | Should -Be 'StoreNotFound'
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $e.Exception.Message | Should -BeLike "*$missing*"
        Test-Path -LiteralPath $missing | Should -BeFalse
    }

    It '<Name> on a folder that is not a store fails with StoreNotFound and changes nothing' -ForEach $commands {
        $before = (Get-ChildItem -LiteralPath $foreign -Recurse -Force).FullName
        $e = try { & $Run $foreign | Out-Null; $null } catch { $_ }
        ($e.FullyQualifiedErrorId -split ',')[0] | Should -Be 'StoreNotFound'
        $e.Exception.Message | Should -BeLike "*not a VmClone store*"
        (Get-ChildItem -LiteralPath $foreign -Recurse -Force).FullName | Should -Be $before
    }

    It 'still works on the real store, and New-VmBase still makes a new one' {
        (Get-VmClone -Store $store).Name | Should -Be 'lab-01'
        $new = Join-Path $dir 'new-store'
        New-VmBase fresh -Store $new -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 16MB } | Out-Null
        (Get-VmBase -Store $new).Name | Should -Be 'fresh'
    }
}
