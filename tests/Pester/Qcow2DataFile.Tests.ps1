# A qcow2 image whose data lies in an external data file (incompatible bit 2; the corpus's
# data-file.qcow2 names data-file.bin). The disk commands read it only when asked
# (-AllowExternalDataFile) and only when the data file lies beside the image; never in a store.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:corpus = '/work/shared/corpus/dissect.hypervisor'
    $script:noCorpus = -not (Test-Path (Join-Path $corpus 'data-file.qcow2.gz'))
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $corpus = '/work/shared/corpus/dissect.hypervisor'
    # The manifest's sha256 of the image's content (MANIFEST.md).
    $expected = '3c86a52ad19ebbe34acffb812d276817ddca56522eb72de2b984d70ffb20582f'

    function Expand-Corpus([string] $Name, [string] $Folder) {
        $to = Join-Path $Folder $Name
        $in = [IO.File]::OpenRead((Join-Path $corpus "$Name.gz"))
        try {
            $gz = [IO.Compression.GZipStream]::new($in, [IO.Compression.CompressionMode]::Decompress)
            $out = [IO.File]::Create($to)
            # Sparse: the data file is 512 MiB, nearly all zeros; runs of zeros are skipped.
            try {
                $buffer = [byte[]]::new(1MB); $zero = [byte[]]::new(1MB)
                while (($n = $gz.ReadAtLeast($buffer, $buffer.Length, $false)) -gt 0) {
                    if ($n -eq $buffer.Length -and [Linq.Enumerable]::SequenceEqual($buffer, $zero)) { $out.Seek($n, 'Current') | Out-Null }
                    else { $out.Write($buffer, 0, $n) }
                }
                $out.SetLength($out.Position)
            }
            finally { $out.Dispose(); $gz.Dispose() }
        }
        finally { $in.Dispose() }
        $to
    }
}

Describe 'a qcow2 image with an external data file' -Skip:$noCorpus {
    BeforeEach {
        $dir = New-TestFolder
        $image = Expand-Corpus 'data-file.qcow2' $dir
        $data = Expand-Corpus 'data-file.bin' $dir
    }
    AfterEach { Remove-TestFolder $dir }

    It 'is refused by <Command> without -AllowExternalDataFile, the message naming the data file' -ForEach @(
        @{ Command = 'Get-VmDisk' }, @{ Command = 'Test-VmDisk' }, @{ Command = 'Convert-VmDisk' }
    ) {
        $arguments = @{ Path = $image }
        if ($Command -eq 'Convert-VmDisk') { $arguments.DestinationPath = Join-Path $dir 'out.raw' }
        $e = try { & $Command @arguments -ErrorAction Stop | ForEach-Object { if ($_.PSObject.Properties['IsHealthy'] -and -not $_.IsHealthy) { throw $_.Problems[0].Description } } ; $null } catch { $_ }
        "$e" | Should -BeLike '*data-file.bin*'
        "$e" | Should -BeLike '*-AllowExternalDataFile*'
        Test-Path (Join-Path $dir 'out.raw') | Should -BeFalse
    }

    It 'is read with -AllowExternalDataFile when the data file lies beside it: facts, check and content' {
        $info = Get-VmDisk $image -AllowExternalDataFile
        $info.Format | Should -Be 'Qcow2'
        $info.Qcow2.DataFile | Should -Be $data
        $check = Test-VmDisk $image -AllowExternalDataFile
        $check.Problems | ForEach-Object Description | Should -BeNullOrEmpty
        $check.IsHealthy | Should -BeTrue
        Convert-VmDisk $image (Join-Path $dir 'out.qcow2') -AllowExternalDataFile | Out-Null
        Get-DiskContentHash (Join-Path $dir 'out.qcow2') | Should -Be $expected
    }

    It 'is refused even with -AllowExternalDataFile when its data file leads out of its folder' -Skip:(-not $IsLinux) {
        $outside = New-TestFolder
        try {
            Move-Item $data (Join-Path $outside 'data-file.bin')
            New-Item -ItemType SymbolicLink -Path $data -Target (Join-Path $outside 'data-file.bin') | Out-Null
            $e = try { Get-VmDisk $image -AllowExternalDataFile -ErrorAction Stop; $null } catch { $_ }
            "$e" | Should -BeLike "*data-file.bin*does not lie beside the image*"
        }
        finally { Remove-TestFolder $outside }
    }

    It 'is never read inside a store, even with -AllowExternalDataFile' {
        $store = Join-Path $dir 'store'
        New-TestFleet $store -Clone lab-01 -Folder $dir -Format Qcow2
        $inside = Join-Path $store 'import'
        New-Item -ItemType Directory $inside | Out-Null
        Move-Item $image, $data $inside
        $e = try { Get-VmDisk (Join-Path $inside 'data-file.qcow2') -AllowExternalDataFile -ErrorAction Stop; $null } catch { $_ }
        "$e" | Should -BeLike '*data-file.bin*store*'
        $e = try { Convert-VmDisk (Join-Path $inside 'data-file.qcow2') (Join-Path $dir 'out.raw') -AllowExternalDataFile -ErrorAction Stop; $null } catch { $_ }
        "$e" | Should -BeLike '*data-file.bin*store*'
    }
}
