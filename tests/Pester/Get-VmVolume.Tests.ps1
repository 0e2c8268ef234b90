# Get-VmVolume by parameter and piped: the volumes of clones and bases, their files and what they
# read, filtered by type.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Get-VmVolume' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01, lab-02 -Folder $dir
        $lab01System = Join-Path $store 'clones/lab-01/system.vhdx'
        Write-DiskText $lab01System 8MB 'lab-01 software'
    }
    AfterAll { Remove-TestFolder $dir }

    Context 'by parameter' {
        It 'lists a clone''s volumes: their files, types and parents, reading the clone''s content' {
            $volumes = @(Get-VmVolume -Clone lab-01 -Store $store)
            $volumes.Name | Should -Be 'system', 'temp', 'data'
            $volumes.Type | Should -Be 'System', 'Temporary', 'Data'
            $volumes.Owner | Sort-Object -Unique | Should -Be 'lab-01'
            foreach ($v in $volumes) { Test-Path -LiteralPath $v.Path -PathType Leaf | Should -BeTrue }
            $system = $volumes | Where-Object Name -eq system
            $system.Path | Should -Be $lab01System
            $system.ParentPath | Should -Be (Get-TestVolumePath $store -Base win11 -Volume 'system')
            $system.DivergedBytes | Should -BeGreaterThan 0
            Read-DiskText $system.Path 0 12 | Should -Be 'win11 system'
            Read-DiskText $system.Path 8MB 15 | Should -Be 'lab-01 software'
        }

        It 'lists a base''s volumes and filters by -Type' {
            (Get-VmVolume -Base win11 -Store $store).Name | Should -Be 'system', 'temp', 'data'
            $data = @(Get-VmVolume -Clone lab-01, lab-02 -Type Data -Store $store)
            $data.Owner | Should -Be 'lab-01', 'lab-02'
            $data.Name | Sort-Object -Unique | Should -Be 'data'
        }

        It 'refuses an unknown clone with CloneNotFound, naming it' {
            $err = $null
            Get-VmVolume -Clone nope -Store $store -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            ($err[0].FullyQualifiedErrorId -split ',')[0] | Should -Be 'CloneNotFound'
            $err[0].TargetObject | Should -Be 'nope'
        }
    }

    Context 'piped' {
        It 'lists the volumes of clones piped from Get-VmClone, as by parameter' {
            $piped = @(Get-VmClone -Store $store | Get-VmVolume)
            $piped.Path | Should -Be @(Get-VmVolume -Clone lab-01, lab-02 -Store $store).Path
        }

        It 'lists the volumes of a base piped from Get-VmBase' {
            $piped = @(Get-VmBase win11 -Store $store | Get-VmVolume -Type System)
            $piped.Path | Should -Be (Get-TestVolumePath $store -Base win11 -Volume 'system')
            Read-DiskText $piped[0].Path 0 12 | Should -Be 'win11 system'
        }
    }
}
