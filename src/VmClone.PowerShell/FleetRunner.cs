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
    // The number of clones the command works on, when known before the first is done (names given
    // to the parameter, -Base); null for piped input, where the bar shows a count and no percentage.
    private long? _total;
    private ProgressRecord? _overall;
    private long _shownDone = -1;

    public FleetRunner(Cmdlet cmdlet, int throttleLimit, string activity, CancellationToken cancellationToken)
    {
        _cmdlet = cmdlet;
        _throttleLimit = Math.Max(1, throttleLimit);
        _activity = activity;
        _cancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
    }

    private CancellationToken Token => _cancellation.Token;

    /// <summary>
    /// Adds <paramref name="count"/> clones to the total the overall bar counts against: call once
    /// per input record, before its clones are run or skipped, when every clone comes in one go.
    /// </summary>
    public void ExpectTotal(int count)
    {
        _total = (_total ?? 0) + count;
        ReportOverall();
    }

    /// <summary>A clone counted in the total that is not worked on (its plan failed, it was declined): it counts as done, in input order.</summary>
    public void Skip()
    {
        long sequence = ++_submitted;
        Post(sequence, () => { });
        Pump(block: false);
    }

    /// <summary>
    /// Runs <paramref name="work"/> for one clone (now, or on a worker) and writes its result
    /// (when <paramref name="writeResult"/>) or its error with <paramref name="target"/> as target.
    /// <paramref name="subject"/> names the clone's own progress bar ("Restore-VmClone lab-07").
    /// Call on the pipeline thread, after ShouldProcess.
    /// </summary>
    public void Run(VmStore store, object target, string label, string subject, Func<IProgress<OperationProgress>, CancellationToken, object?> work, bool writeResult)
    {
        long sequence = ++_submitted;
        _cmdlet.WriteVerbose($"{label}: started.");
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
        if (_throttleLimit == 1)
        {
            var watch = Stopwatch.StartNew();
            try
            {
                object? result;
                using (var progress = new CmdletProgress(_cmdlet, 2, 1, subject))
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
        while (_workers.Count < _throttleLimit && _workers.Count < _submitted)
            _workers.Add(Task.Factory.StartNew(Work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default));
        _work.Add(new Job(sequence, target, label, subject, work, writeResult));
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
                // The last count is always shown, however soon it came after the one before.
                if (_shownDone != _released)
                    WriteOverall();
                _cmdlet.WriteProgress(new ProgressRecord(1, _overall.Activity, _overall.StatusDescription)
                {
                    PercentComplete = _overall.PercentComplete,
                    RecordType = ProgressRecordType.Completed,
                });
                _overall = null;
            }
        }
    }

    private void Work()
    {
        foreach (Job job in _work.GetConsumingEnumerable())
        {
            var watch = Stopwatch.StartNew();
            var progress = new QueuedProgress(this, (int)(2 + job.Sequence % 100_000), job.Subject);
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

    /// <summary>
    /// The overall bar, at most five times a second (a record per clone would cost more than the
    /// clone at fleet scale): "N of M done" with its percentage when the total is known, else
    /// "N done" without one, since a total that grows with the input would read 100 % all along.
    /// Shown for two clones or more.
    /// </summary>
    private void ReportOverall()
    {
        if ((_total ?? _submitted) < 2)
            return;
        bool allDone = _total is long total && _released >= total;
        if (_overall is not null && !allDone && _sinceOverall.ElapsedMilliseconds < 200)
            return;
        WriteOverall();
    }

    private void WriteOverall()
    {
        _sinceOverall.Restart();
        _shownDone = _released;
        // A new record each time: the host (and a PowerShell instance's Progress stream) keeps
        // the record it was given, so changing a written one would rewrite what it showed.
        _overall = _total is long total
            ? new ProgressRecord(1, _activity, $"{_released} of {total} done") { PercentComplete = total == 0 ? 100 : (int)(100 * _released / total) }
            : new ProgressRecord(1, _activity, $"{_released} done") { PercentComplete = -1 };
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

    private sealed record Job(long Sequence, object Target, string Label, string Subject, Func<IProgress<OperationProgress>, CancellationToken, object?> Work, bool WriteResult);

    /// <summary>A worker's progress: records are posted to the pipeline thread, a few per second.</summary>
    private sealed class QueuedProgress : IProgress<OperationProgress>
    {
        private readonly FleetRunner _runner;
        private readonly int _activityId;
        private readonly string _subject;
        // Started with the operation: one that is done within a fifth of a second shows no bar
        // of its own (at fleet scale a bar per clone would cost more than the clone); a longer
        // one shows its progress a few times a second.
        private readonly Stopwatch _sinceLast = Stopwatch.StartNew();
        private ProgressRecord? _last;

        public QueuedProgress(FleetRunner runner, int activityId, string subject)
        {
            _runner = runner;
            _activityId = activityId;
            _subject = subject;
        }

        public void Report(OperationProgress value)
        {
            if (_sinceLast.ElapsedMilliseconds < 200)
                return;
            _sinceLast.Restart();
            var record = CmdletProgress.ForClone(_activityId, 1, _subject, value);
            _last = record;
            if (!_runner._postingClosed)
                _runner.ToPipeline(() => _runner._cmdlet.WriteProgress(record));
        }

        /// <summary>On the pipeline thread: closes this operation's bar.</summary>
        public void Close()
        {
            if (_last is null)
                return;
            _runner._cmdlet.WriteProgress(CmdletProgress.Completed(_last));
        }
    }
}
