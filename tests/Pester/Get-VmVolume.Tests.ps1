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
        # The base's data volume is empty, so each clone's is standalone: three sectors of
        # lab-02's no longer read as zeros; a sector of zeros written beside them still does.
        $lab02Data = Join-Path $store 'clones/lab-02/data.vhdx'
        Write-DiskBytes $lab02Data 4MB (Get-RandomBytes 1536 5)
        Write-DiskBytes $lab02Data 12MB ([byte[]]::new(512))
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

        It 'shows a standalone data volume''s divergence to the sector: the sectors that no longer read as zeros' {
            $data = Get-VmVolume -Clone lab-02 -Type Data -Store $store
            $data.ParentPath | Should -BeNullOrEmpty
            $data.DivergedBytes | Should -Be 1536
            (Get-VmVolume -Clone lab-01 -Type Data -Store $store).DivergedBytes | Should -Be 0
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

        It 'shows the same sector-exact divergence for a clone piped from Get-VmClone' {
            (Get-VmClone lab-02 -Store $store | Get-VmVolume -Type Data).DivergedBytes | Should -Be 1536
        }

        It 'lists the volumes of a base piped from Get-VmBase' {
            $piped = @(Get-VmBase win11 -Store $store | Get-VmVolume -Type System)
            $piped.Path | Should -Be (Get-TestVolumePath $store -Base win11 -Volume 'system')
            Read-DiskText $piped[0].Path 0 12 | Should -Be 'win11 system'
        }
    }
}
