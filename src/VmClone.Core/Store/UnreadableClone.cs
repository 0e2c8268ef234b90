using System;
using System.Collections.Generic;

namespace VmClone.Core.Store;

/// <summary>
/// How a clone whose clone.json cannot be read is shown and counted: by what its own files say
/// (see <see cref="ManifestRebuild"/>), so it neither vanishes from Get-VmClone nor leaves its base
/// looking unused.
/// </summary>
internal static class UnreadableClone
{
    /// <summary>The store's bases whose manifests can be trusted, each read once (null for any other name).</summary>
    public static Func<string, BaseManifest?> TrustedBases(VmStore store)
    {
        var read = new Dictionary<string, BaseManifest?>(StringComparer.OrdinalIgnoreCase);
        return name =>
        {
            if (read.TryGetValue(name, out BaseManifest? known))
                return known;
            BaseManifest? manifest = null;
            try { manifest = store.BaseExists(name) ? store.LoadBase(name) : null; } catch (StoreException) { }
            return read[name] = manifest;
        };
    }

    /// <summary>The base a clone belongs to: the one its manifest names, or for an unreadable manifest the one its volumes depend on (null when that cannot be told).</summary>
    public static string? BaseOf(VmStore store, CloneRecord record, Func<string, BaseManifest?> baseOf) =>
        record.Manifest?.Base ?? ManifestRebuild.Of(store, record.Folder, baseOf).Base;

    /// <summary>The clone as Get-VmClone shows it: state Unreadable, the reason and what mends it, and the base its volumes depend on.</summary>
    public static VmCloneInfo Describe(VmStore store, CloneRecord record, Func<string, BaseManifest?> baseOf)
    {
        ManifestRebuild rebuild = ManifestRebuild.Of(store, record.Folder, baseOf);
        string mend = record.TooNew
            ? "it was written by a newer VmClone: use that version"
            : rebuild.Manifest is not null
                ? "Test-VmStore -Repair rebuilds it from the volumes' parent links"
                : $"Test-VmStore -Repair cannot rebuild it ({rebuild.Refusal}); restore it from a backup";
        return new VmCloneInfo
        {
            Name = record.Name,
            Base = rebuild.Base ?? "",
            Store = store.Root,
            Path = record.Folder,
            State = CloneState.Unreadable,
            Problem = $"{record.Unreadable} {mend}.",
        };
    }
}
