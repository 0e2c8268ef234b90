using System;
using System.Threading;

namespace VmClone.Core.Store;

// Parallel work inside one process. Every Execute takes the locks of its own subject (see
// StoreLocks): operating-system file locks, which exclude threads of one process as they exclude
// processes, so operations on different clones run side by side and two on one clone wait for
// each other, batch or not. A batch only holds the store's lock shared for its whole length, so
// that a repair (which takes it exclusive) waits for the batch rather than slipping in between
// two of its operations.
public sealed partial class VmStore
{
    /// <summary>
    /// Holds the store's lock shared for a batch of operations run in parallel by this process,
    /// until the returned handle is disposed. Batches and operations of any process may run beside
    /// it; Test-VmStore -Repair waits for it. Waits like any changing command, then refuses with StoreBusy.
    /// </summary>
    public IDisposable BeginBatch(CancellationToken cancellationToken = default) => StoreLock(exclusive: false, cancellationToken);
}
