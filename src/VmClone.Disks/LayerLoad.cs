using System;
using System.IO;

namespace VmClone.Disks;

/// <summary>
/// How a layer reads its structures when it is opened: on any failure the file it was handed is
/// closed (the caller gave it away), and a structure that made the reader index, size or convert
/// out of range — a hostile or damaged file — becomes a <see cref="DiskFormatException"/> naming
/// the file, never a bare runtime exception.
/// </summary>
internal static class LayerLoad
{
    public static TLayer Run<TLayer>(FileAccessor file, TLayer layer, Action<TLayer> load) where TLayer : DiskLayer
    {
        try
        {
            load(layer);
            return layer;
        }
        catch (VirtualDiskException)
        {
            file.Dispose();
            throw;
        }
        catch (Exception ex) when (ex is ArgumentException or OverflowException or IndexOutOfRangeException or InvalidOperationException or EndOfStreamException or OutOfMemoryException)
        {
            file.Dispose();
            throw new DiskFormatException(file.Path, "file", $"the file is malformed ({ex.Message})", null, ex);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }
}
