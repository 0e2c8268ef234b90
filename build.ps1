<#
.SYNOPSIS
    Builds, tests, demonstrates and packages VmClone.
.DESCRIPTION
    One entry point for everything:
      Build    lays out the loadable module under out/VmClone (psd1, assemblies, formats, en-US help)
      Test     Build, then every xunit test and every Pester test (in a child pwsh against out/VmClone)
      Demo     Build, then a short tour on a throw-away folder
      Package  Build, then a PowerShell-Gallery-shaped .nupkg under out/package/repository,
               installed from there into out/package/VmClone/<version> and checked
      Bench    Build, then the benchmarks in bench/ (figures in bench/RESULTS.md);
               -BenchRuns and -FleetCount size them; -BenchOnly runs only some sections
               (qcow2, vhd, reads, rebase, flatten, fleet, ...) and merges them into RESULTS.md
      Fuzz     coverage-guided fuzzing of the disk engine with AFL++ (afl-fuzz; on Debian/Ubuntu
               `apt-get install afl++`) and SharpFuzz: -Format Vhdx|Vmdk|Vhd|Qcow2|Chain picks the target
               (one VHDX file, one VMDK file, or several files: descriptor and extents, child and
               parents), -Seconds how long afl-fuzz runs (default 600). Findings are under
               out/fuzz/<target>; every crash and hang is copied into
               tests/VmClone.Disks.Tests/FuzzRegressions/<target>, which the Test task replays, and
               the run's figures (executions, executions per second, edges) are printed and kept
               in out/fuzz/<target>-summary.txt
      Clean    removes out/ and the build outputs
    Run it with `dotnet pwsh ./build.ps1 -Task <Task>` after `dotnet tool restore`.
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Demo', 'Package', 'Bench', 'Fuzz', 'Clean')]
    [string[]] $Task = 'Build',
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    # Test: run only the xunit tests or only the Pester tests.
    [ValidateSet('All', 'Unit', 'Pester')]
    [string] $TestKind = 'All',
    # Bench: runs per figure (median and min–max reported) and clones per fleet operation.
    [ValidateRange(1, 100)]
    [int] $BenchRuns = 5,
    [ValidateRange(1, 100000)]
    [int] $FleetCount = 1000,
    # Bench: only these sections (a key of bench/RESULTS.json, or any word of one), merged into the earlier results.
    [string[]] $BenchOnly = @(),
    # Fuzz: the target and how long afl-fuzz runs, in seconds.
    [ValidateSet('Vhdx', 'Vmdk', 'Vhd', 'Qcow2', 'Chain')]
    [string] $Format = 'Vhdx',
    [ValidateRange(10, 604800)]
    [int] $Seconds = 600
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$Root = $PSScriptRoot
$Out = Join-Path $Root 'out'
$ModuleDir = Join-Path $Out 'VmClone'
$Manifest = Import-PowerShellDataFile (Join-Path $Root 'VmClone.psd1')
$Version = $Manifest.ModuleVersion

function Invoke-Native {
    param([string] $File, [string[]] $Arguments)
    Write-Host "> $File $($Arguments -join ' ')" -ForegroundColor DarkGray
    & $File @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$File exited with code $LASTEXITCODE" }
}

# A child pwsh of the same version as this one, whether it is installed or run as a dotnet tool.
function Get-PwshCommand {
    foreach ($name in 'pwsh', 'pwsh.exe') {
        $exe = Join-Path $PSHOME $name
        if (Test-Path -LiteralPath $exe -PathType Leaf) { return , @($exe) }
    }
    return , @('dotnet', (Join-Path $PSHOME 'pwsh.dll'))
}

function Invoke-ChildPwsh {
    param([string[]] $Arguments, [switch] $NoThrow)
    $pwsh = Get-PwshCommand
    $all = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive') + $Arguments
    & $pwsh[0] @all
    if (-not $NoThrow -and $LASTEXITCODE -ne 0) { throw "pwsh exited with code $LASTEXITCODE" }
}

# A package assembly the engine ships beside its own (netstandard2.0 build), at the version
# src/VmClone.Disks/VmClone.Disks.csproj references, from the restored NuGet packages.
function Get-PackageAssembly([string] $Package, [string] $Assembly) {
    $csproj = Get-Content (Join-Path $Root 'src/VmClone.Disks/VmClone.Disks.csproj') -Raw
    if ($csproj -notmatch ('<PackageReference Include="' + [regex]::Escape($Package) + '" Version="([^"]+)"')) {
        throw "src/VmClone.Disks/VmClone.Disks.csproj references no $Package"
    }
    $packages = ((& dotnet nuget locals global-packages --list) -replace '^global-packages:\s*', '').Trim()
    $path = Join-Path $packages "$($Package.ToLowerInvariant())/$($Matches[1])/lib/netstandard2.0/$Assembly"
    if (-not (Test-Path $path)) { throw "$Assembly of $Package $($Matches[1]) was not restored (looked for $path)" }
    return $path
}

function Invoke-Build {
    $project = Join-Path $Root 'src/VmClone.PowerShell/VmClone.PowerShell.csproj'
    Invoke-Native dotnet @('build', $project, '-c', $Configuration, '--nologo', '-v', 'quiet', "-p:Version=$Version")
    $bin = Join-Path $Root "src/VmClone.PowerShell/bin/$Configuration/netstandard2.0"
    if (Test-Path $ModuleDir) { Remove-Item $ModuleDir -Recurse -Force }
    New-Item -ItemType Directory -Path (Join-Path $ModuleDir 'en-US') -Force | Out-Null
    foreach ($name in 'VmClone.PowerShell', 'VmClone.Core', 'VmClone.Disks') {
        Copy-Item (Join-Path $bin "$name.dll") $ModuleDir
    }
    Copy-Item (Get-PackageAssembly 'ZstdSharp.Port' 'ZstdSharp.dll') $ModuleDir
    Copy-Item (Join-Path $Root 'VmClone.psd1') $ModuleDir
    Copy-Item (Join-Path $Root 'src/VmClone.PowerShell/VmClone.format.ps1xml') $ModuleDir
    Copy-Item (Join-Path $Root 'src/VmClone.PowerShell/Dsc/VmClone.Dsc.psm1') $ModuleDir
    Copy-Item (Join-Path $Root 'src/VmClone.PowerShell/Samples') $ModuleDir -Recurse
    Copy-Item (Join-Path $Root 'en-US/*.help.txt') (Join-Path $ModuleDir 'en-US')
    $docs = @('VmClone.PowerShell', 'VmClone.Core', 'VmClone.Disks') | ForEach-Object { Join-Path $bin "$_.xml" }
    $helpScript = Join-Path $Root 'src/VmClone.PowerShell/Help/New-MamlHelp.ps1'
    $helpFile = Join-Path $ModuleDir 'en-US/VmClone.PowerShell.dll-Help.xml'
    Invoke-ChildPwsh @('-File', $helpScript, '-ModuleManifest', (Join-Path $ModuleDir 'VmClone.psd1'), '-DocumentationXml', ($docs -join ','), '-OutFile', $helpFile) | Out-Null
    Write-Host "Built module: $ModuleDir (version $Version)" -ForegroundColor Green
}

function Get-PesterModule {
    $restore = Join-Path $Root 'tests/Pester/Pester.Restore.csproj'
    Invoke-Native dotnet @('restore', $restore, '--nologo', '-v', 'quiet')
    $packages = (& dotnet nuget locals global-packages --list) -replace '^global-packages:\s*', ''
    $psd1 = Join-Path $packages.Trim() 'pester/6.2.0/tools/Pester.psd1'
    if (-not (Test-Path $psd1)) { throw "Pester 6.2.0 was not restored (looked for $psd1)" }
    return $psd1
}

function Invoke-Test {
    $results = Join-Path $Out 'test-results'
    if (Test-Path $results) { Remove-Item $results -Recurse -Force }
    New-Item -ItemType Directory -Path $results -Force | Out-Null
    $passed = 0; $failed = 0; $skipped = 0
    # Named again after the summary, so that the end of a long log says what failed and why.
    $failures = @()

    if ($TestKind -in 'All', 'Unit') {
        $code = 0
        & dotnet test (Join-Path $Root 'VmClone.sln') -c $Configuration --nologo `
            --logger 'console;verbosity=normal' --logger 'trx' --results-directory $results
        $code = $LASTEXITCODE
        $trxFiles = @(Get-ChildItem $results -Filter *.trx)
        if ($trxFiles.Count -eq 0) { throw "dotnet test produced no results (exit code $code)" }
        foreach ($trx in $trxFiles) {
            [xml] $x = Get-Content $trx.FullName -Raw
            $c = $x.TestRun.ResultSummary.Counters
            $passed += [int]$c.passed; $failed += [int]$c.failed + [int]$c.error + [int]$c.timeout + [int]$c.aborted
            $skipped += [int]$c.notExecuted
            foreach ($result in @($x.SelectNodes("//*[local-name()='UnitTestResult']") | Where-Object { $_.GetAttribute('outcome') -notin 'Passed', 'NotExecuted' })) {
                $message = $result.SelectSingleNode(".//*[local-name()='ErrorInfo']/*[local-name()='Message']")
                $why = if ($message) { $message.InnerText.Trim() } else { '' }
                if ($why.Length -gt 600) { $why = $why.Substring(0, 600) + ' ...' }
                $failures += "xunit: $($result.GetAttribute('testName')) ($($result.GetAttribute('outcome'))): $why"
            }
        }
        if ($code -ne 0 -and $failed -eq 0) { $failed++ ; Write-Host "dotnet test exited with $code" -ForegroundColor Red }
    }

    if ($TestKind -in 'All', 'Pester') {
        $pester = Get-PesterModule
        $summary = Join-Path $results 'pester.json'
        $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$pester'
`$env:VMCLONE_MODULE = '$(Join-Path $ModuleDir 'VmClone.psd1')'
`$c = New-PesterConfiguration
`$c.Run.Path = '$(Join-Path $Root 'tests/Pester')'
`$c.Run.PassThru = `$true
`$c.Output.Verbosity = 'Detailed'
`$c.TestResult.Enabled = `$true
`$c.TestResult.OutputPath = '$(Join-Path $results 'pester.xml')'
`$r = Invoke-Pester -Configuration `$c
`$failures = @(@(`$r.Failed) + @(`$r.FailedBlocks) + @(`$r.FailedContainers) | ForEach-Object {
    `$name = if (`$_.ExpandedPath) { `$_.ExpandedPath } elseif (`$_.Name) { `$_.Name } else { "`$(`$_.Item)" }
    `$why = @(`$_.ErrorRecord | ForEach-Object { "`$(`$_.Exception.Message)".Trim() }) -join ' | '
    if (`$why.Length -gt 600) { `$why = `$why.Substring(0, 600) + ' ...' }
    "`${name}: `$why"
})
@{ Passed = `$r.PassedCount; Failed = `$r.FailedCount + `$r.FailedBlocksCount + `$r.FailedContainersCount; Skipped = `$r.SkippedCount; Failures = `$failures } | ConvertTo-Json | Set-Content '$summary'
"@
        Invoke-ChildPwsh @('-Command', $script) -NoThrow
        if (-not (Test-Path $summary)) { $failed++; Write-Host 'Pester did not finish' -ForegroundColor Red }
        else {
            $p = Get-Content $summary -Raw | ConvertFrom-Json
            $passed += $p.Passed; $failed += $p.Failed; $skipped += $p.Skipped
            $failures += @($p.Failures | Where-Object { $_ } | ForEach-Object { "Pester: $_" })
        }
    }

    Write-Host ''
    Write-Host "Tests: $passed passed, $failed failed, $skipped skipped"
    foreach ($f in $failures) { Write-Host "  FAILED $f" -ForegroundColor Red }
    if ($failed -gt 0) { throw "$failed test(s) failed" }
}

function Invoke-Demo {
    $demo = Join-Path $Root 'src/VmClone.PowerShell/Demo/Start-Demo.ps1'
    Invoke-ChildPwsh @('-File', $demo, '-ModuleManifest', (Join-Path $ModuleDir 'VmClone.psd1'))
}

function Invoke-Package {
    # out/package/repository/VmClone.<version>.nupkg: what Install-PSResource and Install-Module
    # install from a (file or gallery) repository; out/package/VmClone/<version>: that package
    # installed (saved) from the repository, imported in a fresh pwsh and used once.
    $staging = Join-Path $Out 'package'
    $repo = Join-Path $staging 'repository'
    if (Test-Path $staging) { Remove-Item $staging -Recurse -Force }
    New-Item -ItemType Directory -Path $repo -Force | Out-Null
    $script = @"
`$ErrorActionPreference = 'Stop'
Test-ModuleManifest -Path '$(Join-Path $ModuleDir 'VmClone.psd1')' | Out-Null
`$name = 'VmCloneBuild' + [guid]::NewGuid().ToString('N')
Register-PSResourceRepository -Name `$name -Uri '$repo' -Trusted
try {
    Publish-PSResource -Path '$ModuleDir' -Repository `$name -SkipDependenciesCheck
    Save-PSResource -Name VmClone -Version '$Version' -Repository `$name -Path '$staging' -TrustRepository -SkipDependencyCheck
}
finally { Unregister-PSResourceRepository -Name `$name }
"@
    Invoke-ChildPwsh @('-Command', $script)
    $nupkg = Get-ChildItem $repo -Filter '*.nupkg' | Select-Object -First 1
    if (-not $nupkg) { throw 'No package was produced.' }
    $installed = Join-Path $staging "VmClone/$Version"
    $check = @"
`$ErrorActionPreference = 'Stop'
`$env:PSModulePath = '$staging' + [IO.Path]::PathSeparator + `$env:PSModulePath
`$m = Import-Module VmClone -PassThru
if (`$m.ModuleBase -ne '$installed') { throw "Imported from `$(`$m.ModuleBase), not the installed package" }
`$store = Join-Path ([IO.Path]::GetTempPath()) ('vmclone-package-' + [guid]::NewGuid().ToString('N'))
try {
    New-VmBase check -Store `$store -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 8MB } | Out-Null
    if ((Get-VmBase -Store `$store).Name -ne 'check') { throw 'Get-VmBase did not list the base' }
}
finally { Get-ChildItem `$store -Recurse -File | ForEach-Object { `$_.Attributes = 'Normal' }; Remove-Item `$store -Recurse -Force }
"@
    Invoke-ChildPwsh @('-Command', $check)
    Write-Host "Package: $($nupkg.FullName)" -ForegroundColor Green
    Write-Host "Installed from it and checked: $installed" -ForegroundColor Green
}

function Invoke-Bench {
    $bench = Join-Path $Root 'bench/Invoke-Benchmarks.ps1'
    Invoke-ChildPwsh @('-File', $bench, '-ModuleManifest', (Join-Path $ModuleDir 'VmClone.psd1'), '-Configuration', $Configuration,
        '-Runs', $BenchRuns, '-FleetCount', $FleetCount, '-Only', ($BenchOnly -join ','))
}

function Invoke-Fuzz {
    if (-not (Get-Command afl-fuzz -CommandType Application -ErrorAction SilentlyContinue)) {
        throw 'afl-fuzz (AFL++) was not found. Install it with: sudo apt-get install -y afl++ (Debian/Ubuntu; as root without sudo).'
    }
    $target = $Format.ToLowerInvariant()
    $fuzzOut = Join-Path $Out 'fuzz'
    $bin = Join-Path $fuzzOut 'bin'
    $findings = Join-Path $fuzzOut $target
    $seeds = Join-Path $Root "tests/VmClone.Fuzz/seeds/$target"
    $regressions = Join-Path $Root "tests/VmClone.Disks.Tests/FuzzRegressions/$target"
    $pending = Join-Path $Root "tests/VmClone.Disks.Tests/FuzzRegressions/pending/$target"
    foreach ($d in $bin, $findings) { if (Test-Path $d) { Remove-Item $d -Recurse -Force } }

    # A fresh copy of the engine, instrumented in place: its branches are what afl-fuzz steers by.
    Invoke-Native dotnet @('tool', 'restore')
    Invoke-Native dotnet @('publish', (Join-Path $Root 'tests/VmClone.Fuzz/VmClone.Fuzz.csproj'), '-c', $Configuration, '-o', $bin, '--nologo', '-v', 'quiet')
    Invoke-Native dotnet @('tool', 'run', 'sharpfuzz', (Join-Path $bin 'VmClone.Disks.dll'))

    # Inputs become files many times a second: on tmpfs where there is one.
    $scratch = if (Test-Path '/dev/shm' -PathType Container) { '/dev/shm' } else { [IO.Path]::GetTempPath() }
    $work = Join-Path $scratch "vmclone-fuzz-$target-$PID"
    New-Item -ItemType Directory -Path $work -Force | Out-Null
    $environment = @{
        AFL_SKIP_BIN_CHECK                    = '1'    # dotnet itself is not instrumented; SharpFuzz speaks the fork-server protocol
        AFL_NO_UI                             = '1'    # unattended: status lines instead of a screen
        AFL_SKIP_CPUFREQ                      = '1'    # containers cannot set the CPU governor
        AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES = '1'    # core_pattern cannot be changed here; crashes are exceptions anyway
        AFL_NO_AFFINITY                       = '1'    # the cores are shared: do not pin
        AFL_FORKSRV_INIT_TMOUT                = '60000' # starting dotnet and jitting the harness takes seconds
        AFL_SKIP_CRASHES                      = '1'    # a seed that fails is reported by the Test task, not a reason to stop
        AFL_TMPDIR                            = $work
        VMCLONE_FUZZ_WORK                     = $work
        DOTNET_GCHeapHardLimit                = '0x40000000' # 1 GiB: a runaway allocation is an OutOfMemoryException (a crash), not swap
        DOTNET_TieredPGO                      = '0'    # steadier coverage from run to run
    }
    $saved = @{}
    foreach ($k in $environment.Keys) { $saved[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $environment[$k]) }
    try {
        # -t: an input that runs 5 s (a few ms is usual) is a hang; SharpFuzz's out-of-process
        # server restarts the worker it killed and afl-fuzz keeps the input under hangs/.
        # -x: the formats' signatures, keys and GUIDs, for mutations to insert.
        $dictionary = Join-Path $Root 'tests/VmClone.Fuzz/formats.dict'
        Invoke-Native afl-fuzz @('-i', $seeds, '-o', $findings, '-x', $dictionary, '-t', '5000', '-m', 'none', '-V', $Seconds, '--', 'dotnet', (Join-Path $bin 'VmClone.Fuzz.dll'), $target)
    }
    finally {
        foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) }
        Save-FuzzFindings -Findings $findings -Regressions $regressions -Pending $pending -Target $target
        Write-FuzzSummary -Findings $findings -Target $target -Summary (Join-Path $fuzzOut "$target-summary.txt")
        # The worker leaves within a moment of afl-fuzz (it watches its server); what it still
        # holds is scratch, not worth failing the run over.
        Start-Sleep -Milliseconds 500
        Remove-Item $work -Recurse -Force -ErrorAction SilentlyContinue
    }
}

# Every input afl-fuzz saved as a crash or a hang becomes a regression input, named by its
# content so that a later run finding the same input adds nothing.
function Save-FuzzFindings {
    param([string] $Findings, [string] $Regressions, [string] $Pending, [string] $Target)
    $added = @()
    foreach ($kind in @{ crashes = 'crash'; hangs = 'hang' }.GetEnumerator()) {
        $dir = Join-Path $Findings "default/$($kind.Key)"
        if (-not (Test-Path $dir)) { continue }
        foreach ($f in Get-ChildItem $dir -File -Filter 'id*') {
            $hash = (Get-FileHash $f.FullName -Algorithm SHA256).Hash.Substring(0, 16).ToLowerInvariant()
            $name = "$Target-$($kind.Value)-$hash"
            if ((Test-Path (Join-Path $Regressions $name)) -or (Test-Path (Join-Path $Pending $name))) { continue }
            New-Item -ItemType Directory -Path $Regressions -Force | Out-Null
            Copy-Item $f.FullName (Join-Path $Regressions $name)
            $added += $name
        }
    }
    if ($added.Count -gt 0) {
        Write-Host "New regression inputs in $($Regressions) (replayed by -Task Test; move ones the engine cannot pass yet to $Pending):" -ForegroundColor Yellow
        $added | ForEach-Object { Write-Host "  $_" -ForegroundColor Yellow }
    }
}

function Write-FuzzSummary {
    param([string] $Findings, [string] $Target, [string] $Summary)
    $statsFile = Join-Path $Findings 'default/fuzzer_stats'
    if (-not (Test-Path $statsFile)) { Write-Host "afl-fuzz left no fuzzer_stats in $Findings" -ForegroundColor Red; return }
    $stats = @{}
    foreach ($line in Get-Content $statsFile) {
        if ($line -match '^\s*(\w+)\s*:\s*(.*?)\s*$') { $stats[$Matches[1]] = $Matches[2] }
    }
    $lines = @(
        "Fuzz target $Target ($($stats['afl_version']), SharpFuzz 2.3.0): $($stats['run_time']) s",
        "  executions        $($stats['execs_done'])",
        "  executions/s      $($stats['execs_per_sec'])",
        "  edges found       $($stats['edges_found']) of $($stats['total_edges']) map entries (bitmap coverage $($stats['bitmap_cvg']))",
        "  corpus            $($stats['corpus_count']) inputs ($($stats['corpus_found']) found), stability $($stats['stability'])",
        "  saved crashes     $($stats['saved_crashes'])",
        "  saved hangs       $($stats['saved_hangs'])"
    )
    $lines | Set-Content $Summary
    $color = if ([int]$stats['saved_crashes'] + [int]$stats['saved_hangs'] -gt 0) { 'Red' } else { 'Green' }
    $lines | ForEach-Object { Write-Host $_ -ForegroundColor $color }
    Write-Host "Summary kept in $Summary"
}

foreach ($t in $Task) {
    switch ($t) {
        'Clean' {
            foreach ($d in @($Out) + @(Get-ChildItem $Root -Recurse -Directory -Include bin, obj | Where-Object FullName -notmatch '[\\/]\.') ) {
                if (Test-Path $d) { Remove-Item $d -Recurse -Force }
            }
        }
        'Build' { Invoke-Build }
        'Test' { Invoke-Build; Invoke-Test }
        'Demo' { Invoke-Build; Invoke-Demo }
        'Package' { Invoke-Build; Invoke-Package }
        'Bench' { Invoke-Build; Invoke-Bench }
        'Fuzz' { Invoke-Fuzz }
    }
}
