using EventProcessor.Events;
using EventProcessor.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polly;

namespace EventProcessor.Processing;

/// <summary>
/// Runs a claimed batch: each event through the executor, in FIFO order, then every fate in one completion.
/// Keeps per-aggregate order inside the batch: once an event of an aggregate does not complete, the later events
/// of that aggregate in the batch are released unrun.
/// </summary>
internal sealed class BatchRunner(
    EventDatabase database,
    EventExecutor executor,
    EventCompleter completer,
    ProcessingStats stats,
    HeldEvents held,
    IServiceScopeFactory scopes,
    EventProcessorOptions options,
    TimeProvider timeProvider,
    ILogger<BatchRunner> logger) : IDisposable
{
    // After shutdown starts, how long a completion may wait for the database beyond the handler grace period.
    private static readonly TimeSpan CompletionGraceOnShutdown = TimeSpan.FromSeconds(3);

    private readonly ResiliencePipeline _waitForDatabase = DatabaseResilience.Create(logger, timeProvider);

    // Batches whose handlers wrote nothing complete together: one statement for every batch that finished while the
    // last one was being written.
    private readonly Combiner<(EventAttempt[] Attempts, ExecutionResult[] Results), HashSet<Guid>> _completions =
        new((batches, token) => CompleteTogetherAsync(database, completer, batches, token));

    /// <summary>Runs a batch and writes its fates; returns once they are written.</summary>
    /// <inheritdoc cref="StartAsync"/>
    public async Task<ExecutionResult[]> RunAsync(
        IReadOnlyList<StoredEvent> claimed,
        CancellationToken stopping,
        string? releaseReason = null,
        HashSet<AggregateKey>? unfinishedAggregates = null) =>
        await await StartAsync(claimed, stopping, releaseReason, unfinishedAggregates);

    /// <summary>
    /// Runs a batch's handlers and returns once they are done, with the task that writes their fates. When no handler
    /// wrote, the fates go to the next completion statement (see <see cref="_completions"/>) and the poll loop can
    /// claim again while they are written; otherwise they are written, in the batch's transaction, before this
    /// returns.
    /// </summary>
    /// <param name="claimed">The claimed events, in FIFO order.</param>
    /// <param name="stopping">Fires on shutdown: no new event starts, and the running one has <see cref="EventProcessorOptions.ShutdownGrace"/> left.</param>
    /// <param name="releaseReason">When given, nothing runs: every event is released with this reason, its attempt given back.</param>
    /// <param name="unfinishedAggregates">
    /// Aggregates whose earlier event, in an earlier batch of the same claim, did not complete: their events here are
    /// released unrun. Updated with this batch's.
    /// </param>
    /// <returns>The writing of the fates, which gives the fate of each event, in the order given.</returns>
    public async Task<Task<ExecutionResult[]>> StartAsync(
        IReadOnlyList<StoredEvent> claimed,
        CancellationToken stopping,
        string? releaseReason = null,
        HashSet<AggregateKey>? unfinishedAggregates = null)
    {
        held.Add(claimed);
        var deadlines = new ShutdownDeadlines(options, timeProvider, stopping);
        var handedOff = false;
        try
        {
            var attempts = new EventAttempt[claimed.Count];
            var results = new ExecutionResult[claimed.Count];
            await using (var scope = scopes.CreateAsyncScope())
            await using (var session = new BatchSession(database.DataSource))
            {
                await RunHandlersAsync(
                    claimed, attempts, results, releaseReason, unfinishedAggregates ?? [], session, scope.ServiceProvider, deadlines.Abort, stopping);
                if (session.OpenTransaction is not null || session.IsLost)
                {
                    var applied = await CompleteAsync(attempts, results, session, deadlines.GiveUp);
                    Report(attempts, results, applied);
                    return Task.FromResult(results);
                }
            }

            handedOff = true;
            return WriteFatesAsync(claimed, attempts, results, deadlines);
        }
        finally
        {
            if (!handedOff)
            {
                deadlines.Dispose();
                held.Remove(claimed);
            }
        }
    }

    private async Task RunHandlersAsync(
        IReadOnlyList<StoredEvent> claimed,
        EventAttempt[] attempts,
        ExecutionResult[] results,
        string? releaseReason,
        HashSet<AggregateKey> unfinishedAggregates,
        BatchSession session,
        IServiceProvider services,
        CancellationToken abort,
        CancellationToken stopping)
    {
        for (var i = 0; i < claimed.Count; i++)
        {
            var storedEvent = claimed[i];
            attempts[i] = new EventAttempt(storedEvent, session, options.SerializerOptions);
            if (releaseReason is not null)
            {
                results[i] = ExecutionResult.Released(releaseReason);
            }
            else if (stopping.IsCancellationRequested)
            {
                results[i] = ExecutionResult.Released("Released on shutdown before it started.");
            }
            else if (session.IsLost)
            {
                results[i] = ExecutionResult.Released("Released: the batch's database session was lost.");
            }
            else if (storedEvent.Aggregate is { } waiting && unfinishedAggregates.Contains(waiting))
            {
                results[i] = ExecutionResult.Released("Released: an earlier event of its aggregate did not complete.");
            }
            else
            {
                using (logger.BeginScope(new EventLogScope(storedEvent)))
                {
                    results[i] = await executor.ExecuteAsync(attempts[i], session, services, abort);
                }
            }

            if (results[i].Kind is OutcomeKind.RetryLater or OutcomeKind.Released && storedEvent.Aggregate is { } aggregate)
            {
                unfinishedAggregates.Add(aggregate);
            }
        }
    }

    // The fates of a batch whose handlers wrote nothing: the events stay held (their leases renewed) until written.
    private async Task<ExecutionResult[]> WriteFatesAsync(
        IReadOnlyList<StoredEvent> claimed,
        EventAttempt[] attempts,
        ExecutionResult[] results,
        ShutdownDeadlines deadlines)
    {
        try
        {
            var applied = await CompleteWithOthersAsync(attempts, results, deadlines.GiveUp);
            Report(attempts, results, applied);
            return results;
        }
        finally
        {
            deadlines.Dispose();
            held.Remove(claimed);
        }
    }

    private async Task<HashSet<Guid>> CompleteAsync(
        EventAttempt[] attempts,
        ExecutionResult[] results,
        BatchSession session,
        CancellationToken giveUp)
    {
        if (session.OpenTransaction is { } transaction)
        {
            string reason;
            try
            {
                var applied = await completer.CompleteAsync(transaction.Connection, transaction.Transaction, attempts, results, giveUp);
                if (applied.Count == attempts.Length)
                {
                    await transaction.Transaction.CommitAsync(giveUp);
                    return applied;
                }

                // Some leases were lost: their handlers' writes must not commit, and they share one transaction.
                await transaction.Transaction.RollbackAsync(giveUp);
                reason = "a lease was lost before completion";
            }
            catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException or TimeoutException)
            {
                // The commit may or may not have happened. Either way the retry below is right: rows it committed
                // are processed and fenced out, rows it did not are released to run again.
                reason = exception.Message;
            }

            session.Abandon();
            ReleaseTransactionWriters(attempts, results, reason);
        }
        else if (session.IsLost)
        {
            ReleaseTransactionWriters(attempts, results, "the connection broke or a handler ran away with it");
        }

        return await CompleteWithOthersAsync(attempts, results, giveUp);
    }

    // On a connection of its own, in the next completion statement, waiting out a database outage until giveUp.
    private async Task<HashSet<Guid>> CompleteWithOthersAsync(EventAttempt[] attempts, ExecutionResult[] results, CancellationToken giveUp) =>
        await _waitForDatabase.ExecuteAsync(async token => await _completions.RunAsync((attempts, results), token), giveUp);

    private static async Task<IReadOnlyList<HashSet<Guid>>> CompleteTogetherAsync(
        EventDatabase database,
        EventCompleter completer,
        IReadOnlyList<(EventAttempt[] Attempts, ExecutionResult[] Results)> batches,
        CancellationToken cancellationToken)
    {
        var attempts = batches.Count == 1 ? batches[0].Attempts : [.. batches.SelectMany(b => b.Attempts)];
        var results = batches.Count == 1 ? batches[0].Results : [.. batches.SelectMany(b => b.Results)];
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);
        var applied = await completer.CompleteAsync(connection, null, attempts, results, cancellationToken);

        // Each batch looks up its own ids in the one set.
        return [.. batches.Select(_ => applied)];
    }

    private void ReleaseTransactionWriters(EventAttempt[] attempts, ExecutionResult[] results, string reason)
    {
        var released = 0;
        for (var i = 0; i < attempts.Length; i++)
        {
            if (attempts[i].UsedTransaction && results[i].Kind == OutcomeKind.Completed)
            {
                results[i] = ExecutionResult.Released("Released: its writes were lost with the batch's transaction.");
                released++;
            }
        }

        Log.TransactionLost(logger, reason, released);
    }

    private void Report(EventAttempt[] attempts, ExecutionResult[] results, HashSet<Guid> applied)
    {
        var now = timeProvider.GetUtcNow();
        var lost = 0;
        for (var i = 0; i < attempts.Length; i++)
        {
            var storedEvent = attempts[i].Event;
            if (!applied.Contains(storedEvent.Id))
            {
                lost++;
                continue;
            }

            var result = results[i];
            stats.Record(result.Kind, now);
            if (result.Kind is OutcomeKind.Completed or OutcomeKind.Skipped)
            {
                if (logger.IsEnabled(LogLevel.Debug))
                {
                    using (logger.BeginScope(new EventLogScope(storedEvent)))
                    {
                        Log.Completed(logger);
                    }
                }

                continue;
            }

            using (logger.BeginScope(new EventLogScope(storedEvent)))
            {
                switch (result.Kind)
                {
                    case OutcomeKind.RetryLater:
                        Log.WillRetry(logger, storedEvent.Attempt, result.RetryDelay, result.Error);
                        break;
                    case OutcomeKind.DeadLettered:
                        Log.DeadLettered(logger, storedEvent.Attempt, result.Error);
                        break;
                    default:
                        Log.Released(logger, result.Error);
                        break;
                }
            }
        }

        if (lost > 0)
        {
            Log.LeaseLost(logger, lost);
        }
    }

    public void Dispose() => _completions.Dispose();

    /// <summary>
    /// On shutdown, the running handler is cancelled after <see cref="EventProcessorOptions.ShutdownGrace"/>
    /// (<see cref="Abort"/>), and the writing of the fates gives up <see cref="CompletionGraceOnShutdown"/> later
    /// (<see cref="GiveUp"/>).
    /// </summary>
    private sealed class ShutdownDeadlines : IDisposable
    {
        private readonly CancellationTokenSource _abort;
        private readonly CancellationTokenSource _giveUp;
        private readonly CancellationTokenRegistration _onStop;

        public ShutdownDeadlines(EventProcessorOptions options, TimeProvider timeProvider, CancellationToken stopping)
        {
            _abort = new CancellationTokenSource(Timeout.InfiniteTimeSpan, timeProvider);
            _giveUp = new CancellationTokenSource(Timeout.InfiniteTimeSpan, timeProvider);
            _onStop = stopping.Register(() =>
            {
                _abort.CancelAfter(options.ShutdownGrace);
                _giveUp.CancelAfter(options.ShutdownGrace + CompletionGraceOnShutdown);
            });
        }

        public CancellationToken Abort => _abort.Token;

        public CancellationToken GiveUp => _giveUp.Token;

        public void Dispose()
        {
            _onStop.Dispose();
            _abort.Dispose();
            _giveUp.Dispose();
        }
    }
}
