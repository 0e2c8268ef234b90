# Get-VmBase by parameter and piped: names and wildcards, what each base holds, the clones on it.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Get-VmBase' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir
        New-VmBase kiosk -Store $store -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 16MB } | Out-Null
    }
    AfterAll { Remove-TestFolder $dir }

    Context 'by parameter' {
        It 'lists every base, sorted, with its volumes and its clone count' {
            $bases = @(Get-VmBase -Store $store)
            $bases.Name | Should -Be 'kiosk', 'win11'
            $win11 = $bases | Where-Object Name -eq win11
            $win11.CloneCount | Should -Be 2
            $win11.Volumes.Name | Should -Be 'system', 'temp', 'data'
            $win11.Volumes.Type | Should -Be 'System', 'Temporary', 'Data'
            $win11.IsModified | Should -BeFalse
            Read-DiskText ($win11.Volumes | Where-Object Name -eq system).Path 0 12 | Should -Be 'win11 system'
            ($bases | Where-Object Name -eq kiosk).CloneCount | Should -Be 0
        }

        It 'finds bases by name and wildcard' {
            (Get-VmBase win* -Store $store).Name | Should -Be 'win11'
            (Get-VmBase kiosk, win11 -Store $store).Name | Should -Be 'kiosk', 'win11'
        }

        It 'refuses an unknown name with BaseNotFound, naming it, and lists the others' {
            $err = $null
            $found = @(Get-VmBase nope, kiosk -Store $store -ErrorVariable err -ErrorAction SilentlyContinue)
            $found.Name | Should -Be 'kiosk'
            $err.Count | Should -Be 1
            $err[0].FullyQualifiedErrorId | Should -Be 'BaseNotFound,VmClone.PowerShell.Commands.GetVmBaseCommand'
            $err[0].TargetObject | Should -Be 'nope'
        }
    }

    Context 'piped' {
        It 'finds bases by piped name, in input order' {
            ('win11', 'kiosk' | Get-VmBase -Store $store).Name | Should -Be 'win11', 'kiosk'
        }

        It 'finds a base by the name and store of a piped object' {
            $found = [pscustomobject]@{ Name = 'kiosk'; Store = $store } | Get-VmBase
            $found.Name | Should -Be 'kiosk'
            $found.Store | Should -Be (Get-VmBase kiosk -Store $store).Store
        }
    }
}
