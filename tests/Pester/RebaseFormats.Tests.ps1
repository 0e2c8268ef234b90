# Invoke-VmRebase onto a base of another format: refused unless every volume is to be converted
# (-ConvertFormat); then every volume is the new format, each data volume's content byte for
# byte (judged by qemu-img and vmdkinfo too), and -WhatIf names every file that changes.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force

    function Get-CloneFiles([string] $Store, [string] $Clone) {
        @(Get-ChildItem -LiteralPath (Join-Path $Store "clones/$Clone") -Force | Sort-Object Name | ForEach-Object Name)
    }

}

Describe 'Invoke-VmRebase onto a base of another format' {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $source = Join-Path $dir 'system.vhdx'
        $shared = Join-Path $dir 'data.vhdx'
        New-VmDisk $source 64MB | Out-Null
        New-VmDisk $shared 32MB | Out-Null
        Write-DiskBytes $shared 0 ([Text.Encoding]::UTF8.GetBytes('shared data'))
        New-VmBase win11 -Store $store -Volume @(
            @{ Name = 'system'; Type = 'System'; Path = $source }
            @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 32MB }
            @{ Name = 'data'; Type = 'Data'; Path = $shared }) | Out-Null
        New-VmClone lab-01, lab-02 -Base win11 -Store $store | Out-Null
        Get-VmClone lab-02 -Store $store | New-VmBase -Name win11-vmware -Format Vmdk | Out-Null
        $data = (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq data).Path
        Write-DiskBytes $data 1MB (Get-RandomBytes 70000 7)
        $dataHash = Get-DiskContentHash $data
    }
    AfterEach { Remove-TestFolder $dir }

    It 'is refused up front, naming both formats and -ConvertFormat, by parameter and piped' {
        $before = Get-CloneFiles $store lab-01
        Invoke-VmRebase lab-01 -NewBase win11-vmware -Store $store -Force -ErrorVariable byName -ErrorAction SilentlyContinue
        Get-VmClone lab-01 -Store $store | Invoke-VmRebase -NewBase win11-vmware -Force -ErrorVariable piped -ErrorAction SilentlyContinue
        foreach ($e in $byName, $piped) {
            $e.Count | Should -Be 1
            $e[0].FullyQualifiedErrorId | Should -Be 'RebaseFormatMismatch,VmClone.PowerShell.Commands.InvokeVmRebaseCommand'
            $e[0].TargetObject | Should -Be 'lab-01'
            $e[0].Exception.Message | Should -BeLike '*VHDX*VMDK*-ConvertFormat*'
        }
        Get-CloneFiles $store lab-01 | Should -Be $before
        (Get-VmClone lab-01 -Store $store).Base | Should -Be 'win11'
    }

    It 'names every file that changes with -WhatIf -ConvertFormat, and changes nothing' {
        $before = Get-CloneFiles $store lab-01
        $text = Get-WhatIfText { Invoke-VmRebase lab-01 -NewBase win11-vmware -Store $store -ConvertFormat -WhatIf }
        foreach ($v in 'system', 'temp', 'data') { $text | Should -BeLike "*$v.vhdx -> $v.vmdk*" }
        Get-CloneFiles $store lab-01 | Should -Be $before
    }

    It 'converts every volume with -ConvertFormat, data byte for byte, piped' {
        Get-VmClone lab-01 -Store $store | Invoke-VmRebase -NewBase win11-vmware -ConvertFormat -Force | Out-Null
        Get-CloneFiles $store lab-01 | Should -Be @('clone.json', 'data.vmdk', 'system.vmdk', 'temp.vmdk')
        $clone = Get-VmClone lab-01 -Store $store
        $clone.State | Should -Be 'Ready'
        $clone.Base | Should -Be 'win11-vmware'
        $clone.Volumes.Format | Should -Be @('Vmdk', 'Vmdk', 'Vmdk')
        $converted = ($clone.Volumes | Where-Object Name -eq data).Path
        Get-DiskContentHash $converted | Should -Be $dataHash
        if (Test-Oracle qemu-img) {
            qemu-img check -f vmdk $converted | Out-Null
            $LASTEXITCODE | Should -Be 0
            $raw = Join-Path $dir 'data.raw'
            qemu-img convert -f vmdk -O raw $converted $raw
            (Get-FileHash -LiteralPath $raw -Algorithm SHA256).Hash.ToLowerInvariant() | Should -Be $dataHash
        }
        if (Test-Oracle vmdkinfo) {
            vmdkinfo $converted | Out-Null
            $LASTEXITCODE | Should -Be 0
        }
        (Test-VmStore -Store $store).IsHealthy | Should -BeTrue
        # Nothing depends on the old base any more once both clones have left it.
        Invoke-VmRebase lab-02 -NewBase win11-vmware -Store $store -ConvertFormat -Force | Out-Null
        Remove-VmBase win11 -Store $store -Force
        Get-DiskContentHash $converted | Should -Be $dataHash
    }

    It 'is refused by the DSC resource too, which never converts' {
        $dsc = (Get-Module VmClone).NestedModules | Where-Object Name -eq 'VmClone.Dsc'
        $resource = & $dsc { New-Object -TypeName VmCloneClone }
        $resource.Name = 'lab-01'; $resource.Base = 'win11-vmware'; $resource.Store = $store; $resource.AllowRebase = $true
        $resource.Test() | Should -BeFalse
        { $resource.Set() } | Should -Throw -ExpectedMessage '*VHDX*VMDK*'
        Get-CloneFiles $store lab-01 | Should -Be @('clone.json', 'data.vhdx', 'system.vhdx', 'temp.vhdx')
        (Get-VmClone lab-01 -Store $store).Base | Should -Be 'win11'
    }
}
