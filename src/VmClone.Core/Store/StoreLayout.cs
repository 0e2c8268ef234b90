using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// Where everything of a store lies and what it is called: the store's own files, bases/ and
/// clones/, each subject's folder and its work (staging, removal) folders, volume file names by
/// format (from the <see cref="DiskFormats"/> registry), and paths as manifests record them
/// (store-relative, '/' separators). Reads nothing but folder listings; knows no manifest's content.
/// </summary>
internal sealed class StoreLayout
{
    internal const string StoreFile = "store.json";
    internal const string BaseFile = "base.json";
    internal const string CloneFile = "clone.json";
    internal const string PlanFile = "plan.json";
    internal const string LockFile = ".lock";
    internal const string StagingPrefix = ".staging-";
    internal const string RemovingPrefix = ".removing-";

    public StoreLayout(string root)
    {
        Root = root;
        Boundary = new StoreBoundary(root);
    }

    /// <summary>Full path of the store folder.</summary>
    public string Root { get; }

    /// <summary>Where the paths the store's records name may lead (see <see cref="StoreBoundary"/>).</summary>
    public StoreBoundary Boundary { get; }

    public string BasesFolder => Path.Combine(Root, "bases");

    public string ClonesFolder => Path.Combine(Root, "clones");

    public string StoreManifestPath => Path.Combine(Root, StoreFile);

    /// <summary>How every chain in the store is opened: parents only inside the store.</summary>
    public DiskOpenOptions OpenOptions => new() { AllowedParentRoot = Root };

    public string BaseFolder(string name) => Path.Combine(BasesFolder, name);

    public string CloneFolder(string name) => Path.Combine(ClonesFolder, name);

    /// <summary>The folder of a subject of <paramref name="kind"/> "base" or "clone".</summary>
    public string FolderOf(string kind, string name) => kind == "base" ? BaseFolder(name) : CloneFolder(name);

    public string BaseManifestPath(string name) => Path.Combine(BaseFolder(name), BaseFile);

    public string CloneManifestPath(string name) => Path.Combine(CloneFolder(name), CloneFile);

    /// <summary>The extension a volume file of <paramref name="format"/> gets; a format the registry does not know is refused.</summary>
    public static string Extension(DiskFormat format) => DiskFormats.Get(format, format.ToString()).DefaultExtension;

    /// <summary>A path inside the store as stored in manifests: relative, '/' separators.</summary>
    public string ToStoreRelative(string fullPath)
    {
        string full = Path.GetFullPath(fullPath);
        string prefix = Root.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        if (!full.StartsWith(prefix, StringComparison.Ordinal))
            return full.Replace('\\', '/');
        return full.Substring(prefix.Length).Replace('\\', '/');
    }

    public string FromStoreRelative(string relative) =>
        Path.GetFullPath(Path.Combine(Root, relative.Replace('/', Path.DirectorySeparatorChar)));

    /// <summary>
    /// A fresh, empty staging folder beside <paramref name="finalFolder"/> (same depth, so
    /// relative parent paths stay right). Work folders have fixed names (.staging-NAME,
    /// .removing-NAME): whether a subject has one is then one lookup, not a listing of every clone.
    /// The caller holds the subject's lock and recovery has run, so a folder still there is a
    /// leftover nobody needs.
    /// </summary>
    public static string NewStagingFolder(string finalFolder)
    {
        string staging = WorkFolder(finalFolder, StagingPrefix);
        DeleteFolder(staging);
        Directory.CreateDirectory(staging);
        return staging;
    }

    /// <summary>The staging (<see cref="StagingPrefix"/>) or removal (<see cref="RemovingPrefix"/>) folder of a subject's folder.</summary>
    public static string WorkFolder(string subjectFolder, string prefix) =>
        Path.Combine(Path.GetDirectoryName(subjectFolder)!, prefix + Path.GetFileName(subjectFolder));

    /// <summary>The subject a staging or removal folder belongs to, or null.</summary>
    public static string? SubjectOfWorkFolder(string folderName)
    {
        string? rest = folderName.StartsWith(StagingPrefix, StringComparison.Ordinal) ? folderName.Substring(StagingPrefix.Length)
            : folderName.StartsWith(RemovingPrefix, StringComparison.Ordinal) ? folderName.Substring(RemovingPrefix.Length) : null;
        return rest is not null && StoreNames.Problem(rest) is null ? rest : null;
    }

    /// <summary>The work folders (staging, removal) of one base or clone that exist.</summary>
    public IEnumerable<string> WorkFolders(string kind, string subject)
    {
        string folder = FolderOf(kind, subject);
        return new[] { WorkFolder(folder, RemovingPrefix), WorkFolder(folder, StagingPrefix) }.Where(Directory.Exists).ToList();
    }

    /// <summary>Deletes a folder and everything in it, read-only files included; links in it (or the folder itself, when it is one) are deleted as links, never followed (see <see cref="FolderRemoval"/>).</summary>
    public static void DeleteFolder(string folder) => FolderRemoval.Delete(folder);

    /// <summary><see cref="DeleteFolder"/>, where a failure only leaves the folder for recovery.</summary>
    public static void TryDeleteFolder(string folder)
    {
        try
        {
            DeleteFolder(folder);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    public static bool IsDiskFile(string path) => VirtualDisk.FormatFromExtension(path) is DiskFormat;

    public static bool IsUnder(string path, string folder)
    {
        string f = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        return Path.GetFullPath(path).StartsWith(f, StringComparison.Ordinal);
    }

    /// <summary>Every disk file in bases/ and clones/ (one level of folders, work folders included).</summary>
    public IEnumerable<string> DiskFilesInStore()
    {
        foreach (string top in new[] { BasesFolder, ClonesFolder })
        {
            if (!Directory.Exists(top))
                continue;
            foreach (string dir in Directory.EnumerateDirectories(top))
            {
                // Links are neither entered nor opened: what they lead to is not the store's.
                if (FileNode.Of(dir) != FileNodeKind.Directory)
                    continue;
                foreach (string file in Directory.EnumerateFiles(dir))
                {
                    if (IsDiskFile(file) && FileNode.Of(file) == FileNodeKind.RegularFile)
                        yield return file;
                }
            }
        }
    }

    /// <summary>The clone whose folder holds <paramref name="file"/> (clones/NAME/FILE), or null.</summary>
    public string? OwnerClone(string file)
    {
        string? dir = Path.GetDirectoryName(file);
        return dir is not null && string.Equals(Path.GetDirectoryName(dir), ClonesFolder, StringComparison.Ordinal) ? Path.GetFileName(dir) : null;
    }
}
