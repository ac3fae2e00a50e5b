using EventProcessor.Events;

namespace EventProcessor.Processing;

/// <summary>
/// Lets a suspect run alone in this process. A suspect is an event whose last attempt never finished: it may be what
/// killed the process last time (a handler calling FailFast, a native crash). The claim already gives it a batch of
/// its own; this gate keeps the other workers' batches out of the process while it runs, so that if it kills the
/// process again it takes no other event's attempt with it.
/// </summary>
/// <remarks>
/// Every claim passes the gate shared (<see cref="EnterAsync"/>), before it claims. A claim that comes back with a
/// suspect asks for the whole process (<see cref="Pass.RunAloneAsync"/>): new claims wait at the gate (no attempt is
/// counted for them), the batches already running finish, then the suspect runs.
/// </remarks>
internal sealed class SuspectGate(EventProcessorOptions options) : IDisposable
{
    // Two tokens per worker (a poll loop holds one for the batch it runs and one for the batch whose fates are being
    // written), plus room for on-demand runs (which the HTTP layer caps well below this); a suspect takes them all.
    private const int OnDemandRoom = 64;
    private readonly int _tokens = (2 * options.Workers) + OnDemandRoom;
    private readonly SemaphoreSlim _running = new((2 * options.Workers) + OnDemandRoom, (2 * options.Workers) + OnDemandRoom);
    private readonly SemaphoreSlim _turnstile = new(1, 1);

    public async Task<Pass> EnterAsync(CancellationToken cancellationToken)
    {
        // Through the turnstile first: closed while a suspect waits for the others to finish or runs.
        await _turnstile.WaitAsync(cancellationToken);
        _turnstile.Release();
        await _running.WaitAsync(cancellationToken);
        return new Pass(this);
    }

    public void Dispose()
    {
        _running.Dispose();
        _turnstile.Dispose();
    }

    /// <summary>True when <paramref name="claimed"/> is a suspect, alone in its batch as the claim gives it (see <see cref="StoredEvent.Suspect"/>).</summary>
    public static bool IsSuspect(IReadOnlyList<StoredEvent> claimed) => claimed is [{ Suspect: true }];

    /// <summary>A place in the gate: one running batch, or, after <see cref="RunAloneAsync"/>, the whole process.</summary>
    public sealed class Pass(SuspectGate gate) : IDisposable
    {
        private int _held = 1;
        private bool _turnstileHeld;

        /// <summary>
        /// Waits until every other batch of this process has finished, keeping new ones out meanwhile. Returns false at
        /// once when another suspect has the process or is waiting for it: this one was claimed while the gate was
        /// closing, and must be given back rather than wait, since the other one's crash would cut it off too.
        /// </summary>
        public async Task<bool> RunAloneAsync(CancellationToken cancellationToken)
        {
            if (!await gate._turnstile.WaitAsync(0, cancellationToken))
            {
                return false;
            }

            _turnstileHeld = true;
            gate._running.Release();
            _held = 0;
            for (var i = 0; i < gate._tokens; i++)
            {
                await gate._running.WaitAsync(cancellationToken);
                _held++;
            }

            return true;
        }

        public void Dispose()
        {
            if (_held > 0)
            {
                gate._running.Release(_held);
                _held = 0;
            }

            if (_turnstileHeld)
            {
                gate._turnstile.Release();
                _turnstileHeld = false;
            }
        }
    }
}
