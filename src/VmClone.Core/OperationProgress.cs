namespace VmClone.Core;

/// <summary>How far a long operation is; Core reports it through IProgress and never writes to a console.</summary>
public sealed class OperationProgress
{
    public OperationProgress(string activity, string status, long completed, long total)
    {
        Activity = activity;
        Status = status;
        Completed = completed;
        Total = total;
    }

    /// <summary>What is being done, e.g. "Converting base.vhdx".</summary>
    public string Activity { get; }

    /// <summary>Where it is, e.g. "1.2 GiB of 40 GiB".</summary>
    public string Status { get; }

    public long Completed { get; }

    public long Total { get; }

    /// <summary>0–100.</summary>
    public int Percent => Total <= 0 ? 0 : (int)System.Math.Min(100, Completed * 100 / Total);
}
