using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace VmClone.Disks.Qcow2;

/// <summary>
/// A qcow2 image (qemu's copy-on-write format, versions 2 and 3; docs/interop/qcow2.rst) as one
/// layer of a chain: cluster sizes 512 B to 2 MiB, refcounts of 1 to 64 bits, the zero flag,
/// deflate and zstd compressed clusters, extended L2 entries with subclusters, the active layer
/// of an image with internal snapshots, and a backing file of any format the engine reads.
///
/// Refused on open, naming the feature (by the image's feature-name table where it has one):
/// encryption (AES, LUKS), incompatible feature bits this reader does not know, and an external
/// data file unless the caller allows it and it lies beside the image
/// (<see cref="DiskOpenOptions.AllowExternalDataFile"/>).
///
/// qcow2 records nothing about its backing file's content, so the parent reference carries no
/// identity (any parent at the stored path is accepted), and this layer's own
/// <see cref="Identity"/> is its size and last write time, as for raw files.
///
/// Written: images without internal snapshots, bitmaps or external data, never marked corrupt
/// or dirty (see Qcow2Layer.Write.cs for the order that keeps a cut-off write to leaks).
/// </summary>
public sealed partial class Qcow2Layer : DiskLayer
{
    private readonly FileAccessor _file;
    private readonly FileAccessor? _dataFile;
    private readonly Qcow2Header _header;
    private readonly HeaderExtensions _extensions;
    private readonly ClusterTables _tables;
    private readonly CompressedClusterReader _compressed;
    private ParentReference? _parentReference;
    private string? _backingName;
    private string? _backingFormat;
    private readonly long _size;
    private readonly int _clusterBits;
    private readonly long _unit;
    private readonly int _unitsPerCluster;

    private Qcow2Layer(FileAccessor file, FileAccessor? dataFile, Qcow2Header header, HeaderExtensions extensions, ClusterTables tables,
        string? backingName, string? backingFormat, ParentReference? parentReference)
    {
        _file = file;
        _dataFile = dataFile;
        _header = header;
        _extensions = extensions;
        _tables = tables;
        _backingName = backingName;
        _backingFormat = backingFormat;
        _parentReference = parentReference;
        _size = (long)header.Size;
        _clusterBits = header.ClusterBits;
        _unitsPerCluster = header.HasExtendedL2 ? 32 : 1;
        _unit = header.ClusterSize / _unitsPerCluster;
        _compressed = new CompressedClusterReader(file.Path, file, header.ClusterBits, header.CompressionType == 1);
        _openLength = file.Length;
    }

    private readonly long _openLength;

    /// <summary>The first bytes of every qcow2 file: "QFI\xfb".</summary>
    public static readonly byte[] Signature = { (byte)'Q', (byte)'F', (byte)'I', 0xFB };

    /// <summary>True when <paramref name="head"/> (a file's first bytes) starts with the qcow2 signature.</summary>
    public static bool Recognises(ReadOnlySpan<byte> head) => head.Length >= 4 && head.Slice(0, 4).SequenceEqual(Signature);

    /// <summary>
    /// Opens the qcow2 image at <paramref name="path"/> as one layer, without following its
    /// backing file (the chain is assembled by <see cref="VirtualDisk"/>, which opens the backing
    /// file by its path like any parent). Hostile or unsupported content raises a
    /// <see cref="DiskFormatException"/> naming file, structure and offset; opened read-only the
    /// file is never written.
    /// </summary>
    /// <param name="path">The image.</param>
    /// <param name="writable">
    /// Open for writing: refused for an image marked corrupt or dirty, one with internal
    /// snapshots, persistent bitmaps or an external data file, or a file marked read-only.
    /// </param>
    /// <param name="options">
    /// <see cref="DiskOpenOptions.AllowExternalDataFile"/> lets an image with an external data
    /// file be read (the data file must lie in the image's folder);
    /// <see cref="DiskOpenOptions.AllowedParentRoot"/> holds the data file too.
    /// </param>
    public static Qcow2Layer Open(string path, bool writable, DiskOpenOptions? options = null)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (writable)
            ReadOnlyFile.RefuseWrite(full);
        return Open(FileAccessor.Open(full, writable ? FileAccess.ReadWrite : FileAccess.Read), options);
    }

    /// <summary>A layer over a file already open (read-only); disposes it on failure.</summary>
    internal static Qcow2Layer Open(FileAccessor file, DiskOpenOptions? options = null)
    {
        options ??= DiskOpenOptions.Default;
        FileAccessor? dataFile = null;
        try
        {
            string path = file.Path;
            // The header and its extensions sit in the first cluster; 4 KiB holds them in every
            // image qemu writes, and a larger first cluster is read further only when they go on.
            byte[] head = new byte[(int)Math.Min(4096, file.Length)];
            file.ReadOrZero(0, head, 0, head.Length);
            // A version 3 header may declare a length beyond those 4 KiB (up to its cluster): read that much.
            if (head.Length >= Qcow2Header.V3MinLength && BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(4)) == 3
                && BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(100)) is uint declared && declared > head.Length
                && declared <= 2 * 1024 * 1024 && declared <= file.Length)
            {
                head = new byte[declared];
                file.ReadOrZero(0, head, 0, head.Length);
            }
            Qcow2Header header = Qcow2Header.Parse(path, head, head.Length, file.Length);
            int firstCluster = (int)Math.Min(header.ClusterSize, file.Length);
            if (firstCluster > head.Length)
            {
                head = new byte[firstCluster];
                file.ReadOrZero(0, head, 0, head.Length);
            }
            int extensionLimit = header.BackingFileOffset != 0 && header.BackingFileOffset < (ulong)firstCluster
                ? (int)header.BackingFileOffset
                : firstCluster;
            HeaderExtensions extensions = HeaderExtensions.Parse(path, head, header.HeaderLength, extensionLimit);
            RefuseUnsupported(path, header, extensions);
            if (file.CanWrite)
                RefuseWriting(path, header, extensions, options);

            string? backingName = ReadBackingName(path, file, header);
            string? backingFormatName = extensions.BackingFormat;
            ParentReference? reference = null;
            if (backingName is not null)
            {
                DiskFormat? format = ParentFormat(path, backingFormatName);
                var kind = System.IO.Path.IsPathRooted(backingName) ? ParentPathKind.Absolute : ParentPathKind.Relative;
                reference = new ParentReference(new[] { new ParentPathCandidate(kind, backingName) }, "", format: format);
            }

            if (header.HasExternalData)
                dataFile = OpenDataFile(path, extensions, header, options);
            ClusterTables tables = ClusterTables.Open(path, file, header);
            return new Qcow2Layer(file, dataFile, header, extensions, tables, backingName, backingFormatName, reference);
        }
        catch
        {
            dataFile?.Dispose();
            file.Dispose();
            throw;
        }
    }

    /// <summary>Encryption, unknown incompatible features: refused, each named as the image names it.</summary>
    private static void RefuseUnsupported(string path, Qcow2Header header, HeaderExtensions extensions)
    {
        if (header.CryptMethod != 0)
        {
            string method = header.CryptMethod switch { 1 => "AES", 2 => "LUKS", _ => $"method {header.CryptMethod}" };
            throw new DiskFormatException(path, "qcow2 header", $"the image is encrypted ({method}); VmClone does not read encrypted qcow2 images (decrypt it with qemu-img convert first)", 32);
        }
        ulong unknown = header.IncompatibleFeatures & ~Qcow2Header.KnownIncompatible;
        if (unknown != 0)
        {
            FeatureNameTable names = extensions.FeatureNames;
            var described = new List<string>();
            for (int bit = 0; bit < 64; bit++)
            {
                if ((unknown & (1UL << bit)) != 0)
                    described.Add(names.Describe(FeatureNameTable.Incompatible, bit));
            }
            throw new DiskFormatException(path, "qcow2 header", $"the image uses {string.Join(", ", described)}, which VmClone does not know; it cannot be read safely", 72);
        }
    }

    /// <summary>The backing file name as stored, or null; names VmClone cannot resolve safely are refused.</summary>
    private static string? ReadBackingName(string path, FileAccessor file, Qcow2Header header)
    {
        if (header.BackingFileOffset == 0)
            return null;
        if (header.BackingFileSize == 0)
            throw new DiskFormatException(path, "backing file name", "the header places a backing file name of 0 bytes", 16);
        if (header.BackingFileOffset > (ulong)file.Length)
            throw new DiskFormatException(path, "backing file name", $"{header.BackingFileSize} bytes at {header.BackingFileOffset} lie beyond the end of the file ({file.Length} bytes)", 8);
        byte[] raw = new byte[header.BackingFileSize];
        file.ReadExactly((long)header.BackingFileOffset, raw, 0, raw.Length, "backing file name");
        if (Array.IndexOf(raw, (byte)0) >= 0)
            throw new DiskFormatException(path, "backing file name", "the name contains a NUL byte", (long)header.BackingFileOffset);
        string name;
        try
        {
            name = new UTF8Encoding(false, true).GetString(raw);
        }
        catch (DecoderFallbackException ex)
        {
            throw new DiskFormatException(path, "backing file name", "the name is not valid UTF-8", (long)header.BackingFileOffset, ex);
        }
        if (IsProtocolName(name))
            throw new DiskFormatException(path, "backing file name",
                $"the backing file '{name}' is a qemu protocol or json: specification, not a file VmClone opens", (long)header.BackingFileOffset);
        return name;
    }

    /// <summary>
    /// A qemu protocol prefix ("nbd:", "http://", "json:{…}"): letters before a colon, and no
    /// folder separator before it. A Windows drive ("C:\…") is a path.
    /// </summary>
    private static bool IsProtocolName(string name)
    {
        int colon = name.IndexOf(':');
        if (colon <= 1)
            return false;
        for (int i = 0; i < colon; i++)
        {
            char c = name[i];
            if (!(char.IsLetterOrDigit(c) || c == '+' || c == '-' || c == '.'))
                return false;
        }
        return true;
    }

    /// <summary>The engine format of a recorded backing format; refuses one the engine cannot read.</summary>
    private static DiskFormat? ParentFormat(string path, string? recorded)
    {
        switch (recorded)
        {
            case null:
                return null; // no extension: recognised by content, as qemu probes
            case "raw":
            case "file":
                return DiskFormat.Raw;
            case "vmdk":
                return DiskFormat.Vmdk;
            case "vhdx":
                return DiskFormat.Vhdx;
            case "qcow2":
                // Recognised by its signature, and the parent found checked to be qcow2 (see CheckParentFormat).
                return null;
            default:
                throw new DiskFormatException(path, "backing format extension", $"the backing file's format is '{recorded}', which VmClone does not read (qcow2, raw, vmdk and vhdx are read)");
        }
    }

    /// <summary>
    /// The external data file (incompatible bit 2): only with the caller's consent, only a file
    /// that really lies in the image's own folder (links resolved), never by a path elsewhere.
    /// </summary>
    private static FileAccessor OpenDataFile(string path, HeaderExtensions extensions, Qcow2Header header, DiskOpenOptions options)
    {
        string? name = extensions.ExternalDataFile;
        string shown = name is null ? "(no data file name extension)" : $"'{name}'";
        if (!options.AllowExternalDataFile)
            throw new DiskFormatException(path, "external data file",
                $"the image keeps its data in another file, {shown} (incompatible feature bit 2, \"external data file\"); " +
                "it is read only when the caller allows external data files (the disk commands' -AllowExternalDataFile) and the file lies beside the image");
        if (name is null || name.Length == 0)
            throw new DiskFormatException(path, "external data file", "incompatible bit 2 is set but no data file is named");
        string folder = System.IO.Path.GetDirectoryName(path) ?? ".";
        if (IsProtocolName(name) || name.IndexOf('\0') >= 0)
            throw new DiskFormatException(path, "external data file", $"the data file {shown} is not a plain file name");
        string candidate = System.IO.Path.GetFullPath(System.IO.Path.Combine(folder, name));
        if (!PathUtil.SamePath(System.IO.Path.GetDirectoryName(candidate) ?? "", folder)
            || new Containment(folder).Judge(candidate, out _) != ContainmentVerdict.Inside)
            throw new DiskFormatException(path, "external data file", $"the data file {shown} does not lie beside the image in '{folder}'; it was not opened");
        if (options.AllowedParentRoot is string root && new Containment(root).Judge(candidate, out _) != ContainmentVerdict.Inside)
            throw new DiskFormatException(path, "external data file", $"the data file '{candidate}' lies outside '{root}'; it was not opened");
        return FileAccessor.Open(candidate, FileAccess.Read);
    }

    public override string Path => _file.Path;

    public override DiskFormat Format => DiskFormat.Qcow2;

    public override DiskType Type => _parentReference is not null ? DiskType.Differencing : DiskType.Dynamic;

    public override long VirtualSize => _size;

    public override int LogicalSectorSize => 512;

    public override long BlockSize => _header.ClusterSize;

    public override bool CanWrite => _file.CanWrite;

    /// <summary>qcow2 records no content identity: the size and last write time stand in, as for raw files.</summary>
    internal override bool HasExtendedL2 => _header.HasExtendedL2;

    internal override string? CopyRefusal => _dataFile is not null
        ? $"qcow2 disk '{Path}' keeps its data in the external file '{_dataFile.Path}'; VmClone does not write such images."
        : null;

    public override string Identity => $"qcow2:{_size}:{File.GetLastWriteTimeUtc(Path).Ticks}";

    public override ParentReference? ParentReference => _parentReference;

    /// <summary>The backing file name exactly as stored, or null.</summary>
    public string? BackingFileName => _backingName;

    /// <summary>The backing-format extension as stored ("qcow2", "raw", ...), or null.</summary>
    public string? BackingFormat => _backingFormat;

    /// <summary>2 (compat 0.10) or 3 (compat 1.1).</summary>
    public int Version => (int)_header.Version;

    /// <summary>Internal snapshots the image holds (this layer reads the active state).</summary>
    public int SnapshotCount => (int)_header.SnapshotCount;

    /// <summary>True when the image uses extended L2 entries (32 subclusters per cluster).</summary>
    public bool ExtendedL2 => _header.HasExtendedL2;

    /// <summary>Refcount width in bits (1 to 64).</summary>
    public int RefcountBits => _header.RefcountBits;

    /// <summary>Incompatible bit 0: the refcounts may be stale (a crash, or lazy refcounts).</summary>
    public bool IsDirty => _header.IsDirty;

    /// <summary>Incompatible bit 1: qemu found the metadata inconsistent.</summary>
    public bool IsCorrupt => _header.IsCorrupt;

    /// <summary>Bytes of guest clusters the image maps to clusters of its own (compressed ones counted whole).</summary>
    public override long AllocatedBytes
    {
        get
        {
            CommitPending();
            long total = 0;
            long clusters = (_size + _header.ClusterSize - 1) >> _clusterBits;
            for (long c = 0; c < clusters; c++)
            {
                if (!_tables.HasTable(c / _tables.EntriesPerTable))
                {
                    c = (c / _tables.EntriesPerTable + 1) * _tables.EntriesPerTable - 1;
                    continue;
                }
                L2Entry e = _tables.Lookup(c);
                ClusterKind kind = _tables.KindOf(e);
                if (kind == ClusterKind.Compressed || (kind == ClusterKind.Normal && !_header.HasExtendedL2))
                    total += _header.ClusterSize;
                else if (kind == ClusterKind.Normal)
                    total += CountBits(e.AllocatedBits) * _unit;
            }
            return total;
        }
    }

    private static int CountBits(uint v)
    {
        int n = 0;
        for (; v != 0; v &= v - 1)
            n++;
        return n;
    }

    public override IReadOnlyDictionary<string, string> Details
    {
        get
        {
            var d = new Dictionary<string, string>
            {
                ["Compat"] = _header.Version == 2 ? "0.10" : "1.1",
                ["ClusterSize"] = _header.ClusterSize.ToString(CultureInfo.InvariantCulture),
                ["RefcountBits"] = _header.RefcountBits.ToString(CultureInfo.InvariantCulture),
                ["ExtendedL2"] = _header.HasExtendedL2 ? "true" : "false",
                ["CompressionType"] = _header.CompressionType == 1 ? "zstd" : "zlib",
                ["Snapshots"] = _header.SnapshotCount.ToString(CultureInfo.InvariantCulture),
                ["Dirty"] = _header.IsDirty ? "true" : "false",
                ["Corrupt"] = _header.IsCorrupt ? "true" : "false",
            };
            if (_backingName is not null)
                d["BackingFile"] = _backingName;
            if (_backingFormat is not null)
                d["BackingFormat"] = _backingFormat;
            if (_dataFile is not null)
                d["DataFile"] = _dataFile.Path;
            return d;
        }
    }

    /// <summary>Where a unit (a cluster, or a subcluster with extended L2) comes from.</summary>
    private ExtentKind UnitKind(L2Entry entry, ClusterKind kind, int sub)
    {
        switch (kind)
        {
            case ClusterKind.Compressed:
                return ExtentKind.Data;
            case ClusterKind.Zero:
                return ExtentKind.Zero;
        }
        if (!_header.HasExtendedL2)
            return kind == ClusterKind.Normal ? ExtentKind.Data : ExtentKind.Parent;
        uint bit = 1u << sub;
        if ((entry.AllocatedBits & bit) != 0)
            return ExtentKind.Data;
        return (entry.ZeroBits & bit) != 0 ? ExtentKind.Zero : ExtentKind.Parent;
    }

    public override LayerExtent GetExtent(long position, long maxLength)
    {
        CommitPending(); // a batch's writes are read as written
        CheckRange(position, 0);
        long end = Math.Min(_size, position + maxLength);
        ExtentKind? first = null;
        long at = position;
        while (at < end)
        {
            long guestCluster = at >> _clusterBits;
            long l1Index = guestCluster / _tables.EntriesPerTable;
            if (!_tables.HasTable(l1Index))
            {
                // A whole L2 range without a table: one step, however large the disk.
                if (first is not null && first != ExtentKind.Parent)
                    break;
                first = ExtentKind.Parent;
                at = Math.Min(end, ((l1Index + 1) * _tables.EntriesPerTable) << _clusterBits);
                continue;
            }
            L2Entry entry = _tables.Lookup(guestCluster);
            ClusterKind kind = _tables.KindOf(entry);
            int sub = (int)((at - (guestCluster << _clusterBits)) / _unit);
            ExtentKind unitKind = UnitKind(entry, kind, sub);
            if (first is null)
                first = unitKind;
            else if (unitKind != first)
                break;
            at = Math.Min(end, (guestCluster << _clusterBits) + (sub + 1) * _unit);
        }
        if (first == ExtentKind.Parent)
            CheckParentFormat();
        return new LayerExtent(first ?? ExtentKind.Parent, Math.Max(1, at - position));
    }

    public override DataLocation? LocateData(long position, long maxLength)
    {
        CheckRange(position, Math.Min(maxLength, VirtualSize - position));
        long guestCluster = position >> _clusterBits;
        long inCluster = position - (guestCluster << _clusterBits);
        int sub = (int)(inCluster / _unit);
        L2Entry entry = _tables.Lookup(guestCluster);
        ClusterKind kind = _tables.KindOf(entry);
        if (kind != ClusterKind.Normal || UnitKind(entry, kind, sub) != ExtentKind.Data)
            return null;
        return new DataLocation((_dataFile ?? _file).Path, entry.HostOffset + inCluster, Math.Min(maxLength, (sub + 1) * _unit - inCluster));
    }

    public override void ReadData(long position, byte[] buffer, int offset, int count)
    {
        CommitPending();
        CheckRange(position, count);
        FileAccessor target = _dataFile ?? _file;
        long runHost = -1, runLength = 0;
        int runOffset = 0;
        while (count > 0)
        {
            long guestCluster = position >> _clusterBits;
            long inCluster = position - (guestCluster << _clusterBits);
            int sub = (int)(inCluster / _unit);
            int n = (int)Math.Min(count, (sub + 1) * _unit - inCluster);
            L2Entry entry = _tables.Lookup(guestCluster);
            ClusterKind kind = _tables.KindOf(entry);
            ExtentKind unitKind = UnitKind(entry, kind, sub);
            if (kind == ClusterKind.Normal && unitKind == ExtentKind.Data)
            {
                long host = entry.HostOffset + inCluster;
                if (runHost >= 0 && runHost + runLength == host)
                {
                    runLength += n;
                }
                else
                {
                    FlushRun(target, runHost, buffer, runOffset, runLength);
                    runHost = host;
                    runLength = n;
                    runOffset = offset;
                }
            }
            else
            {
                FlushRun(target, runHost, buffer, runOffset, runLength);
                runHost = -1;
                runLength = 0;
                if (kind == ClusterKind.Compressed)
                    Buffer.BlockCopy(_compressed.Read(entry), (int)inCluster, buffer, offset, n);
                else if (unitKind == ExtentKind.Zero)
                    Array.Clear(buffer, offset, n);
                else
                    ReadBelow(position, buffer, offset, n);
            }
            position += n;
            offset += n;
            count -= n;
        }
        FlushRun(target, runHost, buffer, runOffset, runLength);
    }

    /// <summary>Reads one run of host-contiguous data; a cluster that begins past the end of the file is refused (one ending inside a last partial cluster reads zeros beyond it).</summary>
    private void FlushRun(FileAccessor target, long host, byte[] buffer, int offset, long length)
    {
        if (host < 0 || length == 0)
            return;
        if (target == _file)
        {
            // Every cluster of the run, not only its first, must begin inside the file: a run of
            // host-contiguous clusters may run past the end of a truncated file.
            long firstPast = (_file.Length + _header.ClusterSize - 1) & ~(_header.ClusterSize - 1);
            if (host >= _file.Length || host + length > firstPast)
            {
                long cluster = Math.Max(host & ~(_header.ClusterSize - 1), firstPast);
                throw new DiskFormatException(Path, "L2 table", $"a data cluster at {cluster} lies past the end of the file ({_file.Length} bytes)", cluster);
            }
        }
        target.ReadOrZero(host, buffer, offset, (int)length);
    }

    private bool _parentFormatChecked;

    /// <summary>
    /// The backing-format extension says "qcow2": the parent the chain found by its path must be
    /// one, as qemu would refuse another format there.
    /// </summary>
    private void CheckParentFormat()
    {
        if (_parentFormatChecked || Parent is null)
            return;
        _parentFormatChecked = true;
        if (_backingFormat == "qcow2" && Parent.Format != DiskFormat.Qcow2)
            throw new DiskChainException(Path, ChainProblem.Incompatible,
                $"'{Path}' records its backing file '{Parent.Path}' as qcow2, but that file is {Parent.Format}.", Parent.Path);
    }

    /// <summary>
    /// The refcounts recomputed from every structure and cluster the image references and
    /// compared with the recorded ones, as qemu-img check does: leaks (space wasted) and
    /// corruptions (a cluster in use counted too low, COPIED flags wrong, references past the
    /// end) apart. Reads the refcount blocks, the L1 and every L2 table; nothing is written.
    /// </summary>
    public Qcow2RefcountReport CheckRefcounts()
    {
        CommitPending();
        return RefcountCheck.Run(_file, _header, _extensions);
    }

    /// <summary>Structural problems of the mapping, then the refcount corruptions (<see cref="CheckRefcounts"/>; its leaks are no problem of the data, and left out).</summary>
    public override IReadOnlyList<string> Check()
    {
        CommitPending();
        List<string> problems = CheckMapping();
        if (problems.Count == 0)
        {
            foreach (Qcow2RefcountFinding finding in CheckRefcounts().Corruptions)
                problems.Add(finding.Description);
        }
        return problems;
    }

    private List<string> CheckMapping()
    {
        var problems = new List<string>();
        long clusters = (_size + _header.ClusterSize - 1) >> _clusterBits;
        for (long c = 0; c < clusters; c++)
        {
            if (!_tables.HasTable(c / _tables.EntriesPerTable))
            {
                c = (c / _tables.EntriesPerTable + 1) * _tables.EntriesPerTable - 1;
                continue;
            }
            try
            {
                L2Entry e = _tables.Lookup(c);
                ClusterKind kind = _tables.KindOf(e);
                if (kind == ClusterKind.Normal && _dataFile is null && e.HostOffset >= _file.Length)
                    problems.Add($"guest cluster {c} maps to host offset {e.HostOffset}, past the end of the file ({_file.Length} bytes)");
                else if (kind == ClusterKind.Compressed && e.CompressedOffset(_clusterBits) >= _file.Length)
                    problems.Add($"compressed guest cluster {c} lies at {e.CompressedOffset(_clusterBits)}, past the end of the file");
            }
            catch (DiskFormatException ex)
            {
                problems.Add(ex.Message);
                if (problems.Count >= 100)
                    break;
            }
        }
        return problems;
    }

    protected override void Dispose(bool disposing)
    {
        if (!disposing)
            return;
        _dataFile?.Dispose();
        _file.Dispose();
    }
}
