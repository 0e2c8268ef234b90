using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using VmClone.Core.Disks;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// A folder holding bases, clones, their volume files and manifests:
/// <code>
/// store.json                       format version
/// bases/NAME/base.json + VOLUME.vhdx|.vmdk     (files read only)
/// clones/NAME/clone.json + VOLUME.vhdx|.vmdk   (children of ../../bases/BASE/VOLUME.*)
/// </code>
/// Chains use relative parent paths and are opened with the store as the only place parents
/// may be, so the whole folder can be moved. The disks' own parent links are the truth; the
/// manifests say what should be, and Test-VmStore reports where they disagree.
/// </summary>
public sealed partial class VmStore : IDisposable
{
    /// <summary>Environment variable that names the default store.</summary>
    public const string StoreVariable = "VMCLONE_STORE";

    internal const string StoreFile = "store.json";
    internal const string BaseFile = "base.json";
    internal const string CloneFile = "clone.json";
    internal const string PlanFile = "plan.json";
    internal const string LockFile = ".lock";
    internal const string StagingPrefix = ".staging-";
    internal const string RemovingPrefix = ".removing-";

    private VmStore(string root, bool rememberBases)
    {
        Root = root;
        _rememberBases = rememberBases;
        Boundary = new StoreBoundary(root);
    }

    /// <summary>Where the paths the store's records name may lead (see <see cref="StoreBoundary"/>).</summary>
    internal StoreBoundary Boundary { get; }

    /// <summary>Full path of the store folder.</summary>
    public string Root { get; }

    public string BasesFolder => Path.Combine(Root, "bases");

    public string ClonesFolder => Path.Combine(Root, "clones");

    /// <summary>True when the folder has been made a store (store.json exists).</summary>
    public bool Exists => File.Exists(Path.Combine(Root, StoreFile));

    /// <summary>
    /// The store used when none is given: $env:VMCLONE_STORE, else VmClone in the per-user
    /// local data folder (%LOCALAPPDATA% on Windows, ~/.local/share on Linux).
    /// </summary>
    public static string DefaultRoot
    {
        get
        {
            string? fromEnv = Environment.GetEnvironmentVariable(StoreVariable);
            if (!string.IsNullOrWhiteSpace(fromEnv))
                return Path.GetFullPath(fromEnv);
            string data = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData);
            if (string.IsNullOrEmpty(data))
                throw new StoreException(StoreErrorIds.StoreNotConfigured, VmCloneErrorKind.InvalidArgument,
                    $"There is no per-user data folder on this system; set ${StoreVariable} or pass -Store.");
            return Path.Combine(data, "VmClone");
        }
    }

    /// <summary>The store at <paramref name="root"/> (default: <see cref="DefaultRoot"/>); nothing is created until something is written.</summary>
    /// <param name="root">The store folder; null for <see cref="DefaultRoot"/>.</param>
    /// <param name="rememberBases">
    /// For one command working on many clones: each base volume file is checked (opened, its
    /// identity compared with the base's manifest) once, and again only when its size or last
    /// write time changes, instead of once per clone; and a base volume new clone volumes are
    /// created over is opened once and kept open until <see cref="Dispose"/>. Leave it off for
    /// a long-lived instance, and dispose an instance that has it when the command is done.
    /// </param>
    public static VmStore At(string? root, bool rememberBases = false)
    {
        string full = Path.GetFullPath(string.IsNullOrEmpty(root) ? DefaultRoot : root!);
        string trimmed = full.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
        return new VmStore(trimmed.Length == 0 || trimmed.EndsWith(":", StringComparison.Ordinal) ? full : trimmed, rememberBases);
    }

    /// <summary>How every chain in the store is opened: parents only inside the store.</summary>
    public DiskOpenOptions OpenOptions => new() { AllowedParentRoot = Root };

    public string BaseFolder(string name) => Path.Combine(BasesFolder, name);

    public string CloneFolder(string name) => Path.Combine(ClonesFolder, name);

    /// <summary>The extension a volume file of <paramref name="format"/> gets; a format the registry does not know is refused.</summary>
    internal static string Extension(DiskFormat format) => DiskFormats.Get(format, format.ToString()).DefaultExtension;

    /// <summary>A path inside the store as stored in manifests: relative, '/' separators.</summary>
    internal string ToStoreRelative(string fullPath)
    {
        string full = Path.GetFullPath(fullPath);
        string prefix = Root.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        if (!full.StartsWith(prefix, StringComparison.Ordinal))
            return full.Replace('\\', '/');
        return full.Substring(prefix.Length).Replace('\\', '/');
    }

    internal string FromStoreRelative(string relative) =>
        Path.GetFullPath(Path.Combine(Root, relative.Replace('/', Path.DirectorySeparatorChar)));

    /// <summary>
    /// Refuses a folder that is not a store yet, for every command but those that create one
    /// (a new base): a mistyped -Store would otherwise read as an empty, healthy store, and a
    /// changing command would make a store of it.
    /// </summary>
    public void RequireExisting()
    {
        if (_created || _exists || (_exists = Exists))
            return;
        throw new StoreException(StoreErrorIds.StoreNotFound, VmCloneErrorKind.NotFound,
            Directory.Exists(Root)
                ? $"'{Root}' is not a VmClone store (it has no {StoreFile}). Check -Store (or ${StoreVariable}); a store is made by New-VmBase in a new or empty folder."
                : $"There is no VmClone store at '{Root}': the folder does not exist. Check -Store (or ${StoreVariable}); a store is made by New-VmBase.",
            Root);
    }

    private volatile bool _exists;

    /// <summary>Makes the folder a store if it is not one yet. A non-empty folder that is not a store is refused.</summary>
    internal void EnsureCreated()
    {
        // Once per instance: a fleet command would otherwise read store.json for every clone.
        if (_created)
            return;
        if (Exists)
        {
            Manifest.Read<StoreManifest>(Path.Combine(Root, StoreFile));
            Directory.CreateDirectory(BasesFolder);
            Directory.CreateDirectory(ClonesFolder);
            _created = true;
            return;
        }
        if (Directory.Exists(Root) && Directory.EnumerateFileSystemEntries(Root).Any(e =>
                Path.GetFileName(e) is not ("bases" or "clones" or LockFile or StoreLocks.FolderName)))
            throw new StoreException(StoreErrorIds.NotAStore, VmCloneErrorKind.InvalidArgument,
                $"'{Root}' is not empty and is not a VmClone store (it has no {StoreFile}); choose an empty or new folder for -Store.", Root);
        Directory.CreateDirectory(BasesFolder);
        Directory.CreateDirectory(ClonesFolder);
        Manifest.Write(Path.Combine(Root, StoreFile), new StoreManifest { Created = DateTimeOffset.UtcNow });
        _created = true;
    }

    private volatile bool _created;

    /// <summary>Names of the bases (folders with a manifest), sorted.</summary>
    public IReadOnlyList<string> BaseNames() => Names(BasesFolder, BaseFile);

    /// <summary>Names of the clones (folders with a manifest), sorted.</summary>
    public IReadOnlyList<string> CloneNames() => Names(ClonesFolder, CloneFile);

    private static IReadOnlyList<string> Names(string folder, string manifest)
    {
        if (!Directory.Exists(folder))
            return Array.Empty<string>();
        return Directory.EnumerateDirectories(folder)
            .Select(Path.GetFileName)
            .Where(n => n is not null && StoreNames.Problem(n) is null && File.Exists(Path.Combine(folder, n, manifest)))
            .Select(n => n!)
            .OrderBy(n => n, StringComparer.OrdinalIgnoreCase)
            .ToList();
    }

    public bool BaseExists(string name) => StoreNames.Problem(name) is null && File.Exists(Path.Combine(BaseFolder(name), BaseFile));

    public bool CloneExists(string name) => StoreNames.Problem(name) is null && File.Exists(Path.Combine(CloneFolder(name), CloneFile));

    /// <summary>The base's manifest; BaseNotFound when there is none, ManifestInvalid when it names anything outside the base's folder.</summary>
    public BaseManifest LoadBase(string name)
    {
        StoreNames.Validate(name, "base");
        if (!BaseExists(name))
            throw new StoreException(StoreErrorIds.BaseNotFound, VmCloneErrorKind.NotFound,
                $"There is no base '{name}' in store '{Root}'." + Suggest(BaseNames()), name);
        string folder = BaseFolder(name);
        RequireRealFolder(folder, "base", name);
        BaseManifest manifest = Manifest.Read<BaseManifest>(Path.Combine(folder, BaseFile));
        if (StoreBoundary.BaseManifestProblem(manifest, name) is string problem)
            throw UntrustedManifest(Path.Combine(folder, BaseFile), "base", name, problem);
        return manifest;
    }

    /// <summary>The clone's manifest as it is, without the boundary checks of <see cref="LoadClone"/> (for describing it).</summary>
    internal CloneManifest ReadClone(string name)
    {
        StoreNames.Validate(name, "clone");
        if (!CloneExists(name))
            throw new StoreException(StoreErrorIds.CloneNotFound, VmCloneErrorKind.NotFound,
                $"There is no clone '{name}' in store '{Root}'." + Suggest(CloneNames()), name);
        RequireRealFolder(CloneFolder(name), "clone", name);
        CloneRecord record = CloneRecord.Read(CloneFolder(name), name);
        if (record.Manifest is null)
            throw new StoreException(record.ErrorId, VmCloneErrorKind.InvalidData,
                $"The clone '{name}' was not changed: {record.Unreadable}" + (record.ErrorId != StoreErrorIds.ManifestInvalid ? "" : " Test-VmStore -Repair rebuilds it from the clone's volumes (keeping every file) where that is unambiguous."), name);
        return record.Manifest;
    }

    /// <summary>ManifestInvalid when a base's or clone's folder is a link (or lies in one): nothing in it is read.</summary>
    private void RequireRealFolder(string folder, string kind, string name)
    {
        if (Boundary.CheckFolder(folder) is BoundaryProblem problem and not BoundaryProblem.None)
            throw new StoreException(StoreErrorIds.ManifestInvalid, VmCloneErrorKind.InvalidData,
                $"The {kind} '{name}' cannot be used: {StoreBoundary.Describe(problem, Path.Combine(folder, kind == "base" ? BaseFile : CloneFile))}. Run Test-VmStore.", name);
    }

    private static StoreException UntrustedManifest(string path, string kind, string name, string problem) =>
        new(StoreErrorIds.ManifestInvalid, VmCloneErrorKind.InvalidData,
            $"The manifest '{path}' of {kind} '{name}' cannot be trusted: {problem}. Nothing it names was touched; run Test-VmStore, and restore the manifest from a backup (or remove the {kind}).", name);

    /// <summary>The clone's manifest; CloneNotFound when there is none, ManifestInvalid when it names anything outside the clone's folder.</summary>
    public CloneManifest LoadClone(string name)
    {
        CloneManifest manifest = ReadClone(name);
        if (CloneRename.IsRenamed(manifest, name))
            throw CloneRename.Refusal(CloneFolder(name), manifest);
        if (StoreBoundary.CloneManifestProblem(manifest, name) is string problem)
            throw UntrustedManifest(Path.Combine(CloneFolder(name), CloneFile), "clone", name, problem);
        return manifest;
    }

    private static string Suggest(IReadOnlyList<string> names) =>
        names.Count == 0 ? "" : names.Count <= 10 ? $" It has: {string.Join(", ", names)}." : $" It has {names.Count}, e.g. {string.Join(", ", names.Take(10))}.";

    internal string ManifestDigest(string manifestPath)
    {
        using SHA256 sha = SHA256.Create();
        byte[] content;
        try
        {
            content = RecordFile.ReadAll(manifestPath, Manifest.MaxManifestBytes);
        }
        catch (RecordFileRefusal ex)
        {
            throw new StoreException(StoreErrorIds.ManifestInvalid, VmCloneErrorKind.InvalidData, $"The manifest {ex.Message} Run Test-VmStore.", manifestPath, ex);
        }
        return BitConverter.ToString(sha.ComputeHash(content)).Replace("-", "");
    }

    /// <summary>Every clone manifest that can be read, by name.</summary>
    internal Dictionary<string, CloneManifest> ReadableClones()
    {
        var result = new Dictionary<string, CloneManifest>(StringComparer.OrdinalIgnoreCase);
        foreach (string name in CloneNames())
        {
            try
            {
                if (Boundary.CheckFolder(CloneFolder(name)) == BoundaryProblem.None)
                    result[name] = Manifest.Read<CloneManifest>(Path.Combine(CloneFolder(name), CloneFile));
            }
            catch (StoreException)
            {
            }
        }
        return result;
    }

    /// <summary>
    /// The store-wide lock (store/.lock): every changing command holds it shared for its whole
    /// length, Test-VmStore -Repair holds it exclusive, so a repair never runs beside an operation
    /// (and VmClone versions that took it exclusive for every command still exclude this one).
    /// Waits up to the lock timeout, then refuses with StoreBusy.
    /// </summary>
    internal IDisposable StoreLock(bool exclusive, CancellationToken cancellationToken, TimeSpan? timeout = null)
    {
        EnsureCreated();
        string path = Path.Combine(Root, LockFile);
        FileStream? held = StoreLocks.Take(path, exclusive, timeout ?? StoreLocks.DefaultTimeout, cancellationToken);
        if (held is null)
            throw new StoreException(StoreErrorIds.StoreBusy, VmCloneErrorKind.InUse,
                exclusive
                    ? $"Other VmClone commands are changing store '{Root}'; try again when they have finished."
                    : $"Store '{Root}' is being repaired (Test-VmStore -Repair); try again when it has finished.", Root);
        return held;
    }

    /// <summary>
    /// A fresh, empty staging folder beside <paramref name="finalFolder"/> (same depth, so
    /// relative parent paths stay right). Work folders have fixed names (.staging-NAME,
    /// .removing-NAME): whether a subject has one is then one lookup, not a listing of every clone.
    /// The caller holds the subject's lock and recovery has run, so a folder still there is a
    /// leftover nobody needs.
    /// </summary>
    internal static string NewStagingFolder(string finalFolder)
    {
        string staging = WorkFolder(finalFolder, StagingPrefix);
        DeleteFolder(staging);
        Directory.CreateDirectory(staging);
        return staging;
    }

    /// <summary>The staging (<see cref="StagingPrefix"/>) or removal (<see cref="RemovingPrefix"/>) folder of a subject's folder.</summary>
    internal static string WorkFolder(string subjectFolder, string prefix) =>
        Path.Combine(Path.GetDirectoryName(subjectFolder)!, prefix + Path.GetFileName(subjectFolder));

    /// <summary>The subject a staging or removal folder belongs to, or null.</summary>
    internal static string? SubjectOfWorkFolder(string folderName)
    {
        string? rest = folderName.StartsWith(StagingPrefix, StringComparison.Ordinal) ? folderName.Substring(StagingPrefix.Length)
            : folderName.StartsWith(RemovingPrefix, StringComparison.Ordinal) ? folderName.Substring(RemovingPrefix.Length) : null;
        return rest is not null && StoreNames.Problem(rest) is null ? rest : null;
    }

    /// <summary>Deletes a folder and everything in it, read-only files included; links in it (or the folder itself, when it is one) are deleted as links, never followed (see <see cref="FolderRemoval"/>).</summary>
    internal static void DeleteFolder(string folder) => FolderRemoval.Delete(folder);

    internal static bool IsDiskFile(string path) => VirtualDisk.FormatFromExtension(path) is DiskFormat;

    public override string ToString() => Root;
}
