using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace VmClone.Disks.Qcow2;

public sealed partial class Qcow2Layer
{
    /// <summary>Default cluster size of qemu-img create: 64 KiB.</summary>
    public const long DefaultClusterSize = 64 * 1024;

    /// <summary>
    /// Creates an empty standalone image at <paramref name="path"/> (which must not exist), as
    /// <c>qemu-img create -f qcow2</c> does: header, refcount table, one refcount block and an
    /// L1 table; no data. <c>qemu-img check</c> finds it clean.
    /// </summary>
    public static void Create(string path, long virtualSize, Qcow2CreateOptions? options = null)
    {
        string full = System.IO.Path.GetFullPath(path);
        Create(new LayerCreateSpec(full, virtualSize), options);
    }

    /// <summary>
    /// Creates an empty overlay of <paramref name="parent"/> (its top layer, open) at
    /// <paramref name="path"/>, as <c>qemu-img create -f qcow2 -F fmt -b parent</c> does: the
    /// backing file is named relative to the overlay's folder (absolute when there is no
    /// relative path) and its format is always recorded. qcow2 records no identity of its
    /// backing file: only its size is checked, here, and a parent of another size is refused.
    /// With <see cref="DiskOpenOptions.AllowedParentRoot"/> the parent chain must lie inside it.
    /// </summary>
    public static void CreateChild(string path, DiskLayer parent, Qcow2CreateOptions? options = null, DiskOpenOptions? openOptions = null, long? virtualSize = null)
    {
        if (parent is null)
            throw new ArgumentNullException(nameof(parent));
        string full = System.IO.Path.GetFullPath(path);
        ParentResolver.RefuseOutsideRoot(full, parent, openOptions);
        if (PathUtil.SamePath(full, parent.Path))
            throw new VirtualDiskException(full, $"A disk cannot be its own parent ('{full}').");
        if (virtualSize is long size && size != parent.VirtualSize)
            throw new DiskChainException(full, ChainProblem.Incompatible,
                $"A qcow2 overlay of '{parent.Path}' must have its size of {parent.VirtualSize} bytes, not {size}: qcow2 cannot tell a changed parent otherwise.", parent.Path);
        Create(ChildSpec(full, parent), options);
    }

    /// <summary>
    /// Makes the existing qcow2 image at <paramref name="path"/> a new, empty overlay of
    /// <paramref name="parent"/> in place, as <see cref="VirtualDisk.TryRecreateDifferencingFile"/>
    /// does for the other formats: false, having changed nothing, where that cannot be done
    /// (not Linux, a link or hard-linked file, not writable, or not a qcow2 file); the caller
    /// then makes a new file. Not atomic: cut off, the file is neither old nor new.
    /// </summary>
    public static bool TryRecreateChild(string path, DiskLayer parent, Qcow2CreateOptions? options = null, DiskOpenOptions? openOptions = null)
    {
        if (parent is null)
            throw new ArgumentNullException(nameof(parent));
        string full = System.IO.Path.GetFullPath(path);
        ParentResolver.RefuseOutsideRoot(full, parent, openOptions);
        if (PathUtil.SamePath(full, parent.Path))
            throw new VirtualDiskException(full, $"A disk cannot be its own parent ('{full}').");
        if (FileAccessor.OpenToRewrite(full, Signature) is not FileAccessor target)
            return false;
        using (target)
        {
            LayerCreateSpec spec = ChildSpec(full, parent);
            spec.Target = target;
            Create(spec, options);
        }
        return true;
    }

    private static LayerCreateSpec ChildSpec(string full, DiskLayer parent)
    {
        string? dir = System.IO.Path.GetDirectoryName(full);
        return new LayerCreateSpec(full, parent.VirtualSize)
        {
            Parent = parent,
            ParentAbsolutePath = parent.Path,
            ParentRelativePath = dir is null ? null : PathUtil.GetRelativePath(dir, parent.Path),
        };
    }

    /// <summary>
    /// Writes a new image for the engine's generic create (<see cref="LayerCreateSpec"/>: size,
    /// cluster size as BlockSize, parent, or a file to rewrite in place).
    /// </summary>
    internal static void Create(LayerCreateSpec spec, Qcow2CreateOptions? options = null)
    {
        options ??= Qcow2CreateOptions.From(spec.BlockSize, spec.ExtendedL2);
        string path = spec.Path;
        long cluster = options.ClusterSize ?? spec.BlockSize ?? DefaultClusterSize;
        if (cluster < 512 || cluster > 2 * 1024 * 1024 || (cluster & (cluster - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"A qcow2 cluster size must be a power of two from 512 bytes to 2 MiB, not {cluster} ('{path}').");
        int clusterBits = 0;
        while ((1L << clusterBits) < cluster)
            clusterBits++;
        uint version = options.Version2 ? 2u : 3u;
        int refcountBits = options.RefcountBits ?? 16;
        if (refcountBits < 1 || refcountBits > 64 || (refcountBits & (refcountBits - 1)) != 0 || (version == 2 && refcountBits != 16))
            throw new ArgumentOutOfRangeException(nameof(options), $"qcow2 refcounts are 1, 2, 4, 8, 16, 32 or 64 bits wide (version 2: 16), not {refcountBits} ('{path}').");
        if (options.ExtendedL2 && (version == 2 || cluster < 16 * 1024))
            throw new ArgumentOutOfRangeException(nameof(options), $"Extended L2 entries need version 3 and clusters of at least 16 KiB ('{path}').");
        long size = spec.VirtualSize;
        if (size <= 0 || size % 512 != 0 || size > (1L << 55))
            throw new ArgumentOutOfRangeException(nameof(spec), $"A qcow2 virtual size must be a positive multiple of 512 bytes up to 32 PiB, not {size} ('{path}').");
        if (spec.Parent is DiskLayer p && p.VirtualSize != size)
            throw new DiskChainException(path, ChainProblem.Incompatible,
                $"A qcow2 overlay of '{p.Path}' must have its size of {p.VirtualSize} bytes, not {size}.", p.Path);

        // The backing file: its name as the child's folder reaches it, and its format, always.
        byte[]? backingName = null;
        string? backingFormat = null;
        if (spec.Parent is DiskLayer parent)
        {
            backingName = Encoding.UTF8.GetBytes(spec.ParentRelativePath ?? spec.ParentAbsolutePath ?? parent.Path);
            if (backingName.Length > Qcow2Header.MaxBackingNameBytes)
                throw new DiskChainException(path, ChainProblem.Incompatible,
                    $"The path of the backing file '{parent.Path}' is {backingName.Length} bytes long as '{path}' would record it; qcow2 allows {Qcow2Header.MaxBackingNameBytes}.", parent.Path);
            backingFormat = parent.Format switch
            {
                DiskFormat.Qcow2 => "qcow2",
                DiskFormat.Raw => "raw",
                DiskFormat.Vmdk => "vmdk",
                _ => "vhdx",
            };
        }

        int l2EntryBytes = options.ExtendedL2 ? 16 : 8;
        long entriesPerL2 = cluster / l2EntryBytes;
        long l1Size = Math.Max(1, (((size + cluster - 1) / cluster) + entriesPerL2 - 1) / entriesPerL2);
        if (l1Size > 32 * 1024 * 1024 / 8)
            throw new ArgumentOutOfRangeException(nameof(spec), $"A {size}-byte qcow2 image with {cluster}-byte clusters needs an L1 table beyond qemu's 32 MiB; use larger clusters ('{path}').");
        long l1Clusters = (l1Size * 8 + cluster - 1) / cluster;
        // Cluster 0 the header; then the refcount table, the refcount blocks and the L1 table,
        // as many clusters of each as cover them all (qemu's fresh layout at 64 KiB: 0, 64 KiB, 128 KiB, 192 KiB).
        long perBlock = RefcountBlock.EntriesPerBlock(cluster, refcountBits);
        long tableClusters = 1, blocks = 1;
        while (true)
        {
            long total = 1 + tableClusters + blocks + l1Clusters;
            long needBlocks = (total + perBlock - 1) / perBlock;
            long needTable = (needBlocks * 8 + cluster - 1) / cluster;
            if (needBlocks <= blocks && needTable <= tableClusters)
                break;
            blocks = Math.Max(blocks, needBlocks);
            tableClusters = Math.Max(tableClusters, needTable);
        }
        // The refcount table is sized for the image fully written (every data cluster and L2
        // table, and the blocks counting them), so that writes never need a larger one: one
        // cluster, as qemu makes it, up to a file of 16 TiB at 64 KiB clusters (4 GiB at 4 KiB).
        long dataClusters = (size + cluster - 1) / cluster;
        long l2Tables = (dataClusters + entriesPerL2 - 1) / entriesPerL2;
        long fullBlocks = blocks;
        while (true)
        {
            long fullTotal = 1 + tableClusters + l1Clusters + dataClusters + l2Tables + fullBlocks;
            long needBlocks = (fullTotal + perBlock - 1) / perBlock;
            long needTable = (needBlocks * 8 + cluster - 1) / cluster;
            if (needBlocks <= fullBlocks && needTable <= tableClusters)
                break;
            fullBlocks = Math.Max(fullBlocks, needBlocks);
            tableClusters = Math.Max(tableClusters, needTable);
        }
        // The blocks written now must still cover the metadata, the larger table included.
        while (true)
        {
            long total = 1 + tableClusters + blocks + l1Clusters;
            long needBlocks = (total + perBlock - 1) / perBlock;
            if (needBlocks <= blocks)
                break;
            blocks = needBlocks;
        }
        long tableOffset = cluster;
        long blocksOffset = tableOffset + tableClusters * cluster;
        long l1Offset = blocksOffset + blocks * cluster;
        long usedClusters = l1Offset / cluster + l1Clusters;

        var extensions = new List<(uint, byte[])>();
        if (backingFormat is not null)
            extensions.Add((HeaderExtensions.BackingFormatType, Encoding.ASCII.GetBytes(backingFormat)));
        int headerLength = version == 2 ? Qcow2Header.V2Length : Qcow2Header.V3Length;
        // The feature-name table names features for error messages; nothing depends on it, and
        // qemu leaves it out of clusters of 4 KiB and less, where it would crowd the first cluster.
        byte[] featureNames = FeatureNameTable.Standard();
        if (version >= 3 && cluster > 4096 && headerLength + HeaderExtensions.Compose(extensions).Length + 8 + featureNames.Length + (backingName?.Length ?? 0) < cluster)
            extensions.Add((HeaderExtensions.FeatureNameTableType, featureNames));
        byte[] extensionBytes = HeaderExtensions.Compose(extensions);
        long backingOffset = headerLength + extensionBytes.Length;
        if (backingOffset + (backingName?.Length ?? 0) > cluster)
            throw new ArgumentOutOfRangeException(nameof(options), $"The header, its extensions and the backing file name do not fit one {cluster}-byte cluster; use larger clusters ('{path}').");
        int refcountOrder = 0;
        while ((1 << refcountOrder) < refcountBits)
            refcountOrder++;
        byte[] header = Qcow2Header.Compose(version, clusterBits, (ulong)size, (uint)l1Size, (ulong)l1Offset, (ulong)tableOffset, (uint)tableClusters,
            options.ExtendedL2 ? 1UL << Qcow2Header.ExtendedL2Bit : 0, refcountOrder, backingName is null ? 0 : (ulong)backingOffset, (uint)(backingName?.Length ?? 0));

        byte[] first = new byte[backingOffset + (backingName?.Length ?? 0)];
        header.CopyTo(first, 0);
        extensionBytes.CopyTo(first, headerLength);
        backingName?.CopyTo(first, backingOffset);

        byte[] table = new byte[tableClusters * cluster];
        var blockData = new byte[blocks][];
        for (long b = 0; b < blocks; b++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(b * 8)), (ulong)(blocksOffset + b * cluster));
            byte[] block = new byte[cluster];
            for (long i = 0; i < perBlock && b * perBlock + i < usedClusters; i++)
                RefcountBlock.Set(block, i, refcountBits, 1);
            blockData[b] = block;
        }

        FileAccessor file = spec.OpenFile();
        try
        {
            // Tables first, header last: an image cut off before its header is no image at all.
            file.Write(tableOffset, table, 0, table.Length);
            for (long b = 0; b < blocks; b++)
                file.Write(blocksOffset + b * cluster, blockData[b], 0, blockData[b].Length);
            // The L1 table is all zeros (nothing allocated); the file ends where it does, as qemu's.
            file.SetLength(l1Offset + l1Size * 8);
            file.Write(0, first, 0, first.Length);
            file.Flush();
        }
        catch
        {
            spec.Abandon(file);
            throw;
        }
        if (spec.Target is null)
            file.Dispose();
    }
}
