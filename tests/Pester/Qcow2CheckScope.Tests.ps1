# Test-VmDisk recomputes a qcow2 image's refcounts only where it walks every structure that
# holds clusters: an image with internal snapshots or persistent bitmaps has its mapping checked
# but not its refcounts, and the result says so in RefcountsNotCompared (file and reason).
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:noQemu = Get-OracleSkip 'qemu-img'
}

BeforeAll {
    Import-Module $env:VMCLONE_MODULE -Force
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
}

Describe 'Test-VmDisk on qcow2 images whose refcounts it does not compare' {
    BeforeEach { $dir = New-TestFolder; $image = Join-Path $dir 'disk.qcow2' }
    AfterEach { Remove-TestFolder $dir }

    It 'says so for an image with <Case>, naming the file and the reason' -Skip:$noQemu -ForEach @(
        @{ Case = 'an internal snapshot'; Make = { param($p) qemu-img snapshot -c before-update $p }; Reason = 'InternalSnapshots' }
        @{ Case = 'a persistent bitmap'; Make = { param($p) qemu-img bitmap --add $p checkpoint-1 }; Reason = 'PersistentBitmaps' }
    ) {
        qemu-img create -q -f qcow2 $image 16M
        & $Make $image
        $LASTEXITCODE | Should -Be 0
        $result = Test-VmDisk $image
        $result.IsHealthy | Should -BeTrue
        $result.RefcountsNotCompared | Should -HaveCount 1
        $result.RefcountsNotCompared[0].Path | Should -Be $image
        "$($result.RefcountsNotCompared[0].Reason)" | Should -Be $Reason
    }

    It 'leaves RefcountsNotCompared empty where it compared them' -Skip:$noQemu {
        qemu-img create -q -f qcow2 $image 16M
        $result = Test-VmDisk $image
        $result.IsHealthy | Should -BeTrue
        $result.RefcountsNotCompared | Should -BeNullOrEmpty
        $result.PSObject.Properties.Name | Should -Contain 'RefcountsNotCompared'
    }
}
