using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.PowerShell.Commands;

/// <summary>Creates a read-only base in the store from disk files, empty volumes, or a clone's current content.</summary>
/// <remarks>
/// <para>A base is a prepared machine's set of volumes, its storage outline: each volume has a name, a type (System, Temporary or Data), a format and a size. With -Volume, each volume is either copied from an existing VHDX, VMDK, VHD, qcow2 or raw file (sparse: zero runs are not stored; a differencing file is flattened with its chain) or created empty with SizeBytes. With -FromClone (or a clone piped in), the clone's current content becomes the new base, each volume flattened into a standalone file; temporary volumes take the clone's initial state, never its scratch content, and data volumes by default the data of the clone's own base (-DataFrom Base): what was written to the clone's data volume while the update was prepared does not go into every new clone. -DataFrom Clone takes the clone's data volume instead (what earlier versions always did), -DataFrom Empty gives the base an empty one.</para>
/// <para>From then on the base's files are read only: marked read-only on disk, and refused for writing by VmClone itself, because every clone depends on them. The first base makes the store (every other command refuses a folder that is not a store yet, with StoreNotFound).</para>
/// <para>-Format Qcow2 keeps the base in qcow2 for KVM farms (qemu-img's defaults: version 3, 64 KiB clusters): its clones are qcow2 overlays that name their backing file relative to their own folder and record its format, so qemu and libvirt start them without a backing chain in the domain XML. -Qcow2ClusterSizeBytes and -Qcow2ExtendedL2 choose another layout (IsardVDI 4 KiB clusters; Proxmox VE 9 128 KiB with extended L2), recorded with the base so that every clone overlay made from it has the same. An image with an external data file is never taken as a volume. qcow2 records nothing of its backing file's content; the base's own records and the read-only mark on its files are what catch a modified base.</para>
/// <para>-Format Vhd keeps the base in VHD (version 1) for XenServer and XCP-ng, Citrix and Hyper-V generation-1 machines: dynamic VHDs with 2 MiB blocks, and clones that are differencing VHDs naming the base by W2ru (relative, with backslashes) and W2ku (absolute) locators and its unique id, which renews at the first write, so a base modified behind the store's back is told as for VHDX.</para>
/// <para>The usual way to update a fleet: clone the old base, change that clone (install updates), make it the new base with New-VmBase -FromClone, then move the clones with Invoke-VmRebase.</para>
/// <para>From a clone: while another program (a running virtual machine) holds one of the clone's files open, the base is refused with VolumeInUse, naming the file and who holds it: its disks would be copied in the middle of being written. Shut the machine down first, or add -Force if you know its disks are quiescent.</para>
/// <para>From a clone: a clone volume that is a symbolic link, lies in a linked folder or is a VMDK descriptor is refused with VolumeOutsideStore (nothing outside the store is ever copied into a base), a FIFO or device with VolumeNotRegularFile, a manifest naming files outside the clone's folder with ManifestInvalid.</para>
/// <para>-WhatIf shows what each volume's step copies at most (an empty volume copies nothing) and the total. Before anything is written that total, with 2 MiB more, is checked against the store's free space: a base that does not fit is refused at once with DiskFull, naming the folder, the bytes needed and the bytes free (see about_VmClone, FREE SPACE).</para>
/// </remarks>
/// <example>
/// <summary>A base with a system, a temporary and a data volume</summary>
/// <code>New-VmDisk ./system.vhdx -SizeBytes 256MB | Out-Null
/// New-VmBase -Name win11-lab -Volume @(
///     @{ Name = 'system'; Type = 'System'; Path = './system.vhdx' }
///     @{ Name = 'pagefile'; Type = 'Temporary'; SizeBytes = 64MB }
///     @{ Name = 'users'; Type = 'Data'; SizeBytes = 128MB })</code>
/// <para>system.vhdx is copied into the store; the other two volumes are created empty. The source file is not changed.</para>
/// </example>
/// <example>
/// <summary>A new base from a clone that was updated</summary>
/// <code>Get-VmClone lab-01 | New-VmBase -Name win11-v2</code>
/// <para>win11-v2 has the same storage outline as lab-01's base, so every clone of that base can be rebased onto it. Its system volume is lab-01's; its data volume is the one of lab-01's base, not what was written to lab-01's.</para>
/// </example>
/// <example>
/// <summary>A new base that takes the clone's data volume too</summary>
/// <code>New-VmBase -Name win11-v3 -FromClone lab-01 -DataFrom Clone -WhatIf</code>
/// <para>The plan says where the data volume comes from: here the clone's current content.</para>
/// </example>
/// <example>
/// <summary>A qcow2 base laid out as Proxmox VE 9 lays out its linked clones, previewed</summary>
/// <code>New-VmBase -Name pve-base -Format Qcow2 -Qcow2ClusterSizeBytes 128KB -Qcow2ExtendedL2 -Volume @{ Name = 'system'; Type = 'System'; SizeBytes = 64MB } -WhatIf</code>
/// <para>128 KiB clusters with extended L2 entries for the base and every clone overlay made from it; -Qcow2ClusterSizeBytes 4KB alone matches IsardVDI. qemu-img info shows cluster_size and extended_l2 on each file.</para>
/// </example>
/// <example>
/// <summary>Store the base as VMDK, and preview first</summary>
/// <code>New-VmBase -Name win11-vmware -FromClone lab-02 -Format Vmdk -WhatIf</code>
/// <para>-WhatIf prints every file that would be written.</para>
/// </example>
[Cmdlet(VerbsCommon.New, "VmBase", SupportsShouldProcess = true, DefaultParameterSetName = FilesSet)]
[OutputType(typeof(VmBaseInfo))]
public sealed class NewVmBaseCommand : VmStoreCmdlet
{
    /// <summary>The first base makes the store.</summary>
    private protected override bool CreatesStore => true;

    private const string FilesSet = "Files";
    private const string CloneSet = "FromClone";

    /// <summary>Name of the new base: letters, digits, '.', '_' and '-', at most 64 characters.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = null!;

    /// <summary>The volumes, in order: hashtables or objects with Name, Type (System, Temporary or Data) and either Path (a file to copy) or SizeBytes (a new empty volume).</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = FilesSet)]
    [ValidateNotNullOrEmpty]
    public PSObject[] Volume { get; set; } = null!;

    /// <summary>The clone whose current content becomes the base (a name, or a clone piped from Get-VmClone).</summary>
    [Parameter(Mandatory = true, ParameterSetName = CloneSet, ValueFromPipeline = true)]
    [ArgumentCompleter(typeof(CloneNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string FromClone { get; set; } = null!;

    /// <summary>Format of the base's files: Vhdx (default for -Volume) or another format the store keeps bases in (Vmdk, Vhd, Qcow2). With -FromClone, by default each volume keeps the clone's format.</summary>
    /// <remarks>
    /// A name, not the DiskFormat enum: PowerShell completes an enum parameter with every enum
    /// value whatever its completer says, and only the format registry's base formats belong here.
    /// </remarks>
    [Parameter]
    [ArgumentCompleter(typeof(BaseFormatCompleter))]
    [ValidateDiskFormat(DiskFormatUse.Base)]
    public string Format { get; set; } = nameof(DiskFormat.Vhdx);

    private DiskFormat FormatValue => ValidateDiskFormatAttribute.Parse(Format);

    /// <summary>The cluster size of a qcow2 base (-Format Qcow2, or -FromClone a qcow2 clone): a power of two from 512 bytes to 2 MiB; qemu-img's 64 KiB when not given (from a clone: its base's). 4KB is IsardVDI's QCOW2_CLUSTER_SIZE; 128KB with -Qcow2ExtendedL2 is what Proxmox VE 9 gives its linked clones. The base's files and every clone overlay made from it (New-VmClone, Restore-VmClone, Clear-VmTemporaryVolume, Invoke-VmRebase) have it: it is recorded with the base.</summary>
    /// <remarks>
    /// Two plain values rather than named farm profiles: they are the two settings a farm's own
    /// configuration names (IsardVDI's QCOW2_CLUSTER_SIZE and QCOW2_EXTENDED_L2, qemu-img's
    /// cluster_size and extended_l2), and a farm that changes its defaults (as Proxmox VE did
    /// in version 9) needs no new VmClone to follow.
    /// </remarks>
    [Parameter]
    public long Qcow2ClusterSizeBytes { get; set; }

    /// <summary>Extended L2 entries for a qcow2 base and its clones' overlays (qemu-img's extended_l2=on: 32 subclusters per cluster, so a small write copies a subcluster, not a whole cluster, from the base); clusters of at least 16 KiB. Proxmox VE 9 uses it with 128 KiB clusters.</summary>
    [Parameter]
    public SwitchParameter Qcow2ExtendedL2 { get; set; }

    /// <summary>The qcow2 layout asked for, or null when neither qcow2 parameter was given.</summary>
    private Qcow2Layout? Qcow2Layout =>
        !IsBound(nameof(Qcow2ClusterSizeBytes)) && !IsBound(nameof(Qcow2ExtendedL2)) ? null
            : new Qcow2Layout
            {
                ClusterSize = IsBound(nameof(Qcow2ClusterSizeBytes)) ? Qcow2ClusterSizeBytes : Qcow2Layout.DefaultClusterSize,
                ExtendedL2 = Qcow2ExtendedL2,
            };

    /// <summary>With -FromClone: copy the clone's volumes even while another program holds them open (a running virtual machine), for a machine whose disks you know are quiescent (paused, or frozen by its guest agent). Without it such a clone is refused with VolumeInUse.</summary>
    [Parameter(ParameterSetName = CloneSet)]
    public SwitchParameter Force { get; set; }

    /// <summary>With -FromClone: where the new base's data volumes take their content. Base (the default): the data volume of the clone's own base, which is what clones started with, so whatever was written to the clone while the update was prepared stays out of every new clone. Clone: the clone's current data volume. Empty: an empty data volume of the same size. The plan (-WhatIf) says which.</summary>
    [Parameter(ParameterSetName = CloneSet)]
    public BaseDataSource DataFrom { get; set; } = BaseDataSource.Base;

    protected override void ProcessRecord()
    {
        object target = ParameterSetName == CloneSet ? FromClone : Name;
        Try(target, () =>
        {
            VmStore store = OpenStore();
            StorePlan plan;
            if (ParameterSetName == CloneSet)
            {
                plan = store.PlanNewBaseFromClone(Name, FromClone, IsBound(nameof(Format)) ? FormatValue : null, sourceMayBeInUse: Force, dataFrom: DataFrom, qcow2: Qcow2Layout);
            }
            else
            {
                var specs = Volume.Select(ToSpec).ToList();
                plan = store.PlanNewBase(Name, specs, FormatValue, Qcow2Layout);
            }
            if (!ShouldRun(plan, $"Create base '{Name}'"))
                return;
            using var progress = new CmdletProgress(this);
            WriteObject(store.Execute(plan, progress, CancellationToken));
        });
    }

    private static readonly string[] SpecKeys = { "Name", "Type", "Path", "SizeBytes" };

    /// <summary>A hashtable, an object with the same properties, or a VolumeSpec, as a VolumeSpec with its path resolved.</summary>
    private VolumeSpec ToSpec(PSObject? input)
    {
        var values = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
        object? baseObject = input?.BaseObject;
        if (baseObject is IDictionary dictionary)
        {
            foreach (DictionaryEntry e in dictionary)
                values[e.Key?.ToString() ?? ""] = e.Value;
        }
        else if (input is not null)
        {
            foreach (PSPropertyInfo p in input.Properties)
                values[p.Name] = p.Value;
        }
        string? unknown = values.Keys.FirstOrDefault(k => !SpecKeys.Contains(k, StringComparer.OrdinalIgnoreCase));
        if (unknown is not null)
            throw Invalid($"'{unknown}' is not part of a volume specification; use Name, Type (System, Temporary or Data), and Path or SizeBytes.");
        var spec = new VolumeSpec { Name = Value(values, "Name")?.ToString() ?? "" };
        object? type = Value(values, "Type");
        if (type is null || !LanguagePrimitives.TryConvertTo(type, out VolumeType parsed) || !Enum.IsDefined(typeof(VolumeType), parsed))
            throw Invalid($"Volume '{spec.Name}': Type must be System, Temporary or Data, not '{type}'.");
        spec.Type = parsed;
        if (Value(values, "Path") is object path)
            spec.Path = ResolveSinglePath(path.ToString()!);
        if (Value(values, "SizeBytes") is object size)
        {
            if (!LanguagePrimitives.TryConvertTo(size, out long bytes))
                throw Invalid($"Volume '{spec.Name}': SizeBytes must be a number of bytes (64MB works), not '{size}'.");
            spec.SizeBytes = bytes;
        }
        return spec;
    }

    private static object? Value(Dictionary<string, object?> values, string key) =>
        values.TryGetValue(key, out object? v) ? (v is PSObject pso ? pso.BaseObject : v) : null;

    private static StoreException Invalid(string message) =>
        new(StoreErrorIds.InvalidVolumeSpec, VmClone.Core.VmCloneErrorKind.InvalidArgument, message);
}
