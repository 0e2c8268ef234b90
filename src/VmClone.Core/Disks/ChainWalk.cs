using System;
using System.Collections.Generic;
using System.IO;
using VmClone.Disks;

namespace VmClone.Core.Disks;

/// <summary>
/// Opens a chain layer by layer (read-only) and keeps what opened when a link breaks, so that
/// inspection and checking can report the break instead of failing as a whole.
/// </summary>
internal sealed class ChainWalk : IDisposable
{
    private readonly List<DiskLayer> _layers = new();

    private ChainWalk()
    {
    }

    public IReadOnlyList<DiskLayer> Layers => _layers;

    /// <summary>Why the walk stopped early, or null when it reached the base.</summary>
    public VirtualDiskException? Problem { get; private set; }

    /// <summary>Parents accepted despite an identity mismatch (only when asked to report them).</summary>
    public List<VirtualDiskException> Mismatches { get; } = new();

    public static ChainWalk Start(string path, DiskOpenOptions options, bool reportMismatches = false)
    {
        var walk = new ChainWalk();
        try
        {
            walk._layers.Add(VirtualDisk.OpenLayerWith(path, FileAccess.Read, options.Format, options));
        }
        catch (VirtualDiskException ex)
        {
            walk.Problem = ex;
            return walk;
        }

        try
        {
            VirtualDisk.AppendParents(walk._layers, options, (child, parent) =>
            {
                if (reportMismatches && !child.ParentReference!.Accepts(parent.Identity))
                {
                    walk.Mismatches.Add(ParentResolver.ModifiedParent(child, parent.Path, parent.Identity));
                }
            });
        }
        catch (VirtualDiskException ex)
        {
            walk.Problem = ex;
        }
        return walk;
    }

    public void Dispose()
    {
        foreach (DiskLayer layer in _layers)
            layer.Dispose();
    }
}
