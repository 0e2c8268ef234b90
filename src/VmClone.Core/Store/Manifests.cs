using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>&lt;store&gt;/store.json: marks a folder as a VmClone store and says which layout it has.</summary>
public sealed class StoreManifest
{
    public int FormatVersion { get; set; } = Manifest.CurrentFormatVersion;

    public DateTimeOffset Created { get; set; }
}

/// <summary>&lt;store&gt;/bases/&lt;name&gt;/base.json.</summary>
public sealed class BaseManifest
{
    public int FormatVersion { get; set; } = Manifest.CurrentFormatVersion;

    public string Name { get; set; } = "";

    public DateTimeOffset Created { get; set; }

    /// <summary>Where the content came from: "files", or "clone NAME" for a base made from a clone.</summary>
    public string? Source { get; set; }

    /// <summary>The storage outline, in order.</summary>
    public List<BaseVolumeManifest> Volumes { get; set; } = new();
}

/// <summary>One volume of a base, with what it was when the base was made.</summary>
public sealed class BaseVolumeManifest
{
    public string Name { get; set; } = "";

    public VolumeType Type { get; set; }

    public DiskFormat Format { get; set; }

    /// <summary>File name inside the base's folder.</summary>
    public string File { get; set; } = "";

    public long VirtualSize { get; set; }

    public int LogicalSectorSize { get; set; }

    /// <summary>The file's identity when the base was made (VHDX DataWriteGuid, VMDK CID); a different one later means the base was modified.</summary>
    public string Identity { get; set; } = "";

    /// <summary>True when the volume holds any data; an empty data volume gives clones a standalone data disk.</summary>
    public bool HoldsData { get; set; }

    /// <summary>A qcow2 volume's layout, which every clone volume made from it takes too; null for qemu-img's defaults (and every other format).</summary>
    public Qcow2Layout? Qcow2 { get; set; }
}

/// <summary>&lt;store&gt;/clones/&lt;name&gt;/clone.json.</summary>
public sealed class CloneManifest
{
    public int FormatVersion { get; set; } = Manifest.CurrentFormatVersion;

    public string Name { get; set; } = "";

    public string Base { get; set; } = "";

    public DateTimeOffset Created { get; set; }

    public DateTimeOffset? LastRestored { get; set; }

    public DateTimeOffset? LastRebased { get; set; }

    /// <summary>
    /// New with every operation that changes the clone, and recorded in that operation's plan
    /// first: recovery knows by it that the manifest in place is that operation's, so everything
    /// before it was done (an operation that changes no other field, such as clearing the
    /// temporary volumes, would otherwise write the same manifest it started from). Null in a
    /// manifest no such operation wrote.
    /// </summary>
    public string? Revision { get; set; }

    public List<CloneVolumeManifest> Volumes { get; set; } = new();
}

/// <summary>One volume of a clone and the base file it is expected to depend on.</summary>
public sealed class CloneVolumeManifest
{
    public string Name { get; set; } = "";

    public VolumeType Type { get; set; }

    public DiskFormat Format { get; set; }

    /// <summary>File name inside the clone's folder.</summary>
    public string File { get; set; } = "";

    /// <summary>The parent file, relative to the store with '/' separators (e.g. bases/win11/system.vhdx); null for a standalone volume. The disk's own link is the truth; Test-VmStore reports disagreement.</summary>
    public string? Parent { get; set; }
}

/// <summary>Reading and writing manifests: indented JSON, written atomically, with a format version checked on read.</summary>
public static class Manifest
{
    /// <summary>The layout this version of VmClone writes and understands.</summary>
    public const int CurrentFormatVersion = 1;

    /// <summary>Largest manifest or journal read (a fleet's manifests are a few KiB).</summary>
    internal const int MaxManifestBytes = 1 << 20;

    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Converters = { new JsonStringEnumConverter() },
    };

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

    public static T Deserialize<T>(string json) => JsonSerializer.Deserialize<T>(json, Options)
        ?? throw new JsonException("The document is empty (null).");

    /// <summary>Reads a manifest; a damaged or too new one is a ManifestInvalid refusal naming the file.</summary>
    public static T Read<T>(string path) where T : class
    {
        string text;
        try
        {
            // A record may lie in a folder someone else can write: a link or a FIFO in its place
            // is refused, not followed or waited on, and a huge file is not read (also when it is
            // swapped in after any check of the path).
            text = RecordFile.ReadAllText(path, MaxManifestBytes);
        }
        catch (RecordFileRefusal ex)
        {
            string what = ex.Problem switch
            {
                RecordFileProblem.Link => "a symbolic link",
                RecordFileProblem.TooLarge => $"larger than {MaxManifestBytes >> 20} MiB",
                _ => "not a regular file",
            };
            throw new StoreException(StoreErrorIds.ManifestInvalid, VmCloneErrorKind.InvalidData,
                $"The manifest '{path}' is {what}; it was not read. Run Test-VmStore.", path, ex);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new StoreException(StoreErrorIds.ManifestMissing, VmCloneErrorKind.InvalidData, $"The manifest '{path}' is missing; run Test-VmStore.", path, ex);
        }
        int version;
        T value;
        try
        {
            using (JsonDocument doc = JsonDocument.Parse(text))
            {
                version = doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("formatVersion", out JsonElement v) && v.TryGetInt32(out int n) ? n : 0;
            }
            if (version > CurrentFormatVersion)
                throw new StoreException(StoreErrorIds.StoreFormatUnsupported, VmCloneErrorKind.InvalidData,
                    $"'{path}' has format version {version}; this VmClone understands up to {CurrentFormatVersion}. Update VmClone to use this store.", path);
            if (version < 1)
                throw new JsonException("formatVersion is missing or not a positive number.");
            value = Deserialize<T>(text);
        }
        catch (JsonException ex)
        {
            throw new StoreException(StoreErrorIds.ManifestInvalid, VmCloneErrorKind.InvalidData, $"The manifest '{path}' cannot be read: {ex.Message} Run Test-VmStore.", path, ex);
        }
        return value;
    }

    /// <summary>Writes a manifest atomically: a temp file in the same folder, flushed to the device, renamed over the old one.</summary>
    public static void Write<T>(string path, T value) => AtomicFile.WriteAllText(path, Serialize(value) + "\n");
}

/// <summary>Whole-file replacement that a crash cannot leave half-written.</summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string text)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        string temp = Path.Combine(dir, "." + Path.GetFileName(path) + "." + Guid.NewGuid().ToString("N").Substring(0, 8) + ".tmp");
        try
        {
            byte[] bytes = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text);
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes, 0, bytes.Length);
                fs.Flush(flushToDisk: true);
            }
            FaultPoint.Hit("temporary " + Path.GetFileName(path) + " written");
            MoveOver(temp, path);
        }
        catch (Exception ex) when (!FaultPoint.IsCrash(ex))
        {
            if (System.IO.File.Exists(temp))
                System.IO.File.Delete(temp);
            throw;
        }
    }

    /// <summary>True for a temporary file <see cref="WriteAllText"/> leaves when it is cut off (".NAME.xxxxxxxx.tmp").</summary>
    public static bool IsTemporary(string path)
    {
        string name = Path.GetFileName(path);
        if (!name.StartsWith(".", StringComparison.Ordinal) || !name.EndsWith(".tmp", StringComparison.Ordinal))
            return false;
        string[] parts = name.Substring(1, name.Length - 5).Split('.');
        return parts.Length >= 2 && parts[parts.Length - 1].Length == 8
            && parts[parts.Length - 1].All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f');
    }

    /// <summary>Deletes the temporary files of cut-off writes in <paramref name="folder"/>; only for a folder no one else is writing.</summary>
    internal static void DeleteTemporaries(string folder)
    {
        if (!Directory.Exists(folder))
            return;
        foreach (string f in Directory.EnumerateFiles(folder, ".*.tmp"))
        {
            if (IsTemporary(f))
                System.IO.File.Delete(f);
        }
    }

    /// <summary>Renames <paramref name="source"/> to <paramref name="destination"/>, replacing it when it exists (one rename on Unix).</summary>
    public static void MoveOver(string source, string destination)
    {
        if (System.IO.File.Exists(destination))
            System.IO.File.Replace(source, destination, null);
        else
            System.IO.File.Move(source, destination);
    }
}
