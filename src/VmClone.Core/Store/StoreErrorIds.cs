namespace VmClone.Core.Store;

/// <summary>
/// Every error id VmClone writes (<see cref="VmCloneException.ErrorId"/>, the error record's
/// FullyQualifiedErrorId before the comma): public API, matched by scripts and tests. The code
/// names ids only through these constants, and each is explained in about_VmClone_Errors (both
/// checked by the tests). Store, disk and cmdlet-level ids share this one list.
/// </summary>
public static class StoreErrorIds
{
    // Store commands.
    /// <summary>The folder given as the store does not exist or is not a VmClone store; only a command that creates a base makes one.</summary>
    public const string StoreNotFound = "StoreNotFound";

    /// <summary>No store was given and no default store is set.</summary>
    public const string StoreNotConfigured = "StoreNotConfigured";

    /// <summary>The folder given as a new store holds other files and no store.json; VmClone will not make a store there.</summary>
    public const string NotAStore = "NotAStore";

    /// <summary>store.json was written by a newer VmClone; nothing is read or repaired.</summary>
    public const string StoreFormatUnsupported = "StoreFormatUnsupported";

    /// <summary>Another VmClone command holds the whole store (for example Test-VmStore -Repair) past the lock timeout.</summary>
    public const string StoreBusy = "StoreBusy";

    /// <summary>The store's folder cannot be written (a read-only file system, or no write permission); nothing was changed.</summary>
    public const string StoreNotWritable = "StoreNotWritable";

    /// <summary>store.json, base.json, clone.json or an operation journal cannot be read, or names a file outside where it may point; nothing it names is acted on.</summary>
    public const string ManifestInvalid = "ManifestInvalid";

    /// <summary>A manifest the store expects is missing.</summary>
    public const string ManifestMissing = "ManifestMissing";

    /// <summary>A base or clone name is empty, too long, or holds characters a folder name may not (path separators, '..', control characters).</summary>
    public const string InvalidName = "InvalidName";

    /// <summary>A -Volume specification is empty, names a volume twice, gives a bad type or size, or is missing what its type needs.</summary>
    public const string InvalidVolumeSpec = "InvalidVolumeSpec";

    /// <summary>A qcow2 cluster size or extended L2 for a new base that qcow2 cannot have (a size that is no power of two from 512 bytes to 2 MiB, extended L2 below 16 KiB clusters), or one given for a base that is not qcow2.</summary>
    public const string InvalidQcow2Layout = "InvalidQcow2Layout";

    /// <summary>A file named as the source of a new base's volume does not exist.</summary>
    public const string VolumeSourceNotFound = "VolumeSourceNotFound";

    /// <summary>There is no base of that name in the store.</summary>
    public const string BaseNotFound = "BaseNotFound";

    /// <summary>A base of that name already exists.</summary>
    public const string BaseExists = "BaseExists";

    /// <summary>The base still has clones (or is being used), so it is not removed; or a file no clone manifest accounts for depends on it, so it is not renamed.</summary>
    public const string BaseInUse = "BaseInUse";

    /// <summary>Another VmClone command holds the base past the lock timeout.</summary>
    public const string BaseBusy = "BaseBusy";

    /// <summary>A base file changed after the base was made; clones over it may read corrupted content, and nothing is done on them.</summary>
    public const string BaseModified = "BaseModified";

    /// <summary>A volume file of the base is missing or damaged.</summary>
    public const string BaseBroken = "BaseBroken";

    /// <summary>There is no clone of that name in the store.</summary>
    public const string CloneNotFound = "CloneNotFound";

    /// <summary>A clone of that name already exists.</summary>
    public const string CloneExists = "CloneExists";

    /// <summary>Another VmClone command holds the clone past the lock timeout.</summary>
    public const string CloneBusy = "CloneBusy";

    /// <summary>A volume file of the clone is missing, damaged or outside the store; nothing is done on it.</summary>
    public const string CloneBroken = "CloneBroken";

    /// <summary>The clone changed between planning and carrying out the operation (a file was replaced or vanished); nothing was done.</summary>
    public const string CloneChanged = "CloneChanged";

    /// <summary>A volume file is open in another program (a running VM); nothing was changed.</summary>
    public const string VolumeInUse = "VolumeInUse";

    /// <summary>A volume file is a symbolic link, lies in a linked folder, or is a VMDK descriptor naming other files; it is not opened.</summary>
    public const string VolumeOutsideStore = "VolumeOutsideStore";

    /// <summary>A volume file is a named pipe, device, socket or folder; it is not opened.</summary>
    public const string VolumeNotRegularFile = "VolumeNotRegularFile";

    /// <summary>The new base's volumes differ from the clone's (names, types or sizes), so the clone cannot be rebased onto it.</summary>
    public const string OutlineMismatch = "OutlineMismatch";

    /// <summary>The clone's folder was renamed: its manifest names another clone. Test-VmStore -Repair makes the folder's name the clone's (or rename the folder back); nothing was done.</summary>
    public const string CloneRenamed = "CloneRenamed";

    /// <summary>A command names a volume the clone does not have (Restore-VmClone -Volume); the message lists the clone's volumes.</summary>
    public const string VolumeNotFound = "VolumeNotFound";

    /// <summary>The store's file system has not enough free space for the operation; nothing was changed.</summary>
    public const string DiskFull = "DiskFull";

    /// <summary>The command asks for confirmation and the host cannot ask (pwsh -NonInteractive, a scheduled task); nothing was done.</summary>
    public const string ConfirmationNotPossible = "ConfirmationNotPossible";

    /// <summary>Get-VmVolume was given an object that is neither a clone nor a base.</summary>
    public const string InvalidInputObject = "InvalidInputObject";

    // Disk commands (also raised by store commands on the files they open).
    /// <summary>A new disk's file name has no extension VmClone writes (.vhdx, .avhdx, .vmdk, .raw, .img, .bin, .dd).</summary>
    public const string UnknownDiskExtension = "UnknownDiskExtension";

    /// <summary>The file's extension names one format and it holds the other (a VMDK named .vhdx, a VHDX named .vmdk); a hypervisor opening it by name would refuse it.</summary>
    public const string DiskExtensionMismatch = "DiskExtensionMismatch";

    /// <summary>The file is not a valid disk: damaged, truncated, a format or feature VmClone does not read, or no regular file.</summary>
    public const string DiskFormatInvalid = "DiskFormatInvalid";

    /// <summary>A disk file does not exist.</summary>
    public const string DiskNotFound = "DiskNotFound";

    /// <summary>A disk file cannot be opened: no permission, or it is marked read-only and was to be written.</summary>
    public const string DiskAccessDenied = "DiskAccessDenied";

    /// <summary>Reading or writing a disk file failed (an I/O error).</summary>
    public const string DiskOperationFailed = "DiskOperationFailed";

    /// <summary>A differencing disk's parent cannot be found at any path it records.</summary>
    public const string DiskParentMissing = "DiskParentMissing";

    /// <summary>A differencing disk's parent changed after the child was made; the child's content may be corrupted.</summary>
    public const string DiskParentModified = "DiskParentModified";

    /// <summary>A disk's parent chain leads back to itself.</summary>
    public const string DiskChainLoop = "DiskChainLoop";

    /// <summary>A disk's parent chain is deeper than VmClone follows.</summary>
    public const string DiskChainTooDeep = "DiskChainTooDeep";

    /// <summary>A parent lies outside the folder the chain may use (a store's files link only inside the store).</summary>
    public const string DiskParentOutsideRoot = "DiskParentOutsideRoot";

    /// <summary>A parent does not fit its child (another format, size or sector size).</summary>
    public const string DiskChainIncompatible = "DiskChainIncompatible";

    /// <summary>The disk is not a differencing disk, so it has no parent to merge into or change.</summary>
    public const string DiskHasNoParent = "DiskHasNoParent";

    /// <summary>The disk given as the merge target is not in the child's parent chain.</summary>
    public const string NotAnAncestor = "NotAnAncestor";

    /// <summary>A merge into this disk was cut off and its marker is still there.</summary>
    public const string MergeInProgress = "MergeInProgress";

    /// <summary>The marker of a cut-off merge cannot be read.</summary>
    public const string MergeMarkerInvalid = "MergeMarkerInvalid";

    /// <summary>Other differencing disks depend on the merge target, and merging would change what they read.</summary>
    public const string MergeTargetHasChildren = "MergeTargetHasChildren";

    /// <summary>The file to write already exists.</summary>
    public const string DestinationExists = "DestinationExists";

    /// <summary>The file to write is part of the chain being read.</summary>
    public const string DestinationInChain = "DestinationInChain";

    /// <summary>A fixed VHD for Azure would have a size Azure refuses (not a whole number of MiB, under 20 MiB, or over what a VHD holds); nothing was written.</summary>
    public const string AzureVhdSizeRejected = "AzureVhdSizeRejected";

    /// <summary>A fixed disk was asked for in a format that has none (qcow2), or for a differencing disk.</summary>
    public const string FixedNotSupported = "FixedNotSupported";

    // Every command.
    /// <summary>A -Path matched no file, or is not a file system path.</summary>
    public const string PathNotFound = "PathNotFound";

    /// <summary>The operating system refused access to a file.</summary>
    public const string AccessDenied = "AccessDenied";

    /// <summary>A parameter value is not valid for the command.</summary>
    public const string InvalidArgument = "InvalidArgument";

    /// <summary>The operation cannot be carried out in the current state.</summary>
    public const string InvalidOperation = "InvalidOperation";

    /// <summary>The command was stopped (Ctrl+C); what was started is finished or undone by the next command.</summary>
    public const string OperationStopped = "OperationStopped";

    /// <summary>An unexpected error.</summary>
    public const string OperationFailed = "OperationFailed";

    /// <summary>A rebase onto a base of another format than the clone's volumes, without asking to convert them (Invoke-VmRebase -ConvertFormat); nothing was changed.</summary>
    public const string RebaseFormatMismatch = "RebaseFormatMismatch";

    /// <summary>Export-VmClone was asked to write into the store itself; an export goes to a folder outside it.</summary>
    public const string ExportInsideStore = "ExportInsideStore";

    /// <summary>A disk file that another process holds open (a running machine) was not resized.</summary>
    public const string DiskInUse = "DiskInUse";

    /// <summary>A disk-level change asked of a store's volume; the store's own commands change it (a larger base and Invoke-VmRebase).</summary>
    public const string DiskInStore = "DiskInStore";

    /// <summary>A shrink past data the disk stores; the message names the smallest size it can take.</summary>
    public const string ShrinkBelowData = "ShrinkBelowData";

    /// <summary>A differencing disk asked to grow past its parent's size; the parent grows first.</summary>
    public const string ChildPastParent = "ChildPastParent";

    /// <summary>A disk whose kind VmClone does not resize (a stream-optimized or multi-extent VMDK, a VHD with a batmap).</summary>
    public const string ResizeNotSupported = "ResizeNotSupported";

    /// <summary>A disk whose kind Optimize-VmDisk does not rewrite (a stream-optimized or multi-extent VMDK, a qcow2 image with an external data file, a fixed disk on a file system that cannot punch holes).</summary>
    public const string OptimizeNotSupported = "OptimizeNotSupported";

    // Import-VmClone.
    /// <summary>A file given to import lies inside the store (links resolved); only disks made elsewhere are imported.</summary>
    public const string ImportSourceInStore = "ImportSourceInStore";

    /// <summary>A file given to import is a symbolic link, a FIFO, a device or a folder, not a regular file; nothing was opened through it.</summary>
    public const string ImportSourceNotRegularFile = "ImportSourceNotRegularFile";

    /// <summary>A file given to import is of another format than the base volume it is to be a child of.</summary>
    public const string ImportFormatMismatch = "ImportFormatMismatch";

    /// <summary>A file given to import has another virtual size (or sector size) than the base volume it is to be a child of.</summary>
    public const string ImportSizeMismatch = "ImportSizeMismatch";

    /// <summary>A file given to import is not a differencing disk, or its parent is not the base volume's file by identity (add -PreserveContent for a child of an equal copy).</summary>
    public const string ImportParentMismatch = "ImportParentMismatch";

    /// <summary>With -PreserveContent, the parent a file given to import names cannot be found or opened, so its content cannot be kept; the message names the parent paths tried.</summary>
    public const string ImportParentNotFound = "ImportParentNotFound";
}
