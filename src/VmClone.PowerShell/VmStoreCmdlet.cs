using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using VmClone.Core;
using VmClone.Core.Store;

namespace VmClone.PowerShell;

/// <summary>
/// Base of the cmdlets that work on a store: the -Store parameter (also taken from piped bases
/// and clones), name wildcards, and running a Core plan behind ShouldProcess.
/// </summary>
public abstract class VmStoreCmdlet : VmCloneCmdlet, IDisposable
{
    /// <summary>The store folder. By default $env:VMCLONE_STORE, else VmClone in the per-user local data folder; objects from Get-VmBase and Get-VmClone bring their own. A store is made by New-VmBase; every other command refuses a folder that is not a store (StoreNotFound).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Store { get; set; } = null!;

    private readonly Dictionary<string, VmStore> _stores = new(StringComparer.Ordinal);

    /// <summary>The store this record works on.</summary>
    protected VmStore OpenStore()
    {
        if (!IsBound(nameof(Store)) || string.IsNullOrEmpty(Store))
            return StoreAt(null);
        // Resolved once per value (and location, for a relative one): PowerShell's path
        // resolution asks the system about its drives every time, which a command over a
        // thousand clones would pay per clone.
        string given = System.IO.Path.IsPathRooted(Store) ? Store : SessionState.Path.CurrentLocation.Path + "\0" + Store;
        if (!string.Equals(_resolvedStore.Given, given, StringComparison.Ordinal))
            _resolvedStore = (given, ResolveNewPath(Store));
        return StoreAt(_resolvedStore.Resolved);
    }

    private (string? Given, string Resolved) _resolvedStore;

    /// <summary>
    /// The store at <paramref name="root"/> (null: the default store), one instance per store for
    /// the whole command, so that a base is checked once however many clones the command works on.
    /// </summary>
    protected VmStore StoreAt(string? root)
    {
        VmStore store = VmStore.At(root, rememberBases: true);
        if (_stores.TryGetValue(store.Root, out VmStore? known))
            store = known;
        else
            _stores[store.Root] = store;
        if (!CreatesStore)
            store.RequireExisting();
        return store;
    }

    /// <summary>True for the commands that make a store of a new or empty folder (New-VmBase); every other one refuses a folder that is not a store with StoreNotFound.</summary>
    private protected virtual bool CreatesStore => false;

    /// <summary>True when -WhatIf (or $WhatIfPreference) is in force.</summary>
    protected bool IsWhatIf =>
        (MyInvocation.BoundParameters.TryGetValue("WhatIf", out object? w) && w is SwitchParameter s && s.IsPresent)
        || (!MyInvocation.BoundParameters.ContainsKey("WhatIf") && LanguagePrimitives.IsTrue(GetVariableValue("WhatIfPreference")));

    /// <summary>
    /// ShouldProcess with the whole plan as the description (what -WhatIf prints). -Force skips
    /// the confirmation a high-impact command asks for, but never -WhatIf or an explicit -Confirm.
    /// </summary>
    protected bool ShouldRun(StorePlan plan, string caption, bool force = false)
    {
        string description = plan.Describe();
        if (force && !IsWhatIf && !IsBound("Confirm"))
        {
            WriteVerbose(description);
            return true;
        }
        if (_cannotConfirm)
            return false;
        try
        {
            return ShouldProcess(description, $"{caption}?", "Confirm");
        }
        catch (Exception ex) when (ex is PSInvalidOperationException or System.Management.Automation.Host.HostException)
        {
            // A host that cannot prompt (pwsh -NonInteractive, a scheduled task): nothing more is
            // done, and every later clone is skipped without a word. The error is written, not
            // thrown: -ErrorAction Stop or $ErrorActionPreference = 'Stop' then ends the script as
            // for any other error, where a terminating error would only end this statement and
            // let the script go on to its next one.
            _cannotConfirm = true;
            WriteError(new ErrorRecord(new InvalidOperationException(
                $"{MyInvocation.MyCommand.Name} asks for confirmation before it changes anything, and this PowerShell host cannot ask ({ex.Message}) Add -Force or -Confirm:$false to run it unattended, or -WhatIf to see the plan.", ex),
                StoreErrorIds.ConfirmationNotPossible, ErrorCategory.InvalidOperation, plan.Subject));
            return false;
        }
    }

    private bool _cannotConfirm;

    /// <summary>Called by PowerShell when the pipeline ends, also when it was stopped: workers are stopped and the stores let go.</summary>
    public void Dispose() => ReleaseResources();

    /// <summary>Lets go of what the command holds; a fleet command stops its workers first.</summary>
    private protected virtual void ReleaseResources()
    {
        // The stores keep the base volumes they created clones over open (see VmStore.At).
        foreach (VmStore store in _stores.Values)
            store.Dispose();
        _stores.Clear();
    }

    /// <summary>
    /// Names matching <paramref name="patterns"/> among <paramref name="names"/>; a pattern without
    /// wildcards that matches nothing is a NotFound error for that pattern (Get-Item convention).
    /// </summary>
    protected IEnumerable<string> Match(IEnumerable<string>? patterns, IReadOnlyList<string> names, string kind, string storeRoot)
    {
        if (patterns is null)
        {
            foreach (string n in names)
                yield return n;
            yield break;
        }
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (string pattern in patterns)
        {
            var wildcard = WildcardPattern.Get(pattern, WildcardOptions.IgnoreCase);
            bool any = false;
            foreach (string n in names.Where(n => wildcard.IsMatch(n)))
            {
                any = true;
                if (seen.Add(n))
                    yield return n;
            }
            if (!any && !WildcardPattern.ContainsWildcardCharacters(pattern))
            {
                string id = kind == "base" ? StoreErrorIds.BaseNotFound : StoreErrorIds.CloneNotFound;
                WriteError(ToErrorRecord(new StoreException(id, VmCloneErrorKind.NotFound, $"There is no {kind} '{pattern}' in store '{storeRoot}'.", pattern), pattern));
            }
        }
    }
}

/// <summary>Completes base names from the store given by -Store (else the default store).</summary>
public sealed class BaseNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        StoreNameCompletion.Complete(fakeBoundParameters, wordToComplete, s => s.BaseNames(), "base");
}

/// <summary>Completes clone names from the store given by -Store (else the default store).</summary>
public sealed class CloneNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        StoreNameCompletion.Complete(fakeBoundParameters, wordToComplete, s => s.CloneNames(), "clone");
}

internal static class StoreNameCompletion
{
    public static IEnumerable<CompletionResult> Complete(IDictionary fakeBoundParameters, string wordToComplete, Func<VmStore, IReadOnlyList<string>> names, string kind)
    {
        IReadOnlyList<string> all;
        try
        {
            string? root = fakeBoundParameters?["Store"]?.ToString();
            all = names(VmStore.At(string.IsNullOrEmpty(root) ? null : root));
        }
        catch (Exception)
        {
            // Completion must never throw at the prompt.
            return Array.Empty<CompletionResult>();
        }
        string word = (wordToComplete ?? "").Trim('\'', '"');
        var wildcard = WildcardPattern.Get(word + "*", WildcardOptions.IgnoreCase);
        return all.Where(n => wildcard.IsMatch(n)).Select(n => new CompletionResult(n, n, CompletionResultType.ParameterValue, $"{kind} {n}")).ToList();
    }
}
