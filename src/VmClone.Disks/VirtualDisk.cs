using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace VmClone.Disks;

/// <summary>
/// A disk file opened together with its whole parent chain. <see cref="Content"/> is one
/// seekable stream of the virtual disk: reads ask the nearest layer that stores each run,
/// writes go to the top layer. Dispose closes every file of the chain.
/// </summary>
public sealed class VirtualDisk : IDisposable
{
    private readonly List<DiskLayer> _layers;
    private ChainStream? _content;
    private bool _disposed;

    private VirtualDisk(List<DiskLayer> layers)
    {
        _layers = layers;
    }

    /// <summary>Serializes every access to the chain's layers (streams and callers share it).</summary>
    internal object SyncRoot { get; } = new();

    /// <summary>Full path of the top file.</summary>
    public string Path => Top.Path;

    public DiskFormat Format => Top.Format;

    public DiskType Type => Top.Type;

    /// <summary>Virtual size in bytes.</summary>
    public long Capacity => Top.VirtualSize;

    public int LogicalSectorSize => Top.LogicalSectorSize;

    public bool CanWrite => Top.CanWrite;

    /// <summary>The top layer (the file that was opened).</summary>
    public DiskLayer Top => _layers[0];

    /// <summary>The chain from the opened file (index 0) down to its base.</summary>
    public IReadOnlyList<DiskLayer> Layers => _layers;

    /// <summary>The virtual disk's content as a seekable stream; writable when the disk was opened for writing.</summary>
    public Stream Content
    {
        get
        {
            ThrowIfDisposed();
            return _content ??= new ChainStream(this);
        }
    }

    /// <summary>Opens a disk file and its parent chain.</summary>
    public static VirtualDisk Open(string path, FileAccess access) => Open(path, access, null);

    /// <summary>
    /// Opens a disk file and its parent chain. Parents are always opened read-only. Every file
    /// opened (the disk, its VMDK extents, each parent) must be a regular file (see
    /// <see cref="OpenLayer"/>); with <see cref="DiskOpenOptions.AllowedParentRoot"/> every
    /// parent must really lie inside that folder, links resolved.
    /// </summary>
    public static VirtualDisk Open(string path, FileAccess access, DiskOpenOptions? options)
    {
        options ??= DiskOpenOptions.Default;
        if (access == FileAccess.Write)
            access = FileAccess.ReadWrite;
        var layers = new List<DiskLayer> { OpenLayerWith(path, access, options.Format, options) };
        try
        {
            AppendParents(layers, options);
            return new VirtualDisk(layers);
        }
        catch
        {
            foreach (DiskLayer layer in layers)
                layer.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Follows the parent links from the last layer of <paramref name="layers"/> down to a base,
    /// opening each parent read-only and appending it; throws at the first broken link (the
    /// layers opened so far stay in the list for the caller to use or dispose).
    /// <paramref name="accepted"/> sees each (child, parent) pair as it is linked.
    /// </summary>
    internal static void AppendParents(List<DiskLayer> layers, DiskOpenOptions options, Action<DiskLayer, DiskLayer>? accepted = null)
    {
        DiskLayer top = layers[0];
        DiskLayer current = layers[layers.Count - 1];
        while (current.ParentReference is not null)
        {
            if (layers.Count >= options.MaxChainDepth)
                throw new DiskChainException(top.Path, ChainProblem.TooDeep,
                    $"The chain of '{top.Path}' is deeper than {options.MaxChainDepth} layers; refusing to follow it further (a loop or a hostile file).");
            string? overridePath = current == top ? options.ParentPathOverride : null;
            DiskLayer parent = ParentResolver.OpenParent(current, layers, options, overridePath);
            current.Parent = parent;
            layers.Add(parent);
            accepted?.Invoke(current, parent);
            current = parent;
        }
    }

    // The allowed root this open chain was last found inside. Its layers are open files, so a
    // chain judged once stays judged for every child made over it, and a fleet makes thousands
    // (each judgment resolves every path component of every layer). A child records only its
    // parent's path and identity; whoever opens the child later resolves and judges again.
    private volatile string? _insideRoot;

    /// <summary>Refuses, for a child at <paramref name="childPath"/>, a chain with any layer outside <paramref name="options"/>' allowed root.</summary>
    private void RefuseOutsideRoot(string childPath, DiskOpenOptions? options)
    {
        if (options?.AllowedParentRoot is not string root || string.Equals(_insideRoot, root, StringComparison.Ordinal))
            return;
        ParentResolver.RefuseOutsideRoot(childPath, Top, options);
        _insideRoot = root;
    }

    /// <summary>A disk over layers the caller opened and linked (Parent set), top first; it owns them from now on.</summary>
    internal static VirtualDisk FromLayers(List<DiskLayer> layers) => new(layers);

    /// <summary>
    /// Opens one file as a layer, without following its parent. A file marked read-only is never
    /// opened for writing, even by root. Only a regular file is opened, and never by waiting: a
    /// named pipe, a device, a socket or a folder (or a symbolic link to one) is refused with a
    /// <see cref="DiskFormatException"/> whose <see cref="DiskFormatException.FileKind"/> says what it is.
    /// </summary>
    public static DiskLayer OpenLayer(string path, FileAccess access, DiskFormat? format = null) => OpenLayerWith(path, access, format, null);

    /// <summary>As <see cref="OpenLayer(string, FileAccess, DiskFormat?)"/>, the layer read as <paramref name="options"/> ask (bad checksums accepted).</summary>
    internal static DiskLayer OpenLayerWith(string path, FileAccess access, DiskFormat? format, DiskOpenOptions? options)
    {
        if (access == FileAccess.Write)
            access = FileAccess.ReadWrite;
        string full = System.IO.Path.GetFullPath(path);
        if (access != FileAccess.Read && ReadOnlyFile.IsMarked(full))
        {
            // A file that is not a disk is reported as such before its read-only mark.
            if (format is null)
                DetectFormat(full);
            ReadOnlyFile.RefuseWrite(full);
        }
        // One open serves recognising the format and the layer itself.
        FileAccessor file = FileAccessor.Open(full, access);
        DiskFormatInfo row;
        try
        {
            DiskFormat actual;
            if (format is DiskFormat known)
            {
                actual = known;
            }
            else
            {
                byte[] head = new byte[DiskFormats.HeadLength];
                int n = (int)Math.Min(head.Length, file.Length);
                file.ReadOrZero(0, head, 0, n);
                actual = DetectFormat(full, head, n, file.Length, ReadTail(file));
            }
            row = DiskFormats.Get(actual, full);
        }
        catch
        {
            file.Dispose();
            throw;
        }
        return row.OpenLayer(file, options);
    }

    /// <summary>
    /// Creates an empty dynamic disk of <paramref name="virtualSize"/> bytes (a fixed one when
    /// <see cref="DiskCreateOptions.Fixed"/> says so) and opens it for writing. Fails if the file exists.
    /// </summary>
    public static VirtualDisk CreateDynamic(string path, long virtualSize, DiskCreateOptions? options = null)
    {
        options ??= new DiskCreateOptions();
        string full = System.IO.Path.GetFullPath(path);
        DiskFormat format = options.Format ?? FormatFromExtension(full) ?? DiskFormat.Vhdx;
        var spec = new LayerCreateSpec(full, virtualSize)
        {
            BlockSize = options.BlockSizeBytes,
            ExtendedL2 = options.Qcow2ExtendedL2,
            LogicalSectorSize = options.LogicalSectorSizeBytes ?? 512,
            PhysicalSectorSize = options.PhysicalSectorSizeBytes ?? 4096,
            Fixed = options.Fixed,
            ReserveSpace = options.Fixed && options.ReserveSpace,
        };
        if (spec.Fixed && !DiskFormats.Get(format, full).CanBeFixed)
            throw new VirtualDiskException(full, $"Cannot create '{full}' as a fixed disk: {format} has no fixed form.");
        CreateLayer(format, spec);
        return Open(full, FileAccess.ReadWrite, new DiskOpenOptions { Format = format });
    }

    /// <summary>
    /// Creates a differencing disk over <paramref name="parentPath"/> (whose chain must open
    /// cleanly) and opens it for writing. Creating a child copies no data: only metadata is written.
    /// </summary>
    /// <param name="path">The new child's file; it must not exist.</param>
    /// <param name="parentPath">The parent's file; its chain is opened read-only.</param>
    /// <param name="options">The child's format, block and sector sizes.</param>
    /// <param name="openOptions">
    /// How the parent and its chain are held: with <see cref="DiskOpenOptions.AllowedParentRoot"/>
    /// the parent itself and every layer below it must really lie inside that folder (links
    /// resolved), else <see cref="DiskChainException"/> (<see cref="ChainProblem.OutsideAllowedRoot"/>)
    /// and nothing is created; <see cref="DiskOpenOptions.MaxChainDepth"/> counts the new child;
    /// <see cref="DiskOpenOptions.IgnoreParentIdentityMismatch"/> applies to the parent's chain.
    /// Format and ParentPathOverride do not apply (the child's format is <paramref name="options"/>'s).
    /// </param>
    public static VirtualDisk CreateDifferencing(string path, string parentPath, DiskCreateOptions? options = null, DiskOpenOptions? openOptions = null)
    {
        string full = System.IO.Path.GetFullPath(path);
        string parentFull = System.IO.Path.GetFullPath(parentPath);
        ParentResolver.RefuseOutsideRoot(full, parentFull, openOptions);
        // The parent chain is opened once: it must open cleanly (identity, size and sector size
        // come from it), and the new child is then linked to those same open layers instead of
        // being resolved and the whole chain opened a second time.
        VirtualDisk parent = Open(parentFull, FileAccess.Read, ForParentChain(openOptions));
        DiskLayer? child = null;
        try
        {
            CreateChildLayer(full, parent, options, openOptions);
            child = OpenLayer(full, FileAccess.ReadWrite, FormatFromExtension(full) is null ? options?.Format : null);
            // What opening the child by its recorded paths would check: it names this parent's identity.
            ParentResolver.Adopt(child, parent.Top);
            var layers = new List<DiskLayer>(parent.Layers.Count + 1) { child };
            layers.AddRange(parent.Layers);
            // The parent's layers now belong to the new disk; the parent object holds nothing else.
            return new VirtualDisk(layers);
        }
        catch
        {
            child?.Dispose();
            parent.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Creates a differencing disk over an already open chain and leaves it closed: for many
    /// children of one parent (a fleet of clones), which then costs neither opening the parent
    /// again nor opening each child after writing it. The parent stays open and owned by the
    /// caller; it is only read, so several threads may create children of it at once.
    /// </summary>
    /// <param name="path">The new child's file; it must not exist.</param>
    /// <param name="parent">The parent chain, open.</param>
    /// <param name="options">The child's format, block and sector sizes.</param>
    /// <param name="openOptions">
    /// With <see cref="DiskOpenOptions.AllowedParentRoot"/> every layer of <paramref name="parent"/>
    /// must really lie inside that folder (links resolved), else <see cref="DiskChainException"/>
    /// (<see cref="ChainProblem.OutsideAllowedRoot"/>) and nothing is created, however the chain
    /// was opened; <see cref="DiskOpenOptions.MaxChainDepth"/> counts the new child.
    /// </param>
    public static void CreateDifferencingFile(string path, VirtualDisk parent, DiskCreateOptions? options = null, DiskOpenOptions? openOptions = null)
    {
        if (parent is null)
            throw new ArgumentNullException(nameof(parent));
        string full = System.IO.Path.GetFullPath(path);
        parent.RefuseOutsideRoot(full, openOptions);
        CreateChildLayer(full, parent, options, openOptions);
    }

    /// <summary>
    /// Makes the existing disk file at <paramref name="path"/> a new, empty differencing disk of
    /// <paramref name="parent"/> in place: what <see cref="CreateDifferencingFile"/> would write
    /// as a new file, written into the old one, whose content is gone. No file is created or
    /// freed, which on a busy file system costs far less than a new file renamed over the old one
    /// (the old file's blocks are reused or punched out, not released with the file).
    /// Returns false, having changed nothing, where this cannot be done in place: on systems that
    /// cannot punch holes (all but Linux), for a link or anything but a plain file, for a file
    /// with other hard links, for one that cannot be opened for writing, and for a file that is
    /// not a one-file disk of the child's format (VHDX, or a VMDK sparse extent). The caller
    /// then creates a new file instead.
    /// </summary>
    /// <remarks>
    /// Not atomic: cut off, the file is neither the old disk nor the new one. A caller that must
    /// survive that records its intent first and does this again (VmStore's journal does).
    /// </remarks>
    /// <param name="path">The existing file to rewrite as the new child.</param>
    /// <param name="parent">The parent chain, open.</param>
    /// <param name="options">The child's format, block and sector sizes.</param>
    /// <param name="openOptions">
    /// As for <see cref="CreateDifferencingFile"/>: a parent chain outside
    /// <see cref="DiskOpenOptions.AllowedParentRoot"/> is refused (<see cref="DiskChainException"/>)
    /// before the file is opened, and the file is left as it was.
    /// </param>
    public static bool TryRecreateDifferencingFile(string path, VirtualDisk parent, DiskCreateOptions? options = null, DiskOpenOptions? openOptions = null)
    {
        if (parent is null)
            throw new ArgumentNullException(nameof(parent));
        string full = System.IO.Path.GetFullPath(path);
        parent.RefuseOutsideRoot(full, openOptions);
        if (DiskFormats.Get(ChildFormat(full, parent, options), full).RewriteSignature is not byte[] signature)
            return false;
        if (FileAccessor.OpenToRewrite(full, signature) is not FileAccessor target)
            return false;
        using (target)
            CreateChildLayer(full, parent, options, openOptions, target);
        return true;
    }

    /// <summary>
    /// True when <see cref="TryRecreateDifferencingFile"/> could rewrite the file at
    /// <paramref name="path"/> in place as far as this system and the file's kind go (a plain
    /// file, not hard-linked, on Linux); it may still refuse a file of another format.
    /// </summary>
    public static bool CanRecreateInPlace(string path) => FileAccessor.CanRewrite(path);

    private static DiskFormat ChildFormat(string full, VirtualDisk parent, DiskCreateOptions? options) =>
        options?.Format ?? FormatFromExtension(full) ?? parent.Format;

    /// <summary>
    /// The options a new child's parent chain is opened with: the caller's boundary, depth and
    /// identity rule; not its format or parent override, which are about the child.
    /// </summary>
    private static DiskOpenOptions ForParentChain(DiskOpenOptions? openOptions) =>
        openOptions is null
            ? DiskOpenOptions.Default
            : new DiskOpenOptions
            {
                AllowedParentRoot = openOptions.AllowedParentRoot,
                IgnoreParentIdentityMismatch = openOptions.IgnoreParentIdentityMismatch,
                MaxChainDepth = openOptions.MaxChainDepth,
            };

    /// <summary>Writes a new child file of <paramref name="parent"/> at <paramref name="full"/> (or into <paramref name="target"/>, that file opened to be rewritten).</summary>
    private static void CreateChildLayer(string full, VirtualDisk parent, DiskCreateOptions? options, DiskOpenOptions? openOptions, FileAccessor? target = null)
    {
        if (PathUtil.SamePath(full, parent.Path))
            throw new VirtualDiskException(full, $"A disk cannot be its own parent ('{full}').");
        options ??= new DiskCreateOptions();
        if (options.Fixed)
            throw new DiskChainException(full, ChainProblem.Incompatible,
                $"A differencing disk cannot be fixed ('{full}'): it holds only what differs from its parent. Convert the chain into a fixed disk instead.", parent.Path);
        DiskFormat format = ChildFormat(full, parent, options);
        int maxDepth = (openOptions ?? DiskOpenOptions.Default).MaxChainDepth;
        if (parent.Layers.Count >= maxDepth)
            throw new DiskChainException(full, ChainProblem.TooDeep,
                $"The chain of '{full}' would be deeper than {maxDepth} layers; refusing to create it.");
        if (options.LogicalSectorSizeBytes is int lss && lss != parent.LogicalSectorSize)
            throw new DiskChainException(full, ChainProblem.Incompatible,
                $"A child of '{parent.Path}' must use its logical sector size of {parent.LogicalSectorSize} bytes, not {lss}.", parent.Path);
        string? childDir = System.IO.Path.GetDirectoryName(full);
        var spec = new LayerCreateSpec(full, parent.Capacity)
        {
            BlockSize = options.BlockSizeBytes,
            ExtendedL2 = options.Qcow2ExtendedL2,
            LogicalSectorSize = parent.LogicalSectorSize,
            PhysicalSectorSize = options.PhysicalSectorSizeBytes ?? parent.Top.PhysicalSectorSize,
            Parent = parent.Top,
            ParentAbsolutePath = parent.Path,
            ParentRelativePath = childDir is null ? null : PathUtil.GetRelativePath(childDir, parent.Path),
            Target = target,
        };
        CreateLayer(format, spec);
    }

    /// <summary>
    /// Creates at <paramref name="path"/> (a new file, normally in a staging folder beside the
    /// original) an empty layer shaped like <paramref name="original"/>: same format, kind, size,
    /// block and sector sizes, and the same parent, recorded as seen from
    /// <paramref name="originalPath"/>'s folder, so that the copy, once moved over the original,
    /// finds its parent where the original did. Opened for writing, its parent linked to the
    /// original's open parent. Refused (<see cref="VirtualDiskException"/>) for a layer VmClone
    /// cannot write again in its own format (<see cref="DiskLayer.CopyRefusal"/>).
    /// </summary>
    internal static DiskLayer CreateLayerCopy(string path, DiskLayer original, string originalPath)
    {
        if (original.CopyRefusal is string refusal)
            throw new VirtualDiskException(original.Path, refusal);
        if (original.ParentReference is not null && original.Parent is null)
            throw new VirtualDiskException(original.Path, $"'{original.Path}' was opened without its parent; its copy needs it.");
        string full = System.IO.Path.GetFullPath(path);
        string originalDir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(originalPath)) ?? ".";
        DiskLayer? parent = original.Parent;
        var spec = new LayerCreateSpec(full, original.VirtualSize)
        {
            BlockSize = original.Type == DiskType.Fixed ? null : original.BlockSize,
            ExtendedL2 = original.HasExtendedL2,
            LogicalSectorSize = original.LogicalSectorSize,
            PhysicalSectorSize = original.PhysicalSectorSize,
            Parent = parent,
            ParentAbsolutePath = parent?.Path,
            ParentRelativePath = parent is null ? null : PathUtil.GetRelativePath(originalDir, parent.Path),
        };
        CreateLayer(original.Format, spec);
        DiskLayer copy = OpenLayer(full, FileAccess.ReadWrite, original.Format);
        copy.Parent = parent;
        return copy;
    }

    private static void CreateLayer(DiskFormat format, LayerCreateSpec spec)
    {
        if (spec.VirtualSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(spec), $"The virtual size must be positive, not {spec.VirtualSize}.");
        string? dir = System.IO.Path.GetDirectoryName(spec.Path);
        if (dir is not null && !Directory.Exists(dir))
            throw new VirtualDiskException(spec.Path, $"Cannot create '{spec.Path}': folder '{dir}' does not exist.");
        if (spec.Target is null && File.Exists(spec.Path))
            throw new VirtualDiskException(spec.Path, $"Cannot create '{spec.Path}': the file already exists.");
        DiskFormatInfo row = DiskFormats.Get(format, spec.Path);
        if (spec.ExtendedL2 && format != DiskFormat.Qcow2)
            throw new VirtualDiskException(spec.Path, $"Cannot create '{spec.Path}': extended L2 entries are a qcow2 feature, not one of {row.Name}.");
        if (!row.CanWrite || row.CreateStandalone is not Action<LayerCreateSpec> createStandalone)
            throw new VirtualDiskException(spec.Path, $"Cannot create '{spec.Path}': VmClone reads {row.Name} files but does not write them.");
        if (spec.Parent is null)
        {
            createStandalone(spec);
        }
        else if (row.CreateChild is Action<LayerCreateSpec> createChild)
        {
            createChild(spec);
        }
        else
        {
            string parents = string.Join(" or ", DiskFormats.All.Where(r => r.CanHaveParent).Select(r => r.Name.ToUpperInvariant()));
            throw new DiskChainException(spec.Path, ChainProblem.Incompatible,
                $"A {row.Name.ToLowerInvariant()} image cannot be a differencing disk ('{spec.Path}'); use {parents} for the child.", spec.Parent.Path);
        }
    }

    /// <summary>The format implied by a file name's extension, or null.</summary>
    public static DiskFormat? FormatFromExtension(string path) => DiskFormats.FromExtension(path)?.Format;

    /// <summary>Recognises a disk file by its signature (raw only by extension). Only a regular file is opened (see <see cref="OpenLayer"/>).</summary>
    public static DiskFormat DetectFormat(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        // Sharing writers too: only the signature is read, and only to name the format.
        using FileAccessor file = FileAccessor.Open(full, FileAccess.Read, share: FileShare.ReadWrite | FileShare.Delete);
        byte[] head = new byte[DiskFormats.HeadLength];
        int n = (int)Math.Min(head.Length, file.Length);
        file.ReadOrZero(0, head, 0, n);
        return DetectFormat(full, head, n, file.Length, ReadTail(file));
    }

    /// <summary>The format told by the first <paramref name="n"/> bytes of a file of <paramref name="length"/> bytes (and its end, when a recogniser asks).</summary>
    private static DiskFormat DetectFormat(string full, byte[] head, int n, long length, Func<byte[]?> readTail) =>
        DiskFormats.Recognise(full, head, n, length, readTail);

    /// <summary>Reads the file's last bytes for recognition, on demand.</summary>
    private static Func<byte[]?> ReadTail(FileAccessor file) => () =>
    {
        var tail = new byte[FileHead.TailLength];
        file.ReadOrZero(file.Length - tail.Length, tail, 0, tail.Length);
        return tail;
    };

    /// <summary>
    /// Where each run of [<paramref name="position"/>, +<paramref name="length"/>) comes from in
    /// the chain, adjacent runs from the same source merged. Callers walking a large disk go
    /// window by window to keep the list small.
    /// </summary>
    public IReadOnlyList<ChainExtent> MapExtents(long position, long length)
    {
        if (position < 0 || length < 0 || position > Capacity - length)
            throw new ArgumentOutOfRangeException(nameof(position), $"Range {position}+{length} is outside the {Capacity}-byte disk '{Path}'.");
        var result = new List<ChainExtent>();
        lock (SyncRoot)
        {
            ThrowIfDisposed();
            ChainMapper.Map(Top, 0, position, length, result);
        }
        return result;
    }

    /// <summary>
    /// A VMDK text descriptor starts with a comment ("# Disk DescriptorFile") or, when written by
    /// hand or by some tools, directly with "version=" / "CID=" / "createType=".
    /// </summary>
    internal static bool LooksLikeDescriptor(string head)
    {
        string text = head.TrimStart('\uFEFF', ' ', '\t', '\r', '\n');
        if (text.StartsWith("# Disk DescriptorFile", StringComparison.OrdinalIgnoreCase))
            return true;
        foreach (string key in new[] { "version", "CID", "createType", "encoding" })
        {
            if (text.StartsWith(key, StringComparison.OrdinalIgnoreCase) && text.Substring(key.Length).TrimStart(' ', '\t').StartsWith("=", StringComparison.Ordinal))
                return true;
        }
        return false;
    }

    /// <summary>Flushes the top layer to the device.</summary>
    public void Flush()
    {
        lock (SyncRoot)
            Top.Flush();
    }

    internal void ThrowIfDisposed()
    {
        if (_disposed)
            throw new ObjectDisposedException(nameof(VirtualDisk), $"The disk '{Path}' has been closed.");
    }

    public void Dispose()
    {
        lock (SyncRoot)
        {
            if (_disposed)
                return;
            _disposed = true;
            List<Exception>? errors = null;
            foreach (DiskLayer layer in _layers)
            {
                try
                {
                    layer.Dispose();
                }
                catch (Exception ex)
                {
                    (errors ??= new List<Exception>()).Add(ex);
                }
            }
            if (errors is not null)
                throw errors.Count == 1 ? errors[0] : new AggregateException(errors);
        }
    }

    public override string ToString() => $"{Format} {Type} '{Path}' ({_layers.Count} layer(s))";
}
