using System;
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
        DiskOpenOptions? openOptions, IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        string destination = Path.GetFullPath(destinationPath);
        if (File.Exists(destination))
            throw new VmCloneException(StoreErrorIds.DestinationExists, VmCloneErrorKind.AlreadyExists, $"Cannot write '{destination}': the file already exists.", destination);
        using VirtualDisk source = VirtualDisk.Open(sourcePath, FileAccess.Read, openOptions);
        if (source.Layers.Any(l => PathUtil.SamePath(l.Path, destination)))
            throw new VmCloneException(StoreErrorIds.DestinationInChain, VmCloneErrorKind.InvalidArgument, $"'{destination}' is part of the chain being converted.", destination);

        DiskFormat targetFormat = format ?? VirtualDisk.FormatFromExtension(destination) ?? source.Format;
        var options = new DiskCreateOptions
        {
            Format = targetFormat,
            BlockSizeBytes = createOptions?.BlockSizeBytes,
            Qcow2ExtendedL2 = createOptions?.Qcow2ExtendedL2 ?? false,
            LogicalSectorSizeBytes = source.LogicalSectorSize,
            PhysicalSectorSizeBytes = createOptions?.PhysicalSectorSizeBytes ?? source.Top.PhysicalSectorSize,
        };
        return WithStagedFile(destination, staged =>
        {
            using (VirtualDisk target = VirtualDisk.CreateDynamic(staged, source.Capacity, options))
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
        try
        {
            write(staged);
            File.Move(staged, destination);
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
