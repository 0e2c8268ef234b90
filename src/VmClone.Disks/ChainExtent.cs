using System;
using System.Collections.Generic;

namespace VmClone.Disks;

/// <summary>
/// A run of the virtual disk as the whole chain resolves it: stored by one layer
/// (<see cref="ExtentKind.Data"/>) or zero — stated by a layer, or unallocated down to the base
/// (<see cref="Layer"/> null). Lets copy, merge and rebase skip what is zero or shared without
/// reading it.
/// </summary>
public readonly struct ChainExtent
{
    public ChainExtent(long position, long length, ExtentKind kind, DiskLayer? layer, int level)
    {
        Position = position;
        Length = length;
        Kind = kind;
        Layer = layer;
        Level = level;
    }

    public long Position { get; }

    public long Length { get; }

    /// <summary><see cref="ExtentKind.Data"/> or <see cref="ExtentKind.Zero"/>; never Parent.</summary>
    public ExtentKind Kind { get; }

    /// <summary>The layer that supplies the run, or null for zeros below the base.</summary>
    public DiskLayer? Layer { get; }

    /// <summary>Index of <see cref="Layer"/> in the chain (0 = top), or -1 below the base.</summary>
    public int Level { get; }

    public long End => Position + Length;

    public override string ToString() => $"{Position}+{Length} {Kind} from {(Layer is null ? "nothing" : Layer.Path)}";
}

internal static class ChainMapper
{
    /// <summary>Resolves [position, position+length) through the chain starting at <paramref name="layer"/>.</summary>
    public static void Map(DiskLayer? layer, int level, long position, long length, List<ChainExtent> into)
    {
        while (length > 0)
        {
            if (layer is null || position >= layer.VirtualSize)
            {
                Add(into, new ChainExtent(position, length, ExtentKind.Zero, null, -1));
                return;
            }
            long limit = Math.Min(length, layer.VirtualSize - position);
            LayerExtent extent = layer.GetExtent(position, limit);
            long run = Math.Min(extent.Length, limit);
            if (run <= 0)
                throw new InvalidOperationException($"Layer '{layer.Path}' reported an empty extent at {position}.");
            if (extent.Kind == ExtentKind.Parent)
                Map(layer.Parent, level + 1, position, run, into);
            else
                Add(into, new ChainExtent(position, run, extent.Kind, layer, level));
            position += run;
            length -= run;
        }
    }

    private static void Add(List<ChainExtent> into, ChainExtent extent)
    {
        if (into.Count > 0)
        {
            ChainExtent last = into[into.Count - 1];
            if (last.End == extent.Position && last.Kind == extent.Kind && ReferenceEquals(last.Layer, extent.Layer))
            {
                into[into.Count - 1] = new ChainExtent(last.Position, last.Length + extent.Length, last.Kind, last.Layer, last.Level);
                return;
            }
        }
        into.Add(extent);
    }
}
