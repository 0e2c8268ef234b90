using System;
using System.Collections.Concurrent;
using System.Threading;

namespace VmClone.Core.Store;

// Parallel work inside one process. The store lock is a file opened with FileShare.None; every
// Execute opens it anew, so it keeps out other processes and also serialises the threads of this
// one. A batch takes that lock once, for as long as it is open, and lets operations of this
// process run side by side on different subjects: each subject has its own gate, and operations
// that create or remove a base wait until nothing else runs. While a batch is open, other
// processes wait for the store as they would for one long command.
public sealed partial class VmStore
{
    private static readonly ConcurrentDictionary<string, BatchState> Batches = new(StringComparer.Ordinal);

    /// <summary>
    /// Takes the store's lock for a batch of operations run in parallel by this process; until the
    /// returned handle is disposed, <see cref="Execute"/> on any thread of this process runs under
    /// it instead of taking the lock itself (one operation per subject at a time). Batches of the
    /// same process share the lock. Waits like any changing command, then refuses with StoreBusy.
    /// </summary>
    public IDisposable BeginBatch(CancellationToken cancellationToken = default)
    {
        BatchState state = Batches.GetOrAdd(Root, _ => new BatchState());
        lock (state)
        {
            // A batch that is ending still holds the file; wait until it has let go.
            while (state.Holders == 0 && state.FileLock is not null)
                Monitor.Wait(state, 100);
            if (state.Holders == 0)
                state.FileLock = Lock(cancellationToken);
            state.Holders++;
        }
        return new BatchHandle(state);
    }

    /// <summary>What an execution holds: a gate of the open batch, else the store's lock.</summary>
    private IDisposable EnterExecution(StorePlan plan, CancellationToken cancellationToken)
    {
        if (Batches.TryGetValue(Root, out BatchState? state) && state.TryEnter(plan, cancellationToken) is IDisposable entered)
            return entered;
        return Lock(cancellationToken);
    }

    private sealed class BatchState
    {
        private readonly ReaderWriterLockSlim _bases = new(LockRecursionPolicy.NoRecursion);
        private readonly ConcurrentDictionary<string, object> _subjects = new(StringComparer.OrdinalIgnoreCase);

        public int Holders;
        public int Active;
        public IDisposable? FileLock;

        /// <summary>Enters the batch for one plan, or null when no batch is open.</summary>
        public IDisposable? TryEnter(StorePlan plan, CancellationToken cancellationToken)
        {
            lock (this)
            {
                if (Holders == 0)
                    return null;
                Active++;
            }
            bool exclusive = plan.Operation is StoreOperation.NewBase or StoreOperation.RemoveBase;
            object subject = _subjects.GetOrAdd(plan.SubjectKind + "/" + plan.Subject, _ => new object());
            bool haveBases = false, haveSubject = false;
            try
            {
                while (!(haveBases = exclusive ? _bases.TryEnterWriteLock(200) : _bases.TryEnterReadLock(200)))
                    cancellationToken.ThrowIfCancellationRequested();
                while (!(haveSubject = Monitor.TryEnter(subject, 200)))
                    cancellationToken.ThrowIfCancellationRequested();
            }
            catch
            {
                Exit(exclusive, haveBases, haveSubject ? subject : null);
                throw;
            }
            return new Entered(this, exclusive, subject);
        }

        public void Exit(bool exclusive, bool haveBases, object? subject)
        {
            if (subject is not null)
                Monitor.Exit(subject);
            if (haveBases)
            {
                if (exclusive)
                    _bases.ExitWriteLock();
                else
                    _bases.ExitReadLock();
            }
            lock (this)
            {
                Active--;
                Monitor.PulseAll(this);
            }
        }

        public void Release()
        {
            lock (this)
            {
                if (--Holders > 0)
                    return;
                // Executions that entered through the batch finish under its lock.
                while (Active > 0)
                    Monitor.Wait(this);
                FileLock?.Dispose();
                FileLock = null;
                Monitor.PulseAll(this);
            }
        }
    }

    private sealed class Entered : IDisposable
    {
        private readonly BatchState _state;
        private readonly bool _exclusive;
        private object? _subject;

        public Entered(BatchState state, bool exclusive, object subject)
        {
            _state = state;
            _exclusive = exclusive;
            _subject = subject;
        }

        public void Dispose()
        {
            object? subject = Interlocked.Exchange(ref _subject, null);
            if (subject is not null)
                _state.Exit(_exclusive, haveBases: true, subject);
        }
    }

    private sealed class BatchHandle : IDisposable
    {
        private BatchState? _state;

        public BatchHandle(BatchState state) => _state = state;

        public void Dispose() => Interlocked.Exchange(ref _state, null)?.Release();
    }
}
