using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Security.Cryptography;

namespace VmClone.Disks.Vmdk;

/// <summary>
/// A VMDK disk (one layer of a chain): a descriptor plus its extents. Two shapes exist:
/// a single hosted sparse file with an embedded descriptor (monolithicSparse,
/// streamOptimized; the extent file name inside is ignored because such files get renamed),
/// or a small text descriptor naming extent files in its folder (twoGbMaxExtentSparse,
/// monolithicFlat, twoGbMaxExtentFlat, vmfs, custom; SPARSE, FLAT/VMFS and ZERO extents).
///
/// Identity is the descriptor's CID (8 lowercase hex digits); a delta disk's parent is found by
/// parentFileNameHint and must carry the CID recorded as parentCID. On the first write after
/// each open the CID is renewed (VMware and qemu do the same), so that children made from
/// the earlier content notice the change.
///
/// Written: monolithicSparse (create, write), twoGbMaxExtentSparse and the flat types (write in
/// place). Read only: streamOptimized and layers with ZERO extents.
/// </summary>
internal sealed class VmdkLayer : DiskLayer
{
    /// <summary>Default grain: 128 sectors (64 KiB), what VMware and qemu use.</summary>
    public const long DefaultGrainBytes = 64 * 1024;

    /// <summary>Sectors qemu reserves for the embedded descriptor; we do the same.</summary>
    private const ulong DefaultDescriptorSectors = 20;

    private readonly string _path;
    private readonly FileAccessor _descriptorFile;
    private readonly bool _embedded;
    private readonly long _descriptorOffset;
    private readonly long _descriptorCapacity;
    private readonly Descriptor _descriptor;
    private readonly List<VmdkExtent> _extents;
    private readonly long _size;
    private readonly bool _canWrite;
    private ParentReference? _parentReference;
    private readonly List<string> _openNotes;
    private bool _cidRenewed;

    private VmdkLayer(string path, FileAccessor descriptorFile, bool embedded, long descriptorOffset, long descriptorCapacity,
        Descriptor descriptor, List<VmdkExtent> extents, bool canWrite, List<string> openNotes)
    {
        _path = path;
        _descriptorFile = descriptorFile;
        _embedded = embedded;
        _descriptorOffset = descriptorOffset;
        _descriptorCapacity = descriptorCapacity;
        _descriptor = descriptor;
        _extents = extents;
        _canWrite = canWrite;
        _openNotes = openNotes;
        foreach (VmdkExtent e in extents)
            _size += e.Length;
        if (descriptor.HasParent)
        {
            var candidates = new List<ParentPathCandidate>();
            string? hint = descriptor.ParentFileNameHint;
            if (!string.IsNullOrEmpty(hint))
                candidates.Add(new ParentPathCandidate(IsAbsoluteHint(hint!) ? ParentPathKind.Absolute : ParentPathKind.Relative, hint!));
            _parentReference = new ParentReference(candidates, FormatCid(descriptor.ParentCid));
        }
    }

    public override string Path => _path;

    public override DiskFormat Format => DiskFormat.Vmdk;

    public override DiskType Type
    {
        get
        {
            if (_descriptor.HasParent)
                return DiskType.Differencing;
            foreach (VmdkExtent e in _extents)
            {
                if (e is SparseExtent)
                    return DiskType.Dynamic;
            }
            return DiskType.Fixed;
        }
    }

    public override long VirtualSize => _size;

    public override int LogicalSectorSize => 512;

    public override long BlockSize
    {
        get
        {
            foreach (VmdkExtent e in _extents)
            {
                if (e is SparseExtent s)
                    return s.Header.GrainBytes;
            }
            return _size;
        }
    }

    public override bool CanWrite => _canWrite;

    public override string Identity => FormatCid(_descriptor.Cid);

    public override ParentReference? ParentReference => _parentReference;

    public override long AllocatedBytes
    {
        get
        {
            long total = 0;
            foreach (VmdkExtent e in _extents)
                total += e.AllocatedBytes;
            return total;
        }
    }

    public override long FileSize => SumOverFiles(f => new FileInfo(f).Length);

    public override long SizeOnDisk => SumOverFiles(SizeOnDiskOf);

    /// <summary>The sum over the descriptor and each extent file, each counted once.</summary>
    private long SumOverFiles(Func<string, long> measure)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        long total = 0;
        if (seen.Add(_path))
            total += measure(_path);
        foreach (VmdkExtent e in _extents)
        {
            if (e.FilePath is string f && seen.Add(f))
                total += measure(f);
        }
        return total;
    }

    public override IReadOnlyDictionary<string, string> Details
    {
        get
        {
            var d = new Dictionary<string, string>
            {
                ["CreateType"] = _descriptor.CreateType,
                ["CID"] = FormatCid(_descriptor.Cid),
                ["ParentCID"] = FormatCid(_descriptor.ParentCid),
                ["DescriptorVersion"] = _descriptor.Value("version") ?? "",
                ["Extents"] = _extents.Count.ToString(CultureInfo.InvariantCulture),
                ["EmbeddedDescriptor"] = _embedded ? "True" : "False",
            };
            if (_descriptor.ParentFileNameHint is string hint)
                d["ParentFileNameHint"] = hint;
            foreach (KeyValuePair<string, string> kv in _descriptor.Ddb)
            {
                if (string.Equals(kv.Key, "ddb.adapterType", StringComparison.OrdinalIgnoreCase))
                    d["AdapterType"] = kv.Value;
                else if (string.Equals(kv.Key, "ddb.virtualHWVersion", StringComparison.OrdinalIgnoreCase))
                    d["VirtualHWVersion"] = kv.Value;
                else if (string.Equals(kv.Key, "ddb.uuid", StringComparison.OrdinalIgnoreCase))
                    d["Uuid"] = kv.Value;
            }
            foreach (VmdkExtent e in _extents)
            {
                if (e is SparseExtent)
                {
                    e.AddDetails(d);
                    break;
                }
            }
            return d;
        }
    }

    internal Descriptor Descriptor => _descriptor;

    private static string FormatCid(uint cid) => cid.ToString("x8", CultureInfo.InvariantCulture);

    private static bool IsAbsoluteHint(string hint) =>
        hint.StartsWith("/", StringComparison.Ordinal) || hint.StartsWith("\\\\", StringComparison.Ordinal) ||
        (hint.Length >= 3 && hint[1] == ':' && (hint[2] == '\\' || hint[2] == '/'));

    // ------------------------------------------------------------------ open

    public static DiskLayer Open(string path, FileAccess access)
    {
        string full = System.IO.Path.GetFullPath(path);
        return Open(FileAccessor.Open(full, access != FileAccess.Read ? FileAccess.ReadWrite : FileAccess.Read));
    }

    /// <summary>Opens a VMDK from its (descriptor or single) file already open; writable when that file is. Disposes it on failure.</summary>
    public static DiskLayer Open(FileAccessor file)
    {
        string full = file.Path;
        bool write = file.CanWrite;
        var opened = new List<IDisposable>();
        try
        {
            long length = file.Length;
            byte[] head = new byte[Math.Min(512, (int)Math.Min(length, 512))];
            file.ReadExactly(0, head, 0, head.Length, "signature");
            if (head.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(head) == SparseExtentHeader.Magic)
                return OpenSingleFile(full, file, write, opened);
            RejectForeignExtent(full, head);
            return OpenDescriptorFile(full, file, write, opened);
        }
        catch
        {
            foreach (IDisposable d in opened)
                d.Dispose();
            file.Dispose();
            throw;
        }
    }

    private static void RejectForeignExtent(string path, byte[] head)
    {
        if (head.Length >= 4 && head[0] == (byte)'C' && head[1] == (byte)'O' && head[2] == (byte)'W' && head[3] == (byte)'D')
            throw new DiskFormatException(path, "signature", "a VMware ESX 2/3 COWD (vmfsSparse) extent; this format is not supported", 0);
        if (head.Length >= 8 && BinaryPrimitives.ReadUInt64LittleEndian(head) == 0xCAFEBABEUL)
            throw new DiskFormatException(path, "signature", "a VMware SESparse extent (ESXi snapshot); this format is not supported", 0);
    }

    /// <summary>A hosted sparse file with its descriptor inside (monolithicSparse, streamOptimized).</summary>
    private static VmdkLayer OpenSingleFile(string path, FileAccessor file, bool write, List<IDisposable> opened)
    {
        long length = file.Length;
        byte[] hb = new byte[SparseExtentHeader.Size];
        file.ReadExactly(0, hb, 0, hb.Length, "sparse extent header");
        SparseExtentHeader header = SparseExtentHeader.Parse(hb, path, 0, length);
        if (header.DescriptorOffset == 0)
            throw new DiskFormatException(path, "sparse extent header",
                "this sparse extent has no embedded descriptor: it is one piece of a split (twoGbMaxExtentSparse) disk; open the disk's descriptor file instead", 0);
        long descOffset = (long)header.DescriptorOffset * 512;
        long descCapacity = (long)header.DescriptorSize * 512;
        int descRead = (int)Math.Min(descCapacity, length - descOffset);
        byte[] text = file.ReadBytes(descOffset, descRead, "embedded descriptor");
        Descriptor descriptor = Descriptor.Parse(text, text.Length, path, descOffset, "embedded descriptor");
        foreach (ExtentLine line in descriptor.Extents)
            RejectUnsupportedType(path, line, descOffset);

        var notes = new List<string>();
        if (descriptor.Extents.Count != 1 || descriptor.TotalSectors != header.Capacity)
            notes.Add($"'{path}': the embedded descriptor describes {descriptor.Extents.Count} extent(s) of {descriptor.TotalSectors} sectors but the sparse header holds {header.Capacity} sectors; the header is used.");

        // The extent's own file name in the descriptor is ignored: single-file images are renamed.
        SparseExtent extent = SparseExtent.Open(file, header, 0, (long)header.Capacity * 512, ownsFile: false);
        opened.Add(extent);
        var extents = new List<VmdkExtent> { extent };
        if (write && extent.ReadOnlyReason is string reason)
            throw new VirtualDiskException(path, $"'{path}' cannot be opened for writing: {reason}.");
        return new VmdkLayer(path, file, embedded: true, descOffset, descCapacity, descriptor, extents, write, notes);
    }

    private static void RejectUnsupportedType(string path, ExtentLine line, long offset)
    {
        switch (line.Type)
        {
            case "SPARSE":
            case "FLAT":
            case "VMFS":
            case "ZERO":
                return;
            case "SESPARSE":
                throw new DiskFormatException(path, "descriptor", "the disk uses a SESparse extent (ESXi snapshot); this format is not supported", offset);
            case "VMFSSPARSE":
                throw new DiskFormatException(path, "descriptor", "the disk uses a VMFSSPARSE (COWD) extent; this format is not supported", offset);
            case "VMFSRDM":
            case "VMFSRAW":
                throw new DiskFormatException(path, "descriptor", $"the disk maps a raw device ({line.Type}); this is not supported", offset);
            default:
                throw new DiskFormatException(path, "descriptor", $"unknown extent type '{line.Type}'", offset);
        }
    }

    /// <summary>A text descriptor naming extent files in its folder.</summary>
    private static VmdkLayer OpenDescriptorFile(string path, FileAccessor file, bool write, List<IDisposable> opened)
    {
        long length = file.Length;
        if (length > Descriptor.MaxBytes)
        {
            byte[] head = new byte[256];
            file.ReadOrZero(0, head, 0, head.Length);
            throw new DiskFormatException(path, "descriptor", VirtualDisk.LooksLikeDescriptor(System.Text.Encoding.ASCII.GetString(head))
                ? $"a text descriptor of {length} bytes, larger than the 1 MiB a descriptor may have; it was not read"
                : $"a {length}-byte file is too large to be a descriptor and has no KDMV signature", 0);
        }
        byte[] text = file.ReadBytes(0, (int)length, "descriptor");
        Descriptor descriptor = Descriptor.Parse(text, text.Length, path, 0);
        foreach (ExtentLine line in descriptor.Extents)
        {
            RejectUnsupportedType(path, line, 0);
            if (line.Access == ExtentAccess.NoAccess)
                throw new DiskFormatException(path, "descriptor", $"extent '{line.FileName}' is marked NOACCESS; such disks cannot be read", 0);
            if (write && line.Type != "ZERO" && line.Access == ExtentAccess.ReadOnly)
                throw new VirtualDiskException(path, $"'{path}' cannot be opened for writing: its extent '{line.FileName}' is marked RDONLY.");
        }
        // Every extent's path is judged before any is opened: a descriptor that names a file
        // twice, or one outside its folder, costs no open at all.
        var files = new ExtentFiles(path, file.Identity);
        var paths = new List<string?>(descriptor.Extents.Count);
        foreach (ExtentLine line in descriptor.Extents)
            paths.Add(line.Type == "ZERO" ? null : files.Resolve(line.FileName!));

        var extents = new List<VmdkExtent>();
        long start = 0;
        FileAccess access = write ? FileAccess.ReadWrite : FileAccess.Read;
        for (int i = 0; i < descriptor.Extents.Count; i++)
        {
            ExtentLine line = descriptor.Extents[i];
            long size = (long)line.Sectors * 512;
            if (paths[i] is not string extentPath)
            {
                extents.Add(new ZeroExtent(start, size));
                start += size;
                continue;
            }
            FileAccessor ef = files.Open(line.FileName!, extentPath, access);
            opened.Add(ef);
            if (line.Type == "SPARSE")
            {
                byte[] hb = new byte[Math.Min(SparseExtentHeader.Size, (int)Math.Min(ef.Length, SparseExtentHeader.Size))];
                ef.ReadExactly(0, hb, 0, hb.Length, "sparse extent header");
                RejectForeignExtent(extentPath, hb);
                SparseExtentHeader header = SparseExtentHeader.Parse(hb, extentPath, 0, ef.Length);
                SparseExtent extent = SparseExtent.Open(ef, header, start, size, ownsFile: true);
                opened.Remove(ef);
                opened.Add(extent);
                if (write && extent.ReadOnlyReason is string reason)
                    throw new VirtualDiskException(path, $"'{path}' cannot be opened for writing: extent '{extentPath}' {reason}.");
                extents.Add(extent);
            }
            else
            {
                var extent = new FlatExtent(ef, start, size, (long)line.Offset * 512, ownsFile: true);
                opened.Remove(ef);
                opened.Add(extent);
                extents.Add(extent);
            }
            start += size;
        }
        if (write)
        {
            foreach (VmdkExtent e in extents)
            {
                if (e.ReadOnlyReason is string reason)
                    throw new VirtualDiskException(path, $"'{path}' cannot be opened for writing: {reason}.");
            }
        }
        return new VmdkLayer(path, file, embedded: false, 0, Descriptor.MaxBytes, descriptor, extents, write, new List<string>());
    }

    /// <summary>
    /// The extent files of one text descriptor, which whoever wrote it may have made hostile. An
    /// extent is a regular file of its own in the descriptor's folder: its name may not be
    /// absolute, lead out through '..', name the folder itself, lead through a linked folder to
    /// anywhere outside (judged by real paths, see <see cref="Containment"/>), be a symbolic
    /// link itself, or name a file another extent (or the descriptor) already is, by any name.
    /// Every refusal is a <see cref="DiskFormatException"/> on the descriptor naming the extent.
    /// </summary>
    private sealed class ExtentFiles
    {
        private readonly string _descriptor;
        private readonly string _folder;
        private readonly FileIdentity? _descriptorIdentity;
        private readonly HashSet<string> _paths = new(PathUtil.Comparer);
        private readonly Dictionary<FileIdentity, string> _identities = new();
        private Containment? _containment;

        public ExtentFiles(string descriptor, FileIdentity? descriptorIdentity)
        {
            _descriptor = descriptor;
            _folder = System.IO.Path.GetDirectoryName(descriptor) ?? ".";
            _descriptorIdentity = descriptorIdentity;
        }

        private DiskFormatException Refuse(string reason, FileKind? kind = null, Exception? inner = null) =>
            new(_descriptor, "descriptor", reason, null, inner) { FileKind = kind };

        /// <summary>The full path of extent file <paramref name="name"/>, once it is judged to lie where it may.</summary>
        public string Resolve(string name)
        {
            string local = name.Replace('\\', '/');
            if (System.IO.Path.DirectorySeparatorChar == '\\')
                local = local.Replace('/', '\\');
            if (local.IndexOf('\0') >= 0 || System.IO.Path.IsPathRooted(local) || (name.Length >= 2 && name[1] == ':'))
                throw Refuse($"extent file '{name}' is an absolute path; only files beside the descriptor are opened");
            string full = System.IO.Path.GetFullPath(System.IO.Path.Combine(_folder, local));
            if (PathUtil.SamePath(full, _folder))
                throw Refuse($"extent file '{name}' names the descriptor's folder itself, not a file");
            if (!PathUtil.IsUnder(full, _folder))
                throw Refuse($"extent file '{name}' lies outside the descriptor's folder");
            if (PathUtil.SamePath(full, _descriptor))
                throw Refuse($"extent file '{name}' is the descriptor file itself");
            if (!_paths.Add(full))
                throw Refuse($"extent file '{name}' is named twice; each extent of a disk is a file of its own");
            // A name in a subfolder: that folder, links resolved, must still be inside. (The
            // descriptor's folder is where extents are looked for however it is reached.)
            string dir = System.IO.Path.GetDirectoryName(full) ?? _folder;
            if (!PathUtil.SamePath(dir, _folder))
            {
                _containment ??= new Containment(_folder);
                if (_containment.Judge(dir, out string? real) != ContainmentVerdict.Inside)
                    throw Refuse($"extent file '{name}' lies in a linked folder leading to '{real ?? "a link loop"}', outside the descriptor's folder '{_containment.RealRoot ?? _folder}'");
            }
            return full;
        }

        /// <summary>Opens the extent at <paramref name="full"/> (resolved by <see cref="Resolve"/>): a regular file, not a link, not one already open under another name.</summary>
        public FileAccessor Open(string name, string full, FileAccess access)
        {
            FileAccessor file;
            try
            {
                file = FileAccessor.Open(full, access, refuseLink: true);
            }
            catch (DiskFormatException ex) when (ex.FileKind is FileKind kind && PathUtil.SamePath(ex.Path, full))
            {
                throw Refuse(kind == FileKind.SymbolicLink
                    ? $"extent file '{name}' {ex.Reason}: an extent must be a regular file in the descriptor's folder"
                    : $"extent file '{name}' {ex.Reason}", kind, ex);
            }
            if (file.Identity is FileIdentity id)
            {
                string? reason = id.Equals(_descriptorIdentity) ? $"extent file '{name}' is the descriptor file itself (another name of it)"
                    : _identities.TryGetValue(id, out string? other) ? $"extent file '{name}' is the same file as extent '{other}'"
                    : null;
                if (reason is not null)
                {
                    file.Dispose();
                    throw Refuse(reason);
                }
                _identities[id] = name;
            }
            return file;
        }
    }

    // ------------------------------------------------------------------ create

    public static void Create(LayerCreateSpec spec)
    {
        uint parentCid = Descriptor.NoParentCid;
        string? hint = null;
        long capacityBytes = spec.VirtualSize;
        if (spec.Parent is not null)
        {
            if (spec.Parent is not VmdkLayer parent)
                throw new DiskChainException(spec.Path, ChainProblem.Incompatible,
                    $"A VMDK child can only be created over a VMDK parent; '{spec.Parent.Path}' is {spec.Parent.Format}. " +
                    "Create the child in the parent's format, or convert the parent to VMDK first.", spec.Parent.Path);
            parentCid = parent._descriptor.Cid;
            capacityBytes = parent.VirtualSize;
            hint = spec.ParentRelativePath ?? spec.ParentAbsolutePath?.Replace('\\', '/');
            if (hint is null)
                throw new DiskChainException(spec.Path, ChainProblem.Incompatible, $"No path to the parent '{parent.Path}' can be recorded in '{spec.Path}'.", parent.Path);
            if (hint.IndexOf('"') >= 0 || hint.IndexOf('\n') >= 0 || hint.IndexOf('\r') >= 0)
                throw new DiskChainException(spec.Path, ChainProblem.Incompatible, $"The parent path '{hint}' contains a quote or line break, which a VMDK descriptor cannot hold.", parent.Path);
        }
        if (spec.LogicalSectorSize != 512)
            throw new ArgumentOutOfRangeException(nameof(spec), $"VMDK disks have 512-byte sectors; {spec.LogicalSectorSize} was asked for ('{spec.Path}').");
        if (capacityBytes <= 0 || capacityBytes % 512 != 0)
            throw new ArgumentOutOfRangeException(nameof(spec), $"A VMDK disk's size must be a positive multiple of 512 bytes, not {capacityBytes} ('{spec.Path}').");
        ulong capacity = (ulong)capacityBytes / 512;
        if (capacity > SparseExtentHeader.MaxCapacitySectors)
            throw new ArgumentOutOfRangeException(nameof(spec), $"A VMDK disk can hold at most 64 TiB, not {capacityBytes} bytes ('{spec.Path}').");
        if (spec.Fixed && spec.Parent is null)
        {
            CreateFlat(spec, capacity);
            return;
        }
        long grainBytes = spec.BlockSize ?? DefaultGrainBytes;
        ulong grain = (ulong)grainBytes / 512;
        if (grainBytes % 512 != 0 || grain <= 8 || grain > SparseExtentHeader.MaxGrainSectors || (grain & (grain - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(spec), $"A VMDK grain must be a power of two from 8 KiB to 1 MiB, not {grainBytes} bytes ('{spec.Path}').");

        uint cid = NewCid(null);
        string fileName = System.IO.Path.GetFileName(spec.Path);
        string text = Descriptor.CreateMonolithicSparse(cid, parentCid, hint, capacity, fileName.Replace("\"", "_"));
        byte[] textBytes = new System.Text.UTF8Encoding(false).GetBytes(text);

        // Layout as qemu writes it: header, descriptor at sector 1, redundant GD and its tables,
        // GD and its tables (all tables pre-allocated, so other tools can write the file too),
        // overHead rounded up to the grain. The table area stays a hole in the file until used.
        var header = new SparseExtentHeader
        {
            Version = 1,
            Flags = SparseExtentHeader.FlagValidNewlineTest | SparseExtentHeader.FlagRedundantGd,
            Capacity = capacity,
            GrainSize = grain,
            NumGTEsPerGT = 512,
            DescriptorOffset = 1,
            DescriptorSize = Math.Max(DefaultDescriptorSectors, ((ulong)textBytes.Length + 511) / 512),
            CompressAlgorithm = SparseExtentHeader.CompressionNone,
        };
        ulong gdEntries = header.NumGdEntries;
        ulong gdSectors = (gdEntries * 4 + 511) / 512;
        ulong gtSectors = (ulong)header.GtBytes / 512;
        header.RgdOffset = header.DescriptorOffset + header.DescriptorSize;
        ulong rgtStart = header.RgdOffset + gdSectors;
        header.GdOffset = rgtStart + gdEntries * gtSectors;
        ulong gtStart = header.GdOffset + gdSectors;
        ulong end = gtStart + gdEntries * gtSectors;
        header.OverHead = (end + grain - 1) / grain * grain;
        if (header.OverHead > uint.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(spec), $"The grain tables of a {capacityBytes}-byte VMDK with {grainBytes}-byte grains do not fit in a sparse extent ('{spec.Path}').");

        FileAccessor file = spec.OpenFile();
        try
        {
            file.SetLength((long)header.OverHead * 512);
            file.Write(0, header.ToBytes(), 0, SparseExtentHeader.Size);
            byte[] desc = new byte[header.DescriptorSize * 512];
            Buffer.BlockCopy(textBytes, 0, desc, 0, textBytes.Length);
            file.Write((long)header.DescriptorOffset * 512, desc, 0, desc.Length);
            var rgd = new uint[gdEntries];
            var gd = new uint[gdEntries];
            for (ulong i = 0; i < gdEntries; i++)
            {
                rgd[i] = (uint)(rgtStart + i * gtSectors);
                gd[i] = (uint)(gtStart + i * gtSectors);
            }
            file.Write((long)header.RgdOffset * 512, GrainTable.ToBytes(rgd, 0, rgd.Length), 0, rgd.Length * 4);
            file.Write((long)header.GdOffset * 512, GrainTable.ToBytes(gd, 0, gd.Length), 0, gd.Length * 4);
            file.Flush();
            file.Dispose();
        }
        catch
        {
            spec.Abandon(file);
            throw;
        }
    }

    /// <summary>The extent file of a monolithicFlat disk, named as VMware names it: "disk.vmdk" keeps its data in "disk-flat.vmdk".</summary>
    public static string FlatExtentPath(string descriptorPath) =>
        System.IO.Path.Combine(System.IO.Path.GetDirectoryName(descriptorPath) ?? ".", System.IO.Path.GetFileNameWithoutExtension(descriptorPath) + "-flat.vmdk");

    /// <summary>
    /// A monolithicFlat VMDK, what VMware's preallocated ("thick") disk and qemu-img's
    /// subformat=monolithicFlat are: a text descriptor at the path naming one FLAT extent, the
    /// "-flat.vmdk" file beside it holding the disk's bytes from offset 0. The extent is
    /// written first, so a descriptor never names a file that is not there; a failure removes both.
    /// </summary>
    private static void CreateFlat(LayerCreateSpec spec, ulong capacity)
    {
        string extentPath = FlatExtentPath(spec.Path);
        string extentName = System.IO.Path.GetFileName(extentPath);
        if (extentName.IndexOf('"') >= 0)
            throw new ArgumentOutOfRangeException(nameof(spec), $"The extent name '{extentName}' contains a quote, which a VMDK descriptor cannot hold ('{spec.Path}').");
        if (File.Exists(extentPath))
            throw new VirtualDiskException(spec.Path, $"Cannot create '{spec.Path}': its extent file '{extentPath}' already exists.");
        string text = Descriptor.CreateMonolithicFlat(NewCid(null), capacity, extentName);
        byte[] textBytes = new System.Text.UTF8Encoding(false).GetBytes(text);
        FileAccessor extent = FileAccessor.CreateNew(extentPath);
        try
        {
            long length = (long)capacity * 512;
            extent.SetLength(length);
            if (spec.ReserveSpace)
                extent.Reserve(length);
            extent.Flush();
        }
        catch
        {
            extent.Dispose();
            TryDelete(extentPath);
            throw;
        }
        extent.Dispose();
        FileAccessor file;
        try
        {
            file = spec.OpenFile();
        }
        catch
        {
            TryDelete(extentPath);
            throw;
        }
        try
        {
            file.Write(0, textBytes, 0, textBytes.Length);
            file.SetLength(textBytes.Length);
            file.Flush();
            file.Dispose();
        }
        catch
        {
            spec.Abandon(file);
            TryDelete(extentPath);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>A random CID: never ffffffff/fffffffe (they mean "no parent"/"unset") and never the old one.</summary>
    private static uint NewCid(uint? old)
    {
        byte[] b = new byte[4];
        using var rng = RandomNumberGenerator.Create();
        while (true)
        {
            rng.GetBytes(b);
            uint v = BinaryPrimitives.ReadUInt32LittleEndian(b);
            if (v != 0xFFFFFFFF && v != 0xFFFFFFFE && v != old)
                return v;
        }
    }

    // ------------------------------------------------------------------ content

    private VmdkExtent ExtentAt(long position, out int index)
    {
        // Extents are few (one per 2 GiB at most); binary search keeps it cheap anyway.
        int lo = 0, hi = _extents.Count - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (_extents[mid].Start <= position)
                lo = mid;
            else
                hi = mid - 1;
        }
        index = lo;
        return _extents[lo];
    }

    public override LayerExtent GetExtent(long position, long maxLength)
    {
        CheckRange(position, Math.Min(maxLength, VirtualSize - position));
        VmdkExtent e = ExtentAt(position, out _);
        long limit = Math.Min(maxLength, e.Start + e.Length - position);
        return e.GetExtent(position - e.Start, limit);
    }

    public override DataLocation? LocateData(long position, long maxLength)
    {
        CheckRange(position, Math.Min(maxLength, VirtualSize - position));
        VmdkExtent e = ExtentAt(position, out _);
        return e.LocateData(position - e.Start, Math.Min(maxLength, e.Start + e.Length - position));
    }

    public override void ReadData(long position, byte[] buffer, int offset, int count)
    {
        CheckRange(position, count);
        while (count > 0)
        {
            VmdkExtent e = ExtentAt(position, out _);
            int n = (int)Math.Min(count, e.Start + e.Length - position);
            e.ReadData(position - e.Start, buffer, offset, n);
            position += n;
            offset += n;
            count -= n;
        }
    }

    public override void Write(long position, byte[] buffer, int offset, int count)
    {
        EnsureWritable();
        CheckRange(position, count);
        if (count == 0)
            return;
        // Every table the write looks up is checked before the CID (or anything) changes.
        for (long at = position, left = count; left > 0;)
        {
            VmdkExtent e = ExtentAt(at, out _);
            long n = Math.Min(left, e.Start + e.Length - at);
            e.PrepareWrite(at - e.Start, n);
            at += n;
            left -= n;
        }
        RenewCid();
        while (count > 0)
        {
            VmdkExtent e = ExtentAt(position, out _);
            int n = (int)Math.Min(count, e.Start + e.Length - position);
            e.Write(position - e.Start, buffer, offset, n, ReadBelow);
            position += n;
            offset += n;
            count -= n;
        }
        if (!Batching)
            CommitBatch();
    }

    /// <summary>
    /// First write after open: a new CID goes into the descriptor (in place, same length, within
    /// the sectors reserved for it) and is flushed before any content changes, so a crash can
    /// never leave changed content under the old CID that children still trust.
    /// </summary>
    private void RenewCid()
    {
        if (_cidRenewed)
            return;
        uint old = _descriptor.Cid;
        _descriptor.SetCid(NewCid(old));
        try
        {
            WriteDescriptor("a new CID");
        }
        catch (VirtualDiskException)
        {
            _descriptor.SetCid(old);
            throw;
        }
        _cidRenewed = true;
    }

    internal override void AdoptIdentity(DiskLayer original)
    {
        EnsureWritable();
        if (original is not VmdkLayer from)
            throw new ArgumentException($"'{original.Path}' is not a VMDK disk.", nameof(original));
        CommitBatch();
        Flush();
        uint old = _descriptor.Cid;
        _descriptor.SetCid(from._descriptor.Cid);
        try
        {
            WriteDescriptor("the original's CID");
        }
        catch (VirtualDiskException)
        {
            _descriptor.SetCid(old);
            throw;
        }
        _cidRenewed = true;
    }

    internal override string? CopyRefusal =>
        Type != DiskType.Fixed && (_extents.Count != 1 || _extents[0] is not SparseExtent || !_descriptor.CreateType.Equals("monolithicSparse", StringComparison.OrdinalIgnoreCase))
            ? $"VMDK disk '{_path}' is {_descriptor.CreateType} with {_extents.Count} extent(s); VmClone writes monolithicSparse VMDKs only (convert it first)."
            : null;

    /// <summary>
    /// Writes the descriptor text back (in place, within its reserved sectors for an embedded
    /// one) and flushes. A descriptor is small and written by one call; there is no journal in
    /// hosted sparse files, which is also how VMware and qemu update it.
    /// </summary>
    private void WriteDescriptor(string why)
    {
        byte[] bytes = _descriptor.ToBytes();
        if (bytes.Length > _descriptorCapacity)
            throw new VirtualDiskException(_path, $"'{_path}' cannot be written: its descriptor has no room for {why}.");
        if (_embedded)
        {
            // Rewrite the whole reserved area: the text followed by NUL padding.
            byte[] area = new byte[Math.Min(_descriptorCapacity, Math.Max(bytes.Length, _descriptorFile.Length - _descriptorOffset))];
            Buffer.BlockCopy(bytes, 0, area, 0, bytes.Length);
            _descriptorFile.Write(_descriptorOffset, area, 0, area.Length);
        }
        else
        {
            _descriptorFile.Write(0, bytes, 0, bytes.Length);
            if (_descriptorFile.Length != bytes.Length)
                _descriptorFile.SetLength(bytes.Length);
        }
        _descriptorFile.Flush();
    }

    /// <summary>
    /// Re-points this delta disk: parentCID becomes the new parent's CID and parentFileNameHint
    /// its path relative to this file's folder (absolute when there is no relative path). Only
    /// a VMDK can be a VMDK's parent.
    /// </summary>
    public override void SetParent(ParentLink link)
    {
        EnsureWritable();
        if (!_descriptor.HasParent)
            throw new VirtualDiskException(_path, $"'{_path}' is not a delta disk; it has no parent to change.");
        // Everything written so far is reachable and durable before the link changes.
        CommitBatch();
        if (link.Parent is not VmdkLayer parent)
            throw new DiskChainException(_path, ChainProblem.Incompatible,
                $"A VMDK delta disk can only have a VMDK parent; '{link.AbsolutePath}' is {link.Parent.Format}.", link.AbsolutePath);
        uint oldCid = _descriptor.ParentCid;
        string oldHint = _descriptor.ParentFileNameHint ?? "";
        string hint = link.RelativePath ?? link.AbsolutePath;
        _descriptor.SetParent(parent._descriptor.Cid, hint);
        try
        {
            WriteDescriptor("the new parent's path");
        }
        catch (VirtualDiskException)
        {
            _descriptor.SetParent(oldCid, oldHint);
            throw;
        }
        var candidates = new List<ParentPathCandidate> { new(IsAbsoluteHint(hint) ? ParentPathKind.Absolute : ParentPathKind.Relative, hint) };
        _parentReference = new ParentReference(candidates, FormatCid(parent._descriptor.Cid));
    }

    internal override long MaxResizeSize => (long)SparseExtentHeader.MaxCapacitySectors * 512;

    /// <summary>
    /// A disk of one extent (monolithicSparse, a descriptor with one sparse or flat extent) takes
    /// a new size: the extent first (a sparse header's capacity and grain directories, a flat
    /// file's length), then the descriptor's extent line and geometry. Growing keeps the CID;
    /// shrinking renews it first, so a larger child of the old content no longer links to it.
    /// </summary>
    internal override void ResizeInPlace(long newSize)
    {
        EnsureWritable();
        CommitBatch();
        if (_extents.Count != 1 || _extents[0] is not (SparseExtent or FlatExtent))
            throw new DiskResizeException(_path, ResizeProblem.Unsupported,
                $"VMDK disk '{_path}' ({_descriptor.CreateType}) has {_extents.Count} extents; VmClone resizes VMDKs of one sparse or flat extent (convert it to monolithicSparse first).");
        ulong sectors = (ulong)newSize / 512;
        bool shrink = newSize < _size;
        if (shrink)
            RenewCid();
        if (_extents[0] is SparseExtent sparse)
        {
            sparse.Resize(sectors);
        }
        else if (!shrink)
        {
            ((FlatExtent)_extents[0]).Resize(newSize);
        }
        _descriptor.SetSingleExtentSectors(sectors);
        WriteDescriptor("the new size");
        if (shrink && _extents[0] is FlatExtent flat)
            flat.Resize(newSize);
    }

    public override void Flush()
    {
        if (!_canWrite)
            return;
        foreach (VmdkExtent e in _extents)
            e.Flush();
        _descriptorFile.Flush();
    }

    protected override void CommitBatch()
    {
        foreach (VmdkExtent e in _extents)
            e.CommitDeferred();
    }

    public override IReadOnlyList<string> Check()
    {
        var problems = new List<string>(_openNotes);
        foreach (VmdkExtent e in _extents)
        {
            try
            {
                e.Check(problems);
            }
            catch (DiskFormatException ex)
            {
                problems.Add($"'{ex.Path}': {ex.Structure}: {ex.Reason}.");
            }
        }
        return problems;
    }

    protected override void Dispose(bool disposing)
    {
        if (!disposing)
            return;
        List<Exception>? errors = null;
        foreach (VmdkExtent e in _extents)
        {
            try
            {
                e.Dispose();
            }
            catch (Exception ex)
            {
                (errors ??= new List<Exception>()).Add(ex);
            }
        }
        _descriptorFile.Dispose();
        if (errors is not null)
            throw errors.Count == 1 ? errors[0] : new AggregateException(errors);
    }
}
