using System;
using System.Diagnostics;
using System.Management.Automation;
using VmClone.Core;

namespace VmClone.PowerShell;

/// <summary>
/// Turns Core's progress reports into progress records of one cmdlet, at most a few per second,
/// and always closes the bar (Completed) when disposed, whatever happened. Core reports on the
/// pipeline thread, so WriteProgress is called where PowerShell allows it.
/// </summary>
internal sealed class CmdletProgress : IProgress<OperationProgress>, IDisposable
{
    private readonly Cmdlet _cmdlet;
    private readonly int _activityId;
    private readonly int _parentActivityId;
    private readonly string? _subject;
    private readonly Stopwatch _sinceLast = Stopwatch.StartNew();
    private ProgressRecord? _last;

    /// <summary>A bar of <paramref name="cmdlet"/>; with <paramref name="subject"/>, the bar of a fleet command's clone, named by it ("Restore-VmClone lab-07"), Core's activity then leading the status.</summary>
    public CmdletProgress(Cmdlet cmdlet, int activityId = 1, int parentActivityId = -1, string? subject = null)
    {
        _cmdlet = cmdlet;
        _activityId = activityId;
        _parentActivityId = parentActivityId;
        _subject = subject;
    }

    /// <summary>
    /// A record of one clone's bar in a fleet command: the activity names the command and the
    /// clone ("Restore-VmClone lab-07"), the status what is done to which volume ("system: 1.2 GiB
    /// of 40 GiB"), so that bars of clones worked on side by side can be told apart.
    /// </summary>
    internal static ProgressRecord ForClone(int activityId, int parentActivityId, string subject, OperationProgress value) =>
        new(activityId, subject, $"{value.Activity}: {value.Status}") { PercentComplete = value.Percent, ParentActivityId = parentActivityId };

    /// <summary>
    /// The record that closes the bar <paramref name="last"/> showed: a new one, since the host
    /// keeps the records it was given and a changed one would rewrite what was shown.
    /// </summary>
    internal static ProgressRecord Completed(ProgressRecord last) =>
        new(last.ActivityId, last.Activity, last.StatusDescription)
        {
            PercentComplete = last.PercentComplete,
            ParentActivityId = last.ParentActivityId,
            RecordType = ProgressRecordType.Completed,
        };

    public void Report(OperationProgress value)
    {
        bool final = value.Completed >= value.Total;
        if (_last is not null && !final && _sinceLast.ElapsedMilliseconds < 200)
            return;
        _sinceLast.Restart();
        _last = _subject is null
            ? new ProgressRecord(_activityId, value.Activity, value.Status) { PercentComplete = value.Percent, ParentActivityId = _parentActivityId }
            : ForClone(_activityId, _parentActivityId, _subject, value);
        _cmdlet.WriteProgress(_last);
    }

    public void Dispose()
    {
        if (_last is null)
            return;
        _cmdlet.WriteProgress(Completed(_last));
        _last = null;
    }
}
