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
    private readonly Stopwatch _sinceLast = Stopwatch.StartNew();
    private ProgressRecord? _last;

    public CmdletProgress(Cmdlet cmdlet, int activityId = 1, int parentActivityId = -1)
    {
        _cmdlet = cmdlet;
        _activityId = activityId;
        _parentActivityId = parentActivityId;
    }

    public void Report(OperationProgress value)
    {
        bool final = value.Completed >= value.Total;
        if (_last is not null && !final && _sinceLast.ElapsedMilliseconds < 200)
            return;
        _sinceLast.Restart();
        _last = new ProgressRecord(_activityId, value.Activity, value.Status) { PercentComplete = value.Percent, ParentActivityId = _parentActivityId };
        _cmdlet.WriteProgress(_last);
    }

    public void Dispose()
    {
        if (_last is null)
            return;
        _last.RecordType = ProgressRecordType.Completed;
        _cmdlet.WriteProgress(_last);
        _last = null;
    }
}
