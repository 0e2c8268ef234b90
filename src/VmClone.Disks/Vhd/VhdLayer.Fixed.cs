using System;

namespace VmClone.Disks.Vhd;

internal sealed partial class VhdLayer
{
    /// <summary>
    /// Writes a new fixed VHD: the virtual disk's bytes, then the 512-byte footer, nothing else
    /// (spec, "Fixed Hard Disk Image"; no copy at offset 0, no dynamic header, data offset all
    /// ones). The footer is as Hyper-V writes it and as Azure takes it: creator "win " (so qemu
    /// too sizes the disk by its current size), host "Wi2k", original size = current size, the
    /// spec's CHS geometry for that size, disk type 2, a new unique id, the checksum. The data
    /// is left as holes (zeros) unless <see cref="LayerCreateSpec.ReserveSpace"/> reserves it.
    /// </summary>
    private static void CreateFixed(LayerCreateSpec spec, string path)
    {
        long size = spec.VirtualSize;
        VhdFooter footer = VhdFooter.Create(VhdDiskType.Fixed, size, ulong.MaxValue, Guid.NewGuid(), VhdFooter.TimestampOf(DateTime.UtcNow));
        FileAccessor file = spec.OpenFile();
        try
        {
            file.SetLength(size + VhdFooter.Length);
            if (spec.ReserveSpace)
                file.Reserve(size + VhdFooter.Length);
            file.Write(size, footer.Raw);
            file.Flush();
            file.Dispose();
        }
        catch
        {
            spec.Abandon(file);
            throw;
        }
    }
}
