using System;
using System.IO;
using VmClone.Core.Store;

namespace VmClone.Core.Disks;

/// <summary>
/// The *.vmclone-merging file beside a child that records a merge in progress and its target.
/// It may lie in a folder someone else can write, so it is read only when it is a small regular
/// file: a link or a FIFO in its place is refused instead of followed or waited on.
/// </summary>
internal static class MergeMarker
{
    /// <summary>Largest marker read: it holds one path.</summary>
    private const int MaxBytes = 64 * 1024;

    /// <summary>The target the marker names, or null when there is no marker; MergeMarkerInvalid when it is not a small regular file.</summary>
    public static string? Read(string marker, string child)
    {
        try
        {
            return RecordFile.ReadAllText(marker, MaxBytes).Trim();
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (RecordFileRefusal ex)
        {
            throw new VmCloneException(StoreErrorIds.MergeMarkerInvalid, VmCloneErrorKind.InvalidData,
                $"'{marker}', which records a merge of '{child}' in progress, is not a small regular file (it is a link, a FIFO, a device or too large); it was not read. Remove it if no merge of that disk was cut off.", marker, ex);
        }
    }
}
