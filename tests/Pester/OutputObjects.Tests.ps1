# What a user reads in the objects VmClone writes: sizes that mean space on disk, enums that
# serialise by name, and a disk file whose name says one format while it holds another.
BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Sizes on disk' {
    BeforeEach {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet -Root $store -Folder $dir -Clone lab-01
    }
    AfterEach { Remove-TestFolder $dir }

    It 'shows the space a sparse 64 GiB volume takes, not its length' -Skip:$IsMacOS {
        $data = (Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq data).Path
        $f = [IO.File]::Open($data, 'Open', 'ReadWrite'); try { $f.SetLength(64GB) } finally { $f.Dispose() }
        (Get-Item $data).Length | Should -Be 64GB

        $v = Get-VmVolume -Clone lab-01 -Store $store | Where-Object Name -eq data
        $v.SizeOnDisk | Should -BeGreaterThan 0
        $v.SizeOnDisk | Should -BeLessThan 16MB
        (Get-VmClone lab-01 -Store $store).SizeOnDisk | Should -BeLessThan 32MB

        $d = Get-VmDisk $data
        $d.FileSize | Should -Be 64GB
        $d.SizeOnDisk | Should -BeGreaterThan 0
        $d.SizeOnDisk | Should -BeLessThan 16MB
        ($d | Format-Table | Out-String) | Should -Match 'OnDisk'
    }
}

Describe 'Enums in ConvertTo-Json' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet -Root $store -Folder $dir -Clone lab-01
    }
    AfterAll { Remove-TestFolder $dir }

    It 'writes the names of State, Type and Format, nested volumes too' {
        $clone = Get-VmClone lab-01 -Store $store | ConvertTo-Json -Depth 4 | ConvertFrom-Json
        $clone.State | Should -BeExactly 'Ready'
        $clone.Volumes[0].Type | Should -BeExactly 'System'
        $clone.Volumes[0].Format | Should -BeExactly 'Vhdx'

        $base = Get-VmBase win11 -Store $store | ConvertTo-Json -Depth 4 | ConvertFrom-Json
        $base.Volumes.Type | Should -Be @('System', 'Temporary', 'Data')

        $volume = Get-VmVolume -Clone lab-01 -Store $store | Select-Object -First 1 | ConvertTo-Json | ConvertFrom-Json
        $volume.Type | Should -BeExactly 'System'
        $volume.Format | Should -BeExactly 'Vhdx'

        $disk = Get-VmDisk (Get-VmVolume -Clone lab-01 -Store $store)[0].Path | ConvertTo-Json | ConvertFrom-Json
        $disk.Format | Should -BeExactly 'Vhdx'
        $disk.Type | Should -BeExactly 'Differencing'
    }

    It 'writes the kind of a Test-VmStore problem by name' {
        $system = (Get-VmVolume -Base win11 -Store $store | Where-Object Name -eq system).Path
        (Get-Item $system).Attributes = 'Normal'
        try {
            if (-not $IsWindows) { & chmod u+w $system }
            $report = Test-VmStore -Store $store | ConvertTo-Json -Depth 4 | ConvertFrom-Json
            $report.Problems.Kind | Should -Contain 'BaseNotReadOnly'
        }
        finally { Test-VmStore -Store $store -Repair | Out-Null }
    }

    It 'still compares, filters and formats as before' {
        $clone = Get-VmClone lab-01 -Store $store
        $clone.State -eq 'Ready' | Should -BeTrue
        $clone.State -eq [VmClone.Core.Store.CloneState]::Ready | Should -BeTrue
        @(Get-VmClone -Store $store | Where-Object State -eq Ready).Count | Should -Be 1
        @(Get-VmVolume -Clone lab-01 -Store $store | Where-Object Type -eq Data).Count | Should -Be 1
        ($clone | Format-Table | Out-String) | Should -Match 'Ready'
    }

    It 'names every enum property of every object the cmdlets write' {
        $types = Get-Command -Module VmClone -CommandType Cmdlet | ForEach-Object { $_.OutputType.Type } | Where-Object { $_ } | Sort-Object FullName -Unique
        $seen = [Collections.Generic.HashSet[type]]::new()
        $queue = [Collections.Generic.Queue[type]]::new(); foreach ($t in $types) { $queue.Enqueue($t) }
        $missing = while ($queue.Count) {
            $t = $queue.Dequeue()
            if (-not $seen.Add($t)) { continue }
            foreach ($p in $t.GetProperties()) {
                $pt = $p.PropertyType
                $nullable = [Nullable]::GetUnderlyingType($pt); if ($nullable) { $pt = $nullable }
                if ($pt.IsEnum) {
                    $first = [Enum]::GetValues($pt).GetValue(0)
                    if ((ConvertTo-Json $first -Compress) -ne ('"{0}"' -f $first)) { "$($t.FullName).$($p.Name)" }
                }
                elseif ($pt.IsGenericType -and $pt.GetGenericArguments()[0].Namespace -like 'VmClone*') { $queue.Enqueue($pt.GetGenericArguments()[0]) }
                elseif ($pt.Namespace -like 'VmClone*' -and -not $pt.IsValueType) { $queue.Enqueue($pt) }
            }
        }
        $missing | Should -BeNullOrEmpty
        $seen.Count | Should -BeGreaterThan 4
    }
}

Describe 'A disk whose extension names another format' {
    BeforeEach { $dir = New-TestFolder; Push-Location $dir }
    AfterEach { Pop-Location; Remove-TestFolder $dir }

    It 'refuses a <Holds> disk named <Named>, naming the file, the extension and the format found' -ForEach @(
        @{ Made = 'made.vmdk'; Named = 'renamed.vhdx'; Holds = 'VMDK'; Extension = '.vhdx' }
        @{ Made = 'made.vhdx'; Named = 'renamed.vmdk'; Holds = 'VHDX'; Extension = '.vmdk' }
    ) {
        # Each refusal is collected as the error it writes, also where the caller's preference is Stop.
        $ErrorActionPreference = 'Continue'
        New-VmDisk ./$Made 64MB | Out-Null
        Move-Item ./$Made ./$Named
        $full = Join-Path $dir $Named
        foreach ($command in @(
                { Get-VmDisk ./$Named }
                { New-VmDisk ./child.vhdx -ParentPath ./$Named }
                { Convert-VmDisk ./$Named ./out.raw })) {
            $all = @(& $command 2>&1)
            $err = @($all | Where-Object { $_ -is [Management.Automation.ErrorRecord] })
            $out = @($all | Where-Object { $_ -isnot [Management.Automation.ErrorRecord] })
            $out | Should -BeNullOrEmpty -Because "$command"
            $err.Count | Should -Be 1 -Because "$command"
            $err[0].FullyQualifiedErrorId | Should -BeLike "$([VmClone.Core.Store.StoreErrorIds]::DiskExtensionMismatch),*" -Because "$command"
            $err[0].Exception.Message | Should -BeLike "*'$full'*" -Because "$command"
            $err[0].Exception.Message | Should -BeLike "*$Extension*$Holds*" -Because "$command"
        }
        './child.vhdx', './out.raw' | Should -Not -Exist
        # Test-VmDisk reports what it finds rather than failing.
        $check = Test-VmDisk ./$Named
        $check.IsHealthy | Should -BeFalse
        $check.Problems[0].Description | Should -BeLike "*$Extension*$Holds*"
    }

    It 'refuses a renamed file given as a volume of a new base' {
        New-VmDisk ./made.vmdk 64MB | Out-Null
        Move-Item ./made.vmdk ./system.vhdx
        $store = Join-Path $dir 'store'
        New-VmBase b -Store $store -Volume @{ Name = 'system'; Type = 'System'; Path = './system.vhdx' } -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike "$([VmClone.Core.Store.StoreErrorIds]::DiskExtensionMismatch),*"
    }
}

Describe 'The error ids in the help' {
    It 'explains each id of [VmClone.Core.Store.StoreErrorIds] in about_VmClone_Errors' {
        $help = Get-Help about_VmClone_Errors | Out-String
        $ids = [VmClone.Core.Store.StoreErrorIds].GetFields() | Where-Object IsLiteral | ForEach-Object { $_.GetRawConstantValue() }
        $ids.Count | Should -BeGreaterThan 50
        $ids | Where-Object { $help -notmatch "(?m)^\s+$_\s*$" } | Should -BeNullOrEmpty
    }
}

Describe 'Error messages speak of the user''s names and files' {
    BeforeAll {
        $dir = New-TestFolder
        $store = Join-Path $dir 'store'
        New-TestFleet -Root $store -Folder $dir -Clone lab-01
        New-VmDisk (Join-Path $dir 'src.vhdx') 64MB | Out-Null
    }
    AfterAll { Remove-TestFolder $dir }

    It 'names no parameter of the code and no staging file in any message' {
        $src = Join-Path $dir 'src.vhdx'
        $paths = @(
            { New-VmDisk (Join-Path $dir 'odd.vhdx') -SizeBytes 1000 }
            { New-VmDisk (Join-Path $dir 'odd.vhdx') -SizeBytes 64MB -BlockSizeBytes 3MB }
            { New-VmDisk (Join-Path $dir 'odd.vmdk') -SizeBytes 1000 }
            { New-VmDisk (Join-Path $dir 'odd.vmdk') -SizeBytes 64MB -BlockSizeBytes 3MB }
            { New-VmDisk (Join-Path $dir 'odd.vhdx') -ParentPath $src -SizeBytes 128MB }
            { Convert-VmDisk $src (Join-Path $dir 'out.vhdx') -BlockSizeBytes 3MB }
            { Convert-VmDisk $src (Join-Path $dir 'out.vmdk') -BlockSizeBytes 3MB }
            { New-VmBase odd -Store $store -Volume @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 1000 } }
            { New-VmBase odd -Store $store -Volume @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 128TB } }
            { New-VmBase odd -Store $store -Volume @{ Name = 'temp'; Type = 'Temporary'; SizeBytes = 128TB } -Format Vmdk }
            { New-VmBase odd -Store $store -Volume @{ Name = 'system'; Type = 'System'; Path = (Join-Path $dir 'none.vhdx') } }
            { New-VmClone lab-01 -Base win11 -Store $store }
            { Restore-VmClone nope -Store $store -Force }
        )
        $messages = foreach ($p in $paths) {
            $all = try { @(& $p 2>&1) } catch { @($_) }
            $err = @($all | Where-Object { $_ -is [Management.Automation.ErrorRecord] })
            $err.Count | Should -BeGreaterThan 0 -Because "$p fails"
            foreach ($e in $err) { "$p => $($e.Exception.Message) | $($e.ErrorDetails.Message)" }
        }
        $messages | Where-Object { $_ -match "\(Parameter '|\.vmclone-|\.staging-|\.removing-|Actual value was" } | Should -BeNullOrEmpty
        Get-ChildItem $dir -Force -Filter 'odd.*' | Should -BeNullOrEmpty
        Get-ChildItem $dir -Force -Filter 'out.*' | Should -BeNullOrEmpty
    }
}
