using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace VmClone.Core.Store;

/// <summary>
/// A clone folder's clone.json as read: the manifest, or why it cannot be read. A clone whose
/// manifest cannot be read is still a clone (its folder and volumes are there): it is listed as
/// <see cref="CloneState.Unreadable"/>, counted for the base its volumes depend on, and rebuilt by
/// Test-VmStore -Repair (see <see cref="ManifestRebuild"/>), never dropped from view.
/// </summary>
internal sealed class CloneRecord
{
    private CloneRecord(string name, string folder, CloneManifest? manifest, string? unreadable, bool tooNew, string? errorId = null)
    {
        ErrorId = errorId ?? StoreErrorIds.ManifestInvalid;
        Name = name;
        Folder = folder;
        Manifest = manifest;
        Unreadable = unreadable;
        TooNew = tooNew;
    }

    /// <summary>The folder's name: the clone's name.</summary>
    public string Name { get; }

    public string Folder { get; }

    public string ManifestPath => Path.Combine(Folder, VmStore.CloneFile);

    /// <summary>The manifest, or null when it cannot be read.</summary>
    public CloneManifest? Manifest { get; }

    /// <summary>Why the manifest cannot be read (naming the file), or null.</summary>
    public string? Unreadable { get; }

    /// <summary>The error id a command refused for the unreadable manifest carries (ManifestInvalid, ManifestMissing, StoreFormatUnsupported).</summary>
    public string ErrorId { get; }

    /// <summary>The manifest has a format version newer than this VmClone understands: it is never rebuilt (that would drop what the newer version wrote).</summary>
    public bool TooNew { get; }

    /// <summary>Reads the clone.json of <paramref name="folder"/> (whose folders were checked to be real); never throws for a manifest that cannot be read.</summary>
    public static CloneRecord Read(string folder, string name)
    {
        string path = Path.Combine(folder, VmStore.CloneFile);
        try
        {
            return new CloneRecord(name, folder, Store.Manifest.Read<CloneManifest>(path), null, false);
        }
        catch (StoreException ex)
        {
            return new CloneRecord(name, folder, null, ex.Message, ex.ErrorId == StoreErrorIds.StoreFormatUnsupported, ex.ErrorId);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            return new CloneRecord(name, folder, null, $"The manifest '{path}' cannot be read: {ex.Message}", false);
        }
    }

    /// <summary>Every clone of <paramref name="store"/> whose folder is real (a linked folder is Test-VmStore's to report), sorted by name.</summary>
    public static IReadOnlyList<CloneRecord> ReadAll(VmStore store) =>
        store.CloneNames()
            .Where(n => store.Boundary.CheckFolder(store.CloneFolder(n)) == BoundaryProblem.None)
            .Select(n => Read(store.CloneFolder(n), n))
            .ToList();
}

/// <summary>
/// A clone folder renamed (or copied) by hand: the manifest in it names another clone. Its volumes
/// still depend on the same base files (their links are relative to the clones folder, which did
/// not change), so the clone is sound once it takes the folder's name; until then every command
/// refuses it with <see cref="StoreErrorIds.CloneRenamed"/>, as the plan and its journal would
/// name the wrong clone.
/// </summary>
internal static class CloneRename
{
    /// <summary>True when the manifest read from folder <paramref name="folderName"/> (a valid clone name) differs from a trusted one only by the clone's name.</summary>
    public static bool IsRenamed(CloneManifest manifest, string folderName) =>
        !string.Equals(manifest.Name, folderName, StringComparison.OrdinalIgnoreCase)
        && StoreNames.Problem(folderName) is null
        && StoreNames.Problem(manifest.Name) is null
        && StoreBoundary.CloneManifestProblem(manifest, manifest.Name) is null;

    /// <summary>The state in words, naming the folder and the name its manifest holds.</summary>
    public static string Describe(string folder, CloneManifest manifest) =>
        $"the folder '{folder}' was renamed (or copied): its manifest names the clone '{manifest.Name}', not '{Path.GetFileName(folder)}'";

    public static StoreException Refusal(string folder, CloneManifest manifest)
    {
        string name = Path.GetFileName(folder);
        return new StoreException(StoreErrorIds.CloneRenamed, VmCloneErrorKind.InvalidData,
            $"The clone '{name}' was not changed: {Describe(folder, manifest)}. Run Test-VmStore -Repair to make '{name}' its name, or rename the folder back to '{manifest.Name}'.", name);
    }

    /// <summary>
    /// Why the folder's name cannot be adopted, or null: another clone folder has the same name in
    /// another case (names are one clone whatever their case).
    /// </summary>
    public static string? AdoptProblem(VmStore store, string folder)
    {
        string name = Path.GetFileName(folder);
        string? twin = Directory.EnumerateDirectories(store.ClonesFolder).Select(Path.GetFileName)
            .FirstOrDefault(n => n is not null && !string.Equals(n, name, StringComparison.Ordinal) && string.Equals(n, name, StringComparison.OrdinalIgnoreCase));
        if (twin is not null)
            return $"the clone folder '{Path.Combine(store.ClonesFolder, twin)}' has the same name in another case; rename one of them to a name no other clone has ('{name}' and '{twin}' are one clone name), then run Test-VmStore -Repair again";
        return null;
    }

    /// <summary>Rewrites the manifest's name to the folder's, under the clone's lock, atomically.</summary>
    public static void Adopt(VmStore store, string folder, CloneManifest manifest)
    {
        string name = Path.GetFileName(folder);
        using (StoreLocks.Acquire(store.Root, new[] { new LockRequest("clone", name, exclusive: true) }, $"Test-VmStore -Repair: clone '{name}' takes its folder's name", default))
        {
            manifest.Name = name;
            Store.Manifest.Write(Path.Combine(folder, VmStore.CloneFile), manifest);
        }
    }
}
