using System.Collections.Generic;
using System.IO;
using VmClone.Disks.Qcow2;

namespace VmClone.Disks.Tests.Qcow2;

/// <summary>
/// Opens a qcow2 image with its backing chain for the tests, until VirtualDisk.Open recognises
/// qcow2 itself: qcow2 layers through Qcow2Layer.Open (held to the allowed root as the engine
/// holds parents), and the first backing file of another format, with everything below it,
/// through the engine's own parent resolution (VirtualDisk.AppendParents).
/// </summary>
internal static class Qcow2Chain
{
    public static VirtualDisk Open(string path, DiskOpenOptions? options = null, bool writable = false)
    {
        options ??= new DiskOpenOptions();
        var layers = new List<DiskLayer> { Qcow2Layer.Open(path, writable, options) };
        try
        {
            while (layers[^1] is Qcow2Layer current && current.ParentReference is not null)
            {
                string? found = ParentResolver.CandidatePaths(current).Find(File.Exists);
                if (found is null || !IsQcow2(found))
                {
                    VirtualDisk.AppendParents(layers, options);
                    break;
                }
                ParentResolver.RefuseOutsideRoot(current.Path, found, options);
                foreach (DiskLayer seen in layers)
                {
                    if (PathUtil.SamePath(seen.Path, found))
                        throw new DiskChainException(current.Path, ChainProblem.Loop, $"loop at '{found}'", found);
                }
                var parent = Qcow2Layer.Open(found, false, options);
                current.Parent = parent;
                layers.Add(parent);
            }
            return VirtualDisk.FromLayers(layers);
        }
        catch
        {
            foreach (DiskLayer layer in layers)
                layer.Dispose();
            throw;
        }
    }

    private static bool IsQcow2(string path)
    {
        byte[] head = new byte[4];
        using (FileStream fs = File.OpenRead(path))
            fs.ReadExactly(head, 0, (int)System.Math.Min(4, fs.Length));
        return Qcow2Layer.Recognises(head);
    }
}
