BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:noQemu = Get-OracleSkip 'qemu-img'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Convert-VmDisk' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        New-VmDisk ./base.vhdx 512MB -BlockSizeBytes 1MB | Out-Null
        Write-DiskBytes "$dir/base.vhdx" 10MB (Get-RandomBytes 2MB 1)
        New-VmDisk ./child.vhdx -ParentPath ./base.vhdx | Out-Null
        Write-DiskBytes "$dir/child.vhdx" 11MB (Get-RandomBytes 100KB 2)
        $expected = Get-DiskContentHash "$dir/child.vhdx"
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'flattens a chain into a standalone <Name> that reads the same' -ForEach @(
        @{ Name = 'flat.vhdx'; Format = 'Vhdx' }
        @{ Name = 'flat.vmdk'; Format = 'Vmdk' }
        @{ Name = 'flat.raw'; Format = 'Raw' }
    ) {
        $out = Convert-VmDisk -Path ./child.vhdx -DestinationPath "./$Name"
        $out.Format | Should -Be $Format
        $out.ParentPath | Should -BeNullOrEmpty
        Get-DiskContentHash "$dir/$Name" | Should -Be $expected
        Test-Path ./child.vhdx | Should -BeTrue
    }

    It 'writes a VMDK that qemu-img checks and reads as ours' -Skip:$noQemu {
        Convert-VmDisk ./child.vhdx ./flat.vmdk | Out-Null
        qemu-img check -f vmdk ./flat.vmdk | Out-Null
        $LASTEXITCODE | Should -Be 0
        qemu-img convert -f vmdk -O raw ./flat.vmdk ./q.raw
        (Get-FileHash ./q.raw -Algorithm SHA256).Hash.ToLowerInvariant() | Should -Be $expected
    }

    It 'takes the disk from Get-VmDisk through the pipeline' {
        Get-VmDisk ./child.vhdx | Convert-VmDisk -DestinationPath ./flat.vhdx | Out-Null
        Get-DiskContentHash "$dir/flat.vhdx" | Should -Be $expected
    }

    It 'changes nothing with -WhatIf' {
        Convert-VmDisk ./child.vhdx ./flat.vhdx -WhatIf
        Test-Path ./flat.vhdx | Should -BeFalse
    }

    It 'refuses an existing destination with a stable error id' {
        Set-Content ./taken.vhdx 'keep me'
        Convert-VmDisk ./child.vhdx ./taken.vhdx -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'DestinationExists,VmClone.PowerShell.Commands.ConvertVmDiskCommand'
        Get-Content ./taken.vhdx | Should -Be 'keep me'
    }
}

Describe 'Merge-VmDisk' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        New-VmDisk ./base.vhdx 256MB -BlockSizeBytes 1MB | Out-Null
        Write-DiskBytes "$dir/base.vhdx" 0 (Get-RandomBytes 3MB 3)
        New-VmDisk ./child.vhdx -ParentPath ./base.vhdx | Out-Null
        Write-DiskBytes "$dir/child.vhdx" 1MB (Get-RandomBytes 50KB 4)
        $expected = Get-DiskContentHash "$dir/child.vhdx"
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'commits the child into its parent and removes the child' {
        $out = Merge-VmDisk ./child.vhdx -PassThru
        $out.Path | Should -Be "$dir/base.vhdx"
        Get-DiskContentHash "$dir/base.vhdx" | Should -Be $expected
        Test-Path ./child.vhdx | Should -BeFalse
    }

    It 'refuses when the parent has another child, naming it' {
        New-VmDisk ./sibling.vhdx -ParentPath ./base.vhdx | Out-Null
        $before = (Get-FileHash ./base.vhdx).Hash
        Merge-VmDisk ./child.vhdx -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'MergeTargetHasChildren,VmClone.PowerShell.Commands.MergeVmDiskCommand'
        $err[0].CategoryInfo.Category | Should -Be 'ResourceBusy'
        $err[0].Exception.Message | Should -BeLike '*sibling.vhdx*'
        (Get-FileHash ./base.vhdx).Hash | Should -Be $before
    }

    It 'merges with -Force despite other children' {
        New-VmDisk ./sibling.vhdx -ParentPath ./base.vhdx | Out-Null
        Merge-VmDisk ./child.vhdx -Force
        Get-DiskContentHash "$dir/base.vhdx" | Should -Be $expected
    }

    It 'changes nothing with -WhatIf' {
        $before = Get-ChildItem | Get-FileHash
        Merge-VmDisk ./child.vhdx -WhatIf
        (Get-ChildItem | Get-FileHash).Hash | Should -Be $before.Hash
    }
}

Describe 'Set-VmDisk' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        New-VmDisk ./base.vmdk 256MB | Out-Null
        Write-DiskBytes "$dir/base.vmdk" 0 (Get-RandomBytes 1MB 5)
        New-VmDisk ./child.vmdk -ParentPath ./base.vmdk | Out-Null
        Write-DiskBytes "$dir/child.vmdk" 100KB (Get-RandomBytes 10KB 6)
        $expected = Get-DiskContentHash "$dir/child.vmdk"
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'follows a moved parent' {
        New-Item -ItemType Directory ./bases | Out-Null
        Move-Item ./base.vmdk ./bases/base.vmdk
        Set-VmDisk ./child.vmdk -ParentPath ./bases/base.vmdk
        (Get-VmDisk ./child.vmdk).ParentPath | Should -Be "$dir/bases/base.vmdk"
        Get-DiskContentHash "$dir/child.vmdk" | Should -Be $expected
    }

    It 'refuses a different parent unless content is preserved' {
        New-VmDisk ./other.vmdk 256MB | Out-Null
        Write-DiskBytes "$dir/other.vmdk" 0 (Get-RandomBytes 2MB 7)
        Set-VmDisk ./child.vmdk ./other.vmdk -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'DiskParentModified,VmClone.PowerShell.Commands.SetVmDiskCommand'
        $err[0].Exception.Message | Should -BeLike '*-PreserveContent*'

        $out = Set-VmDisk ./child.vmdk ./other.vmdk -PreserveContent -PassThru
        $out.ParentPath | Should -Be "$dir/other.vmdk"
        Remove-Item ./base.vmdk
        Get-DiskContentHash "$dir/child.vmdk" | Should -Be $expected
    }

    It 'changes nothing with -WhatIf' {
        New-VmDisk ./other.vmdk 256MB | Out-Null
        $before = (Get-FileHash ./child.vmdk).Hash
        Set-VmDisk ./child.vmdk ./other.vmdk -PreserveContent -WhatIf
        (Get-FileHash ./child.vmdk).Hash | Should -Be $before
    }
}
