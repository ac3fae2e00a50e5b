namespace EventProcessor.Processing;

/// <summary>
/// Runs the requests of callers that arrive together as one (group commit): the first caller in runs every request
/// waiting at that moment, the others wait for it, and the callers that arrive meanwhile go together next. Nobody is
/// held back on purpose: a caller alone goes at once. The poll loops claim through one (a claim for every loop that
/// wants one, then split) and complete through another (one statement for every batch that finished meanwhile).
/// </summary>
/// <remarks>
/// A caller does not leave while another runs its request, whatever its token says: a result taken on its behalf
/// (claimed events, a written fate) must reach it. The wait is bounded by the running caller's own token.
/// </remarks>
internal sealed class Combiner<TRequest, TResult>(
    Func<IReadOnlyList<TRequest>, CancellationToken, Task<IReadOnlyList<TResult>>> runAll) : IDisposable
{
    private readonly SemaphoreSlim _running = new(1, 1);
    private readonly List<Waiter> _waiting = [];

    public async Task<TResult> RunAsync(TRequest request, CancellationToken cancellationToken)
    {
        while (true)
        {
            var mine = new Waiter(request);
            lock (_waiting)
            {
                _waiting.Add(mine);
            }

            var ranMine = false;
            await _running.WaitAsync(CancellationToken.None);
            try
            {
                if (!mine.Result.Task.IsCompleted)
                {
                    ranMine = true;
                    await RunWaitingAsync(cancellationToken);
                }
            }
            finally
            {
                _running.Release();
            }

            try
            {
                return await mine.Result.Task;
            }
            catch (OperationCanceledException) when (!ranMine && !cancellationToken.IsCancellationRequested)
            {
                // The caller that ran this request was stopped, not this one: run it again.
            }
        }
    }

    private async Task RunWaitingAsync(CancellationToken cancellationToken)
    {
        Waiter[] taken;
        lock (_waiting)
        {
            taken = [.. _waiting];
            _waiting.Clear();
        }

        try
        {
            var results = await runAll([.. taken.Select(w => w.Request)], cancellationToken);
            for (var i = 0; i < taken.Length; i++)
            {
                taken[i].Result.SetResult(results[i]);
            }
        }
        catch (Exception exception)
        {
            foreach (var waiter in taken)
            {
                waiter.Result.TrySetException(exception);
            }
        }
    }

    public void Dispose() => _running.Dispose();

    private sealed class Waiter(TRequest request)
    {
        public TRequest Request { get; } = request;

        public TaskCompletionSource<TResult> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

