using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using VmClone.Disks.Qcow2;
using VmClone.Disks.Raw;
using VmClone.Disks.Vhd;
using VmClone.Disks.Vhdx;
using VmClone.Disks.Vmdk;

namespace VmClone.Disks;

/// <summary>
/// The registry of disk formats: one row per format VmClone reads, and the only place that
/// knows which formats exist. Opening, creating, the in-place rewrite, file names, the store's
/// base formats and the cmdlets' -Format values all ask it; a <see cref="DiskFormat"/> value
/// with no row is refused (<see cref="Get(DiskFormat, string)"/>), never treated as raw.
/// </summary>
/// <remarks>
/// A new format is a folder of its own (its <see cref="DiskLayer"/> and structures) and one
/// row in <see cref="Rows"/>, which must provide: its <see cref="DiskFormat"/> value (a new
/// member of that enum, which its layer's <see cref="DiskLayer.Format"/> returns); its file
/// extensions (the first is what new files get); how its first bytes are recognised; open
/// over an open file; create standalone; create a child over a parent (or none: no parent);
/// the signature an existing file must start with to be rewritten in place as a new child
/// (or none); whether the store may keep a base in it; whether VmClone writes it. The chain
/// contract suite (tests/VmClone.Disks.Tests/Contract, tests/VmClone.Core.Tests/Disks/ChainContractTests)
/// then runs its create, child, random-write, re-point, merge, convert, crash-point and
/// bad-input checks for every writable row that can have a parent; the oracle a format is
/// judged by (qemu-img, libvhdi) is named in that suite's ContractFormats.OracleSha256.
/// Rows are recognised before the formats refused by name below, so a row for a format listed
/// there takes its place (as VHD's row replaced its "conectix" refusal). A recogniser that
/// needs the file's end (a fixed VHD has its footer only there) asks <see cref="FileHead.Tail"/>,
/// read only then.
/// </remarks>
public static class DiskFormats
{
    // Recognition runs down this list in order; a row without a content recogniser (raw) is
    // recognised by its extension only, after every row that has one.
    private static readonly DiskFormatInfo[] Rows =
    {
        new(DiskFormat.Vhdx, new[] { ".vhdx", ".avhdx" },
            recognise: h => StartsWith(h, "vhdxfile"),
            open: VhdxLayer.Open,
            createStandalone: VhdxLayer.Create,
            createChild: VhdxLayer.Create,
            rewriteSignature: LittleEndian(FileIdentifier.Signature, 8),
            canHoldBase: true, canWrite: true),
        new(DiskFormat.Vmdk, new[] { ".vmdk" },
            recognise: h => StartsWith(h, "KDMV")
                // A text descriptor (any extension: VMware names them .vmdk, OVA tools not
                // always). One too large to be one is still recognised, to be refused as that,
                // unread; a raw image by its name stays raw whatever its first bytes say.
                || (VirtualDisk.LooksLikeDescriptor(h.Ascii) && (h.FileLength <= Descriptor.MaxBytes || h.ByExtension?.Format != DiskFormat.Raw)),
            open: VmdkLayer.Open,
            createStandalone: VmdkLayer.Create,
            createChild: VmdkLayer.Create,
            rewriteSignature: LittleEndian(SparseExtentHeader.Magic, 4),
            canHoldBase: true, canWrite: true),
        new(DiskFormat.Vhd, new[] { ".vhd", ".avhd" },
            // A dynamic or differencing VHD starts with its footer copy; a fixed one has its
            // footer only at the end, looked at for a file named .vhd (or with no known name).
            recognise: h => StartsWith(h, "conectix")
                || ((h.ByExtension is null || h.ByExtension.Format == DiskFormat.Vhd) && h.TailStartsWith(VhdFooter.Cookie)),
            open: VhdLayer.Open,
            createStandalone: VhdLayer.Create,
            createChild: VhdLayer.Create,
            rewriteSignature: VhdFooter.Cookie,
            canHoldBase: true, canWrite: true,
            openWith: VhdLayer.Open),
        new(DiskFormat.Qcow2, new[] { ".qcow2" },
            recognise: h => h.StartsWith(Qcow2Layer.Signature),
            // An external data file is refused unless the caller's options allow one beside the
            // image (DiskOpenOptions.AllowExternalDataFile, which the store never sets).
            open: f => Qcow2Layer.Open(f),
            createStandalone: s => Qcow2Layer.Create(s),
            createChild: s => Qcow2Layer.Create(s),
            rewriteSignature: Qcow2Layer.Signature,
            canHoldBase: true, canWrite: true, canBeFixed: false,
            openWith: (f, o) => Qcow2Layer.Open(f, o)),
        new(DiskFormat.Raw, new[] { ".raw", ".img", ".bin", ".dd" },
            recognise: null,
            open: RawLayer.Open,
            createStandalone: RawLayer.Create,
            createChild: null,
            rewriteSignature: null,
            canHoldBase: false, canWrite: true),
    };

    // Formats recognised only to be refused by name, checked after every row's recogniser.
    private static readonly (Func<FileHead, bool> Matches, string Reason)[] Unsupported =
    {
        (h => StartsWith(h, "COWD"), "a VMware ESX 2/3 COWD (vmfsSparse) extent; this format is not supported"),
        (h => h.Count >= 8 && BitConverter.ToUInt64(h.Bytes, 0) == 0xCAFEBABEUL, "a VMware SESparse extent (ESXi snapshot); this format is not supported"),
    };

    /// <summary>How many bytes of a file's start recognition looks at.</summary>
    internal const int HeadLength = 256;

    /// <summary>Every registered format, in recognition order.</summary>
    public static IReadOnlyList<DiskFormatInfo> All => Rows;

    /// <summary>The formats the store may keep a base in (clones are children over it).</summary>
    public static IReadOnlyList<DiskFormatInfo> BaseFormats { get; } = Rows.Where(r => r.CanHoldBase).ToArray();

    /// <summary>The row of <paramref name="format"/>, or null for a value no row registers.</summary>
    public static DiskFormatInfo? Find(DiskFormat format)
    {
        foreach (DiskFormatInfo row in Rows)
        {
            if (row.Format == format)
                return row;
        }
        return null;
    }

    /// <summary>The row of <paramref name="format"/>; a value no row registers is refused, naming <paramref name="path"/>.</summary>
    public static DiskFormatInfo Get(DiskFormat format, string path) =>
        Find(format) ?? throw new VirtualDiskException(path,
            $"'{path}': {format} is not a disk format VmClone knows (it knows {string.Join(", ", Rows.Select(r => r.Name))}).");

    /// <summary>The format whose extensions include <paramref name="path"/>'s (case-insensitive), or null.</summary>
    public static DiskFormatInfo? FromExtension(string path)
    {
        string extension = Path.GetExtension(path);
        if (extension.Length == 0)
            return null;
        foreach (DiskFormatInfo row in Rows)
        {
            foreach (string e in row.Extensions)
            {
                if (string.Equals(e, extension, StringComparison.OrdinalIgnoreCase))
                    return row;
            }
        }
        return null;
    }

    /// <summary>
    /// The format of a file told by its first <paramref name="count"/> bytes (of
    /// <paramref name="fileLength"/>) and its name: a row's signature, else a format refused by
    /// name, else a format recognised by extension only; a file none of these fits is refused.
    /// </summary>
    internal static DiskFormat Recognise(string path, byte[] head, int count, long fileLength, Func<byte[]?>? readTail = null)
    {
        var h = new FileHead(head, count, fileLength, FromExtension(path), readTail);
        foreach (DiskFormatInfo row in Rows)
        {
            if (row.Recognise is not null && row.Recognise(h))
                return NamedAs(path, row, h.ByExtension);
        }
        foreach ((Func<FileHead, bool> matches, string reason) in Unsupported)
        {
            if (matches(h))
                throw new DiskFormatException(path, "signature", reason);
        }
        if (h.ByExtension is DiskFormatInfo named)
        {
            if (named.Recognise is null)
                return named.Format;
            throw new DiskFormatException(path, "signature", $"the file has a .{named.Name.ToLowerInvariant()} name but no {named.Name.ToUpperInvariant()} signature (truncated, encrypted or not a disk)", 0);
        }
        string bySignature = string.Join(" or ", Rows.Where(r => r.Recognise is not null).Select(r => r.Name.ToUpperInvariant()));
        string byName = string.Join(", ", Rows.Where(r => r.Recognise is null).Select(r =>
            $"open {r.Name.ToLowerInvariant()} images with the {r.Name} format (or a {string.Join("/", r.Extensions.Take(2))} extension)"));
        throw new DiskFormatException(path, "signature", $"not a {bySignature} file; {byName}", 0);
    }

    /// <summary>
    /// <paramref name="found"/>, unless the file's extension names another format recognised by
    /// its content: a hypervisor opens a disk by its name (Hyper-V refuses a .vhdx that is not
    /// VHDX), so a VMDK renamed .vhdx (or a VHDX renamed .vmdk) is refused rather than opened by
    /// its content, naming the file, its extension and the format it holds. Raw names (.img, .raw
    /// ...) say no format, and a file without a known extension is judged by its content alone.
    /// </summary>
    private static DiskFormat NamedAs(string path, DiskFormatInfo found, DiskFormatInfo? named)
    {
        if (named is null || named.Recognise is null || named.Format == found.Format)
            return found.Format;
        string extension = System.IO.Path.GetExtension(path);
        throw new DiskFormatException(path, "extension",
            $"the file is named {extension}, the extension of {named.Name.ToUpperInvariant()}, but holds a {found.Name.ToUpperInvariant()} disk; " +
            $"a hypervisor opening it by its name would refuse it. Rename it to {found.DefaultExtension}, or convert it with Convert-VmDisk", 0)
        {
            FormatFound = found.Format,
        };
    }

    private static byte[] LittleEndian(ulong value, int length)
    {
        byte[] bytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        Array.Resize(ref bytes, length);
        return bytes;
    }

    private static bool StartsWith(FileHead head, string signature) =>
        head.Ascii.StartsWith(signature, StringComparison.Ordinal);
}

/// <summary>The first bytes of a file and what its name says, as a format's recogniser sees them.</summary>
internal sealed class FileHead
{
    private string? _ascii;
    private readonly Func<byte[]?>? _readTail;
    private byte[]? _tail;
    private bool _tailRead;

    public FileHead(byte[] bytes, int count, long fileLength, DiskFormatInfo? byExtension, Func<byte[]?>? readTail = null)
    {
        Bytes = bytes;
        Count = count;
        FileLength = fileLength;
        ByExtension = byExtension;
        _readTail = readTail;
    }

    /// <summary>How many bytes of a file's end <see cref="Tail"/> holds (a VHD footer).</summary>
    public const int TailLength = 512;

    /// <summary>
    /// The file's last <see cref="TailLength"/> bytes, read only when a recogniser asks (one more
    /// read, for the few files no signature at the start names); null for a shorter file or when
    /// the caller gave no way to read them.
    /// </summary>
    public byte[]? Tail
    {
        get
        {
            if (!_tailRead)
            {
                _tailRead = true;
                _tail = FileLength >= TailLength ? _readTail?.Invoke() : null;
            }
            return _tail;
        }
    }

    /// <summary>True when the file's last <see cref="TailLength"/> bytes start with <paramref name="signature"/>.</summary>
    public bool TailStartsWith(byte[] signature) =>
        Tail is byte[] tail && tail.Length >= signature.Length && tail.AsSpan(0, signature.Length).SequenceEqual(signature);

    /// <summary>The bytes read; only the first <see cref="Count"/> are the file's.</summary>
    public byte[] Bytes { get; }

    public int Count { get; }

    /// <summary>Length of the whole file.</summary>
    public long FileLength { get; }

    /// <summary>The format the file's extension names, or null.</summary>
    public DiskFormatInfo? ByExtension { get; }

    /// <summary>The bytes read as ASCII (a byte above 0x7F reads as '?': compare binary magic with <see cref="StartsWith(byte[])"/>).</summary>
    public string Ascii => _ascii ??= Encoding.ASCII.GetString(Bytes, 0, Count);

    /// <summary>True when the file starts with <paramref name="signature"/>.</summary>
    public bool StartsWith(params byte[] signature) =>
        Count >= signature.Length && Bytes.AsSpan(0, signature.Length).SequenceEqual(signature);
}

/// <summary>One format's registration in <see cref="DiskFormats"/>: what the rest of VmClone asks about a format.</summary>
public sealed class DiskFormatInfo
{
    internal DiskFormatInfo(DiskFormat format, string[] extensions, Func<FileHead, bool>? recognise,
        Func<FileAccessor, DiskLayer> open, Action<LayerCreateSpec>? createStandalone, Action<LayerCreateSpec>? createChild,
        byte[]? rewriteSignature, bool canHoldBase, bool canWrite, Func<FileAccessor, DiskOpenOptions, DiskLayer>? openWith = null, bool canBeFixed = true)
    {
        CanBeFixed = canBeFixed;
        OpenWith = openWith;
        Format = format;
        Extensions = extensions;
        Recognise = recognise;
        Open = open;
        CreateStandalone = createStandalone;
        CreateChild = createChild;
        RewriteSignature = rewriteSignature;
        CanHoldBase = canHoldBase;
        CanWrite = canWrite;
    }

    /// <summary>The format's value.</summary>
    public DiskFormat Format { get; }

    /// <summary>Its name as the cmdlets and manifests spell it ("Vhdx").</summary>
    public string Name => Format.ToString();

    /// <summary>File extensions with the dot, lower case; the first is the one new files get.</summary>
    public IReadOnlyList<string> Extensions { get; }

    /// <summary>The extension new files of this format get (".vhdx").</summary>
    public string DefaultExtension => Extensions[0];

    /// <summary>True when a file of this format can be a differencing disk (have a parent).</summary>
    public bool CanHaveParent => CreateChild is not null;

    /// <summary>True when the store may keep a base in this format (it can have a parent, so clones can be children over it).</summary>
    public bool CanHoldBase { get; }

    /// <summary>True when VmClone writes files of this format.</summary>
    public bool CanWrite { get; }

    /// <summary>
    /// True when VmClone writes a fixed disk of this format (<see cref="DiskCreateOptions.Fixed"/>):
    /// the whole virtual size laid out in the file. qcow2 has no such form (qemu's preallocation
    /// still keeps its tables and refcounts, and a reader cannot tell it from a sparse image).
    /// </summary>
    public bool CanBeFixed { get; }

    /// <summary>True when an existing file of this format can be rewritten in place as a new child (<see cref="VirtualDisk.TryRecreateDifferencingFile"/>).</summary>
    public bool CanRewriteInPlace => RewriteSignature is not null;

    /// <summary>Whether a file's first bytes are this format's; null: recognised by extension only.</summary>
    internal Func<FileHead, bool>? Recognise { get; }

    /// <summary>Opens a layer over a file already open (writable when it is); disposes it on failure.</summary>
    internal Func<FileAccessor, DiskLayer> Open { get; }

    /// <summary>Opens as <see cref="Open"/> does, honouring the caller's <see cref="DiskOpenOptions"/> (bad checksums accepted); null: <see cref="Open"/> serves.</summary>
    internal Func<FileAccessor, DiskOpenOptions, DiskLayer>? OpenWith { get; }

    /// <summary>Opens a layer over <paramref name="file"/> with <paramref name="options"/> where the format uses them.</summary>
    internal DiskLayer OpenLayer(FileAccessor file, DiskOpenOptions? options) =>
        OpenWith is not null && options is not null ? OpenWith(file, options) : Open(file);

    /// <summary>Writes a new layer without a parent (<see cref="LayerCreateSpec.Parent"/> null); null for a format VmClone only reads.</summary>
    internal Action<LayerCreateSpec>? CreateStandalone { get; }

    /// <summary>Writes a new child over <see cref="LayerCreateSpec.Parent"/>; null when the format has no parent.</summary>
    internal Action<LayerCreateSpec>? CreateChild { get; }

    /// <summary>What an existing file must start with to be rewritten in place as a new child; null: never in place.</summary>
    internal byte[]? RewriteSignature { get; }

    public override string ToString() => Name;
}
