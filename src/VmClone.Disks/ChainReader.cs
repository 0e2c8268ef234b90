using System;

namespace VmClone.Disks;

/// <summary>Reads virtual content through a chain of layers: each run asks the nearest layer that has it.</summary>
internal static class ChainReader
{
    public static void Read(DiskLayer? layer, long position, byte[] buffer, int offset, int count)
    {
        while (count > 0)
        {
            if (layer is null || position >= layer.VirtualSize)
            {
                // Bottom of the chain, or a parent smaller than its child: zeros.
                Array.Clear(buffer, offset, count);
                return;
            }

            long limit = Math.Min(count, layer.VirtualSize - position);
            LayerExtent extent = layer.GetExtent(position, limit);
            int run = (int)Math.Min(extent.Length, limit);
            if (run <= 0)
                throw new InvalidOperationException($"Layer '{layer.Path}' reported an empty extent at {position}.");

            switch (extent.Kind)
            {
                case ExtentKind.Data:
                    layer.ReadData(position, buffer, offset, run);
                    break;
                case ExtentKind.Zero:
                    Array.Clear(buffer, offset, run);
                    break;
                default:
                    Read(layer.Parent, position, buffer, offset, run);
                    break;
            }

            position += run;
            offset += run;
            count -= run;
        }
    }
}
