# Get-VmClone by parameter and piped: names, -Base, and bases from Get-VmBase, whose names must
# never be taken for clone names.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Get-VmClone' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir
        New-VmBase kiosk -Store $store -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 16MB } | Out-Null
        New-VmClone kiosk-01 -Base kiosk -Store $store | Out-Null
    }
    AfterAll { Remove-TestFolder $dir }

    It 'lists clones by name and by -Base, by parameter' {
        (Get-VmClone lab-0* -Store $store).Name | Should -Be 'lab-01', 'lab-02'
        (Get-VmClone -Base kiosk -Store $store).Name | Should -Be 'kiosk-01'
    }

    It 'lists clones by piped name' {
        ('lab-02', 'kiosk-01' | Get-VmClone -Store $store).Name | Should -Be 'lab-02', 'kiosk-01'
    }

    It 'lists the clones of each piped base, never taking the base name for a clone name' {
        $err = $null
        $clones = Get-VmBase win11 -Store $store | Get-VmClone -ErrorVariable err -ErrorAction SilentlyContinue
        $err | Should -BeNullOrEmpty
        $clones.Name | Should -Be 'lab-01', 'lab-02'
        (Get-VmBase -Store $store | Get-VmClone).Name | Should -Be 'kiosk-01', 'lab-01', 'lab-02'
    }
}
