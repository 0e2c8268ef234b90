using System;
using System.IO;

namespace VmClone.Disks.Vhdx;

internal abstract class VhdxLayer : DiskLayer
{
    public static DiskLayer Open(string path, FileAccess access) =>
        throw new DiskFormatException(path, "signature", "Vhdx support is being written");

    public static void Create(LayerCreateSpec spec) =>
        throw new DiskFormatException(spec.Path, "signature", "Vhdx support is being written");
}
