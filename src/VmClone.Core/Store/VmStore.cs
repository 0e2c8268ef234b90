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
public sealed class VmStore : IDisposable
{
    /// <summary>Environment variable that names the default store.</summary>
    public const string StoreVariable = "VMCLONE_STORE";

    private VmStore(string root, bool rememberBases)
    {
        Layout = new StoreLayout(root);
        Catalogue = new StoreCatalogue(Layout);
        Chains = new KeptChains(rememberBases, Layout);
        Inspector = new StoreInspector(Layout, Catalogue, Chains);
        Preconditions = new StorePreconditions(Catalogue, Inspector);
        _create = new CreatePlanner(Catalogue, Preconditions);
        _reset = new ResetPlanner(Catalogue, Preconditions);
        _rebase = new RebasePlanner(Catalogue, Preconditions);
        _removal = new RemovalPlanner(Catalogue, Preconditions);
        _export = new ExportPlanner(Catalogue, Preconditions);
        _exporter = new CloneExporter(Catalogue);
        _optimizer = new CloneOptimizer(Catalogue, Preconditions);
        _rename = new RenamePlanner(Catalogue, Preconditions, _removal);
        RollForward rollForward = new(Catalogue, Chains);
        RenameSteps renameSteps = new(Catalogue);
        _importPlanner = new ImportPlanner(Catalogue, Preconditions);
        _importSteps = new ImportSteps(Catalogue, Chains);
        Recovery = new StoreRecovery(Catalogue, rollForward, renameSteps, _importSteps);
        _checker = new StoreChecker(Catalogue, Recovery);
        _executor = new PlanExecutor(Catalogue, Inspector, Chains, Preconditions, _reset, _rebase, _removal, Recovery, rollForward, _rename, renameSteps);
    }

    private readonly CreatePlanner _create;
    private readonly ResetPlanner _reset;
    private readonly RebasePlanner _rebase;
    private readonly RemovalPlanner _removal;
    private readonly ExportPlanner _export;
    private readonly CloneExporter _exporter;
    private readonly CloneOptimizer _optimizer;
    private readonly RenamePlanner _rename;
    private readonly PlanExecutor _executor;
    private readonly ImportPlanner _importPlanner;
    private readonly ImportSteps _importSteps;
    private readonly StoreChecker _checker;

    /// <summary>Where everything of the store lies (see <see cref="StoreLayout"/>).</summary>
    internal StoreLayout Layout { get; }

    /// <summary>The store's manifests (see <see cref="StoreCatalogue"/>).</summary>
    internal StoreCatalogue Catalogue { get; }

    /// <summary>The base layers a fleet command remembers (see <see cref="KeptChains"/>).</summary>
    internal KeptChains Chains { get; }

    /// <summary>Describes bases, clones and volumes (see <see cref="StoreInspector"/>).</summary>
    internal StoreInspector Inspector { get; }

    /// <summary>The checks every planner shares (see <see cref="StorePreconditions"/>).</summary>
    internal StorePreconditions Preconditions { get; }

    /// <summary>Finishes or undoes cut-off operations (see <see cref="StoreRecovery"/>).</summary>
    internal StoreRecovery Recovery { get; }

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

    /// <summary>Plans a new base from disk files and sizes; a qcow2 one laid out as <paramref name="qcow2"/> says (null: qemu-img's defaults), which its clones' overlays take too.</summary>
    public StorePlan PlanNewBase(string name, IReadOnlyList<VolumeSpec> volumes, DiskFormat format = DiskFormat.Vhdx, Qcow2Layout? qcow2 = null) => _create.PlanNewBase(name, volumes, format, qcow2);

    /// <summary>Plans a new base holding a clone's current content, each volume flattened into a standalone file.</summary>
    /// <remarks>
    /// Temporary volumes take the clone's initial state (its base's temporary content): scratch
    /// data is never baked into a base. The clone's files are probed when the base is made: one
    /// another program holds open (a running machine) is refused as VolumeInUse, unless
    /// <paramref name="sourceMayBeInUse"/>. A qcow2 volume is laid out as <paramref name="qcow2"/>
    /// says, or else as the old base's volume of that name was.
    /// </remarks>
    /// <param name="name">The new base.</param>
    /// <param name="cloneName">The clone whose content it takes.</param>
    /// <param name="format">Format of the new base's files; null keeps each volume's.</param>
    /// <param name="sourceMayBeInUse">Copy the clone's files even while another program holds them open.</param>
    /// <param name="dataFrom">
    /// Where the data volumes take their content: by default the old base's data volume (what
    /// new clones should start with, not whatever was written while the update was prepared);
    /// <see cref="BaseDataSource.Clone"/> the clone's, <see cref="BaseDataSource.Empty"/> none.
    /// </param>
    /// <param name="qcow2">For a qcow2 base, the layout of its files and its clones' overlays; null keeps the old base's.</param>
    public StorePlan PlanNewBaseFromClone(string name, string cloneName, DiskFormat? format = null, bool sourceMayBeInUse = false, BaseDataSource dataFrom = BaseDataSource.Base, Qcow2Layout? qcow2 = null) =>
        _create.PlanNewBaseFromClone(name, cloneName, format, sourceMayBeInUse, dataFrom, qcow2);

    /// <summary>
    /// Plans an export of a clone (a spinoff): every volume flattened into one standalone disk in
    /// the new folder <paramref name="destination"/> outside the store, beside a small manifest.
    /// Temporary volumes take their initial state; <paramref name="format"/> null keeps each
    /// volume's format.
    /// </summary>
    public ExportPlan PlanExport(string cloneName, string destination, DiskFormat? format = null, bool sourceMayBeInUse = false) =>
        _export.PlanExport(cloneName, destination, format, sourceMayBeInUse);

    /// <summary>Writes an export as planned (see <see cref="CloneExporter"/>); the store is only read.</summary>
    public VmCloneExport Export(ExportPlan plan, IProgress<OperationProgress>? progress = null, CancellationToken cancellationToken = default) =>
        _exporter.Execute(plan, progress, cancellationToken);

    /// <summary>
    /// Plans an optimize of a clone's volume files (all, or those named): checks the clone and
    /// its files, writes nothing. See <see cref="CloneOptimizer"/>.
    /// </summary>
    public OptimizePlan PlanOptimize(string cloneName, IEnumerable<string>? volumes = null) => _optimizer.Plan(cloneName, volumes);

    /// <summary>Optimizes a clone's volume files as planned, under the clone's lock; one result per volume.</summary>
    public IReadOnlyList<VmDiskOptimization> Optimize(OptimizePlan plan, IProgress<OperationProgress>? progress = null, CancellationToken cancellationToken = default) =>
        _optimizer.Execute(plan, progress, cancellationToken);

    /// <summary>Plans a new clone of a base: every volume a child of the base's, or an empty standalone data volume where the base's holds nothing.</summary>
    public StorePlan PlanNewClone(string name, string baseName) => _create.PlanNewClone(name, baseName);

    /// <summary>Plans a restore: system and temporary volumes become fresh children of the base; data volumes are kept.</summary>
    public StorePlan PlanRestore(string cloneName) => _reset.PlanRestore(cloneName);

    /// <summary>
    /// Plans a restore of some volumes only: those named in <paramref name="volumes"/> and those
    /// of <paramref name="types"/> (System or Temporary) go back to the base, every other volume
    /// is kept. A data volume is restored only when named, and its content is then discarded
    /// (<see cref="PlannedVolume.DiscardsData"/>); a name the clone does not have is refused with
    /// VolumeNotFound, listing the clone's volumes. Both null: <see cref="PlanRestore(string)"/>.
    /// </summary>
    public StorePlan PlanRestore(string cloneName, IEnumerable<string>? volumes, IEnumerable<VolumeType>? types = null) => _reset.PlanRestore(cloneName, volumes, types);

    /// <summary>Plans what a shutdown does: temporary volumes back to their initial state, nothing else touched.</summary>
    public StorePlan PlanClearTemporary(string cloneName) => _reset.PlanClearTemporary(cloneName);

    /// <summary>
    /// Plans moving a clone onto <paramref name="newBaseName"/>: refused when the storage outlines
    /// differ. System volumes become children of the new base's, temporary volumes its initial
    /// state; data volumes keep their content byte for byte and stop depending on the old base.
    /// </summary>
    /// <remarks>
    /// A new base of another format than the clone's volumes is refused (RebaseFormatMismatch)
    /// unless <paramref name="convertFormat"/>: every volume then becomes the new base's format,
    /// data volumes converted into standalone files of it, and each step whose file changes name
    /// says which file it supersedes.
    /// </remarks>
    public StorePlan PlanRebase(string cloneName, string newBaseName, bool convertFormat = false) => _rebase.PlanRebase(cloneName, newBaseName, convertFormat);

    /// <summary>
    /// Plans renaming a clone: its folder and its manifest; its volumes' parent links need no
    /// change (they name the base's files). Refused when the new name is invalid (InvalidName) or
    /// taken (CloneExists); a volume another program holds open is refused when it is carried out
    /// (VolumeInUse). Under the journal: cut off, it is finished or undone by the next command on
    /// either name, by running it again, or by Test-VmStore -Repair.
    /// </summary>
    public StorePlan PlanRenameClone(string name, string newName) => _rename.PlanRenameClone(name, newName);

    /// <summary>
    /// Plans renaming a base: its folder and its manifest, and for every clone on it its manifest
    /// and each volume's parent link (metadata only: re-pointed at the same file at its new path,
    /// whose identity is unchanged, so nothing reads as BaseModified). Refused as
    /// <see cref="PlanRenameClone"/> is (BaseExists for a taken name), and with BaseInUse while a
    /// disk file no clone manifest accounts for depends on the base. Cut off, it is finished or
    /// undone by running it again, by the next command on the base, or by Test-VmStore -Repair.
    /// </summary>
    public StorePlan PlanRenameBase(string name, string newName) => _rename.PlanRenameBase(name, newName);

    /// <summary>
    /// Plans adopting differencing disks made elsewhere (Hyper-V, VMware, qemu) as a new clone of
    /// <paramref name="baseName"/>: each file of <paramref name="volumes"/> is moved (or with
    /// <paramref name="copy"/> copied) into the clone's folder and its parent link re-pointed at
    /// the base volume it names; every other volume is made as New-VmClone makes it. A file must
    /// be a child of that base volume by identity, or with <paramref name="preserveContent"/> of
    /// an equal copy (it is re-parented keeping what it shows). Refused, with nothing changed, for
    /// an unknown or repeated volume, a file inside the store (ImportSourceInStore), a link or
    /// FIFO (ImportSourceNotRegularFile), another format (ImportFormatMismatch) or size
    /// (ImportSizeMismatch), another parent (ImportParentMismatch, ImportParentNotFound), a taken
    /// name (CloneExists) and, when carried out, a file another program holds open (VolumeInUse).
    /// Under the journal: cut off once a file came in, it is finished (never undone) by running it
    /// again, by the next command on the clone, or by Test-VmStore -Repair.
    /// </summary>
    public StorePlan PlanImportClone(string name, string baseName, IReadOnlyList<ImportVolumeSpec> volumes, bool copy = false, bool preserveContent = false) =>
        _importPlanner.PlanImport(name, baseName, volumes, copy, preserveContent);

    /// <summary>Plans removing a clone: its volumes, its manifest and its folder.</summary>
    public StorePlan PlanRemoveClone(string cloneName) => _removal.PlanRemoveClone(cloneName);

    /// <summary>Plans removing a base; refused (BaseInUse, naming them) while any clone or other file depends on it.</summary>
    public StorePlan PlanRemoveBase(string baseName) => _removal.PlanRemoveBase(baseName);

    /// <summary>
    /// Everything that depends on a base: clones whose manifest names it, and any disk file in
    /// the store outside the base's folder whose chain (as the disks say) leads into it.
    /// </summary>
    public IReadOnlyList<string> FindDependents(string baseName) => _removal.FindDependents(baseName);

    /// <summary>
    /// Carries out a plan. Returns the new or changed base (<see cref="VmBaseInfo"/>) or clone
    /// (<see cref="VmCloneInfo"/>), or null for a removal, or without
    /// <paramref name="describeResult"/> (a caller that shows nothing saves reading the result back).
    /// </summary>
    /// <remarks>
    /// Takes the store's lock shared (Test-VmStore -Repair takes it exclusive) and the subject's
    /// lock exclusive, with shared locks on the bases and clones it reads: operations on
    /// different clones run in parallel, operations on one clone or base one after the other.
    /// Under those locks it first finishes or undoes whatever an earlier, cut-off operation left
    /// of the subject; if that changed the clone, the plan is made again for what is there now.
    /// </remarks>
    public object? Execute(StorePlan plan, IProgress<OperationProgress>? progress = null, CancellationToken cancellationToken = default, bool describeResult = true) =>
        plan.Operation == StoreOperation.ImportClone
            ? _importSteps.Execute(plan, Recovery, Inspector, progress, cancellationToken, describeResult)
            : _executor.Execute(plan, progress, cancellationToken, describeResult);

    /// <summary>
    /// Checks the whole store. With <paramref name="repair"/>, fixes what is safe to fix and says
    /// what it did: re-marks base files read-only, finishes or undoes cut-off operations, rewrites
    /// a clone manifest from what its disks say, recreates a lost store.json. Modified bases,
    /// missing files and damaged disks are reported, never "repaired".
    /// </summary>
    public VmStoreReport Check(bool repair, CancellationToken cancellationToken = default) => _checker.Check(repair, cancellationToken);

    // Parallel work inside one process. Every Execute takes the locks of its own subject (see
    // StoreLocks): operating-system file locks, which exclude threads of one process as they exclude
    // processes, so operations on different clones run side by side and two on one clone wait for
    // each other, batch or not. A batch only holds the store's lock shared for its whole length, so
    // that a repair (which takes it exclusive) waits for the batch rather than slipping in between
    // two of its operations.

    /// <summary>
    /// Holds the store's lock shared for a batch of operations run in parallel by this process,
    /// until the returned handle is disposed. Batches and operations of any process may run beside
    /// it; Test-VmStore -Repair waits for it. Waits like any changing command, then refuses with StoreBusy.
    /// </summary>
    public IDisposable BeginBatch(CancellationToken cancellationToken = default) => Catalogue.StoreLock(exclusive: false, cancellationToken);

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

    /// <summary>
    /// The volumes of one clone as Get-VmVolume shows them (none when its manifest cannot be
    /// read); CloneNotFound when it does not exist. Unlike <see cref="GetClone"/>, a standalone
    /// volume's <see cref="VmVolumeInfo.DivergedBytes"/> is counted from its content (the
    /// sectors that no longer read as zeros), which reads what its file stores.
    /// </summary>
    public IReadOnlyList<VmVolumeInfo> GetCloneVolumes(string name, CancellationToken cancellationToken = default) =>
        Inspector.GetClone(name, StandaloneCounting.Every, cancellationToken).Volumes;

    /// <summary>
    /// The volumes of one base as Get-VmVolume shows them; BaseNotFound when it does not exist.
    /// A base's volumes are not read for <see cref="VmVolumeInfo.DivergedBytes"/>: a base is what
    /// clones diverge from, and its system volume holds a whole installed system, so reading it
    /// for every listing would cost minutes; their figure is the bytes their files store.
    /// </summary>
    public IReadOnlyList<VmVolumeInfo> GetBaseVolumes(string name, CancellationToken cancellationToken = default) =>
        Inspector.GetBase(name, StandaloneCounting.None, cancellationToken).Volumes;

    /// <summary>Closes the base volumes kept open for creating children (see <see cref="At"/>'s rememberBases). The instance can still be used; it then opens them for each new volume.</summary>
    public void Dispose() => Chains.Dispose();

    public override string ToString() => Root;

}
