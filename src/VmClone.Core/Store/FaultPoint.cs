using System;
using System.Threading;

namespace VmClone.Core.Store;

/// <summary>
/// Named points between the file-system steps of a store operation, where the crash tests cut it
/// off. Unset (the normal case) a point does nothing. A test sets <see cref="Hook"/> for its own
/// flow only (an AsyncLocal, so tests running in parallel are not affected) and throws
/// <see cref="SimulatedCrash"/> from it: that exception is never cleaned up after, so what is left
/// on disk is what a killed process leaves.
/// </summary>
internal static class FaultPoint
{
    private static readonly AsyncLocal<Action<string>?> Current = new();

    public static Action<string>? Hook
    {
        get => Current.Value;
        set => Current.Value = value;
    }

    public static void Hit(string point) => Current.Value?.Invoke(point);

    /// <summary>True for an exception that stands for the process dying: no cleanup may run.</summary>
    public static bool IsCrash(Exception ex) => ex is SimulatedCrash || ex.InnerException is SimulatedCrash;
}

/// <summary>Thrown by test hooks to stand for a process killed at that instant.</summary>
internal sealed class SimulatedCrash : Exception
{
    public SimulatedCrash(string point)
        : base($"simulated crash at {point}")
    {
    }
}
