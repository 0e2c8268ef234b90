using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using VmClone.Core.Store;

namespace VmClone.PowerShell;

/// <summary>
/// Base of the fleet commands (New-VmClone, Restore-VmClone, Clear-VmTemporaryVolume,
/// Invoke-VmRebase, Remove-VmClone): the one loop that takes the clones of each input, drops a
/// clone given more than once before anything is planned for it, plans each, asks, and hands the
/// work to the fleet runner (FleetRunner), which holds each store as one batch, so that a
/// store-wide failure ends every clone of that store at once, whatever -ThrottleLimit says.
/// A cmdlet says only what its operation is (plan, caption, descriptions) and where its names
/// come from.
/// </summary>
public abstract class FleetCmdlet : VmStoreCmdlet
{
    /// <summary>How many clones are worked on at the same time; by default twice the number of processors (at most 64), since the work on a clone mostly waits for the disk. With 1, one clone after the other on the pipeline thread. Results and errors are written in input order either way.</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int ThrottleLimit { get; set; } = FleetRunner.DefaultThrottleLimit;

    /// <summary>The side-effect-free plan of the operation on one clone.</summary>
    private protected abstract StorePlan Plan(VmStore store, string name);

    /// <summary>What the confirmation prompt says is about to happen to the clone.</summary>
    private protected abstract string Caption(string name);

    /// <summary>The overall progress bar's activity ("Restoring clones").</summary>
    private protected abstract string Activity { get; }

    /// <summary>The verbose description of the work on one clone ("Restore clone 'lab-01'").</summary>
    private protected abstract string Describe(string name);

    /// <summary>True to skip confirmation (a -Force the cmdlet has).</summary>
    private protected virtual bool SkipConfirmation => false;

    /// <summary>True to write the clone after the operation (a -PassThru the cmdlet has, or always).</summary>
    private protected virtual bool WriteResult => false;

    /// <summary>
    /// True when every clone of the command comes in one go (names given to the parameter, -Base),
    /// so the overall bar knows its total; false when input is piped, one record after another.
    /// </summary>
    private protected bool TotalKnown => !MyInvocation.ExpectingInput;

    private FleetRunner? _fleet;
    private readonly HashSet<string> _seen = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Works on <paramref name="names"/> in the store of the current input record (see OpenStore).</summary>
    private protected void RunFleet(IReadOnlyList<string> names)
    {
        VmStore store;
        try
        {
            store = OpenStore();
        }
        catch (Exception ex) when (IsExpected(ex))
        {
            // Each clone gets the error, with itself as target, as it would from its own command.
            foreach (string name in names)
                WriteError(ToErrorRecord(ex, name));
            return;
        }
        RunFleet(store, names);
    }

    /// <summary>The fleet loop: seen-check, plan, confirmation, then the runner; errors name their clone.</summary>
    private protected void RunFleet(VmStore store, IEnumerable<string> names)
    {
        List<string> fresh = names.Where(name => FirstTime(store, name)).ToList();
        _fleet ??= new FleetRunner(this, ThrottleLimit, Activity, CancellationToken);
        if (TotalKnown)
            _fleet.ExpectTotal(fresh.Count);
        string command = MyInvocation.MyCommand.Name;
        foreach (string name in fresh)
        {
            StorePlan? plan = null;
            TryFor(name, () => plan = Plan(store, name));
            if (plan is null || !ShouldRun(plan, Caption(name), SkipConfirmation))
            {
                _fleet.Skip();
                continue;
            }
            StorePlan planned = plan;
            bool writeResult = WriteResult;
            _fleet.Run(store, name, Describe(name), $"{command} {name}",
                (progress, cancel) => store.Execute(planned, progress, cancel, describeResult: writeResult), writeResult);
        }
    }

    /// <summary>
    /// Plans for one clone; a refusal names the clone as its target, whatever object the
    /// error was about (a missing or modified base, another base's outline), so that a fleet
    /// log of a thousand clones tells which failed — as the runner does for the work itself.
    /// </summary>
    private void TryFor(string name, Action action)
    {
        try
        {
            action();
        }
        catch (Exception ex) when (IsExpected(ex))
        {
            WriteError(ToErrorRecord(ex, name, targetWins: true));
        }
    }

    /// <summary>False when this command was already given the clone (named twice): it is worked on once.</summary>
    private bool FirstTime(VmStore store, string name)
    {
        if (_seen.Add(store.Root + "|" + name))
            return true;
        WriteVerbose($"Clone '{name}' was given more than once; it is worked on once.");
        return false;
    }

    protected override void EndProcessing()
    {
        FleetRunner? fleet = _fleet;
        _fleet = null;
        if (fleet is not null)
        {
            using (fleet)
                fleet.Finish();
        }
        base.EndProcessing();
    }

    private protected override void ReleaseResources()
    {
        _fleet?.Dispose();
        _fleet = null;
        base.ReleaseResources();
    }
}
