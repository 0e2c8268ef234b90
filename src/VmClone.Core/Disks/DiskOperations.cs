using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Disks;
using VmClone.Disks.Qcow2;
using VmClone.Core.Store;

namespace VmClone.Core.Disks;

/// <summary>Disk-level operations on any file, in or out of a store: create, inspect, check.</summary>
public static partial class DiskOperations
{
    /// <summary>
    /// The format a new file at <paramref name="path"/> is written in: <paramref name="given"/>,
    /// else the one its extension names in the format registry. A file whose extension names
    /// none (x.qcow2, x.vhd, a file without one) is refused (UnknownDiskExtension) rather than written in a format its
    /// name does not say, which no hypervisor would then open by that name.
    /// </summary>
    public static DiskFormat FormatFor(string path, DiskFormat? given)
    {
        if (given is DiskFormat format)
            return format;
        if (VirtualDisk.FormatFromExtension(path) is DiskFormat fromName)
            return fromName;
        string extension = Path.GetExtension(path);
        throw new VmCloneException(StoreErrorIds.UnknownDiskExtension, VmCloneErrorKind.InvalidArgument,
            $"'{path}': {(extension.Length == 0 ? "a file name without an extension" : $"the extension '{extension}'")} names no format VmClone writes " +
            $"({string.Join(", ", DiskFormats.All.Select(f => Alternatives(f.Extensions)))}); name the file with one of them, or give the format.", path);
    }

    /// <summary>"a", "a or b", "a, b or c".</summary>
    private static string Alternatives(IReadOnlyList<string> items) =>
        items.Count <= 1 ? string.Join("", items) : string.Join(", ", items.Take(items.Count - 1)) + " or " + items[items.Count - 1];

    /// <summary>Creates a dynamic disk (a fixed one with <see cref="DiskCreateOptions.Fixed"/>; no parent) or a differencing disk over <paramref name="parentPath"/>.</summary>
    public static VmDiskInfo Create(string path, long? virtualSize, string? parentPath, DiskCreateOptions options) =>
        Create(path, virtualSize, parentPath, options, null);

    /// <summary>
    /// <see cref="Create(string, long?, string?, DiskCreateOptions)"/> with the caller's open
    /// options: with <see cref="DiskOpenOptions.AllowedParentRoot"/> the parent must really lie
    /// inside that folder and its chain is followed only there.
    /// </summary>
    public static VmDiskInfo Create(string path, long? virtualSize, string? parentPath, DiskCreateOptions options, DiskOpenOptions? openOptions)
    {
        if (parentPath is null && virtualSize is null)
            throw new ArgumentException("A new disk needs either a size (-SizeBytes) or a parent (-ParentPath).");
        if (options.Fixed)
        {
            if (parentPath is not null)
                throw new VmCloneException(StoreErrorIds.FixedNotSupported, VmCloneErrorKind.InvalidArgument,
                    $"'{path}': a differencing disk cannot be fixed: it holds only what differs from its parent. Create it without -Fixed, or convert the chain into a fixed disk (Convert-VmDisk -Fixed).", path);
            RefuseFixed(options.Format ?? VirtualDisk.FormatFromExtension(path) ?? DiskFormat.Vhdx, path);
        }
        // The engine holds the parent and its whole chain to the caller's root while it opens
        // them, the one time they are opened: a child is never linked to a chain leading out.
        VirtualDisk disk = parentPath is null
            ? VirtualDisk.CreateDynamic(path, virtualSize!.Value, options)
            : VirtualDisk.CreateDifferencing(path, parentPath, options, openOptions);
        using (disk)
        {
            if (parentPath is not null && virtualSize is long size && size != disk.Capacity)
            {
                disk.Dispose();
                File.Delete(path);
                throw new ArgumentException($"'{path}': a differencing disk has its parent's size ({disk.Capacity} bytes); {size} was asked for (leave out -SizeBytes).");
            }
            VmDiskInfo created = Describe(disk.Top, 0, disk.Layers.Count, null);
            created.Warnings = VmDiskWarning.ForChain(disk.Layers, 0, chainComplete: true);
            return created;
        }
    }

    /// <summary>
    /// Describes a disk and, when <paramref name="wholeChain"/>, every layer below it. A broken
    /// chain does not stop the description: the layers that open are described, and the break
    /// is reported in <see cref="VmDiskInfo.ChainProblem"/> of the layer whose parent failed.
    /// </summary>
    public static IReadOnlyList<VmDiskInfo> Inspect(string path, bool wholeChain, DiskOpenOptions? options = null)
    {
        options ??= new DiskOpenOptions();
        var result = new List<VmDiskInfo>();
        var walk = ChainWalk.Start(path, options);
        try
        {
            if (walk.Layers.Count == 0)
                throw walk.Problem!;
            int depth = walk.Layers.Count;
            int count = wholeChain ? depth : 1;
            string? problem = walk.Problem?.Message;
            for (int i = 0; i < count; i++)
            {
                // The break is reported on the layer whose parent could not be opened (or on the
                // only layer shown).
                bool carriesBreak = problem is not null && (i == depth - 1 || !wholeChain);
                VmDiskInfo info = Describe(walk.Layers[i], i, problem is null ? depth - i : null, carriesBreak ? problem : null);
                info.Warnings = VmDiskWarning.ForChain(walk.Layers, i, chainComplete: problem is null);
                result.Add(info);
            }
            return result;
        }
        finally
        {
            walk.Dispose();
        }
    }

    /// <summary>Checks a disk and its whole chain: structures, parent links, identities.</summary>
    public static VmDiskCheckResult Check(string path, DiskOpenOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new DiskOpenOptions();
        string full = System.IO.Path.GetFullPath(path);
        var problems = new List<VmDiskProblem>();
        var leaks = new List<VmDiskProblem>();
        var notCompared = new List<VmRefcountsNotCompared>();
        var checkedPaths = new List<string>();
        IReadOnlyList<VmDiskWarning> warnings = new VmDiskWarning[0];
        // Keep walking below a modified parent: its own structure is still worth checking.
        var walk = ChainWalk.Start(full, new DiskOpenOptions
        {
            AllowedParentRoot = options.AllowedParentRoot,
            MaxChainDepth = options.MaxChainDepth,
            Format = options.Format,
            IgnoreParentIdentityMismatch = true,
            AllowExternalDataFile = options.AllowExternalDataFile,
        }, reportMismatches: !options.IgnoreParentIdentityMismatch);
        try
        {
            foreach (VirtualDiskException mismatch in walk.Mismatches)
                problems.Add(new VmDiskProblem(mismatch.Path, mismatch.Message));
            if (walk.Problem is VirtualDiskException broken)
                problems.Add(new VmDiskProblem(broken.Path, broken.Message));
            warnings = VmDiskWarning.ForChain(walk.Layers, 0, chainComplete: walk.Problem is null);
            foreach (DiskLayer layer in walk.Layers)
            {
                cancellationToken.ThrowIfCancellationRequested();
                checkedPaths.Add(layer.Path);
                IReadOnlyList<string> found;
                try
                {
                    found = layer.Check();
                }
                catch (VirtualDiskException ex)
                {
                    found = new[] { ex.Message };
                }
                foreach (string description in found)
                    problems.Add(new VmDiskProblem(layer.Path, description));
                if (layer is Qcow2Layer qcow2 && found.Count == 0)
                    AddLeaks(qcow2, leaks, notCompared);
            }
        }
        finally
        {
            walk.Dispose();
        }
        return new VmDiskCheckResult(full, checkedPaths, problems, leaks, warnings, notCompared);
    }

    /// <summary>A qcow2 image's leaked clusters, as qemu-img check lists them (the first ones, then how many more).</summary>
    private static void AddLeaks(Qcow2Layer layer, List<VmDiskProblem> leaks, List<VmRefcountsNotCompared> notCompared)
    {
        Qcow2RefcountReport report;
        try
        {
            report = layer.CheckRefcounts();
        }
        catch (VirtualDiskException)
        {
            return; // already reported by the layer's check
        }
        if (report.Skipped is Qcow2RefcountSkip skipped)
            notCompared.Add(new VmRefcountsNotCompared(layer.Path, VmRefcountsNotCompared.From(skipped)));
        foreach (Qcow2RefcountFinding leak in report.Leaks)
            leaks.Add(new VmDiskProblem(layer.Path, leak.Description, VmDiskProblemKind.Leak));
        if (report.LeakedClusters > report.Leaks.Count)
            leaks.Add(new VmDiskProblem(layer.Path, $"{report.LeakedClusters - report.Leaks.Count} more leaked clusters ({report.LeakedClusters} in all)", VmDiskProblemKind.Leak));
    }

    /// <summary>The qcow2 facts of a layer, or null for another format.</summary>
    private static VmQcow2Details? Qcow2Details(DiskLayer layer)
    {
        if (layer is not Qcow2Layer q)
            return null;
        return new VmQcow2Details
        {
            ClusterSize = q.BlockSize,
            Version = q.Version,
            Compat = q.Version == 2 ? "0.10" : "1.1",
            ExtendedL2 = q.ExtendedL2,
            CompressionType = q.Details.TryGetValue("CompressionType", out string? type) && type == "zstd" ? Qcow2CompressionType.Zstd : Qcow2CompressionType.Zlib,
            RefcountBits = q.RefcountBits,
            BackingFile = q.BackingFileName,
            BackingFileResolved = q.Parent?.Path,
            BackingFormat = q.BackingFormat,
            SnapshotCount = q.SnapshotCount,
            IsDirty = q.IsDirty,
            IsCorrupt = q.IsCorrupt,
            DataFile = q.Details.TryGetValue("DataFile", out string? data) ? data : null,
        };
    }

    internal static VmDiskInfo Describe(DiskLayer layer, int level, int? chainDepth, string? chainProblem)
    {
        ParentReference? reference = layer.ParentReference;
        string? parentPath = layer.Parent?.Path;
        if (parentPath is null && reference is not null && reference.Candidates.Count > 0)
            parentPath = reference.Candidates[0].StoredPath;
        return new VmDiskInfo
        {
            Path = layer.Path,
            Format = layer.Format,
            Type = layer.Type,
            VirtualSize = layer.VirtualSize,
            FileSize = layer.FileSize,
            SizeOnDisk = layer.SizeOnDisk,
            AllocatedSize = layer.AllocatedBytes,
            BlockSize = layer.BlockSize,
            LogicalSectorSize = layer.LogicalSectorSize,
            PhysicalSectorSize = layer.PhysicalSectorSize,
            ParentPath = parentPath,
            ChainDepth = chainDepth,
            Level = level,
            Identity = layer.Identity,
            ParentIdentity = reference?.ExpectedIdentity,
            ChainProblem = chainProblem,
            Details = layer.Details,
            Qcow2 = Qcow2Details(layer),
            Vhd = VmVhdDetails.Of(layer),
        };
    }
}
