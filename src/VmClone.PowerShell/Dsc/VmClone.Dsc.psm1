# The VmClone DSC resources: a configuration declares which bases and clones a host has.
# Class-based DSC resources must be PowerShell classes, so they live in this script module,
# loaded as a nested module of VmClone. Test() only reads manifests (no disk is opened), so a
# consistency check every 15 minutes costs nothing; Set() calls the VmClone cmdlets, never
# prompts, and stops at the first error so that the engine reports it.
using assembly ./VmClone.Core.dll
using assembly ./VmClone.PowerShell.dll
using namespace System.Collections.Generic
using namespace VmClone.Core.Store

enum Ensure {
    Absent
    Present
}

# One volume of a VmCloneBase: Name, Type (System, Temporary, Data), and Path (a VHDX, VMDK or
# raw file to copy) or SizeBytes (a new empty volume).
class VmCloneVolume {
    [DscProperty(Key)] [string] $Name
    [DscProperty(Mandatory)] [ValidateSet('System', 'Temporary', 'Data')] [string] $Type
    [DscProperty()] [string] $Path
    [DscProperty()] [long] $SizeBytes

    [hashtable] ToSpec() {
        $spec = @{ Name = $this.Name; Type = $this.Type }
        if ($this.Path) { $spec.Path = $this.Path } else { $spec.SizeBytes = $this.SizeBytes }
        return $spec
    }
}

function Get-VmCloneDscStore([string] $Root) {
    [VmStore]::At($(if ($Root) { $Root } else { $null }))
}

# A base in the store, made from volume files or empty volumes. A base is read only once made:
# a base whose outline differs from the declaration is reported (Test false) and Set refuses to
# change it; declare the new content under a new name and rebase the clones onto it.
[DscResource()]
class VmCloneBase {
    # Name of the base.
    [DscProperty(Key)] [string] $Name

    # Present (default) or Absent.
    [DscProperty()] [Ensure] $Ensure = [Ensure]::Present

    # The volumes, in order (needed for Present).
    [DscProperty()] [VmCloneVolume[]] $Volume

    # The store folder; by default $env:VMCLONE_STORE, else the per-user store.
    [DscProperty()] [string] $Store

    # Format of the base's files: Vhdx (default), or another format the store keeps bases in
    # (the engine's format registry decides, through the validation New-VmBase -Format uses).
    [DscProperty()] [VmClone.PowerShell.ValidateDiskFormat('Base')] [string] $Format = 'Vhdx'

    # A qcow2 base's cluster size (0: qemu-img's 64 KiB) and extended L2 entries, as New-VmBase
    # -Qcow2ClusterSizeBytes and -Qcow2ExtendedL2 (4 KiB for IsardVDI; 128 KiB with extended L2
    # for Proxmox VE 9). Every clone overlay made from the base takes them too.
    [DscProperty()] [long] $Qcow2ClusterSizeBytes
    [DscProperty()] [bool] $Qcow2ExtendedL2

    # How many clones depend on the base.
    [DscProperty(NotConfigurable)] [int] $CloneCount

    [VmCloneBase] Get() {
        $s = Get-VmCloneDscStore $this.Store
        $current = [VmCloneBase]::new()
        $current.Name = $this.Name
        $current.Store = $s.Root
        $current.Format = $this.Format
        if (-not $s.BaseExists($this.Name)) {
            $current.Ensure = [Ensure]::Absent
            return $current
        }
        $current.Ensure = [Ensure]::Present
        $manifest = $s.LoadBase($this.Name)
        $current.Volume = foreach ($v in $manifest.Volumes) {
            $cv = [VmCloneVolume]::new(); $cv.Name = $v.Name; $cv.Type = "$($v.Type)"; $cv.SizeBytes = $v.VirtualSize; $cv
        }
        $current.CloneCount = @($s.CloneNames() | Where-Object { $s.LoadClone($_).Base -eq $this.Name }).Count
        return $current
    }

    [bool] Test() {
        $s = Get-VmCloneDscStore $this.Store
        if (-not $s.BaseExists($this.Name)) { return $this.Ensure -eq [Ensure]::Absent }
        if ($this.Ensure -eq [Ensure]::Absent) { return $false }
        return $this.OutlineMatches($s.LoadBase($this.Name))
    }

    [void] Set() {
        if ($this.Test()) { return }
        $storeArgs = @{}
        if ($this.Store) { $storeArgs.Store = $this.Store }
        $s = Get-VmCloneDscStore $this.Store
        if ($this.Ensure -eq [Ensure]::Absent) {
            Write-Verbose "Removing base '$($this.Name)' from $($s.Root)."
            VmClone\Remove-VmBase @storeArgs -Name $this.Name -Force -ErrorAction Stop
            return
        }
        if ($s.BaseExists($this.Name)) {
            throw "Base '$($this.Name)' in $($s.Root) exists with another outline than declared. A base is read only once made (every clone depends on its files): declare the new content under a new name and rebase the clones onto it."
        }
        if (-not $this.Volume) { throw "Base '$($this.Name)': declare its Volume to create it." }
        Write-Verbose "Creating base '$($this.Name)' in $($s.Root) with $(@($this.Volume).Count) volume(s)."
        if ($this.Qcow2ClusterSizeBytes) { $storeArgs.Qcow2ClusterSizeBytes = $this.Qcow2ClusterSizeBytes }
        if ($this.Qcow2ExtendedL2) { $storeArgs.Qcow2ExtendedL2 = $true }
        $null = VmClone\New-VmBase @storeArgs -Name $this.Name -Volume @($this.Volume | ForEach-Object { $_.ToSpec() }) -Format $this.Format -Confirm:$false -ErrorAction Stop
    }

    # The declared names and types, in order (sizes of volumes copied from files are not known
    # without opening them, and the base is read only anyway).
    hidden [bool] OutlineMatches($manifest) {
        if ($null -eq $this.Volume) { return $true }
        $declared = @($this.Volume)
        if ($declared.Count -ne $manifest.Volumes.Count) { return $false }
        for ($i = 0; $i -lt $declared.Count; $i++) {
            $v = $manifest.Volumes[$i]
            if ($declared[$i].Name -ne $v.Name -or $declared[$i].Type -ne "$($v.Type)") { return $false }
            if (-not $declared[$i].Path -and $declared[$i].SizeBytes -and $declared[$i].SizeBytes -ne $v.VirtualSize) { return $false }
        }
        return $true
    }
}

# A linked clone of a base. Present and missing: created. Present on another base: a drift that
# Test() reports; Set() rebases it onto the declared base (system replaced, temporary reset, data
# kept byte for byte; the bases' outlines must match) only when AllowRebase says so, since a
# rebase discards the clone's system changes and a consistency check runs every 15 minutes: an
# admin's own rebase must not be undone behind their back. Absent: removed with its volumes,
# data included.
[DscResource()]
class VmCloneClone {
    # Name of the clone.
    [DscProperty(Key)] [string] $Name

    # The base the clone is to depend on (needed for Present).
    [DscProperty()] [string] $Base

    # Present (default) or Absent.
    [DscProperty()] [Ensure] $Ensure = [Ensure]::Present

    # The store folder; by default $env:VMCLONE_STORE, else the per-user store.
    [DscProperty()] [string] $Store

    # Lets Set() move an existing clone onto the declared Base (Invoke-VmRebase: its system
    # changes are discarded). Off by default: a clone found on another base is then reported by
    # Test() and refused by Set().
    [DscProperty()] [bool] $AllowRebase = $false

    # Ready, BaseModified, Broken or Interrupted (see Get-VmClone).
    [DscProperty(NotConfigurable)] [string] $State

    # Full path of the clone's folder.
    [DscProperty(NotConfigurable)] [string] $Path

    [VmCloneClone] Get() {
        $s = Get-VmCloneDscStore $this.Store
        $current = [VmCloneClone]::new()
        $current.Name = $this.Name
        $current.Store = $s.Root
        if (-not $s.CloneExists($this.Name)) {
            $current.Ensure = [Ensure]::Absent
            $current.Base = $this.Base
            return $current
        }
        $info = $s.GetClone($this.Name)
        $current.Ensure = [Ensure]::Present
        $current.Base = $info.Base
        $current.State = "$($info.State)"
        $current.Path = $info.Path
        return $current
    }

    [bool] Test() {
        $s = Get-VmCloneDscStore $this.Store
        if (-not $s.CloneExists($this.Name)) { return $this.Ensure -eq [Ensure]::Absent }
        if ($this.Ensure -eq [Ensure]::Absent) { return $false }
        return [string]::IsNullOrEmpty($this.Base) -or $s.LoadClone($this.Name).Base -eq $this.Base
    }

    [void] Set() {
        if ($this.Test()) { return }
        $storeArgs = @{}
        if ($this.Store) { $storeArgs.Store = $this.Store }
        $s = Get-VmCloneDscStore $this.Store
        if ($this.Ensure -eq [Ensure]::Absent) {
            Write-Verbose "Removing clone '$($this.Name)' from $($s.Root)."
            VmClone\Remove-VmClone @storeArgs -Name $this.Name -Force -ThrottleLimit 1 -ErrorAction Stop
            return
        }
        if ([string]::IsNullOrEmpty($this.Base)) { throw "Clone '$($this.Name)': declare its Base to create it." }
        if ($s.CloneExists($this.Name)) {
            $current = $s.LoadClone($this.Name).Base
            if (-not $this.AllowRebase) {
                throw "Clone '$($this.Name)' is on base '$current', not on the declared base '$($this.Base)'. Moving it would rebase it and discard its system changes, so VmCloneClone does not do it unless asked: set AllowRebase = `$true in the configuration to let it rebase the clone, or declare Base = '$current' to keep the clone where it is."
            }
            Write-Verbose "Rebasing clone '$($this.Name)' from '$($s.LoadClone($this.Name).Base)' onto '$($this.Base)'."
            $null = VmClone\Invoke-VmRebase @storeArgs -Name $this.Name -NewBase $this.Base -Force -ThrottleLimit 1 -ErrorAction Stop
            return
        }
        Write-Verbose "Creating clone '$($this.Name)' of base '$($this.Base)' in $($s.Root)."
        $null = VmClone\New-VmClone @storeArgs -Name $this.Name -Base $this.Base -ThrottleLimit 1 -Confirm:$false -ErrorAction Stop
    }
}
