using System;
using System.IO;

namespace VmClone.Disks.Vmdk;

internal abstract class VmdkLayer : DiskLayer
{
    public static DiskLayer Open(string path, FileAccess access) =>
        throw new DiskFormatException(path, "signature", "Vmdk support is being written");

    public static void Create(LayerCreateSpec spec) =>
        throw new DiskFormatException(spec.Path, "signature", "Vmdk support is being written");
}
