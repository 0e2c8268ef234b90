using System.Collections.Generic;
using System.IO;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// Plans an export of a clone (a spinoff): each volume's chain flattened into one standalone
/// disk in a new folder outside the store. Reads manifests and opens chains; writes nothing.
/// </summary>
internal sealed class ExportPlanner : Planner
{
    public ExportPlanner(StoreCatalogue catalogue, StorePreconditions preconditions) : base(catalogue, preconditions) { }

    /// <summary>
    /// The plan for writing clone <paramref name="cloneName"/> into the folder
    /// <paramref name="destination"/>, which must not exist and must lie outside the store.
    /// </summary>
    public ExportPlan PlanExport(string cloneName, string destination, DiskFormat? format, bool sourceMayBeInUse)
    {
        StoreNames.Validate(cloneName, "clone");
        string folder = Path.GetFullPath(destination);
        // An export is for use elsewhere: inside the store it would be a foreign folder the
        // store's checks report, and a disk there could be taken for a volume.
        if (IsUnder(folder, Root) || PathUtil.SamePath(folder, Root))
            throw new StoreException(StoreErrorIds.ExportInsideStore, VmCloneErrorKind.InvalidArgument,
                $"Clone '{cloneName}' was not exported: '{folder}' lies inside store '{Root}'. Export to a folder outside the store.", cloneName);
        if (File.Exists(folder) || Directory.Exists(folder))
            throw new StoreException(StoreErrorIds.DestinationExists, VmCloneErrorKind.AlreadyExists,
                $"Clone '{cloneName}' was not exported: '{folder}' already exists. Choose another destination, or remove it first.", cloneName);
        string manifestPath = Path.Combine(CloneFolder(cloneName), CloneFile);
        CloneManifest clone = LoadClone(cloneName);
        RequireHealthyClone(clone, dataOnly: false);
        BaseManifest b = LoadBase(clone.Base);
        var steps = new List<ExportStep>();
        foreach (CloneVolumeManifest v in clone.Volumes)
        {
            string source = Path.Combine(CloneFolder(clone.Name), v.File);
            string reason = "the clone's current content";
            if (v.Type == VolumeType.Temporary)
            {
                // Scratch content (a page file, a browser cache) is never worth carrying: the
                // export takes the state the clone starts from, as a new base does.
                source = Path.Combine(BaseFolder(b.Name), BaseVolume(b, v.Name).File);
                reason = $"the initial state (base '{b.Name}'), not the clone's scratch content";
            }
            DiskFormat target = format ?? v.Format;
            using VirtualDisk chain = VirtualDisk.Open(source, FileAccess.Read, OpenOptions);
            steps.Add(new ExportStep
            {
                Volume = v.Name,
                Type = v.Type,
                Source = source,
                File = Path.Combine(folder, v.Name + Extension(target)),
                Format = target,
                VirtualSize = chain.Capacity,
                BytesToCopy = DiskOperations.CopyBound(chain, target, null, isFixed: false, System.Threading.CancellationToken.None),
                Reason = reason,
            });
        }
        return new ExportPlan(Root, clone.Name, b.Name, folder, steps, sourceMayBeInUse, ManifestDigest(manifestPath));
    }
}
