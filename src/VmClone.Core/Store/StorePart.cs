using System.Collections.Generic;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// What every part of the store (planners, preconditions, executor, recovery, checker) sees of
/// it: its layout and its catalogue of manifests, by the names the store's code has always used.
/// A part reaches the store through these alone, never through <see cref="VmStore"/>.
/// </summary>
internal abstract class StorePart
{
    protected const string StoreFile = StoreLayout.StoreFile;
    protected const string BaseFile = StoreLayout.BaseFile;
    protected const string CloneFile = StoreLayout.CloneFile;
    protected const string PlanFile = StoreLayout.PlanFile;
    protected const string LockFile = StoreLayout.LockFile;
    protected const string StagingPrefix = StoreLayout.StagingPrefix;
    protected const string RemovingPrefix = StoreLayout.RemovingPrefix;

    protected StorePart(StoreCatalogue catalogue)
    {
        Catalogue = catalogue;
        Layout = catalogue.Layout;
    }

    protected StoreLayout Layout { get; }

    protected StoreCatalogue Catalogue { get; }

    protected string Root => Layout.Root;

    protected StoreBoundary Boundary => Layout.Boundary;

    protected DiskOpenOptions OpenOptions => Layout.OpenOptions;

    protected string BasesFolder => Layout.BasesFolder;

    protected string ClonesFolder => Layout.ClonesFolder;

    protected string BaseFolder(string name) => Layout.BaseFolder(name);

    protected string CloneFolder(string name) => Layout.CloneFolder(name);

    protected bool BaseExists(string name) => Catalogue.BaseExists(name);

    protected bool CloneExists(string name) => Catalogue.CloneExists(name);

    protected BaseManifest LoadBase(string name) => Catalogue.LoadBase(name);

    protected CloneManifest LoadClone(string name) => Catalogue.LoadClone(name);

    protected string ManifestDigest(string manifestPath) => Catalogue.ManifestDigest(manifestPath);

    protected Dictionary<string, CloneManifest> ReadableClones() => Catalogue.ReadableClones();

    protected string ToStoreRelative(string fullPath) => Layout.ToStoreRelative(fullPath);

    protected static string Extension(DiskFormat format) => StoreLayout.Extension(format);

    protected static string WorkFolder(string subjectFolder, string prefix) => StoreLayout.WorkFolder(subjectFolder, prefix);

    protected static string NewStagingFolder(string finalFolder) => StoreLayout.NewStagingFolder(finalFolder);

    protected static void DeleteFolder(string folder) => StoreLayout.DeleteFolder(folder);

    protected static void TryDeleteFolder(string folder) => StoreLayout.TryDeleteFolder(folder);

    protected static bool IsDiskFile(string path) => StoreLayout.IsDiskFile(path);

    protected static bool IsUnder(string path, string folder) => StoreLayout.IsUnder(path, folder);
}
