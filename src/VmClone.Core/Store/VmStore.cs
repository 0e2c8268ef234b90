using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
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

    private const string StoreFile = StoreLayout.StoreFile;
    private const string BaseFile = StoreLayout.BaseFile;
    private const string CloneFile = StoreLayout.CloneFile;
    private const string PlanFile = StoreLayout.PlanFile;
    private const string LockFile = StoreLayout.LockFile;
    private const string StagingPrefix = StoreLayout.StagingPrefix;
    private const string RemovingPrefix = StoreLayout.RemovingPrefix;

    private VmStore(string root, bool rememberBases)
    {
        Layout = new StoreLayout(root);
        Catalogue = new StoreCatalogue(Layout);
        Chains = new KeptChains(rememberBases, Layout.OpenOptions);
        Inspector = new StoreInspector(Layout, Catalogue, Chains);
    }

    /// <summary>Where everything of the store lies (see <see cref="StoreLayout"/>).</summary>
    internal StoreLayout Layout { get; }

    /// <summary>The store's manifests (see <see cref="StoreCatalogue"/>).</summary>
    internal StoreCatalogue Catalogue { get; }

    /// <summary>The base layers a fleet command remembers (see <see cref="KeptChains"/>).</summary>
    internal KeptChains Chains { get; }

    /// <summary>Describes bases, clones and volumes (see <see cref="StoreInspector"/>).</summary>
    internal StoreInspector Inspector { get; }

    private StoreBoundary Boundary => Layout.Boundary;

    /// <summary>Full path of the store folder.</summary>
    public string Root => Layout.Root;

    public string BasesFolder => Layout.BasesFolder;

    public string ClonesFolder => Layout.ClonesFolder;

    /// <summary>True when the folder has been made a store (store.json exists).</summary>
    public bool Exists => Catalogue.Exists;

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
    public DiskOpenOptions OpenOptions => Layout.OpenOptions;

    public string BaseFolder(string name) => Layout.BaseFolder(name);

    public string CloneFolder(string name) => Layout.CloneFolder(name);

    /// <summary>
    /// Refuses a folder that is not a store yet, for every command but those that create one
    /// (a new base): a mistyped -Store would otherwise read as an empty, healthy store, and a
    /// changing command would make a store of it.
    /// </summary>
    public void RequireExisting() => Catalogue.RequireExisting();

    /// <summary>Names of the bases (folders with a manifest), sorted.</summary>
    public IReadOnlyList<string> BaseNames() => Catalogue.BaseNames();

    /// <summary>Names of the clones (folders with a manifest), sorted.</summary>
    public IReadOnlyList<string> CloneNames() => Catalogue.CloneNames();

    public bool BaseExists(string name) => Catalogue.BaseExists(name);

    public bool CloneExists(string name) => Catalogue.CloneExists(name);

    /// <summary>The base's manifest; BaseNotFound when there is none, ManifestInvalid when it names anything outside the base's folder.</summary>
    public BaseManifest LoadBase(string name) => Catalogue.LoadBase(name);

    /// <summary>The clone's manifest; CloneNotFound when there is none, ManifestInvalid when it names anything outside the clone's folder.</summary>
    public CloneManifest LoadClone(string name) => Catalogue.LoadClone(name);

    /// <summary>Bases whose names match <paramref name="match"/> (all when null).</summary>
    public IReadOnlyList<VmBaseInfo> GetBases(Func<string, bool>? match = null) => Inspector.GetBases(match);

    /// <summary>One base, described; BaseNotFound when it does not exist.</summary>
    public VmBaseInfo GetBase(string name) => Inspector.GetBase(name);

    /// <summary>Clones whose names match <paramref name="match"/> (all when null), optionally only those on <paramref name="baseName"/>.</summary>
    public IReadOnlyList<VmCloneInfo> GetClones(Func<string, bool>? match = null, string? baseName = null) => Inspector.GetClones(match, baseName);

    /// <summary>
    /// Names of the clones on <paramref name="baseName"/>, sorted, read from their manifests
    /// alone: no volume of a readable clone is opened (a fleet command plans each clone
    /// afterwards, which reads it again). A clone whose manifest cannot be read is named when its
    /// volumes' parent links lead to the base, so a fleet command over the base fails it loudly
    /// instead of passing it by. BaseNotFound when there is no such base.
    /// </summary>
    public IReadOnlyList<string> CloneNamesOf(string baseName) => Inspector.CloneNamesOf(baseName);

    /// <summary>One clone, described (<see cref="CloneState.Unreadable"/> when its manifest cannot be read); CloneNotFound when it does not exist.</summary>
    public VmCloneInfo GetClone(string name) => Inspector.GetClone(name);

    /// <summary>Closes the base volumes kept open for creating children (see <see cref="At"/>'s rememberBases). The instance can still be used; it then opens them for each new volume.</summary>
    public void Dispose() => Chains.Dispose();

    public override string ToString() => Root;

    // Forwarders for the parts of this type not yet moved into their own.
    private CloneManifest ReadClone(string name) => Catalogue.ReadClone(name);
    private string ManifestDigest(string path) => Catalogue.ManifestDigest(path);
    private Dictionary<string, CloneManifest> ReadableClones() => Catalogue.ReadableClones();
    private IDisposable StoreLock(bool exclusive, CancellationToken cancellationToken) => Catalogue.StoreLock(exclusive, cancellationToken);
    private static string Extension(DiskFormat format) => StoreLayout.Extension(format);
    private string ToStoreRelative(string fullPath) => Layout.ToStoreRelative(fullPath);
    private string FromStoreRelative(string relative) => Layout.FromStoreRelative(relative);
    private static string NewStagingFolder(string finalFolder) => StoreLayout.NewStagingFolder(finalFolder);
    private static string WorkFolder(string subjectFolder, string prefix) => StoreLayout.WorkFolder(subjectFolder, prefix);
    private static string? SubjectOfWorkFolder(string folderName) => StoreLayout.SubjectOfWorkFolder(folderName);
    private static void DeleteFolder(string folder) => StoreLayout.DeleteFolder(folder);
    private static void TryDeleteFolder(string folder) => StoreLayout.TryDeleteFolder(folder);
    private static bool IsDiskFile(string path) => StoreLayout.IsDiskFile(path);
    private static bool IsUnder(string path, string folder) => StoreLayout.IsUnder(path, folder);
    private IEnumerable<string> DiskFilesInStore() => Layout.DiskFilesInStore();
    private string? OwnerClone(string file) => Layout.OwnerClone(file);
    private IEnumerable<string> WorkFolders(string kind, string subject) => Layout.WorkFolders(kind, subject);
    private VmBaseInfo DescribeBase(BaseManifest manifest, int cloneCount) => Inspector.DescribeBase(manifest, cloneCount);
    private VmVolumeInfo DescribeCloneVolume(string cloneName, CloneVolumeManifest v, string folder) => Inspector.DescribeCloneVolume(cloneName, v, folder);
    private T OverParent<T>(string parentPath, Func<VirtualDisk, T> action) => Chains.OverParent(parentPath, action);
    private void CreateChild(string path, string parentPath, DiskFormat format) => Chains.CreateChild(path, parentPath, format);
}
