using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Threading;

namespace VmClone.Core.Store;

/// <summary>
/// The store's manifests: store.json (whether the folder is a store, making it one), each
/// base's base.json and clone's clone.json (names, existence, reading them with their boundary
/// checks, their digests), and the store-wide lock. Opens no volume.
/// </summary>
internal sealed class StoreCatalogue
{
    private readonly StoreLayout _layout;
    private volatile bool _exists;
    private volatile bool _created;

    public StoreCatalogue(StoreLayout layout) => _layout = layout;

    public StoreLayout Layout => _layout;

    private string Root => _layout.Root;

    /// <summary>True when the folder has been made a store (store.json exists).</summary>
    public bool Exists => File.Exists(_layout.StoreManifestPath);

    /// <summary>Refuses a folder that is not a store yet (see <see cref="VmStore.RequireExisting"/>).</summary>
    public void RequireExisting()
    {
        if (_created || _exists || (_exists = Exists))
            return;
        throw new StoreException(StoreErrorIds.StoreNotFound, VmCloneErrorKind.NotFound,
            Directory.Exists(Root)
                ? $"'{Root}' is not a VmClone store (it has no {StoreLayout.StoreFile}). Check -Store (or ${VmStore.StoreVariable}); a store is made by New-VmBase in a new or empty folder."
                : $"There is no VmClone store at '{Root}': the folder does not exist. Check -Store (or ${VmStore.StoreVariable}); a store is made by New-VmBase.",
            Root);
    }

    /// <summary>Makes the folder a store if it is not one yet. A non-empty folder that is not a store is refused.</summary>
    public void EnsureCreated()
    {
        // Once per instance: a fleet command would otherwise read store.json for every clone.
        if (_created)
            return;
        if (Exists)
        {
            Manifest.Read<StoreManifest>(_layout.StoreManifestPath);
            Directory.CreateDirectory(_layout.BasesFolder);
            Directory.CreateDirectory(_layout.ClonesFolder);
            _created = true;
            return;
        }
        if (Directory.Exists(Root) && Directory.EnumerateFileSystemEntries(Root).Any(e =>
                Path.GetFileName(e) is not ("bases" or "clones" or StoreLayout.LockFile or StoreLocks.FolderName)))
            throw new StoreException(StoreErrorIds.NotAStore, VmCloneErrorKind.InvalidArgument,
                $"'{Root}' is not empty and is not a VmClone store (it has no {StoreLayout.StoreFile}); choose an empty or new folder for -Store.", Root);
        Directory.CreateDirectory(_layout.BasesFolder);
        Directory.CreateDirectory(_layout.ClonesFolder);
        Manifest.Write(_layout.StoreManifestPath, new StoreManifest { Created = DateTimeOffset.UtcNow });
        _created = true;
    }

    /// <summary>Names of the bases (folders with a manifest), sorted.</summary>
    public IReadOnlyList<string> BaseNames() => Names(_layout.BasesFolder, StoreLayout.BaseFile);

    /// <summary>Names of the clones (folders with a manifest), sorted.</summary>
    public IReadOnlyList<string> CloneNames() => Names(_layout.ClonesFolder, StoreLayout.CloneFile);

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

    public bool BaseExists(string name) => StoreNames.Problem(name) is null && File.Exists(_layout.BaseManifestPath(name));

    // The clone folders' names when this instance first asked, by their case-folded form: a
    // fleet New-VmClone asks about every name it makes, and one listing serves the whole command.
    private Dictionary<string, string>? _cloneFoldersByFolded;
    private readonly object _cloneFoldersGate = new();

    /// <summary>
    /// The name of an existing clone folder that differs from <paramref name="name"/> only in case
    /// (LAB-01 for lab-01), or null. Names are one whatever their case: on a file system that tells
    /// them apart two such clones would be two folders that every command and admin confuses. A
    /// folder found in the listing is looked at again (it may have gone since); one made since the
    /// listing by another process is not seen, nor is one this instance made (a command's own
    /// names are told apart whatever their case before they reach the store).
    /// </summary>
    public string? CloneFolderOtherCase(string name)
    {
        Dictionary<string, string> known;
        lock (_cloneFoldersGate)
        {
            known = _cloneFoldersByFolded ??= Directory.Exists(_layout.ClonesFolder)
                ? Directory.EnumerateDirectories(_layout.ClonesFolder).Select(Path.GetFileName).Where(n => n is not null && !n.StartsWith(".", StringComparison.Ordinal))
                    .GroupBy(n => n!.ToUpperInvariant()).ToDictionary(g => g.Key, g => g.First()!, StringComparer.Ordinal)
                : new Dictionary<string, string>(StringComparer.Ordinal);
        }
        return known.TryGetValue(name.ToUpperInvariant(), out string? other) && !string.Equals(other, name, StringComparison.Ordinal)
            && Directory.Exists(_layout.CloneFolder(other)) ? other : null;
    }

    public bool CloneExists(string name) => StoreNames.Problem(name) is null && File.Exists(_layout.CloneManifestPath(name));

    /// <summary>The base's manifest; BaseNotFound when there is none, ManifestInvalid when it names anything outside the base's folder.</summary>
    public BaseManifest LoadBase(string name)
    {
        StoreNames.Validate(name, "base");
        if (!BaseExists(name))
            throw new StoreException(StoreErrorIds.BaseNotFound, VmCloneErrorKind.NotFound,
                $"There is no base '{name}' in store '{Root}'." + Suggest(BaseNames()) + InterruptedRename(name), name);
        string folder = _layout.BaseFolder(name);
        RequireRealFolder(folder, "base", name);
        BaseManifest manifest = Manifest.Read<BaseManifest>(Path.Combine(folder, StoreLayout.BaseFile));
        if (StoreBoundary.BaseManifestProblem(manifest, name) is string problem)
            throw UntrustedManifest(Path.Combine(folder, StoreLayout.BaseFile), "base", name, problem);
        return manifest;
    }

    /// <summary>Advice when a rename of base <paramref name="name"/> was cut off after its folder moved (only looked for once the base is not found).</summary>
    private string InterruptedRename(string name)
    {
        StorePlan? journal = Directory.Exists(StoreLayout.WorkFolder(_layout.BaseFolder(name), StoreLayout.StagingPrefix))
            ? StoreJournal.Read(StoreLayout.WorkFolder(_layout.BaseFolder(name), StoreLayout.StagingPrefix)) : null;
        return journal is { Operation: StoreOperation.RenameBase, NewName: string to }
            ? $" Renaming it to '{to}' was cut off: run Rename-VmBase {name} -NewName {to} again, or Test-VmStore -Repair, to finish it."
            : "";
    }

    /// <summary>The clone's manifest as it is, without the boundary checks of <see cref="LoadClone"/> (for describing it).</summary>
    public CloneManifest ReadClone(string name)
    {
        StoreNames.Validate(name, "clone");
        if (!CloneExists(name))
            throw new StoreException(StoreErrorIds.CloneNotFound, VmCloneErrorKind.NotFound,
                $"There is no clone '{name}' in store '{Root}'." + Suggest(CloneNames()), name);
        RequireRealFolder(_layout.CloneFolder(name), "clone", name);
        CloneRecord record = CloneRecord.Read(_layout.CloneFolder(name), name);
        if (record.Manifest is null)
            throw new StoreException(record.ErrorId, VmCloneErrorKind.InvalidData,
                $"The clone '{name}' was not changed: {record.Unreadable}" + (record.ErrorId != StoreErrorIds.ManifestInvalid ? "" : " Test-VmStore -Repair rebuilds it from the clone's volumes (keeping every file) where that is unambiguous."), name);
        return record.Manifest;
    }

    /// <summary>The clone's manifest; CloneNotFound when there is none, ManifestInvalid when it names anything outside the clone's folder.</summary>
    public CloneManifest LoadClone(string name)
    {
        CloneManifest manifest = ReadClone(name);
        if (CloneRename.IsRenamed(manifest, name))
            throw CloneRename.Refusal(_layout.CloneFolder(name), manifest);
        if (StoreBoundary.CloneManifestProblem(manifest, name) is string problem)
            throw UntrustedManifest(_layout.CloneManifestPath(name), "clone", name, problem);
        return manifest;
    }

    /// <summary>ManifestInvalid when a base's or clone's folder is a link (or lies in one): nothing in it is read.</summary>
    private void RequireRealFolder(string folder, string kind, string name)
    {
        if (_layout.Boundary.CheckFolder(folder) is BoundaryProblem problem and not BoundaryProblem.None)
            throw new StoreException(StoreErrorIds.ManifestInvalid, VmCloneErrorKind.InvalidData,
                $"The {kind} '{name}' cannot be used: {StoreBoundary.Describe(problem, Path.Combine(folder, kind == "base" ? StoreLayout.BaseFile : StoreLayout.CloneFile))}. Run Test-VmStore.", name);
    }

    private static StoreException UntrustedManifest(string path, string kind, string name, string problem) =>
        new(StoreErrorIds.ManifestInvalid, VmCloneErrorKind.InvalidData,
            $"The manifest '{path}' of {kind} '{name}' cannot be trusted: {problem}. Nothing it names was touched; run Test-VmStore, and restore the manifest from a backup (or remove the {kind}).", name);

    private static string Suggest(IReadOnlyList<string> names) =>
        names.Count == 0 ? "" : names.Count <= 10 ? $" It has: {string.Join(", ", names)}." : $" It has {names.Count}, e.g. {string.Join(", ", names.Take(10))}.";

    /// <summary>The SHA-256 of a manifest file's bytes: what a plan compares at execution to see the subject unchanged.</summary>
    public string ManifestDigest(string manifestPath)
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

    /// <summary>The digest of a clone's manifest, "" when it has none (planning records it before reading the manifest it stands for).</summary>
    public string CloneDigest(string name) => CloneExists(name) ? ManifestDigest(_layout.CloneManifestPath(name)) : "";

    /// <summary>Every clone manifest that can be read, by name.</summary>
    public Dictionary<string, CloneManifest> ReadableClones()
    {
        var result = new Dictionary<string, CloneManifest>(StringComparer.OrdinalIgnoreCase);
        foreach (string name in CloneNames())
        {
            try
            {
                if (_layout.Boundary.CheckFolder(_layout.CloneFolder(name)) == BoundaryProblem.None)
                    result[name] = Manifest.Read<CloneManifest>(_layout.CloneManifestPath(name));
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
    public IDisposable StoreLock(bool exclusive, CancellationToken cancellationToken, TimeSpan? timeout = null)
    {
        EnsureCreated();
        string path = Path.Combine(Root, StoreLayout.LockFile);
        FileStream? held = StoreLocks.Take(path, exclusive, timeout ?? StoreLocks.DefaultTimeout, cancellationToken);
        if (held is null)
            throw new StoreException(StoreErrorIds.StoreBusy, VmCloneErrorKind.InUse,
                exclusive
                    ? $"Other VmClone commands are changing store '{Root}'; try again when they have finished."
                    : $"Store '{Root}' is being repaired (Test-VmStore -Repair); try again when it has finished.", Root);
        return held;
    }
}
