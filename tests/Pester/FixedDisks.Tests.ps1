BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:noQemu = Get-OracleSkip 'qemu-img'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Convert-VmDisk -Fixed (the Azure export)' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        New-VmDisk ./src.vhdx 32MB | Out-Null
        $d = [VmClone.Disks.VirtualDisk]::Open("$dir/src.vhdx", 'ReadWrite')
        $bytes = [byte[]]::new(4096); (New-Object Random 1).NextBytes($bytes)
        $d.Content.Write($bytes, 0, $bytes.Length); $d.Dispose()
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'writes a fixed VHD, by parameter and piped, that reads as the source' {
        $out = Convert-VmDisk -Path ./src.vhdx -DestinationPath ./azure.vhd -DestinationFormat Vhd -Fixed
        $out.Format | Should -Be 'Vhd'
        $out.Type | Should -Be 'Fixed'
        $out.VirtualSize | Should -Be 32MB
        (Get-Item ./azure.vhd).Length | Should -Be (32MB + 512)
        (Get-VmDisk ./src.vhdx | Convert-VmDisk -DestinationPath ./piped.vhd -Fixed).Type | Should -Be 'Fixed'
    }

    It 'is read by qemu-img as the source' -Skip:$noQemu {
        Convert-VmDisk ./src.vhdx ./azure.vhd -Fixed | Out-Null
        qemu-img compare -f vpc -F vhdx ./azure.vhd ./src.vhdx | Out-Null
        $LASTEXITCODE | Should -Be 0
    }

    It 'writes nothing with -WhatIf' {
        Convert-VmDisk ./src.vhdx ./azure.vhd -Fixed -WhatIf
        Test-Path ./azure.vhd | Should -BeFalse
    }

    It 'refuses a size Azure rejects naming the size it would take, and rounds up when asked' {
        New-VmDisk ./odd.vhdx -SizeBytes (32MB + 512) | Out-Null
        $e = try { Convert-VmDisk ./odd.vhdx ./odd.vhd -Fixed -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'AzureVhdSizeRejected,VmClone.PowerShell.Commands.ConvertVmDiskCommand'
        $e.Exception.Message | Should -BeLike '*34,603,008 bytes (33 MiB)*-RoundUpToMiB*'
        Test-Path ./odd.vhd | Should -BeFalse
        (Convert-VmDisk ./odd.vhdx ./odd.vhd -Fixed -RoundUpToMiB).VirtualSize | Should -Be 33MB
    }

    It 'refuses a fixed qcow2 with FixedNotSupported' {
        $e = try { Convert-VmDisk ./src.vhdx ./x.qcow2 -Fixed -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'FixedNotSupported,VmClone.PowerShell.Commands.ConvertVmDiskCommand'
        Test-Path ./x.qcow2 | Should -BeFalse
    }
}

Describe 'New-VmDisk -Fixed' {
    BeforeEach { $dir = New-TestFolder; Push-Location $dir }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'creates a fixed <_> disk, by parameter and piped' -ForEach 'vhdx', 'vmdk', 'vhd' {
        $ext = $_
        $disk = New-VmDisk -Path "./a.$ext" -SizeBytes 24MB -Fixed
        $disk.Type | Should -Be 'Fixed'
        $disk.VirtualSize | Should -Be 24MB
        ("./b.$ext" | New-VmDisk -SizeBytes 24MB -Fixed).Type | Should -Be 'Fixed'
        if ($ext -eq 'vmdk') { Test-Path ./a-flat.vmdk | Should -BeTrue }
    }

    It 'writes nothing with -WhatIf' {
        New-VmDisk ./a.vhdx 24MB -Fixed -WhatIf
        Test-Path ./a.vhdx | Should -BeFalse
    }

    It 'is checked clean by qemu-img' -Skip:$noQemu {
        New-VmDisk ./a.vhdx 24MB -Fixed | Out-Null
        qemu-img check -f vhdx ./a.vhdx | Out-Null
        $LASTEXITCODE | Should -Be 0
    }

    It 'refuses qcow2 with FixedNotSupported and a parent by parameter set' {
        $e = try { New-VmDisk ./a.qcow2 24MB -Fixed -ErrorAction Stop; $null } catch { $_ }
        $e.FullyQualifiedErrorId | Should -Be 'FixedNotSupported,VmClone.PowerShell.Commands.NewVmDiskCommand'
        Test-Path ./a.qcow2 | Should -BeFalse
        New-VmDisk ./base.vhdx 24MB | Out-Null
        { New-VmDisk ./child.vhdx -ParentPath ./base.vhdx -Fixed -ErrorAction Stop } | Should -Throw -ErrorId 'AmbiguousParameterSet,VmClone.PowerShell.Commands.NewVmDiskCommand'
    }
}

Describe 'Merge-VmDisk -KeepChild' {
    BeforeEach {
        $dir = New-TestFolder; Push-Location $dir
        New-VmDisk ./base.vhdx 16MB | Out-Null
        New-VmDisk ./child.vhdx -ParentPath ./base.vhdx | Out-Null
        $d = [VmClone.Disks.VirtualDisk]::Open("$dir/child.vhdx", 'ReadWrite')
        $bytes = [byte[]]::new(4096); (New-Object Random 2).NextBytes($bytes)
        $d.Content.Write($bytes, 0, $bytes.Length); $d.Dispose()
    }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'keeps the child as an empty child of the merged parent, by parameter and piped' {
        $merged = Merge-VmDisk -Path ./child.vhdx -KeepChild -PassThru
        $merged.Path | Should -Be (Join-Path $dir 'base.vhdx')
        $kept = Get-VmDisk ./child.vhdx
        $kept.Type | Should -Be 'Differencing'
        $kept.AllocatedSize | Should -Be 0
        $kept.ParentPath | Should -Be (Join-Path $dir 'base.vhdx')
        Get-VmDisk ./child.vhdx | Merge-VmDisk -KeepChild
        Test-Path ./child.vhdx | Should -BeTrue
    }

    It 'changes nothing with -WhatIf' {
        Merge-VmDisk ./child.vhdx -KeepChild -WhatIf
        (Get-VmDisk ./child.vhdx).AllocatedSize | Should -BeGreaterThan 0
    }
}
