using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// Carries out an <see cref="ExportPlan"/>: under the clone's and its base's shared locks (no
/// restore or rebase changes a volume while it is read), each chain is flattened into a hidden
/// folder beside the destination, the manifest written last, and the folder moved into place
/// only when complete, so a cut-off export never looks like a finished one. The store itself is
/// only read: nothing of the export is journalled.
/// </summary>
internal sealed class CloneExporter : StorePart
{
    /// <summary>Name prefix of the folder an export is written in before it is moved into place.</summary>
    internal const string ExportingPrefix = ".vmclone-exporting-";

    public CloneExporter(StoreCatalogue catalogue) : base(catalogue) { }

    public VmCloneExport Execute(ExportPlan plan, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        if (!string.Equals(plan.Store, Root, StringComparison.Ordinal))
            throw new ArgumentException($"The plan is for store '{plan.Store}', not '{Root}'.", nameof(plan));
        var locks = new[] { new LockRequest("clone", plan.Clone, exclusive: false), new LockRequest("base", plan.Base, exclusive: false) };
        using (Catalogue.StoreLock(exclusive: false, cancellationToken))
        using (StoreLocks.Acquire(Root, locks, $"Export clone '{plan.Clone}'", cancellationToken))
        {
            string manifestPath = Path.Combine(CloneFolder(plan.Clone), CloneFile);
            if (!File.Exists(manifestPath) || ManifestDigest(manifestPath) != plan.ManifestDigest)
                throw new StoreException(StoreErrorIds.CloneChanged, VmCloneErrorKind.InUse,
                    $"Clone '{plan.Clone}' was not exported: another command changed it after the export was planned. Run the command again.", plan.Clone);
            if (!plan.SourceMayBeInUse && PlanExecutor.FindHolder(plan.Volumes.Select(v => v.Source).Where(s => IsUnder(s, CloneFolder(plan.Clone)))) is (string file, string holder))
                throw new StoreException(StoreErrorIds.VolumeInUse, VmCloneErrorKind.InUse,
                    $"Clone '{plan.Clone}' was not exported: its file '{file}' is open in another program ({holder}), so its content may be half-written. " +
                    "Shut the virtual machine down and run the command again, or add -Force if you know its disks are quiescent.", plan.Clone);
            if (Directory.Exists(plan.Destination) || File.Exists(plan.Destination))
                throw new StoreException(StoreErrorIds.DestinationExists, VmCloneErrorKind.AlreadyExists,
                    $"Clone '{plan.Clone}' was not exported: '{plan.Destination}' already exists. Choose another destination, or remove it first.", plan.Clone);
            string parent = Path.GetDirectoryName(plan.Destination)!;
            // Before anything is made there: the whole export must fit (DiskFull, with the numbers).
            using IDisposable room = FreeSpace.Reserve(parent, plan.BytesToCopy + FreeSpace.Margin, s => s.Into(new StoreException(StoreErrorIds.DiskFull, VmCloneErrorKind.InvalidOperation,
                $"Clone '{plan.Clone}' was not exported: there is not enough free space: {s.Numbers}. Nothing was written; free some space (or export elsewhere) and run the command again.", plan.Clone)));
            Directory.CreateDirectory(parent);
            // Named after the destination, so that a cut-off export's folder is found and
            // replaced by the next export to the same place, and never taken for the export.
            string staging = Path.Combine(parent, ExportingPrefix + Path.GetFileName(plan.Destination));
            DeleteFolder(staging);
            Directory.CreateDirectory(staging);
            try
            {
                var manifest = new ExportManifest { Name = plan.Clone, Base = plan.Base, Exported = DateTimeOffset.UtcNow };
                foreach (ExportStep step in plan.Volumes)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    string staged = Path.Combine(staging, Path.GetFileName(step.File));
                    DiskOperations.ConvertInStore(step.Source, staged, step.Format, null, OpenOptions, progress, cancellationToken);
                    manifest.Volumes.Add(new ExportManifestVolume
                    {
                        Name = step.Volume,
                        Type = step.Type,
                        File = Path.GetFileName(step.File),
                        Format = step.Format,
                        VirtualSize = step.VirtualSize,
                    });
                }
                Manifest.Write(Path.Combine(staging, ExportManifest.FileName), manifest);
                FaultPoint.Hit("export written");
                Directory.Move(staging, plan.Destination);
                return Describe(plan, manifest);
            }
            catch (IOException ex) when (PlanExecutor.IsDiskFull(ex))
            {
                TryDeleteFolder(staging);
                throw new StoreException(StoreErrorIds.DiskFull, VmCloneErrorKind.InvalidOperation,
                    $"Clone '{plan.Clone}' was not exported: there is not enough free space in '{parent}' (the export needs about {Format.Bytes(plan.BytesToCopy)}). Nothing of it was kept; free some space and run the command again.", plan.Clone, ex);
            }
            catch (Exception ex) when (!FaultPoint.IsCrash(ex))
            {
                // A crash leaves the hidden folder for the next export to the same place.
                TryDeleteFolder(staging);
                throw;
            }
        }
    }

    private static VmCloneExport Describe(ExportPlan plan, ExportManifest manifest)
    {
        var volumes = new List<VmExportedVolume>();
        foreach (ExportStep step in plan.Volumes)
        {
            using DiskLayer layer = VirtualDisk.OpenLayer(step.File, FileAccess.Read);
            volumes.Add(new VmExportedVolume
            {
                Name = step.Volume,
                Type = step.Type,
                Path = step.File,
                Format = layer.Format,
                VirtualSize = layer.VirtualSize,
                SizeOnDisk = layer.SizeOnDisk,
            });
        }
        return new VmCloneExport
        {
            Name = plan.Clone,
            Base = plan.Base,
            Path = plan.Destination,
            ManifestPath = Path.Combine(plan.Destination, ExportManifest.FileName),
            Exported = manifest.Exported,
            Volumes = volumes,
        };
    }
}
