# The DSC resources, driven the way the DSC engines drive a class-based resource: an instance
# made from the class, its properties set from the configuration, then Test(), and Set() only
# when Test() is false; Get() for reports. (PSDesiredStateConfiguration 2.x's
# Invoke-DscResource does exactly this; it need not be installed here.)
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:dscModule = (Get-Module VmClone).NestedModules | Where-Object Name -eq 'VmClone.Dsc'

    # Like Invoke-DscResource: a new instance per call, properties from a hashtable.
    function Invoke-Resource([string] $Resource, [string] $Method, [hashtable] $Property) {
        $instance = & $script:dscModule { param($n) New-Object -TypeName $n } $Resource
        foreach ($k in $Property.Keys) { $instance.$k = $Property[$k] }
        switch ($Method) {
            'Get' { $instance.Get() }
            'Test' { $instance.Test() }
            'Set' { $instance.Set() }
        }
    }

    # What the engine does for one resource of a configuration: test, set when needed.
    function Invoke-Configuration([string] $Resource, [hashtable] $Property) {
        if (-not (Invoke-Resource $Resource Test $Property)) { Invoke-Resource $Resource Set $Property }
        Invoke-Resource $Resource Test $Property | Should -BeTrue -Because 'Test() is true after Set()'
    }

    # Name, length, last write time and hash of every file in the store.
    function Get-StoreSnapshot([string] $Root) {
        Get-ChildItem -LiteralPath $Root -Recurse -File | Sort-Object FullName | ForEach-Object {
            '{0}|{1}|{2:o}|{3}' -f $_.FullName, $_.Length, $_.LastWriteTimeUtc, (Get-FileHash -LiteralPath $_.FullName).Hash
        }
    }
}

Describe 'The DSC resources' {
    It 'accepts as a base Format exactly the formats New-VmBase -Format accepts (the format registry''s base formats)' {
        $base = & $script:dscModule { New-Object -TypeName VmCloneBase }
        $allowed = (Get-Command New-VmBase).Parameters['Format'].Attributes.ValidValues
        $allowed | Should -Be @('Vhdx', 'Vmdk', 'Vhd', 'Qcow2')
        foreach ($name in $allowed) { $base.Format = $name; $base.Format | Should -Be $name }
        { $base.Format = 'Raw' } | Should -Throw -ExpectedMessage '*Raw*Vhdx, Vmdk*'
        { $base.Format = 'Qcow9' } | Should -Throw
    }

    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        $system = Join-Path $dir 'system.vhdx'
        New-VmDisk $system 64MB | Out-Null
        Write-DiskBytes $system 0 ([Text.Encoding]::UTF8.GetBytes('declared system'))
        $baseProps = @{
            Name = 'win11'; Store = $store
            Volume = @(
                @{ Name = 'system'; Type = 'System'; Path = $system }
                @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 32MB }
                @{ Name = 'data'; Type = 'Data'; SizeBytes = 32MB })
        }
    }
    AfterEach { Remove-TestFolder $dir }

    It 'are exported by the module manifest and found in the nested script module' {
        (Get-Module VmClone).ExportedDscResources | Sort-Object | Should -Be @('VmCloneBase', 'VmCloneClone')
        $script:dscModule | Should -Not -BeNullOrEmpty
    }

    It 'load with using module, as the engine loads a class-based resource' {
        $psm1 = Join-Path (Split-Path $env:VMCLONE_MODULE) 'VmClone.Dsc.psm1'
        $block = [scriptblock]::Create("using module '$psm1'`n`$c = [VmCloneClone]::new(); `$c.Name = 'lab-01'; `$c.Base = 'win11'; `$c.Store = '$store'; `$c.Test()")
        & $block | Should -BeFalse
    }

    It 'declare a base from volume files, then a clone of it; a second run changes nothing' {
        Invoke-Resource VmCloneBase Test $baseProps | Should -BeFalse
        Invoke-Configuration VmCloneBase $baseProps
        $cloneProps = @{ Name = 'lab-01'; Base = 'win11'; Store = $store }
        Invoke-Resource VmCloneClone Test $cloneProps | Should -BeFalse
        Invoke-Configuration VmCloneClone $cloneProps

        $clone = Get-VmClone lab-01 -Store $store
        $clone.Base | Should -Be 'win11'
        [Text.Encoding]::UTF8.GetString((Read-DiskBytes (Join-Path $clone.Path 'system.vhdx') 0 15)) | Should -Be 'declared system'

        $get = Invoke-Resource VmCloneClone Get $cloneProps
        $get.Ensure | Should -Be 'Present'
        $get.Base | Should -Be 'win11'
        $get.State | Should -Be 'Ready'
        (Invoke-Resource VmCloneBase Get $baseProps).CloneCount | Should -Be 1

        # Idempotent: Set() called again when nothing is to be done touches no file.
        $before = Get-StoreSnapshot $store
        Start-Sleep -Milliseconds 20
        Invoke-Resource VmCloneBase Set $baseProps
        Invoke-Resource VmCloneClone Set $cloneProps
        Get-StoreSnapshot $store | Should -Be $before
    }

    It 'reports a clone on another base and refuses to move it unless AllowRebase is set' {
        Invoke-Configuration VmCloneBase $baseProps
        Invoke-Configuration VmCloneClone @{ Name = 'lab-01'; Base = 'win11'; Store = $store }
        Write-DiskBytes (Join-Path $store 'clones/lab-01/system.vhdx') 8192 ([Text.Encoding]::UTF8.GetBytes('admin test change'))
        Get-VmClone lab-01 -Store $store | New-VmBase -Name win11-v2 | Out-Null
        $before = Get-StoreSnapshot $store

        $declared = @{ Name = 'lab-01'; Base = 'win11-v2'; Store = $store }
        Invoke-Resource VmCloneClone Test $declared | Should -BeFalse
        (Invoke-Resource VmCloneClone Get $declared).Base | Should -Be 'win11'
        { Invoke-Resource VmCloneClone Set $declared } | Should -Throw -ExpectedMessage "*on base 'win11'*AllowRebase*"
        { Invoke-Resource VmCloneClone Set ($declared + @{ AllowRebase = $false }) } | Should -Throw -ExpectedMessage '*AllowRebase*'

        (Get-VmClone lab-01 -Store $store).Base | Should -Be 'win11'
        Get-StoreSnapshot $store | Should -Be $before
    }

    It 'rebases the clone when the declared base changes and AllowRebase is set, keeping its data' {
        Invoke-Configuration VmCloneBase $baseProps
        Invoke-Configuration VmCloneClone @{ Name = 'lab-01'; Base = 'win11'; Store = $store }
        $data = Join-Path $store 'clones/lab-01/data.vhdx'
        Write-DiskBytes $data 4096 ([Text.Encoding]::UTF8.GetBytes('user files'))
        $dataHash = Get-DiskContentHash $data

        Get-VmClone lab-01 -Store $store | New-VmBase -Name win11-v2 | Out-Null
        $v2 = @{ Name = 'lab-01'; Base = 'win11-v2'; Store = $store; AllowRebase = $true }
        Invoke-Resource VmCloneClone Test $v2 | Should -BeFalse
        (Invoke-Resource VmCloneClone Get $v2).Base | Should -Be 'win11'
        Invoke-Configuration VmCloneClone $v2

        (Get-VmClone lab-01 -Store $store).Base | Should -Be 'win11-v2'
        Get-DiskContentHash $data | Should -Be $dataHash
        $before = Get-StoreSnapshot $store
        Invoke-Resource VmCloneClone Set $v2
        Get-StoreSnapshot $store | Should -Be $before
    }

    It 'removes what is declared Absent, and Absent of nothing is already in its state' {
        Invoke-Configuration VmCloneBase $baseProps
        Invoke-Configuration VmCloneClone @{ Name = 'lab-01'; Base = 'win11'; Store = $store }
        Invoke-Configuration VmCloneClone @{ Name = 'lab-01'; Ensure = 'Absent'; Store = $store }
        Get-VmClone -Store $store | Should -BeNullOrEmpty
        Invoke-Configuration VmCloneBase @{ Name = 'win11'; Ensure = 'Absent'; Store = $store }
        Get-VmBase -Store $store | Should -BeNullOrEmpty
        Invoke-Resource VmCloneClone Test @{ Name = 'never'; Ensure = 'Absent'; Store = $store } | Should -BeTrue
        (Invoke-Resource VmCloneClone Get @{ Name = 'never'; Store = $store }).Ensure | Should -Be 'Absent'
    }

    It 'fails Set with the cmdlet error when the declaration cannot be met' {
        Invoke-Configuration VmCloneBase $baseProps
        { Invoke-Resource VmCloneClone Set @{ Name = 'lab-01'; Base = 'missing'; Store = $store } } |
            Should -Throw -ExpectedMessage "*no base 'missing'*"
        $other = $baseProps.Clone(); $other.Volume = @(@{ Name = 'system'; Type = 'System'; SizeBytes = 32MB })
        Invoke-Resource VmCloneBase Test $other | Should -BeFalse
        { Invoke-Resource VmCloneBase Set $other } | Should -Throw -ExpectedMessage '*read only*'
    }

    It 'has a cheap Test: it opens no disk' {
        Invoke-Configuration VmCloneBase $baseProps
        Invoke-Configuration VmCloneClone @{ Name = 'lab-01'; Base = 'win11'; Store = $store }
        # With a volume file held exclusively, anything that opened it would fail.
        $held = [IO.File]::Open((Join-Path $store 'clones/lab-01/system.vhdx'), 'Open', 'Read', 'None')
        try {
            Invoke-Resource VmCloneClone Test @{ Name = 'lab-01'; Base = 'win11'; Store = $store } | Should -BeTrue
            Invoke-Resource VmCloneBase Test $baseProps | Should -BeTrue
        }
        finally { $held.Dispose() }
    }
}
