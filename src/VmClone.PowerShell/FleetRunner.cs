using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Management.Automation;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Tasks;
using VmClone.Core;
using VmClone.Core.Store;

namespace VmClone.PowerShell;

/// <summary>
/// Runs a fleet command's per-clone operations on up to -ThrottleLimit worker threads. PowerShell
/// allows WriteObject, WriteError, WriteProgress and WriteVerbose only on the pipeline thread, so
/// workers never call the cmdlet: they post what is to be written to a queue that the pipeline
/// thread drains (after each input and, at the end, until every operation has finished). Results
/// and errors are written in input order; progress as it comes. Each store the fleet touches is
/// held as one batch (VmStore.BeginBatch) so that the operations really run side by side.
/// With a limit of 1 everything runs on the pipeline thread, one operation at a time.
/// </summary>
internal sealed class FleetRunner : IDisposable
{
    /// <summary>
    /// -ThrottleLimit when none is given: twice the processors, at most 64. Creating, restoring
    /// or rebasing a clone is mostly waiting for the disk (a flush per volume, the file system's
    /// own updates), so more clones than processors in flight keep the processors busy: on two
    /// cores, four at once made 1000 clones 15–35 % faster than two (bench/Fleet.ps1).
    /// </summary>
    public static readonly int DefaultThrottleLimit = Math.Min(64, 2 * Environment.ProcessorCount);

    private readonly Cmdlet _cmdlet;
    private readonly int _throttleLimit;
    private readonly string _activity;
    private readonly CancellationTokenSource _cancellation;
    private readonly BlockingCollection<Job> _work = new();
    // What workers post for the pipeline thread, and the signal that something was posted. Not a
    // BlockingCollection: its wait spins (yielding the processor dozens of times) before it
    // sleeps, once per clone, taking a core the workers need.
    private readonly ConcurrentQueue<Action> _toPipeline = new();
    private readonly AutoResetEvent _posted = new(false);
    private bool _postingClosed;
    private WaitHandle[]? _wakeUp; // _posted and cancellation, for the pipeline thread's wait
    private readonly Dictionary<long, Action> _finished = new();
    private readonly Dictionary<string, IDisposable> _batches = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Exception> _batchFailures = new(StringComparer.Ordinal);
    private readonly List<Task> _workers = new();
    private long _submitted;
    private long _released;
    private ProgressRecord? _overall;

    public FleetRunner(Cmdlet cmdlet, int throttleLimit, string activity, CancellationToken cancellationToken)
    {
        _cmdlet = cmdlet;
        _throttleLimit = Math.Max(1, throttleLimit);
        _activity = activity;
        _cancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
    }

    private CancellationToken Token => _cancellation.Token;

    /// <summary>
    /// Runs <paramref name="work"/> for one clone (now, or on a worker) and writes its result
    /// (when <paramref name="writeResult"/>) or its error with <paramref name="target"/> as target.
    /// Call on the pipeline thread, after ShouldProcess.
    /// </summary>
    public void Run(VmStore store, object target, string label, Func<IProgress<OperationProgress>, CancellationToken, object?> work, bool writeResult)
    {
        long sequence = ++_submitted;
        _cmdlet.WriteVerbose($"{label}: started.");
        if (_throttleLimit == 1)
        {
            var watch = Stopwatch.StartNew();
            try
            {
                object? result;
                using (var progress = new CmdletProgress(_cmdlet, 2, 1))
                    result = work(progress, Token);
                Finished(label, watch, writeResult ? result : null, null);
            }
            catch (Exception ex) when (VmCloneCmdlet.IsExpected(ex))
            {
                Finished(label, watch, null, VmCloneCmdlet.ToErrorRecord(ex, target, targetWins: true));
            }
            _released++;
            ReportOverall();
            return;
        }

        if (HoldBatch(store) is Exception storeWide)
        {
            // The store-wide step failed (store.json unreadable or of a newer format, the store
            // lock held past its timeout): this clone fails with it, as every later one of that
            // store does at once, in input order. Nothing was queued, so nothing is waited for.
            var watch = Stopwatch.StartNew();
            ErrorRecord record = VmCloneCmdlet.ToErrorRecord(storeWide, target, targetWins: true);
            Post(sequence, () => Finished(label, watch, null, record));
            Pump(block: false);
            return;
        }
        while (_workers.Count < _throttleLimit && _workers.Count < _submitted)
            _workers.Add(Task.Factory.StartNew(Work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default));
        _work.Add(new Job(sequence, target, label, work, writeResult));
        Pump(block: false);
    }

    /// <summary>
    /// Holds <paramref name="store"/> as one batch for the rest of the command (taken at its
    /// first clone); the failure when that could not be done, remembered so that the store's
    /// other clones are refused with it instead of each waiting out the lock timeout again.
    /// </summary>
    private Exception? HoldBatch(VmStore store)
    {
        if (_batches.ContainsKey(store.Root))
            return null;
        if (_batchFailures.TryGetValue(store.Root, out Exception? failed))
            return failed;
        try
        {
            _batches[store.Root] = store.BeginBatch(Token);
            return null;
        }
        catch (Exception ex) when (VmCloneCmdlet.IsExpected(ex))
        {
            _batchFailures[store.Root] = ex;
            return ex;
        }
    }

    /// <summary>Writes whatever the workers have posted; with <paramref name="block"/>, until every operation has finished.</summary>
    public void Pump(bool block)
    {
        while (true)
        {
            while (_toPipeline.TryDequeue(out Action? action))
                action();
            if (!block || _released >= _submitted)
                return;
            // Set after every post, so a post made since the queue was drained is not missed.
            WaitHandle.WaitAny(_wakeUp ??= new[] { _posted, Token.WaitHandle });
            Token.ThrowIfCancellationRequested();
        }
    }

    /// <summary>Queues <paramref name="action"/> for the pipeline thread and wakes it.</summary>
    private void ToPipeline(Action action)
    {
        _toPipeline.Enqueue(action);
        _posted.Set();
    }

    /// <summary>Waits for every operation and writes the rest; closes the progress bars.</summary>
    public void Finish()
    {
        try
        {
            Pump(block: true);
        }
        finally
        {
            if (_overall is not null)
            {
                _overall.RecordType = ProgressRecordType.Completed;
                _cmdlet.WriteProgress(_overall);
                _overall = null;
            }
        }
    }

    private void Work()
    {
        foreach (Job job in _work.GetConsumingEnumerable())
        {
            var watch = Stopwatch.StartNew();
            var progress = new QueuedProgress(this, (int)(2 + job.Sequence % 100_000));
            try
            {
                Token.ThrowIfCancellationRequested();
                object? result = job.Work(progress, Token);
                Post(job.Sequence, () => { progress.Close(); Finished(job.Label, watch, job.WriteResult ? result : null, null); });
            }
            catch (Exception ex) when (VmCloneCmdlet.IsExpected(ex) || ex is OperationCanceledException)
            {
                ErrorRecord? record = Token.IsCancellationRequested ? null : VmCloneCmdlet.ToErrorRecord(ex, job.Target, targetWins: true);
                Post(job.Sequence, () => { progress.Close(); if (record is not null) Finished(job.Label, watch, null, record); });
            }
            catch (Exception ex)
            {
                // A defect of ours: rethrown on the pipeline thread, where it stops the command.
                var captured = ExceptionDispatchInfo.Capture(ex);
                Post(job.Sequence, () => { progress.Close(); captured.Throw(); });
            }
        }
    }

    /// <summary>Queues a finished operation's output; it is written once all earlier ones are.</summary>
    private void Post(long sequence, Action output) => ToPipeline(() =>
    {
        _finished[sequence] = output;
        while (_finished.TryGetValue(_released + 1, out Action? next))
        {
            _finished.Remove(++_released);
            ReportOverall();
            next();
        }
    });

    private void Finished(string label, Stopwatch watch, object? result, ErrorRecord? error)
    {
        if (error is not null)
        {
            _cmdlet.WriteVerbose($"{label}: failed after {watch.Elapsed.TotalSeconds:0.0} s.");
            _cmdlet.WriteError(error);
            return;
        }
        _cmdlet.WriteVerbose($"{label}: done in {watch.Elapsed.TotalSeconds:0.0} s.");
        if (result is not null)
            _cmdlet.WriteObject(result);
    }

    private readonly Stopwatch _sinceOverall = Stopwatch.StartNew();

    /// <summary>The "N of M done" bar, at most five times a second (a record per clone would cost more than the clone at fleet scale).</summary>
    private void ReportOverall()
    {
        if (_submitted < 2 || (_overall is not null && _released < _submitted && _sinceOverall.ElapsedMilliseconds < 200))
            return;
        _sinceOverall.Restart();
        _overall ??= new ProgressRecord(1, _activity, " ");
        _overall.StatusDescription = $"{_released} of {_submitted} done";
        _overall.PercentComplete = (int)(100 * _released / _submitted);
        _cmdlet.WriteProgress(_overall);
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _cancellation.Cancel();
        _work.CompleteAdding();
        try
        {
            Task.WaitAll(_workers.ToArray());
        }
        catch (AggregateException)
        {
        }
        foreach (IDisposable batch in _batches.Values)
            batch.Dispose();
        _batches.Clear();
        _work.Dispose();
        _postingClosed = true;
        _posted.Dispose();
        _cancellation.Dispose();
    }

    private sealed record Job(long Sequence, object Target, string Label, Func<IProgress<OperationProgress>, CancellationToken, object?> Work, bool WriteResult);

    /// <summary>A worker's progress: records are posted to the pipeline thread, a few per second.</summary>
    private sealed class QueuedProgress : IProgress<OperationProgress>
    {
        private readonly FleetRunner _runner;
        private readonly int _activityId;
        // Started with the operation: one that is done within a fifth of a second shows no bar
        // of its own (at fleet scale a bar per clone would cost more than the clone); a longer
        // one shows its progress a few times a second.
        private readonly Stopwatch _sinceLast = Stopwatch.StartNew();
        private ProgressRecord? _last;

        public QueuedProgress(FleetRunner runner, int activityId)
        {
            _runner = runner;
            _activityId = activityId;
        }

        public void Report(OperationProgress value)
        {
            if (_sinceLast.ElapsedMilliseconds < 200)
                return;
            _sinceLast.Restart();
            var record = new ProgressRecord(_activityId, value.Activity, value.Status) { PercentComplete = value.Percent, ParentActivityId = 1 };
            _last = record;
            if (!_runner._postingClosed)
                _runner.ToPipeline(() => _runner._cmdlet.WriteProgress(record));
        }

        /// <summary>On the pipeline thread: closes this operation's bar.</summary>
        public void Close()
        {
            if (_last is null)
                return;
            _last.RecordType = ProgressRecordType.Completed;
            _runner._cmdlet.WriteProgress(_last);
        }
    }
}
