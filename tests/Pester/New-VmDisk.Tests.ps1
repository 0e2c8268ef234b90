BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:noQemu = Get-OracleSkip 'qemu-img'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'New-VmDisk' {
    BeforeEach { $dir = New-TestFolder; Push-Location $dir }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'creates a dynamic VHDX of the asked size and describes it' {
        $disk = New-VmDisk -Path ./base.vhdx -SizeBytes 40GB
        $disk | Should -BeOfType ([VmClone.Core.Disks.VmDiskInfo])
        $disk.Path | Should -Be (Join-Path $dir 'base.vhdx')
        $disk.Format | Should -Be 'Vhdx'
        $disk.Type | Should -Be 'Dynamic'
        $disk.VirtualSize | Should -Be 40GB
        $disk.ChainDepth | Should -Be 1
        (Get-Item ./base.vhdx).Length | Should -BeLessThan 64MB
    }

    It 'writes a file qemu-img accepts, with the same virtual size' -Skip:$noQemu {
        New-VmDisk -Path ./base.vhdx -SizeBytes 3GB -BlockSizeBytes 1MB | Out-Null
        qemu-img check -f vhdx ./base.vhdx | Out-Null
        $LASTEXITCODE | Should -Be 0
        $info = qemu-img info --output=json -f vhdx ./base.vhdx | ConvertFrom-Json
        $info.'virtual-size' | Should -Be 3GB
    }

    It 'refuses a name whose extension names no format it writes (<_>), by parameter and piped, writing nothing' -ForEach 'disk.qed', 'disk.vdi', 'disk' {
        $name = $_
        $e = try { New-VmDisk -Path "./$name" -SizeBytes 1GB -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'UnknownDiskExtension,VmClone.PowerShell.Commands.NewVmDiskCommand'
        $e.TargetObject | Should -Be (Join-Path $dir $name)
        Test-Path "./$name" | Should -BeFalse
        $err = $null
        "./$name" | New-VmDisk -SizeBytes 1GB -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'UnknownDiskExtension,*'
        New-VmDisk ./base.vhdx 1GB | Out-Null
        $e = try { New-VmDisk -Path "./$name" -ParentPath ./base.vhdx -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -BeLike 'UnknownDiskExtension,*'
        $e = try { Convert-VmDisk ./base.vhdx -DestinationPath "./$name" -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'UnknownDiskExtension,VmClone.PowerShell.Commands.ConvertVmDiskCommand'
        Test-Path "./$name" | Should -BeFalse
        # Said in so many words, the format is written whatever the name.
        (New-VmDisk -Path "./$name" -SizeBytes 1GB -Format Vmdk).Format | Should -Be 'Vmdk'
    }

    It 'honours block size and sector sizes' {
        $disk = New-VmDisk ./4k.vhdx 1GB -BlockSizeBytes 1MB -LogicalSectorSizeBytes 4096 -PhysicalSectorSizeBytes 4096
        $disk.BlockSize | Should -Be 1MB
        $disk.LogicalSectorSize | Should -Be 4096
        $disk.PhysicalSectorSize | Should -Be 4096
    }

    It 'creates a child that reads its parent and keeps its own writes' {
        New-VmDisk ./base.vhdx 1GB | Out-Null
        $baseBytes = Get-RandomBytes 10000 1
        Write-DiskBytes (Join-Path $dir 'base.vhdx') 5MB $baseBytes
        $child = New-VmDisk -Path ./child.vhdx -ParentPath ./base.vhdx
        $child.Type | Should -Be 'Differencing'
        $child.ParentPath | Should -Be (Join-Path $dir 'base.vhdx')
        $child.ChainDepth | Should -Be 2
        $child.VirtualSize | Should -Be 1GB

        $childPath = Join-Path $dir 'child.vhdx'
        (Read-DiskBytes $childPath 5MB 10000) | Should -Be $baseBytes
        $own = Get-RandomBytes 3000 2
        Write-DiskBytes $childPath (5MB + 1000) $own
        (Read-DiskBytes $childPath (5MB + 1000) 3000) | Should -Be $own
        (Read-DiskBytes (Join-Path $dir 'base.vhdx') 5MB 10000) | Should -Be $baseBytes
    }

    It 'creates a child in milliseconds, whatever the parent holds' {
        New-VmDisk ./base.vhdx 100GB | Out-Null
        Write-DiskBytes (Join-Path $dir 'base.vhdx') 0 (Get-RandomBytes 8MB 3)
        New-VmDisk ./child.vhdx -ParentPath ./base.vhdx | Out-Null
        (Get-Item ./child.vhdx).Length | Should -BeLessThan 16MB
    }

    It 'takes several names from the pipeline' {
        New-VmDisk ./base.vhdx 1GB | Out-Null
        $children = 'a.vhdx', 'b.vhdx', 'c.vhdx' | New-VmDisk -ParentPath ./base.vhdx
        $children.Count | Should -Be 3
        $children.Type | Sort-Object -Unique | Should -Be 'Differencing'
        Test-Path ./a.vhdx, ./b.vhdx, ./c.vhdx | Should -Be @($true, $true, $true)
    }

    It 'changes nothing with -WhatIf' {
        New-VmDisk ./base.vhdx 1GB -WhatIf | Should -BeNullOrEmpty
        Test-Path ./base.vhdx | Should -BeFalse
    }

    It 'never overwrites an existing file' {
        Set-Content ./base.vhdx 'precious'
        New-VmDisk ./base.vhdx 1GB -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].TargetObject | Should -Be './base.vhdx'
        $err[0].Exception.Message | Should -BeLike '*already exists*'
        Get-Content ./base.vhdx | Should -Be 'precious'
    }

    It 'refuses a block size that is not a power of two and leaves no file' {
        { New-VmDisk ./odd.vhdx 1GB -BlockSizeBytes 3MB -ErrorAction Stop } | Should -Throw
        Test-Path ./odd.vhdx | Should -BeFalse
    }

    It 'reports a missing parent as an error a script can catch' {
        $caught = $null
        try { New-VmDisk ./child.vhdx -ParentPath ./nowhere.vhdx -ErrorAction Stop }
        catch { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty
        $caught.FullyQualifiedErrorId | Should -Be 'DiskNotFound,VmClone.PowerShell.Commands.NewVmDiskCommand'
        $caught.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $caught.Exception.Message | Should -BeLike '*nowhere.vhdx*'
        Test-Path ./child.vhdx | Should -BeFalse
    }
}
