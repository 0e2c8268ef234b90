using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>Plans what makes a subject: a new base from files or from a clone, a new clone of a base.</summary>
internal sealed class CreatePlanner : Planner
{
    public CreatePlanner(StoreCatalogue catalogue, StorePreconditions preconditions) : base(catalogue, preconditions)
    {
    }

    /// <summary>Plans a new base from disk files and sizes; a qcow2 one laid out as <paramref name="qcow2"/> says (null: qemu-img's defaults).</summary>
    public StorePlan PlanNewBase(string name, IReadOnlyList<VolumeSpec> volumes, DiskFormat format = DiskFormat.Vhdx, Qcow2Layout? qcow2 = null)
    {
        StoreNames.Validate(name, "base");
        CheckBaseFormat(format);
        Qcow2Layout.Validate(qcow2, format, name);
        RefuseExistingBase(name);
        if (volumes is null || volumes.Count == 0)
            throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument, $"Base '{name}' needs at least one volume (-Volume @{{ Name = 'system'; Type = 'System'; Path = './disk.vhdx' }}).", name);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        string folder = BaseFolder(name);
        var plan = NewPlan(StoreOperation.NewBase, name, "base", folder);
        plan.BaseManifest = new BaseManifest { Name = name, Source = "files" };
        foreach (VolumeSpec spec in volumes)
        {
            if (spec is null)
                throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument, "A volume specification is empty.", name);
            StoreNames.Validate(spec.Name, "volume");
            if (!seen.Add(spec.Name))
                throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument, $"Volume name '{spec.Name}' is given twice; each volume of a base needs its own name.", spec.Name);
            if ((spec.Path is null) == (spec.SizeBytes is null))
                throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument,
                    $"Volume '{spec.Name}' needs either Path (an existing VHDX, VMDK or raw file to copy) or SizeBytes (a new empty volume), not {(spec.Path is null ? "neither" : "both")}.", spec.Name);
            var step = new PlannedVolume
            {
                Volume = spec.Name,
                Type = spec.Type,
                Format = format,
                Path = Path.Combine(folder, spec.Name + Extension(format)),
                Qcow2 = qcow2,
            };
            if (spec.Path is not null)
            {
                string source = Path.GetFullPath(spec.Path);
                if (!File.Exists(source))
                    throw new StoreException(StoreErrorIds.VolumeSourceNotFound, VmCloneErrorKind.NotFound, $"Volume '{spec.Name}': the file '{source}' does not exist.", spec.Path);
                // A source inside the store is held to its boundary, as importing it is (BuildStaged).
                using (VirtualDisk disk = VirtualDisk.Open(source, FileAccess.Read, IsUnder(source, Root) ? OpenOptions : null))
                {
                    step.VirtualSize = disk.Capacity;
                    step.LogicalSectorSize = disk.LogicalSectorSize;
                }
                step.Action = VolumeAction.Import;
                step.Source = source;
            }
            else
            {
                long size = spec.SizeBytes!.Value;
                if (size <= 0 || size % 512 != 0)
                    throw new StoreException(StoreErrorIds.InvalidVolumeSpec, VmCloneErrorKind.InvalidArgument, $"Volume '{spec.Name}': size {size} must be a positive multiple of 512 bytes.", spec.Name);
                step.Action = VolumeAction.CreateEmpty;
                step.VirtualSize = size;
            }
            plan.Volumes.Add(step);
        }
        PlanSpace.Measure(plan, source => IsUnder(source, Root) ? OpenOptions : null);
        return plan;
    }

    /// <summary>Plans a new base holding a clone's current content, each volume flattened into a standalone file.</summary>
    /// <remarks>
    /// Temporary volumes take the clone's initial state (its base's temporary content): scratch
    /// data is never baked into a base. The clone's files are probed when the base is made: one
    /// another program holds open (a running machine) is refused as VolumeInUse, unless
    /// <paramref name="sourceMayBeInUse"/>. A qcow2 volume is laid out as <paramref name="qcow2"/>
    /// says, or else as the old base's volume of that name was.
    /// </remarks>
    public StorePlan PlanNewBaseFromClone(string name, string cloneName, DiskFormat? format = null, bool sourceMayBeInUse = false, BaseDataSource dataFrom = BaseDataSource.Base, Qcow2Layout? qcow2 = null)
    {
        if (!System.Enum.IsDefined(typeof(BaseDataSource), dataFrom))
            throw new StoreException(StoreErrorIds.InvalidArgument, VmCloneErrorKind.InvalidArgument, $"'{dataFrom}' is not a source of data; use Base, Clone or Empty.", name);
        StoreNames.Validate(name, "base");
        if (format is DiskFormat f)
            CheckBaseFormat(f);
        CloneManifest clone = LoadClone(cloneName);
        RefuseExistingBase(name);
        RequireHealthyClone(clone, dataOnly: false);
        BaseManifest oldBase = LoadBase(clone.Base);
        string folder = BaseFolder(name);
        var plan = NewPlan(StoreOperation.NewBase, name, "base", folder);
        plan.ToBase = clone.Name;
        plan.SourceMayBeInUse = sourceMayBeInUse;
        plan.DataFrom = dataFrom;
        plan.BaseManifest = new BaseManifest { Name = name, Source = $"clone {clone.Name}" };
        foreach (CloneVolumeManifest v in clone.Volumes)
        {
            DiskFormat target = format ?? v.Format;
            Qcow2Layout.Validate(qcow2, target, name);
            Qcow2Layout? layout = target != DiskFormat.Qcow2 ? null
                : qcow2 ?? (oldBase.Volumes.FirstOrDefault(b => string.Equals(b.Name, v.Name, StringComparison.OrdinalIgnoreCase)) is { Format: DiskFormat.Qcow2 } old ? old.Qcow2 : null);
            string source = Path.Combine(CloneFolder(clone.Name), v.File);
            string reason = "the clone's current content";
            if (v.Type == VolumeType.Temporary)
            {
                BaseVolumeManifest bv = BaseVolume(oldBase, v.Name);
                source = Path.Combine(BaseFolder(oldBase.Name), bv.File);
                reason = $"the initial state (base '{oldBase.Name}'), not the clone's scratch content";
            }
            else if (v.Type == VolumeType.Data)
            {
                // Whoever prepared the update wrote to this clone's data volume; new clones should
                // start with what clones of the old base started with, unless the caller says otherwise.
                switch (dataFrom)
                {
                    case BaseDataSource.Base:
                        source = Path.Combine(BaseFolder(oldBase.Name), BaseVolume(oldBase, v.Name).File);
                        reason = $"the data of base '{oldBase.Name}', not the clone's (-DataFrom Base)";
                        break;
                    case BaseDataSource.Clone:
                        reason = "the clone's current data (-DataFrom Clone)";
                        break;
                    case BaseDataSource.Empty:
                        reason = "empty, of the clone's size (-DataFrom Empty)";
                        break;
                }
            }
            using DiskLayer layer = VirtualDisk.OpenLayer(source, FileAccess.Read);
            bool empty = v.Type == VolumeType.Data && dataFrom == BaseDataSource.Empty;
            var step = new PlannedVolume
            {
                Volume = v.Name,
                Type = v.Type,
                Format = target,
                Action = empty ? VolumeAction.CreateEmpty : VolumeAction.Import,
                Source = source,
                Path = Path.Combine(folder, v.Name + Extension(target)),
                VirtualSize = layer.VirtualSize,
                LogicalSectorSize = layer.LogicalSectorSize,
                Reason = reason,
                Qcow2 = layout,
            };
            if (empty)
                step.Source = null;
            else
                step.Stamp(source);
            plan.Volumes.Add(step);
        }
        PlanSpace.Measure(plan, _ => OpenOptions);
        return plan;
    }

    /// <summary>Plans a new clone of a base: every volume a child of the base's, or an empty standalone data volume where the base's holds nothing.</summary>
    public StorePlan PlanNewClone(string name, string baseName)
    {
        StoreNames.Validate(name, "clone");
        BaseManifest b = LoadBase(baseName);
        if (CloneExists(name) || Directory.Exists(CloneFolder(name)))
            throw new StoreException(StoreErrorIds.CloneExists, VmCloneErrorKind.AlreadyExists,
                $"A clone named '{name}' already exists in store '{Root}'; choose another name, or remove it first (Remove-VmClone {name}).", name);
        if (Catalogue.CloneFolderOtherCase(name) is string other)
            throw new StoreException(StoreErrorIds.CloneExists, VmCloneErrorKind.AlreadyExists,
                $"The name '{name}' is taken in store '{Root}' by clone '{other}' (names are one whatever their case); choose another name.", name);
        RequireUnmodifiedBase(b, name);
        string folder = CloneFolder(name);
        var plan = NewPlan(StoreOperation.NewClone, name, "clone", folder);
        plan.ToBase = b.Name;
        var manifest = new CloneManifest { Name = name, Base = b.Name };
        foreach (BaseVolumeManifest bv in b.Volumes)
        {
            PlannedVolume step = ChildOrEmpty(b, bv, folder, VolumeAction.CreateChild);
            plan.Volumes.Add(step);
            manifest.Volumes.Add(ManifestVolume(step));
        }
        plan.CloneManifest = manifest;
        return plan;
    }
}
