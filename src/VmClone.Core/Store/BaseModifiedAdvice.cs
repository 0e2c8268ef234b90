using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>
/// What recovers the clones of a base modified behind VmClone's back, in the words every message
/// about it uses (Test-VmStore, the refusals of restore, clear and rebase, the help). Restoring a
/// clone cannot help: it rebuilds the clone on the very base that changed. Two ways do: put the
/// base's original files back, or accept what the files hold now as a new base and move the clones
/// onto it (their system volumes are replaced, their data volumes kept).
/// </summary>
internal static class BaseModifiedAdvice
{
    /// <summary>The recovery, one sentence, for base <paramref name="baseName"/> whose files are <paramref name="format"/>.</summary>
    public static string For(string baseName, DiskFormat format)
    {
        string formatArgument = format == DiskFormat.Vhdx ? "" : $" -Format {format}";
        string accepted = baseName.Length <= 55 ? baseName + "-accepted" : "NEWNAME";
        return $"Restoring the clones cannot help (a restore rebuilds them on the modified base). Either restore the base's files from a backup (its clones are then Ready again), " +
            $"or accept the changed content as a new base and move the clones onto it: " +
            $"New-VmBase -Name {accepted} -Volume (Get-VmVolume -Base {baseName} | Select-Object Name, Type, Path){formatArgument}; " +
            $"Invoke-VmRebase -Base {baseName} -NewBase {accepted}; Remove-VmBase {baseName}";
    }
}
