using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>The operations a plan can describe.</summary>
public enum StoreOperation
{
    NewBase,
    NewClone,
    Restore,
    ClearTemporary,
    Rebase,
    RemoveClone,
    RemoveBase,
    RenameClone,
    RenameBase,
    ImportClone,
}

/// <summary>What happens to one volume.</summary>
public enum VolumeAction
{
    /// <summary>Copy a file's (or chain's) content, sparse, into a new standalone volume.</summary>
    Import,
    /// <summary>Create an empty dynamic volume.</summary>
    CreateEmpty,
    /// <summary>Create a child of a base volume (metadata only).</summary>
    CreateChild,
    /// <summary>Replace the system volume by a fresh child of a base volume: the base's content shows again.</summary>
    Replace,
    /// <summary>Replace a temporary volume by a fresh child of a base volume: its initial state.</summary>
    Reset,
    /// <summary>Copy the volume's whole content into a new standalone file that replaces it (content unchanged).</summary>
    Flatten,
    /// <summary>Re-parent the volume in place onto another base volume, copying what differs first (content unchanged).</summary>
    Reparent,
    /// <summary>Leave the volume as it is.</summary>
    Keep,
    /// <summary>Delete the volume file.</summary>
    Delete,
    /// <summary>The file moves with its folder (a rename): same content, new path.</summary>
    Move,
    /// <summary>Rewrite only the volume's parent link to the same parent file at its new path (a base renamed): content and identities kept.</summary>
    Repoint,
    /// <summary>Take in a differencing disk made elsewhere (moved, or copied with <see cref="PlannedVolume.KeepOriginal"/>) and re-point its parent link to the base volume <see cref="PlannedVolume.Source"/>; with <see cref="PlannedVolume.AdoptedParent"/> its content is kept over the base (what differs is copied into it first).</summary>
    Adopt,
}

/// <summary>One volume's step of a plan.</summary>
public sealed class PlannedVolume
{
    public string Volume { get; set; } = "";

    public VolumeType Type { get; set; }

    public VolumeAction Action { get; set; }

    public DiskFormat Format { get; set; }

    /// <summary>Full path the volume file has when the operation is done.</summary>
    public string Path { get; set; } = "";

    /// <summary>The file copied from (Import, Flatten) or the parent (CreateChild, Replace, Reset, Reparent), or null.</summary>
    public string? Source { get; set; }

    /// <summary>The file this step supersedes when its name differs from <see cref="Path"/> (a format change), or null.</summary>
    public string? Supersedes { get; set; }

    /// <summary>Virtual size of a new empty volume.</summary>
    public long VirtualSize { get; set; }

    /// <summary>
    /// The size a data volume grows to after its action, when the new base's volume is larger (a
    /// grown outline); null when it keeps its size. Its content is kept byte for byte and the
    /// added range reads as zeros: a staged file grows before it is moved in, a kept one grows in
    /// place at the commit (a resize leaves the file at the old or the new size, and repeating it
    /// does nothing more).
    /// </summary>
    public long? GrowTo { get; set; }

    /// <summary>
    /// At most the bytes this step writes on the store's file system (see
    /// <see cref="StorePlan.BytesToCopy"/>): for an import or a flatten the standalone file's
    /// length as its format lays out the content's allocated runs; for a re-parent what the child
    /// can receive (every unit either parent stores data in); 0 for a step that copies no content
    /// (create a child or an empty volume, replace, reset, keep, move, re-point, delete).
    /// </summary>
    public long BytesToCopy { get; set; }

    /// <summary>Logical sector size of a new empty volume.</summary>
    public int LogicalSectorSize { get; set; } = 512;

    /// <summary>The qcow2 layout of the file this step makes (from its base volume); null for qemu-img's defaults and other formats.</summary>
    public Qcow2Layout? Qcow2 { get; set; }

    /// <summary>Why this action was chosen, in words.</summary>
    public string Reason { get; set; } = "";

    /// <summary>For a step on another clone than the plan's subject (a base rename re-points its clones' volumes): that clone's name; null otherwise.</summary>
    public string? Clone { get; set; }

    /// <summary>True when the step throws away what a data volume holds (a restore that names it): a caller asks before it runs.</summary>
    public bool DiscardsData { get; set; }

    /// <summary>
    /// Set when the plan is carried out, for a <see cref="VolumeAction.Replace"/> or
    /// <see cref="VolumeAction.Reset"/> of a volume whose file can be rewritten where it is
    /// (<see cref="VirtualDisk.TryRecreateDifferencingFile"/>): no new file is built beforehand,
    /// and the commit makes the file a new child in place.
    /// </summary>
    public bool InPlace { get; set; }

    /// <summary>For <see cref="VolumeAction.Adopt"/>: the file taken in, as the caller gave it (its folder's links resolved); null otherwise.</summary>
    public string? AdoptedFrom { get; set; }

    /// <summary>For <see cref="VolumeAction.Adopt"/>: the parent the file had where it was made, when that is not the base volume itself (an equal copy): the file is re-parented keeping its content; null when its parent is the base volume by identity.</summary>
    public string? AdoptedParent { get; set; }

    /// <summary>For <see cref="VolumeAction.Adopt"/>: the file is copied into the store and the original left untouched, instead of moved.</summary>
    public bool KeepOriginal { get; set; }

    /// <summary>The file whose content this step reads from the subject or a clone (a data volume re-parented or flattened, a clone volume imported), when planning looked at it; null otherwise.</summary>
    internal string? StampedFile { get; set; }

    /// <summary>Size and last write time of <see cref="StampedFile"/> when the plan was made: under the locks it must still be the same file (see <see cref="PlanVerification"/>).</summary>
    internal FileStamp? PlannedStamp { get; set; }

    /// <summary>Records what <paramref name="file"/> is now, to be checked again under the locks.</summary>
    internal void Stamp(string file) => Stamp(file, FileStamp.Of(file));

    /// <summary>Records <paramref name="stamp"/>, taken of <paramref name="file"/> before the plan read it, to be checked again under the locks.</summary>
    internal void Stamp(string file, FileStamp? stamp)
    {
        StampedFile = file;
        PlannedStamp = stamp;
    }

    /// <summary>True when the step builds a new file under a staging name that is then moved over the volume (every new volume not made <see cref="InPlace"/>).</summary>
    public bool IsStaged => !InPlace && Action is VolumeAction.Import or VolumeAction.CreateEmpty or VolumeAction.CreateChild
        or VolumeAction.Replace or VolumeAction.Reset or VolumeAction.Flatten;

    /// <summary>One line; paths inside <paramref name="storeRoot"/> are shown relative to it.</summary>
    public string Describe(string? storeRoot = null)
    {
        string source = Source is null ? "" : Shorten(Source, storeRoot);
        string what = Action switch
        {
            VolumeAction.Import => $"import from '{source}'",
            VolumeAction.CreateEmpty => $"create empty ({Core.Format.Bytes(VirtualSize)})",
            VolumeAction.CreateChild => $"create as a child of '{source}'",
            VolumeAction.Replace => $"replace by a child of '{source}'",
            VolumeAction.Reset => $"reset to a child of '{source}'",
            VolumeAction.Flatten => $"flatten '{source}' into a standalone file",
            VolumeAction.Reparent => $"re-parent onto '{source}', keeping its content",
            VolumeAction.Keep => "keep",
            VolumeAction.Delete => "delete",
            VolumeAction.Move => $"moved from '{Shorten(Supersedes ?? "", storeRoot)}' with its folder",
            VolumeAction.Repoint => $"parent link re-pointed to '{source}' (metadata only: content and identities kept)",
            VolumeAction.Adopt => $"import from '{AdoptedFrom}' ({(KeepOriginal ? "copied" : "moved")}), parent link re-pointed to '{source}'"
                + (AdoptedParent is null ? " (metadata only: its parent is that file by identity)" : $", keeping its content (what differs from its parent '{AdoptedParent}' is copied into it first)"),
            _ => Action.ToString(),
        };
        // A step that changes the file's name says so: a hypervisor pointed at the old name must be pointed at the new one.
        string renamed = Action != VolumeAction.Move && Supersedes is not null && !string.Equals(Supersedes, Path, StringComparison.Ordinal)
            ? $" [{System.IO.Path.GetFileName(Supersedes)} -> {System.IO.Path.GetFileName(Path)}]" : "";
        if (GrowTo is long grow)
            what += $", then grow from {Core.Format.Bytes(VirtualSize)} to {Core.Format.Bytes(grow)} (the added range reads as zeros)";
        return (Clone is null ? "" : $"clone '{Clone}' ") + $"{Volume} ({Type}): {what}{renamed}" + (Reason.Length > 0 ? $" — {Reason}" : "") + $" ({Copies(BytesToCopy)})";
    }

    /// <summary>"copies at most 1.2 GiB" or "copies nothing".</summary>
    internal static string Copies(long bytes) => bytes > 0 ? $"copies at most {Core.Format.Bytes(bytes)}" : "copies nothing";

    internal static string Shorten(string path, string? root)
    {
        if (root is null)
            return path;
        string prefix = root.TrimEnd(System.IO.Path.DirectorySeparatorChar) + System.IO.Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, StringComparison.Ordinal) ? path.Substring(prefix.Length).Replace('\\', '/') : path;
    }

    public override string ToString() => Describe();
}

/// <summary>
/// A side-effect-free description of one operation on one base or clone: every file it creates,
/// replaces, re-parents or deletes, and the manifest it writes last. -WhatIf prints it; executing
/// it does exactly this. It is also what a staging folder records (plan.json) so that a cut-off
/// operation can be finished or undone.
/// </summary>
public sealed class StorePlan
{
    public StoreOperation Operation { get; set; }

    /// <summary>Full path of the store.</summary>
    public string Store { get; set; } = "";

    /// <summary>The base or clone the plan changes.</summary>
    public string Subject { get; set; } = "";

    /// <summary>"base" or "clone".</summary>
    public string SubjectKind { get; set; } = "";

    /// <summary>Full path of the subject's folder.</summary>
    public string Folder { get; set; } = "";

    /// <summary>The base the clone is on before the operation (clone operations).</summary>
    public string? FromBase { get; set; }

    /// <summary>The base the clone is on afterwards, or the source of a new base.</summary>
    public string? ToBase { get; set; }

    public List<PlannedVolume> Volumes { get; set; } = new();

    /// <summary>
    /// For a new base from a clone: copy the clone's volumes even while another program (a running
    /// virtual machine) holds them open, which copies disks in the middle of being written. Off
    /// unless the caller says it knows (New-VmBase -Force).
    /// </summary>
    public bool SourceMayBeInUse { get; set; }

    /// <summary>
    /// For a removal: what else the subject's folder holds besides its volumes and manifest (a
    /// hypervisor's .vmx, an admin's notes), by name. The folder goes as a whole, so these go with
    /// it, and -WhatIf says so.
    /// </summary>
    public List<string> OtherFiles { get; set; } = new();

    /// <summary>The base manifest to write last (NewBase), without identities yet.</summary>
    public BaseManifest? BaseManifest { get; set; }

    /// <summary>The clone manifest to write last (NewClone, Restore, ClearTemporary, Rebase).</summary>
    public CloneManifest? CloneManifest { get; set; }

    /// <summary>For a rename: the subject's new name.</summary>
    public string? NewName { get; set; }

    /// <summary>For a base rename: the clones whose manifests (base and parent paths) and volumes' parent links change, with their manifests' digests when planned.</summary>
    public List<RenamedClone> Children { get; set; } = new();

    /// <summary>For a new base from a clone: where its data volumes take their content (see <see cref="BaseDataSource"/>); null for other plans.</summary>
    public BaseDataSource? DataFrom { get; set; }

    /// <summary>For a restore of some volumes only (<see cref="VmStore.PlanRestore(string, IEnumerable{string}?, IEnumerable{VolumeType}?)"/>): the volumes it restores; null for a whole restore. A plan made again (after recovery) restores the same ones.</summary>
    public List<string>? RestoreVolumes { get; set; }

    /// <summary>For a rebase: every volume takes the new base's format (see <see cref="VmStore.PlanRebase"/>); a plan made again (after recovery) is made with it too.</summary>
    public bool ConvertFormat { get; set; }

    /// <summary>Digest of the subject's manifest when the plan was made; the operation is refused if it changed since.</summary>
    public string? ManifestDigest { get; set; }

    /// <summary>The journal phase: Reparenting or Committing once the new files are complete (Preparing, the default, is never written: a staging folder without plan.json is one being prepared). Written by name, as journals always were.</summary>
    public JournalPhase Phase { get; set; } = JournalPhase.Preparing;

    /// <summary>At most the bytes the plan's steps write on the store's file system: what is checked against the free space before it runs (with <see cref="FreeSpace.Margin"/>).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public long BytesToCopy => Volumes.Sum(v => v.BytesToCopy);

    /// <summary>One line per step, for -WhatIf and verbose output, and a last line with what it copies in all.</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        sb.Append(Operation switch
        {
            StoreOperation.NewBase => $"New base '{Subject}'" + (ToBase is not null ? $" from clone '{ToBase}'" : "")
                + (DataFrom switch
                {
                    BaseDataSource.Base => ", data volumes from the clone's base",
                    BaseDataSource.Clone => ", data volumes from the clone",
                    BaseDataSource.Empty => ", data volumes empty",
                    _ => "",
                }),
            StoreOperation.NewClone => $"New clone '{Subject}' of base '{ToBase}'",
            StoreOperation.Restore => $"Restore clone '{Subject}' to base '{ToBase}'" + (RestoreVolumes is null ? "" : $" (only volume(s) {string.Join(", ", RestoreVolumes)})"),
            StoreOperation.ClearTemporary => $"Clear the temporary volumes of clone '{Subject}'",
            StoreOperation.Rebase => $"Rebase clone '{Subject}' from base '{FromBase}' onto '{ToBase}'",
            StoreOperation.RemoveClone => $"Remove clone '{Subject}'",
            StoreOperation.RemoveBase => $"Remove base '{Subject}'",
            StoreOperation.RenameClone => $"Rename clone '{Subject}' to '{NewName}'",
            StoreOperation.RenameBase => $"Rename base '{Subject}' to '{NewName}'",
            StoreOperation.ImportClone => $"Import clone '{Subject}' on base '{ToBase}'",
            _ => Operation.ToString(),
        });
        sb.Append(" in ").Append(Store);
        if (Operation is StoreOperation.RenameClone or StoreOperation.RenameBase)
        {
            string top = Operation == StoreOperation.RenameClone ? "clones" : "bases";
            string manifest = Operation == StoreOperation.RenameClone ? StoreLayout.CloneFile : StoreLayout.BaseFile;
            sb.Append(Environment.NewLine).Append($"  {top}/{Subject} -> {top}/{NewName}: the folder is renamed, with every file in it");
            sb.Append(Environment.NewLine).Append($"  {top}/{NewName}/{manifest}: its name becomes '{NewName}'");
            foreach (RenamedClone child in Children)
                sb.Append(Environment.NewLine).Append($"  clones/{child.Clone}/{StoreLayout.CloneFile}: its base becomes '{NewName}'");
        }
        foreach (PlannedVolume v in Volumes)
            sb.Append(Environment.NewLine).Append("  ").Append(v.Describe(Store));
        foreach (string other in OtherFiles)
            sb.Append(Environment.NewLine).Append("  ").Append(other).Append(" (not a volume, in the folder): delete");
        sb.Append(Environment.NewLine).Append("  in all: ").Append(PlannedVolume.Copies(BytesToCopy));
        return sb.ToString();
    }

    /// <summary>Steps that actually change a file.</summary>
    public IEnumerable<PlannedVolume> Changes => Volumes.Where(v => v.Action != VolumeAction.Keep || v.GrowTo is not null);

    public override string ToString() => Describe();
}

/// <summary>A clone a base rename changes: its manifest names the new base, its volumes' parent links the new base's files.</summary>
public sealed class RenamedClone
{
    public string Clone { get; set; } = "";

    /// <summary>Digest of the clone's manifest when the rename was planned; the rename is refused if it changed since.</summary>
    public string? ManifestDigest { get; set; }
}
