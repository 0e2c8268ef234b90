namespace VmClone.Core.Store;

/// <summary>Error ids of the store's boundary refusals (<see cref="VmCloneException.ErrorId"/>): public API, matched by scripts and tests.</summary>
public static class StoreErrorIds
{
    /// <summary>A manifest or journal cannot be read or names a file outside where it may point; nothing it names is acted on.</summary>
    public const string ManifestInvalid = "ManifestInvalid";

    /// <summary>A volume file is a symbolic link, lies in a linked folder, or is a VMDK descriptor naming other files; it is not opened.</summary>
    public const string VolumeOutsideStore = "VolumeOutsideStore";

    /// <summary>A volume file is a FIFO, device, socket or folder; it is not opened.</summary>
    public const string VolumeNotRegularFile = "VolumeNotRegularFile";

    /// <summary>The clone changed between planning and carrying out the operation; nothing was done.</summary>
    public const string CloneChanged = "CloneChanged";

    /// <summary>A rebase onto a base of another format than the clone's volumes, without asking to convert them (Invoke-VmRebase -ConvertFormat); nothing was changed.</summary>
    public const string RebaseFormatMismatch = "RebaseFormatMismatch";

    /// <summary>The folder given as the store does not exist or is not a VmClone store; only a command that creates a base makes one.</summary>
    public const string StoreNotFound = "StoreNotFound";
}
