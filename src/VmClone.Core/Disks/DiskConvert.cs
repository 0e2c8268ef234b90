using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using VmClone.Disks;
using VmClone.Core.Store;

namespace VmClone.Core.Disks;

public static partial class DiskOperations
{
    /// <summary>
    /// Copies the whole virtual content of <paramref name="sourcePath"/>'s chain into one new
    /// standalone file (flattening the chain). Zero runs are not allocated in the destination.
    /// The destination is written under its final name in a hidden folder beside it and moved
    /// into place only when complete, so a cut-off copy never looks like a finished one.
    /// </summary>
    public static VmDiskInfo Convert(string sourcePath, string destinationPath, DiskFormat? format, DiskCreateOptions? createOptions,
        DiskOpenOptions? openOptions, IProgress<OperationProgress>? progress, CancellationToken cancellationToken) =>
        Convert(sourcePath, destinationPath, format, createOptions, openOptions, roundUpToWholeMiB: false, progress, cancellationToken);

    /// <summary>
    /// <see cref="Convert(string, string, DiskFormat?, DiskCreateOptions?, DiskOpenOptions?, IProgress{OperationProgress}?, CancellationToken)"/>;
    /// before anything is written the copy's bound (<see cref="CopyBound(VirtualDisk, DiskFormat, long?, bool, CancellationToken)"/>)
    /// is checked against the destination's free space (DiskFull, with the numbers, when it does not fit).
    /// </summary>
    public static VmDiskInfo Convert(string sourcePath, string destinationPath, DiskFormat? format, DiskCreateOptions? createOptions,
        DiskOpenOptions? openOptions, bool roundUpToWholeMiB, IProgress<OperationProgress>? progress, CancellationToken cancellationToken) =>
        Convert(sourcePath, destinationPath, format, createOptions, openOptions, roundUpToWholeMiB, checkSpace: true, progress, cancellationToken);

    /// <summary>A copy the store makes: the store checked its free space for the whole command already, and holds it set aside.</summary>
    internal static VmDiskInfo ConvertInStore(string sourcePath, string destinationPath, DiskFormat? format, DiskCreateOptions? createOptions,
        DiskOpenOptions? openOptions, IProgress<OperationProgress>? progress, CancellationToken cancellationToken) =>
        Convert(sourcePath, destinationPath, format, createOptions, openOptions, roundUpToWholeMiB: false, checkSpace: false, progress, cancellationToken);

    private static VmDiskInfo Convert(string sourcePath, string destinationPath, DiskFormat? format, DiskCreateOptions? createOptions,
        DiskOpenOptions? openOptions, bool roundUpToWholeMiB, bool checkSpace, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        string destination = Path.GetFullPath(destinationPath);
        if (File.Exists(destination))
            throw new VmCloneException(StoreErrorIds.DestinationExists, VmCloneErrorKind.AlreadyExists, $"Cannot write '{destination}': the file already exists.", destination);
        using VirtualDisk source = VirtualDisk.Open(sourcePath, FileAccess.Read, openOptions);
        if (source.Layers.Any(l => PathUtil.SamePath(l.Path, destination)))
            throw new VmCloneException(StoreErrorIds.DestinationInChain, VmCloneErrorKind.InvalidArgument, $"'{destination}' is part of the chain being converted.", destination);

        DiskFormat targetFormat = format ?? VirtualDisk.FormatFromExtension(destination) ?? source.Format;
        bool isFixed = createOptions?.Fixed == true;
        var options = new DiskCreateOptions
        {
            Format = targetFormat,
            BlockSizeBytes = createOptions?.BlockSizeBytes,
            Qcow2ExtendedL2 = createOptions?.Qcow2ExtendedL2 ?? false,
            LogicalSectorSizeBytes = source.LogicalSectorSize,
            PhysicalSectorSizeBytes = createOptions?.PhysicalSectorSizeBytes ?? source.Top.PhysicalSectorSize,
            // A converted fixed disk keeps the source's holes: as long as the disk, small on disk.
            Fixed = isFixed,
        };
        long capacity = source.Capacity;
        if (isFixed)
        {
            RefuseFixed(targetFormat, destination);
            // A fixed VHD is what Azure imports, and it takes only some sizes: refused up front.
            if (targetFormat == DiskFormat.Vhd)
                capacity = AzureVhd.SizeFor(capacity, roundUpToWholeMiB, destination);
        }
        using IDisposable? room = checkSpace && SpaceBound(source, targetFormat, options.BlockSizeBytes, isFixed, cancellationToken) is long bound
            ? ReserveFor(destination, bound, $"the copy of '{source.Path}' to '{destination}'") : null;
        return WithStagedFile(destination, staged =>
        {
            using (VirtualDisk target = VirtualDisk.CreateDynamic(staged, capacity, options))
            {
                // A new file nothing refers to yet: its tables need not be durable before the
                // end, so the whole copy is one batch (a few flushes instead of some per chunk).
                using (target.Top.BeginBatch())
                    PipelinedCopy.CopyData(source, target.Content, $"Converting {Path.GetFileName(source.Path)} to {targetFormat}", progress, cancellationToken);
                target.Flush();
            }
        }, final =>
        {
            using VirtualDisk done = VirtualDisk.Open(final, FileAccess.Read, new DiskOpenOptions { Format = targetFormat });
            return Describe(done.Top, 0, done.Layers.Count, null);
        });
    }

    /// <summary>A fixed disk in a format without one (qcow2) is refused (FixedNotSupported), saying what to use.</summary>
    internal static void RefuseFixed(DiskFormat format, string path)
    {
        if (DiskFormats.Get(format, path).CanBeFixed)
            return;
        string formats = string.Join(", ", DiskFormats.All.Where(f => f.CanWrite && f.CanBeFixed).Select(f => f.Name));
        throw new VmCloneException(StoreErrorIds.FixedNotSupported, VmCloneErrorKind.InvalidArgument,
            $"'{path}': {format} has no fixed form (qemu-img's preallocation=full still writes a {format} image with its tables, " +
            $"which nothing treats as a fixed disk). A fixed disk is one of {formats}; for qemu/KVM use Raw.", path);
    }

    /// <summary>
    /// Copies every run of <paramref name="source"/> that holds data (zero runs skipped) into
    /// <paramref name="target"/>; reports progress over the virtual size.
    /// </summary>
    internal static void CopyAllocated(VirtualDisk source, Stream target, bool writeZeros, string activity,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken, Func<ChainExtent, bool>? include = null)
    {
        byte[] buffer = new byte[ContentCopier.ChunkSize];
        long capacity = source.Capacity;
        for (long window = 0; window < capacity; window += ContentCopier.Window)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long length = Math.Min(ContentCopier.Window, capacity - window);
            foreach (ChainExtent extent in source.MapExtents(window, length))
            {
                if (include is not null ? !include(extent) : extent.Kind != ExtentKind.Data)
                    continue;
                if (extent.Kind == ExtentKind.Zero)
                    WriteZeros(target, extent.Position, extent.Length, buffer, cancellationToken);
                else
                    ContentCopier.CopyRange(source.Content, target, extent.Position, extent.Length, buffer, writeZeros, cancellationToken);
            }
            progress?.Report(new OperationProgress(activity, $"{Format.Bytes(window + length)} of {Format.Bytes(capacity)}", window + length, capacity));
        }
    }

    private static void WriteZeros(Stream target, long position, long length, byte[] buffer, CancellationToken cancellationToken)
    {
        Array.Clear(buffer, 0, buffer.Length);
        while (length > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = (int)Math.Min(buffer.Length, length);
            target.Position = position;
            target.Write(buffer, 0, n);
            position += n;
            length -= n;
        }
    }

    /// <summary>
    /// Writes a new file through <paramref name="write"/> under its final name inside a hidden
    /// staging folder next to <paramref name="destination"/> (VMDK descriptors name their own
    /// file, so the name must not change), then moves it into place. On any failure the staged
    /// file is deleted and the destination does not exist.
    /// </summary>
    internal static T WithStagedFile<T>(string destination, Action<string> write, Func<string, T> after)
    {
        string dir = Path.GetDirectoryName(destination) ?? ".";
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Cannot write '{destination}': folder '{dir}' does not exist.");
        string staging = Path.Combine(dir, ".vmclone-staging-" + Guid.NewGuid().ToString("N").Substring(0, 12));
        Directory.CreateDirectory(staging);
        string staged = Path.Combine(staging, Path.GetFileName(destination));
        var moved = new List<string>();
        try
        {
            write(staged);
            // A disk of several files (a flat VMDK's extent beside its descriptor): the others
            // first, none over an existing file, the named file last, so the disk is complete
            // when its name appears.
            string[] others = Directory.GetFiles(staging).Where(f => !PathUtil.SamePath(f, staged)).ToArray();
            foreach (string other in others)
            {
                string to = Path.Combine(dir, Path.GetFileName(other));
                if (File.Exists(to))
                    throw new VmCloneException(StoreErrorIds.DestinationExists, VmCloneErrorKind.AlreadyExists,
                        $"Cannot write '{destination}': its file '{to}' already exists.", to);
            }
            foreach (string other in others)
            {
                string to = Path.Combine(dir, Path.GetFileName(other));
                File.Move(other, to);
                moved.Add(to);
            }
            File.Move(staged, destination);
        }
        catch when (moved.Count > 0 && !File.Exists(destination))
        {
            foreach (string m in moved)
                TryDelete(m);
            throw;
        }
        catch (Exception ex) when (UserFacing.Renamed(ex, staged, destination) is Exception renamed)
        {
            // The staging folder is ours; the user named the destination.
            throw renamed;
        }
        finally
        {
            try
            {
                Directory.Delete(staging, recursive: true);
            }
            catch (IOException)
            {
            }
        }
        return after(destination);
    }
}
