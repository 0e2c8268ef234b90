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
            walk._layers.Add(VirtualDisk.OpenLayer(path, FileAccess.Read, options.Format));
        }
        catch (VirtualDiskException ex)
        {
            walk.Problem = ex;
            return walk;
        }

        DiskLayer current = walk._layers[0];
        while (current.ParentReference is not null)
        {
            if (walk._layers.Count >= options.MaxChainDepth)
            {
                walk.Problem = new DiskChainException(walk._layers[0].Path, ChainProblem.TooDeep,
                    $"The chain of '{walk._layers[0].Path}' is deeper than {options.MaxChainDepth} layers; not followed further.");
                break;
            }
            DiskLayer parent;
            try
            {
                parent = ParentResolver.OpenParent(current, walk._layers, options, current == walk._layers[0] ? options.ParentPathOverride : null);
            }
            catch (VirtualDiskException ex)
            {
                walk.Problem = ex;
                break;
            }
            if (reportMismatches && !current.ParentReference.Accepts(parent.Identity))
            {
                walk.Mismatches.Add(new DiskChainException(current.Path, ChainProblem.ParentModified,
                    $"The parent '{parent.Path}' of '{current.Path}' has changed since the child was created " +
                    $"(child expects {current.ParentReference.ExpectedIdentity}, parent is {parent.Identity}): the base was modified or replaced.", parent.Path));
            }
            current.Parent = parent;
            walk._layers.Add(parent);
            current = parent;
        }
        return walk;
    }

    public void Dispose()
    {
        foreach (DiskLayer layer in _layers)
            layer.Dispose();
    }
}
