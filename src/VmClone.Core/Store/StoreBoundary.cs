using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>Why a file a store record names is not accepted; it is then neither opened, nor rewritten, nor deleted.</summary>
internal enum BoundaryProblem
{
    None,
    /// <summary>The file (or a folder on the way) does not exist.</summary>
    Missing,
    /// <summary>The record names something that is not a volume file of its own folder (an absolute path, '..', another folder).</summary>
    OutsideFolder,
    /// <summary>A folder between the store's root and the file is a symbolic link.</summary>
    LinkedFolder,
    /// <summary>The file is a symbolic link.</summary>
    Link,
    /// <summary>A FIFO, device, socket or folder.</summary>
    NotRegularFile,
    /// <summary>A VMDK descriptor naming other files: a store volume is always one file.</summary>
    NotSingleFile,
}

/// <summary>
/// Where each path a store record names may lead. The records (manifests, journals) and the clone
/// folders may have been written by someone other than the administrator running VmClone, so
/// every path derived from them is accepted only inside where it may point: a clone's volumes in
/// its own folder, a base's in the base's folder, a journal's parents in bases/; the volume file
/// and every folder from the store's root to it must be real (no symbolic links) and the file a
/// regular file. Each check is a few lstat calls and string comparisons: cheap enough for every
/// volume of every clone a fleet command touches.
/// </summary>
internal sealed class StoreBoundary
{
    private static readonly char[] Separators = { '/', '\\' };

    public StoreBoundary(string root)
    {
        Root = root;
        _prefix = root.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
    }

    private readonly string _prefix;

    // Folders this boundary has found to be real folders and that no command moves while it runs
    // with the store open: bases/, clones/ and a base's own folder. A fleet command asks about
    // the same base folder for every volume of every clone; each answer is one lstat per folder
    // from the root down, so they are asked once per store instance (one command). Clone
    // folders and work folders are the subjects that do move: they are always asked again.
    private readonly ConcurrentDictionary<string, bool> _provenFolders = new(StringComparer.Ordinal);

    public string Root { get; }

    /// <summary>Error id a refusal for <paramref name="problem"/> carries.</summary>
    public static string ErrorId(BoundaryProblem problem) => problem switch
    {
        BoundaryProblem.OutsideFolder => StoreErrorIds.ManifestInvalid,
        BoundaryProblem.NotRegularFile => StoreErrorIds.VolumeNotRegularFile,
        BoundaryProblem.Missing => StoreErrorIds.CloneChanged,
        _ => StoreErrorIds.VolumeOutsideStore,
    };

    /// <summary>The problem in words, for a message naming <paramref name="path"/>.</summary>
    public static string Describe(BoundaryProblem problem, string path) => problem switch
    {
        BoundaryProblem.Missing => $"the volume file '{path}' is missing",
        BoundaryProblem.OutsideFolder => $"'{path}' is not a volume file of its own folder; the manifest is not trusted",
        BoundaryProblem.LinkedFolder => $"the folder of '{path}' is (or lies in) a symbolic link; nothing in it is opened",
        BoundaryProblem.Link => $"the volume file '{path}' is a symbolic link; store volumes are never followed out of their folder, so it was not opened",
        BoundaryProblem.NotRegularFile => $"the volume file '{path}' is not a regular file (a FIFO, device, socket or folder); it was not opened",
        BoundaryProblem.NotSingleFile => $"the volume file '{path}' is a VMDK descriptor naming other files; a store volume is one file, so its extents were not trusted",
        _ => "",
    };

    /// <summary>Why <paramref name="file"/> is not a volume file name a manifest may give (the bare name of a file of a valid volume name with a base format's extension), or null.</summary>
    public static string? VolumeFileNameProblem(string? file)
    {
        if (string.IsNullOrEmpty(file))
            return "it is empty";
        if (file!.IndexOfAny(Separators) >= 0 || Path.IsPathRooted(file) || file.IndexOf(':') >= 0)
            return "it is a path, not a file name in the folder";
        string extension = Path.GetExtension(file);
        if (!DiskFormats.BaseFormats.Any(f => f.DefaultExtension.Equals(extension, StringComparison.OrdinalIgnoreCase)))
            return $"it is not a {string.Join(" or ", DiskFormats.BaseFormats.Select(f => f.DefaultExtension))} file";
        return StoreNames.Problem(Path.GetFileNameWithoutExtension(file));
    }

    /// <summary>Why a clone manifest read from folder <paramref name="folderName"/> cannot be trusted, or null.</summary>
    public static string? CloneManifestProblem(CloneManifest manifest, string folderName)
    {
        if (!string.Equals(manifest.Name, folderName, StringComparison.OrdinalIgnoreCase))
            return $"it names the clone '{manifest.Name}' but lies in the folder '{folderName}'";
        if (StoreNames.Problem(manifest.Base) is string baseProblem)
            return $"its base '{manifest.Base}' is not a valid base name ({baseProblem})";
        return VolumesProblem(manifest.Volumes?.Select(v => (v?.Name, v?.File)), "clone");
    }

    /// <summary>Why a base manifest read from folder <paramref name="folderName"/> cannot be trusted, or null.</summary>
    public static string? BaseManifestProblem(BaseManifest manifest, string folderName)
    {
        if (!string.Equals(manifest.Name, folderName, StringComparison.OrdinalIgnoreCase))
            return $"it names the base '{manifest.Name}' but lies in the folder '{folderName}'";
        return VolumesProblem(manifest.Volumes?.Select(v => (v?.Name, v?.File)), "base");
    }

    private static string? VolumesProblem(IEnumerable<(string? Name, string? File)>? volumes, string kind)
    {
        if (volumes is null)
            return "it lists no volumes";
        var files = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach ((string? name, string? file) in volumes)
        {
            if (StoreNames.Problem(name) is string nameProblem)
                return $"the volume name '{name}' is not valid ({nameProblem})";
            if (VolumeFileNameProblem(file) is string fileProblem)
                return $"volume '{name}' names the file '{file}', which is not a volume file in the {kind}'s folder ({fileProblem})";
            if (!files.Add(file!))
                return $"the file '{file}' is named by two volumes";
        }
        return null;
    }

    /// <summary>
    /// Checks the file <paramref name="fileName"/> (already a valid volume file name) in
    /// <paramref name="folder"/> (a folder inside the store): every folder from the root down is
    /// a real folder and the file a regular file, no link anywhere.
    /// </summary>
    public BoundaryProblem CheckFile(string folder, string fileName)
    {
        BoundaryProblem inFolder = CheckFolder(folder);
        if (inFolder != BoundaryProblem.None)
            return inFolder;
        return FileNode.Of(Path.Combine(folder, fileName)) switch
        {
            FileNodeKind.RegularFile => BoundaryProblem.None,
            FileNodeKind.Missing => BoundaryProblem.Missing,
            FileNodeKind.Link => BoundaryProblem.Link,
            _ => BoundaryProblem.NotRegularFile,
        };
    }

    /// <summary>Checks a full path that should be a volume file inside the store (see <see cref="CheckFile"/>).</summary>
    public BoundaryProblem CheckPath(string path)
    {
        string full = Path.GetFullPath(path);
        string name = Path.GetFileName(full);
        if (VolumeFileNameProblem(name) is not null)
            return BoundaryProblem.OutsideFolder;
        return CheckFile(Path.GetDirectoryName(full)!, name);
    }

    /// <summary>Every folder from the store's root down to <paramref name="folder"/> is a folder and not a link (the root itself is the administrator's choice).</summary>
    public BoundaryProblem CheckFolder(string folder)
    {
        if (!folder.StartsWith(_prefix, StringComparison.Ordinal))
            return BoundaryProblem.OutsideFolder;
        string current = Root;
        string[] parts = folder.Substring(_prefix.Length).Split(Separators, StringSplitOptions.RemoveEmptyEntries);
        for (int depth = 0; depth < parts.Length; depth++)
        {
            string part = parts[depth];
            if (part is "." or "..")
                return BoundaryProblem.OutsideFolder;
            current = Path.Combine(current, part);
            bool stays = depth == 0 || (depth == 1 && parts[0] == "bases" && !part.StartsWith(".", StringComparison.Ordinal));
            if (stays && _provenFolders.ContainsKey(current))
                continue;
            switch (FileNode.Of(current))
            {
                case FileNodeKind.Directory:
                    if (stays)
                        _provenFolders.TryAdd(current, true);
                    continue;
                case FileNodeKind.Missing:
                    return BoundaryProblem.Missing;
                case FileNodeKind.Link:
                    return BoundaryProblem.LinkedFolder;
                default:
                    return BoundaryProblem.NotRegularFile;
            }
        }
        return BoundaryProblem.None;
    }

    /// <summary>
    /// Refuses (with the problem's error id, naming the file) a volume file of
    /// <paramref name="subject"/> that is a link, lies in a linked folder or is not a regular
    /// file; a missing one passes when <paramref name="missingAllowed"/> (it is about to be created).
    /// </summary>
    public void RequireVolume(string folder, string file, string kind, string subject, string volume, bool missingAllowed)
    {
        BoundaryProblem problem = VolumeFileNameProblem(file) is null ? CheckFile(folder, file) : BoundaryProblem.OutsideFolder;
        if (problem == BoundaryProblem.None || (problem == BoundaryProblem.Missing && missingAllowed))
            return;
        string path = Path.Combine(folder, file);
        throw new StoreException(ErrorId(problem), VmCloneErrorKind.InvalidData,
            $"The {kind} '{subject}' was not changed: volume '{volume}': {Describe(problem, path)}. Run Test-VmStore; remove or replace that file by hand if it is not the {kind}'s.", subject);
    }

    /// <summary>A VMDK layer opened from a store volume must be one file (sparse with its descriptor embedded), never a descriptor naming extents.</summary>
    public static bool IsSingleFile(DiskLayer layer) => layer.Format switch
    {
        DiskFormat.Vmdk => layer.Details.TryGetValue("EmbeddedDescriptor", out string? embedded) && embedded == "True",
        // A qcow2 image with an external data file keeps its content in another file.
        DiskFormat.Qcow2 => !layer.Details.ContainsKey("DataFile"),
        _ => true,
    };

    /// <summary>
    /// Why the journal <paramref name="plan"/> (already mapped into this store) of clone
    /// <paramref name="subject"/> must not be finished, or null. Its steps may only do what the
    /// clone operations do: write the clone's own volume files (named by the manifest it writes),
    /// as children of base volumes of this store, or flatten a volume into itself or (converting
    /// its format) from the file of that volume it supersedes, and delete only such files.
    /// </summary>
    public string? JournalProblem(StorePlan plan, string subject, string cloneFolder, string basesFolder)
    {
        if (plan.SubjectKind != "clone" || !string.Equals(plan.Subject, subject, StringComparison.OrdinalIgnoreCase))
            return $"it is a plan for {plan.SubjectKind} '{plan.Subject}', not for clone '{subject}'";
        if (plan.Operation is not (StoreOperation.Restore or StoreOperation.ClearTemporary or StoreOperation.Rebase))
            return $"a {plan.Operation} is never journalled";
        if (plan.CloneManifest is null)
            return "it has no manifest to write";
        if (CloneManifestProblem(plan.CloneManifest, subject) is string manifestProblem)
            return "the manifest it would write cannot be trusted: " + manifestProblem;
        foreach (PlannedVolume step in plan.Volumes)
        {
            if (step is null)
                return "a step is empty";
            string file = Path.GetFileName(step.Path);
            CloneVolumeManifest? target = plan.CloneManifest.Volumes.FirstOrDefault(v => string.Equals(v.Name, step.Volume, StringComparison.OrdinalIgnoreCase));
            if (target is null || !string.Equals(target.File, file, StringComparison.Ordinal)
                || !string.Equals(Path.GetDirectoryName(step.Path), cloneFolder, StringComparison.Ordinal))
                return $"volume '{step.Volume}' would write '{step.Path}', which is not that volume's file in the clone's folder";
            if (step.Supersedes is string old)
            {
                string oldName = Path.GetFileName(old);
                if (VolumeFileNameProblem(oldName) is not null || !string.Equals(Path.GetDirectoryName(old), cloneFolder, StringComparison.Ordinal)
                    || !string.Equals(Path.GetFileNameWithoutExtension(oldName), step.Volume, StringComparison.OrdinalIgnoreCase)
                    || plan.CloneManifest.Volumes.Any(v => string.Equals(v.File, oldName, StringComparison.OrdinalIgnoreCase)))
                    return $"volume '{step.Volume}' would delete '{old}', which is not a file that volume leaves behind";
            }
            string? sourceProblem = step.Action switch
            {
                VolumeAction.Keep or VolumeAction.CreateEmpty => null,
                // Into itself, or (a rebase converting formats) from the file of the same volume
                // it supersedes, which the check above holds to the clone's folder.
                VolumeAction.Flatten => step.Source is string s && (string.Equals(Path.GetFullPath(s), step.Path, StringComparison.Ordinal)
                    || (step.Supersedes is string superseded && string.Equals(Path.GetFullPath(s), superseded, StringComparison.Ordinal)))
                    ? null : "a volume is only ever flattened into itself, or converted from the file it supersedes",
                VolumeAction.CreateChild or VolumeAction.Replace or VolumeAction.Reset or VolumeAction.Reparent => BaseVolumeProblem(step.Source, basesFolder),
                _ => $"{step.Action} is not a step of a clone operation",
            };
            if (sourceProblem is not null)
                return $"volume '{step.Volume}': {sourceProblem}";
        }
        return null;
    }

    /// <summary>
    /// Why the files a journal's commit would move into the clone (the staged ones in
    /// <paramref name="staging"/>) must not be: each must be a regular file, and a child of
    /// exactly the parent its step names, its chain opened with <paramref name="options"/>.
    /// </summary>
    public string? StagedProblem(StorePlan plan, string staging, DiskOpenOptions options)
    {
        foreach (PlannedVolume step in plan.Volumes)
        {
            if (!step.IsStaged)
                continue;
            string staged = Path.Combine(staging, Path.GetFileName(step.Path));
            FileNodeKind kind = FileNode.Of(staged);
            if (kind == FileNodeKind.Missing)
                continue;
            if (kind != FileNodeKind.RegularFile)
                return $"its new file '{staged}' is {(kind == FileNodeKind.Link ? "a symbolic link" : "not a regular file")}";
            try
            {
                using VirtualDisk disk = VirtualDisk.Open(staged, FileAccess.Read, options);
                if (!IsSingleFile(disk.Top))
                    return Describe(BoundaryProblem.NotSingleFile, staged);
                string? parent = disk.Layers.Count > 1 ? disk.Layers[1].Path : null;
                string? expected = step.Action is VolumeAction.CreateChild or VolumeAction.Replace or VolumeAction.Reset ? step.Source : null;
                if (!string.Equals(parent is null ? null : Path.GetFullPath(parent), expected is null ? null : Path.GetFullPath(expected), StringComparison.Ordinal))
                    return $"its new file '{staged}' depends on {(parent is null ? "nothing" : $"'{parent}'")}, not on {(expected is null ? "nothing" : $"'{expected}'")} as its step says";
            }
            catch (VirtualDiskException ex)
            {
                return $"its new file '{staged}' does not open inside the store: {ex.Message}";
            }
        }
        return null;
    }

    /// <summary>Why <paramref name="source"/> is not a volume file of a base of this store (bases/NAME/FILE, no link on the way), or null.</summary>
    private string? BaseVolumeProblem(string? source, string basesFolder)
    {
        if (source is null)
            return "it names no parent";
        string full = Path.GetFullPath(source);
        string? folder = Path.GetDirectoryName(full);
        if (folder is null || !string.Equals(Path.GetDirectoryName(folder), basesFolder, StringComparison.Ordinal)
            || StoreNames.Problem(Path.GetFileName(folder)) is not null || VolumeFileNameProblem(Path.GetFileName(full)) is not null)
            return $"its parent '{source}' is not a base volume of this store";
        BoundaryProblem problem = CheckFile(folder, Path.GetFileName(full));
        return problem == BoundaryProblem.None ? null : Describe(problem, full);
    }
}
