using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace VmClone.Disks.Vmdk;

/// <summary>Access mode of a descriptor extent line.</summary>
internal enum ExtentAccess
{
    ReadWrite,
    ReadOnly,
    NoAccess,
}

/// <summary>
/// One extent line of a descriptor: <c>ACCESS SIZE TYPE ["FILENAME" [OFFSET]]</c>
/// (VMware "Virtual Disk Format 1.1" §"Extent Descriptions").
/// </summary>
internal sealed class ExtentLine
{
    public ExtentLine(ExtentAccess access, ulong sectors, string type, string? fileName, ulong offset)
    {
        Access = access;
        Sectors = sectors;
        Type = type;
        FileName = fileName;
        Offset = offset;
    }

    /// <summary>RW, RDONLY or NOACCESS.</summary>
    public ExtentAccess Access { get; }

    /// <summary>Virtual size of the extent in sectors; the disk size is the sum over all lines.</summary>
    public ulong Sectors { get; }

    /// <summary>FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE, VMFSRDM, VMFSRAW, SESPARSE (upper case).</summary>
    public string Type { get; }

    /// <summary>Extent file, relative to the descriptor's folder; null for ZERO.</summary>
    public string? FileName { get; }

    /// <summary>Start of the data inside a FLAT/VMFS file, in sectors (0 when absent).</summary>
    public ulong Offset { get; }
}

/// <summary>
/// The VMDK descriptor: text with <c>key=value</c> header lines, extent lines and <c>ddb.*</c>
/// entries (spec B.3). Parsing is tolerant of comments, CRLF, whitespace around '=', quoted or
/// unquoted values, unknown keys and a Windows-1252 encoding; everything structural (extent
/// lines, CID values, sizes) is checked strictly. The original text is kept so that an update
/// (a new CID) changes nothing but that value.
/// </summary>
internal sealed class Descriptor
{
    /// <summary>Largest descriptor accepted (embedded or separate file).</summary>
    public const int MaxBytes = 1 << 20;

    public const uint NoParentCid = 0xFFFFFFFF;

    private readonly Dictionary<string, string> _header = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, string> _ddb = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<ExtentLine> _extents = new();
    private string _text = "";
    private bool _latin1;

    /// <summary>Header keys (version, CID, parentCID, createType, parentFileNameHint, …).</summary>
    public IReadOnlyDictionary<string, string> Header => _header;

    /// <summary>Disk database entries (ddb.adapterType, ddb.geometry.*, ddb.uuid, …).</summary>
    public IReadOnlyDictionary<string, string> Ddb => _ddb;

    public IReadOnlyList<ExtentLine> Extents => _extents;

    /// <summary>Content ID: changes whenever the content changes (spec B.4).</summary>
    public uint Cid { get; private set; } = NoParentCid;

    /// <summary>The parent's CID at the time this child was made; ffffffff = no parent.</summary>
    public uint ParentCid { get; private set; } = NoParentCid;

    public string CreateType => Value("createType") ?? "";

    public string? ParentFileNameHint => Value("parentFileNameHint");

    public bool HasParent => ParentCid != NoParentCid;

    /// <summary>Sum of the extent sizes in sectors.</summary>
    public ulong TotalSectors
    {
        get
        {
            ulong total = 0;
            foreach (ExtentLine e in _extents)
                total += e.Sectors;
            return total;
        }
    }

    public string Text => _text;

    public string? Value(string key) => _header.TryGetValue(key, out string? v) ? v : null;

    /// <summary>
    /// Parses descriptor bytes (embedded: NUL-padded; the text ends at the first NUL).
    /// <paramref name="structure"/>/<paramref name="fileOffset"/> go into the error.
    /// </summary>
    public static Descriptor Parse(byte[] bytes, int count, string path, long fileOffset, string structure = "descriptor")
    {
        void Fail(string reason) => throw new DiskFormatException(path, structure, reason, fileOffset);

        int end = Array.IndexOf(bytes, (byte)0, 0, count);
        if (end < 0)
            end = count;
        if (end == 0)
            Fail("the descriptor is empty");
        if (end > MaxBytes)
            Fail($"the descriptor is larger than {MaxBytes} bytes");
        // Text only: anything below 0x20 other than tab/CR/LF means this is not a descriptor.
        for (int i = 0; i < end; i++)
        {
            byte c = bytes[i];
            if (c < 0x20 && c != (byte)'\t' && c != (byte)'\r' && c != (byte)'\n')
                Fail($"binary byte 0x{c:x2} at position {i}: not a text descriptor");
        }

        var d = new Descriptor();
        // encoding: UTF-8 (current VMware, qemu) or windows-1252 (older VMware). Strict UTF-8
        // first; bytes that are not valid UTF-8 are taken as Latin-1, which round-trips exactly.
        try
        {
            d._text = new UTF8Encoding(false, true).GetString(bytes, 0, end);
        }
        catch (DecoderFallbackException)
        {
            d._latin1 = true;
            var sb = new StringBuilder(end);
            for (int i = 0; i < end; i++)
                sb.Append((char)bytes[i]);
            d._text = sb.ToString();
        }
        if (d._text.Length > 0 && d._text[0] == '\uFEFF')
            Fail("a byte-order mark precedes the descriptor");

        string[] lines = d._text.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            string line = lines[n].Trim(' ', '\t', '\r');
            if (line.Length == 0 || line[0] == '#')
                continue;
            string lineRef = $"line {n + 1}";
            if (StartsWithAccess(line))
            {
                d._extents.Add(ParseExtent(line, lineRef, Fail));
                continue;
            }
            int eq = line.IndexOf('=');
            if (eq <= 0)
                Fail($"{lineRef} is neither 'key = value' nor an extent: '{Shorten(line)}'");
            string key = line.Substring(0, eq).Trim(' ', '\t');
            string value = Unquote(line.Substring(eq + 1).Trim(' ', '\t'));
            if (key.StartsWith("ddb.", StringComparison.OrdinalIgnoreCase))
                d._ddb[key] = value;
            else
                d._header[key] = value;
        }

        if (d._extents.Count == 0)
            Fail("no extent lines (RW/RDONLY/NOACCESS …)");
        if (d._extents.Count > 4096)
            Fail($"{d._extents.Count} extents; more than 4096 are not supported");
        if (d.TotalSectors > SparseExtentHeader.MaxCapacitySectors)
            Fail($"the extents add up to {d.TotalSectors} sectors, more than 64 TiB");
        if (d.Value("CID") is string cid)
            d.Cid = ParseCid(cid, "CID", Fail);
        if (d.Value("parentCID") is string pcid)
            d.ParentCid = ParseCid(pcid, "parentCID", Fail);
        return d;
    }

    private static bool StartsWithAccess(string line)
    {
        foreach (string a in new[] { "RW", "RDONLY", "NOACCESS" })
        {
            if (line.Length > a.Length && line.StartsWith(a, StringComparison.Ordinal) && (line[a.Length] == ' ' || line[a.Length] == '\t'))
                return true;
        }
        return false;
    }

    private static ExtentLine ParseExtent(string line, string lineRef, Action<string> fail)
    {
        List<string> tokens = Tokenize(line, lineRef, fail);
        if (tokens.Count < 3)
            fail($"{lineRef}: extent line '{Shorten(line)}' needs at least ACCESS SIZE TYPE");
        ExtentAccess access = tokens[0] switch
        {
            "RW" => ExtentAccess.ReadWrite,
            "RDONLY" => ExtentAccess.ReadOnly,
            _ => ExtentAccess.NoAccess,
        };
        if (!ulong.TryParse(tokens[1], NumberStyles.None, CultureInfo.InvariantCulture, out ulong sectors) || sectors == 0 || sectors > SparseExtentHeader.MaxCapacitySectors)
            fail($"{lineRef}: extent size '{Shorten(tokens[1])}' is not a sector count between 1 and 2^37");
        string type = tokens[2].ToUpperInvariant();
        string? file = tokens.Count > 3 ? tokens[3] : null;
        ulong offset = 0;
        if (tokens.Count > 4)
        {
            if (!ulong.TryParse(tokens[4], NumberStyles.None, CultureInfo.InvariantCulture, out offset) || offset > SparseExtentHeader.MaxCapacitySectors * 4)
                fail($"{lineRef}: extent offset '{Shorten(tokens[4])}' is not a sector count");
        }
        if (tokens.Count > 5)
            fail($"{lineRef}: extent line '{Shorten(line)}' has unexpected extra fields");
        if (type != "ZERO" && string.IsNullOrEmpty(file))
            fail($"{lineRef}: a {type} extent needs a file name");
        return new ExtentLine(access, sectors, type, file, offset);
    }

    private static List<string> Tokenize(string line, string lineRef, Action<string> fail)
    {
        var tokens = new List<string>();
        int i = 0;
        while (i < line.Length)
        {
            char c = line[i];
            if (c == ' ' || c == '\t')
            {
                i++;
                continue;
            }
            if (c == '"')
            {
                int close = line.IndexOf('"', i + 1);
                if (close < 0)
                    fail($"{lineRef}: unterminated quoted file name");
                tokens.Add(line.Substring(i + 1, close - i - 1));
                i = close + 1;
                continue;
            }
            int start = i;
            while (i < line.Length && line[i] != ' ' && line[i] != '\t')
                i++;
            tokens.Add(line.Substring(start, i - start));
        }
        return tokens;
    }

    private static string Unquote(string value)
    {
        if (value.Length >= 2 && value[0] == '"' && value[value.Length - 1] == '"')
            return value.Substring(1, value.Length - 2);
        return value;
    }

    private static uint ParseCid(string text, string key, Action<string> fail)
    {
        if (text.Length == 0 || text.Length > 8 || !uint.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint value))
        {
            fail($"{key} '{Shorten(text)}' is not a hexadecimal 32-bit value");
            return 0;
        }
        return value;
    }

    private static string Shorten(string s) => s.Length <= 60 ? s : s.Substring(0, 60) + "…";

    /// <summary>The text re-encoded as it was read (UTF-8, or Latin-1 for windows-1252 files).</summary>
    public byte[] ToBytes()
    {
        if (!_latin1)
            return new UTF8Encoding(false).GetBytes(_text);
        var b = new byte[_text.Length];
        for (int i = 0; i < _text.Length; i++)
            b[i] = (byte)_text[i];
        return b;
    }

    /// <summary>
    /// Replaces the value of the CID line in the original text, keeping every other byte (so
    /// the descriptor keeps its size and everything we do not understand).
    /// </summary>
    public void SetCid(uint cid)
    {
        SetHeaderValue("CID", cid.ToString("x8", CultureInfo.InvariantCulture), quote: false);
        Cid = cid;
    }

    /// <summary>Records a new parent: its CID and where to find it (relative to the child's folder, or absolute).</summary>
    public void SetParent(uint parentCid, string fileNameHint)
    {
        SetHeaderValue("parentCID", parentCid.ToString("x8", CultureInfo.InvariantCulture), quote: false);
        SetHeaderValue("parentFileNameHint", fileNameHint, quote: true);
        ParentCid = parentCid;
    }

    /// <summary>
    /// A new size for the only extent: its line's sector count replaced in place (access, type,
    /// file name and spacing kept), and ddb.geometry.cylinders, when present, recomputed as qemu
    /// does (16 heads, 63 sectors, at most 16383 cylinders).
    /// </summary>
    public void SetSingleExtentSectors(ulong sectors)
    {
        string[] lines = _text.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            string line = lines[n];
            string trimmed = line.TrimStart(' ', '\t');
            if (trimmed.Length == 0 || trimmed[0] == '#')
                continue;
            if (StartsWithAccess(trimmed.TrimEnd('\r')))
            {
                int lead = line.Length - trimmed.Length;
                int accessEnd = trimmed.IndexOfAny(new[] { ' ', '\t' });
                int numberStart = accessEnd;
                while (numberStart < trimmed.Length && (trimmed[numberStart] == ' ' || trimmed[numberStart] == '\t'))
                    numberStart++;
                int numberEnd = numberStart;
                while (numberEnd < trimmed.Length && char.IsDigit(trimmed[numberEnd]))
                    numberEnd++;
                lines[n] = line.Substring(0, lead + numberStart) + sectors.ToString(CultureInfo.InvariantCulture) + trimmed.Substring(numberEnd);
                ExtentLine old = _extents[0];
                _extents[0] = new ExtentLine(old.Access, sectors, old.Type, old.FileName, old.Offset);
                break;
            }
        }
        _text = string.Join("\n", lines);
        if (_ddb.ContainsKey("ddb.geometry.cylinders"))
            SetDdbValue("ddb.geometry.cylinders", Math.Min(sectors / (16 * 63), 16383).ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>Replaces a ddb value in place, quoted as ddb values are.</summary>
    private void SetDdbValue(string key, string value)
    {
        string[] lines = _text.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            string line = lines[n];
            int eq = line.IndexOf('=');
            if (eq <= 0 || !string.Equals(line.Substring(0, eq).Trim(' ', '\t'), key, StringComparison.OrdinalIgnoreCase))
                continue;
            string cr = line.EndsWith("\r", StringComparison.Ordinal) ? "\r" : "";
            string after = line.Substring(eq + 1);
            string space = after.Substring(0, after.Length - after.TrimStart(' ', '\t').Length);
            lines[n] = line.Substring(0, eq + 1) + space + "\"" + value + "\"" + cr;
            break;
        }
        _text = string.Join("\n", lines);
        _ddb[key] = value;
    }

    /// <summary>
    /// Replaces the value of a header line in place (keeping its quoting, spacing and line end),
    /// or adds the line after the first line when there is none.
    /// </summary>
    private void SetHeaderValue(string key, string value, bool quote)
    {
        string[] lines = _text.Split('\n');
        bool found = false;
        for (int n = 0; n < lines.Length && !found; n++)
        {
            string line = lines[n];
            string trimmed = line.TrimStart(' ', '\t');
            if (trimmed.Length == 0 || trimmed[0] == '#')
                continue;
            int eq = trimmed.IndexOf('=');
            if (eq <= 0 || !string.Equals(trimmed.Substring(0, eq).Trim(' ', '\t'), key, StringComparison.OrdinalIgnoreCase))
                continue;
            int lead = line.Length - trimmed.Length;
            string after = trimmed.Substring(eq + 1);
            string cr = after.EndsWith("\r", StringComparison.Ordinal) ? "\r" : "";
            string valuePart = after.TrimEnd('\r');
            int valueStart = valuePart.Length - valuePart.TrimStart(' ', '\t').Length;
            string core = valuePart.Trim(' ', '\t');
            bool quoted = quote || (core.Length >= 2 && core[0] == '"');
            lines[n] = line.Substring(0, lead) + trimmed.Substring(0, eq + 1) + valuePart.Substring(0, valueStart) +
                (quoted ? "\"" + value + "\"" : value) + cr;
            found = true;
        }
        _text = string.Join("\n", lines);
        if (!found)
        {
            string entry = key + "=" + (quote ? "\"" + value + "\"" : value) + "\n";
            int nl = _text.IndexOf('\n');
            _text = nl < 0 ? _text + "\n" + entry : _text.Substring(0, nl + 1) + entry + _text.Substring(nl + 1);
        }
        _header[key] = value;
    }

    /// <summary>A descriptor as qemu and VMware write one for a new monolithicSparse disk.</summary>
    public static string CreateMonolithicSparse(uint cid, uint parentCid, string? parentHint, ulong capacitySectors, string fileName) =>
        Create("monolithicSparse", cid, parentCid, parentHint, capacitySectors, $"SPARSE \"{fileName}\"");

    /// <summary>The descriptor of a monolithicFlat disk: one FLAT extent, <paramref name="extentName"/> (beside it) from its offset 0.</summary>
    public static string CreateMonolithicFlat(uint cid, ulong capacitySectors, string extentName) =>
        Create("monolithicFlat", cid, NoParentCid, null, capacitySectors, $"FLAT \"{extentName}\" 0");

    private static string Create(string createType, uint cid, uint parentCid, string? parentHint, ulong capacitySectors, string extent)
    {
        var sb = new StringBuilder();
        sb.Append("# Disk DescriptorFile\n");
        sb.Append("version=1\n");
        sb.Append("CID=").Append(cid.ToString("x8", CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("parentCID=").Append(parentCid.ToString("x8", CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("createType=\"").Append(createType).Append("\"\n");
        if (parentHint is not null)
            sb.Append("parentFileNameHint=\"").Append(parentHint).Append("\"\n");
        sb.Append('\n');
        sb.Append("# Extent description\n");
        sb.Append("RW ").Append(capacitySectors.ToString(CultureInfo.InvariantCulture)).Append(' ').Append(extent).Append('\n');
        sb.Append('\n');
        sb.Append("# The Disk Data Base\n");
        sb.Append("#DDB\n");
        sb.Append('\n');
        // Geometry as qemu computes it: 16 heads, 63 sectors, cylinders capped at 16383.
        ulong cylinders = Math.Min(capacitySectors / (16 * 63), 16383);
        sb.Append("ddb.virtualHWVersion = \"4\"\n");
        sb.Append("ddb.geometry.cylinders = \"").Append(cylinders.ToString(CultureInfo.InvariantCulture)).Append("\"\n");
        sb.Append("ddb.geometry.heads = \"16\"\n");
        sb.Append("ddb.geometry.sectors = \"63\"\n");
        sb.Append("ddb.adapterType = \"ide\"\n");
        return sb.ToString();
    }
}
