using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell.Commands;

/// <summary>Adopts differencing disks made elsewhere (Hyper-V, VMware, qemu) over a base's volumes as a new clone.</summary>
/// <remarks>
/// <para>Each -Volume entry names a volume of the base (Name) and a differencing disk made over it (Path): a child of that base volume's file by identity (made over the file in the store, as New-VmDisk -ParentPath or qemu-img create -b do), or with -PreserveContent a child of an equal copy of it kept elsewhere, which is re-parented onto the base volume keeping what it shows (only what differs between the copy and the base is copied into it). Every base volume not named is made as New-VmClone makes it. The clone is then like any other: Restore-VmClone, Invoke-VmRebase and the rest work on it.</para>
/// <para>Each file is moved into the clone's folder (a rename; across file systems it is copied, sparse, flushed, then the original deleted), or with -Copy copied and the original left untouched; its parent link is then re-pointed at the base's file by the store's relative path. A hypervisor configured with the old paths must be pointed at the clone's files (Get-VmVolume shows them).</para>
/// <para>Refused, with nothing changed: a volume the base does not have (VolumeNotFound), a volume named twice (InvalidVolumeSpec), a file inside the store (ImportSourceInStore), a link, FIFO or device (ImportSourceNotRegularFile), a file of another format than the base volume (ImportFormatMismatch) or of another size (ImportSizeMismatch), a file that is not a differencing disk or whose parent is not the base volume's file (ImportParentMismatch; with -PreserveContent, a parent that cannot be opened: ImportParentNotFound), a name already taken (CloneExists; names are one whatever their case), a file another program (a running virtual machine) holds open (VolumeInUse).</para>
/// <para>The import is journalled: cut off before any file came in, it is undone (every file is where it was); cut off later it is finished, never undone, by running the command again, by the next command on the clone or by Test-VmStore -Repair, and Test-VmStore reports it until then. -WhatIf lists every volume: where it is imported from, moved or copied, and where its parent link will point.</para>
/// </remarks>
/// <example>
/// <summary>Adopt a disk made over a base volume by another tool</summary>
/// <code>
/// $system = (Get-VmVolume -Base win11 | Where-Object Name -eq system).Path
/// New-VmDisk ./vm-07.vhdx -ParentPath $system | Out-Null
/// Import-VmClone -Name vm-07 -Base win11 -Volume @{ Name = 'system'; Path = './vm-07.vhdx' }
/// </code>
/// <para>New-VmDisk stands for Hyper-V here (qemu-img create -f qcow2 -F qcow2 -b does the same for a qcow2 base). The file moves into the store as the clone's system volume; its temporary and data volumes are made as New-VmClone would.</para>
/// </example>
/// <example>
/// <summary>Copy a piped file instead of moving it, and preview first</summary>
/// <code>
/// New-VmDisk ./system-11.vhdx -ParentPath (Get-VmVolume -Base win11 | Where-Object Name -eq system).Path | Out-Null
/// Get-Item ./system-11.vhdx | Import-VmClone -Name lab-11 -Base win11 -Copy -WhatIf
/// </code>
/// <para>A piped file is the volume its file name starts with (system, here); -Copy would leave it where it is, and -WhatIf prints the plan without changing anything.</para>
/// </example>
/// <example>
/// <summary>A disk made over an equal copy of the base</summary>
/// <code>@(@{ Name = 'system'; Path = './child.vhdx' }) | Import-VmClone -Name lab-12 -Base win11 -PreserveContent</code>
/// <para>child.vhdx was made over base.vhdx, the file win11's system volume was copied from: the same content, another identity. It is re-parented onto the base's file keeping what it shows.</para>
/// </example>
[Cmdlet(VerbsData.Import, "VmClone", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(VmCloneInfo))]
public sealed class ImportVmCloneCommand : VmStoreCmdlet
{
    /// <summary>The new clone's name: letters, digits, '.', '_' and '-', at most 64 characters, not taken by another clone.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = null!;

    /// <summary>The base whose volumes the files are children of.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ArgumentCompleter(typeof(BaseNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Base { get; set; } = null!;

    /// <summary>
    /// The files to import: hashtables (or objects) with Name (a volume of the base) and Path (the
    /// differencing disk), or files (Get-Item), each the volume whose name its file name starts with
    /// (system.vhdx, system-01.qcow2). Also from the pipeline.
    /// </summary>
    [Parameter(Mandatory = true, Position = 2, ValueFromPipeline = true)]
    [ValidateNotNullOrEmpty]
    public PSObject[] Volume { get; set; } = null!;

    /// <summary>Copy the files into the store and leave the originals untouched, instead of moving them.</summary>
    [Parameter]
    public SwitchParameter Copy { get; set; }

    /// <summary>Accept files made over an equal copy of the base's volumes (a parent of another identity): each is re-parented onto the base volume keeping what it shows; what differs between its parent and the base is copied into it first.</summary>
    [Parameter]
    public SwitchParameter PreserveContent { get; set; }

    private readonly List<PSObject> _volumes = new();

    protected override void ProcessRecord() => _volumes.AddRange(Volume.Where(v => v is not null));

    protected override void EndProcessing()
    {
        Try(Name, () =>
        {
            VmStore store = OpenStore();
            BaseManifest b = store.LoadBase(Base);
            var specs = _volumes.Select(v => ToSpec(v, b)).ToList();
            StorePlan plan = store.PlanImportClone(Name, Base, specs, Copy, PreserveContent);
            if (!ShouldRun(plan, $"Import clone '{Name}' on base '{Base}'"))
                return;
            using var progress = new CmdletProgress(this);
            WriteObject(store.Execute(plan, progress, CancellationToken));
        });
        base.EndProcessing();
    }

    private static readonly string[] SpecKeys = { "Name", "Path" };

    /// <summary>A hashtable, an object with Name and Path, or a file, as an ImportVolumeSpec with its path resolved.</summary>
    private ImportVolumeSpec ToSpec(PSObject input, BaseManifest b)
    {
        object baseObject = input.BaseObject;
        if (baseObject is FileInfo file)
        {
            // The longest volume name the file's name starts with: data-2 before data.
            string? volume = b.Volumes.Select(v => v.Name).OrderByDescending(n => n.Length)
                .FirstOrDefault(n => file.Name.StartsWith(n, StringComparison.OrdinalIgnoreCase));
            if (volume is null)
                throw Invalid($"The file '{file.FullName}' does not say which volume of base '{b.Name}' it is ({string.Join(", ", b.Volumes.Select(v => v.Name))}): name it so, or pass -Volume @{{ Name = 'system'; Path = '{file.FullName}' }}.");
            return new ImportVolumeSpec { Name = volume, Path = file.FullName };
        }
        var values = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
        if (baseObject is IDictionary dictionary)
        {
            foreach (DictionaryEntry e in dictionary)
                values[e.Key?.ToString() ?? ""] = e.Value is PSObject p ? p.BaseObject : e.Value;
        }
        else
        {
            foreach (string key in SpecKeys)
            {
                if (input.Properties[key] is PSPropertyInfo p)
                    values[key] = p.Value is PSObject pso ? pso.BaseObject : p.Value;
            }
        }
        string? unknown = baseObject is IDictionary ? values.Keys.FirstOrDefault(k => !SpecKeys.Contains(k, StringComparer.OrdinalIgnoreCase)) : null;
        if (unknown is not null)
            throw Invalid($"'{unknown}' is not part of a volume to import; use Name (a volume of base '{b.Name}') and Path (the file).");
        string name = values.TryGetValue("Name", out object? n) ? n?.ToString() ?? "" : "";
        string path = values.TryGetValue("Path", out object? p2) ? p2?.ToString() ?? "" : "";
        if (name.Length == 0 || path.Length == 0)
            throw Invalid($"A volume to import needs Name (a volume of base '{b.Name}') and Path (the file), as in -Volume @{{ Name = 'system'; Path = './child.vhdx' }}.");
        // Resolved as PowerShell does, but not required to exist here: the store names a missing file.
        return new ImportVolumeSpec { Name = name, Path = ResolveNewPath(path) };
    }

    private static StoreException Invalid(string message) =>
        new(StoreErrorIds.InvalidVolumeSpec, VmClone.Core.VmCloneErrorKind.InvalidArgument, message);
}
