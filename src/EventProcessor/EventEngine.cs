using EventProcessor.Handling;
using EventProcessor.Processing;
using EventProcessor.Storage;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polly;

namespace EventProcessor;

/// <summary>
/// The engine's front: what the poll loop and the HTTP triggers call. One batch is claim → execute → complete;
/// the files named after each step hold the details.
/// </summary>
public sealed class EventEngine : IDisposable
{
    private readonly EventClaimer _claimer;
    private readonly BatchRunner _runner;
    private readonly SuspectGate _gate;
    private readonly Combiner<int, SharedClaim> _sharedClaims;
    private readonly HeldEvents _held;
    private readonly EventDatabase _database;
    private readonly ResiliencePipeline _waitForDatabase;
    private readonly SemaphoreSlim _wake;

    internal EventEngine(
        EventClaimer claimer,
        BatchRunner runner,
        HeldEvents held,
        EventDatabase database,
        ProcessingStats stats,
        HandlerRegistry registry,
        EventProcessorOptions options,
        TimeProvider timeProvider,
        ILogger<EventEngine> logger)
    {
        _claimer = claimer;
        _runner = runner;
        _held = held;
        _database = database;
        Stats = stats;
        Registry = registry;
        Options = options;
        _gate = new SuspectGate(options);
        _sharedClaims = new Combiner<int, SharedClaim>(ClaimSharesAsync);
        _wake = new SemaphoreSlim(0, options.Workers);
        _waitForDatabase = DatabaseResilience.Create(logger, timeProvider);
    }

    /// <summary>Counters since start.</summary>
    public ProcessingStats Stats { get; }

    /// <summary>The handlers, by event type.</summary>
    public HandlerRegistry Registry { get; }

    /// <summary>The options in force.</summary>
    public EventProcessorOptions Options { get; }

    /// <summary>Claims one batch now and runs it; returns how many events were claimed. Does not wait out a database outage.</summary>
    public async Task<int> ProcessBatchAsync(CancellationToken stopping) => (await RunBatchNowAsync(stopping)).Count;

    /// <summary>
    /// Claims one batch now and runs it; returns each claimed event's id and fate, in claim order. Does not wait out
    /// a database outage.
    /// </summary>
    public Task<IReadOnlyList<EventRunResult>> RunBatchNowAsync(CancellationToken stopping) => ClaimAndRunAsync(stopping);

    /// <summary>Claims one event by id now, skipping any backoff, and runs it.</summary>
    /// <param name="eventId">The event to run.</param>
    /// <param name="stopping">Fires on shutdown; the event is then released rather than failed.</param>
    public async Task<ProcessEventResult> ProcessEventAsync(Guid eventId, CancellationToken stopping)
    {
        using var pass = await _gate.EnterAsync(stopping);
        var claim = await _claimer.ClaimByIdAsync(eventId, stopping);
        if (claim.Event is null)
        {
            return new ProcessEventResult(claim.Status, null, null, claim.WaitingFor);
        }

        Stats.Claimed(1);
        try
        {
            var results = await RunAsync(pass, [claim.Event], stopping);
            return new ProcessEventResult(ProcessEventStatus.Processed, results[0].Kind, results[0].Error, null);
        }
        finally
        {
            Stats.Finished(1);
        }
    }

    /// <summary>The backlog as the database sees it. Throws when the database cannot be reached.</summary>
    public async Task<Backlog> ReadBacklogAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _database.DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(EventSql.ReadBacklog, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new Backlog(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetDouble(1));
    }

    /// <summary>Wakes one sleeping poll loop, if any sleeps: it claims at once instead of at the end of its poll interval.</summary>
    public void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Every loop is awake or about to be: a wake-up per loop is all they need.
        }
    }

    /// <summary>
    /// A poll loop's turn: claims its share of a claim made for every loop waiting to claim (see
    /// <see cref="SharedClaim"/>), waiting out a database outage, and runs it in batches of
    /// <see cref="EventProcessorOptions.BatchSize"/>. Returns once the handlers are done, with whether more may be due
    /// now (see <see cref="ClaimedBatch.More"/>) and the writing of the fates, which the loop lets run while it claims again.
    /// The events stay held, and the turn keeps its place in the <see cref="SuspectGate"/>, until their fates are
    /// written.
    /// </summary>
    internal async Task<(bool More, Task Writing)> RunSharedBatchAsync(CancellationToken stopping)
    {
        var pass = await _gate.EnterAsync(stopping);
        var writes = new List<Task>();
        List<Events.StoredEvent> claimed = [];
        try
        {
            var claim = await _waitForDatabase.ExecuteAsync(
                static async (state, token) => await state._sharedClaims.RunAsync(0, token),
                this,
                stopping);
            claimed = claim.Events;
            Stats.Claimed(claimed.Count);
            _held.Add(claimed);

            // A share longer than a batch (an aggregate's run) goes in batches, one after the other; an aggregate whose
            // event did not complete in one has its later events released unrun in the next, as inside one batch.
            var unfinishedAggregates = new HashSet<Events.AggregateKey>();
            for (var start = 0; start < claimed.Count; start += Options.BatchSize)
            {
                var batch = claimed.GetRange(start, Math.Min(Options.BatchSize, claimed.Count - start));
                writes.Add(await StartAsync(pass, batch, stopping, unfinishedAggregates));
            }

            return (claim.More, FinishTurnAsync(pass, claimed, writes));
        }
        catch
        {
            try
            {
                await FinishTurnAsync(pass, claimed, writes);
            }
            catch (Exception exception) when (exception is not OutOfMemoryException)
            {
                // The turn's own failure is the one to report.
            }

            throw;
        }
    }

    // Once every batch's fates are written: the turn's events are no longer held, and its place in the gate is free.
    private async Task FinishTurnAsync(SuspectGate.Pass pass, List<Events.StoredEvent> claimed, List<Task> writes)
    {
        try
        {
            await Task.WhenAll(writes);
        }
        finally
        {
            _held.Remove(claimed);
            Stats.Finished(claimed.Count);
            pass.Dispose();
        }
    }

    private async Task<IReadOnlyList<SharedClaim>> ClaimSharesAsync(IReadOnlyList<int> loops, CancellationToken cancellationToken)
    {
        var limit = Options.BatchSize * loops.Count;
        var claim = await _claimer.ClaimBatchAsync(limit, onDemand: false, cancellationToken);
        return [.. SharedClaim.Split(claim.Events, loops.Count, Options.BatchSize).Select(share => new SharedClaim(share, claim.More))];
    }

    private async Task<IReadOnlyList<EventRunResult>> ClaimAndRunAsync(CancellationToken stopping)
    {
        using var pass = await _gate.EnterAsync(stopping);
        var claimed = (await _claimer.ClaimBatchAsync(Options.BatchSize, onDemand: true, stopping)).Events;
        if (claimed.Count == 0)
        {
            return [];
        }

        Stats.Claimed(claimed.Count);
        try
        {
            var results = await RunAsync(pass, claimed, stopping);
            return [.. claimed.Select((storedEvent, i) => new EventRunResult(storedEvent.Id, results[i].Kind))];
        }
        finally
        {
            Stats.Finished(claimed.Count);
        }
    }

    /// <summary>Runs a claimed batch and writes its fates; see <see cref="StartAsync"/>.</summary>
    private async Task<ExecutionResult[]> RunAsync(SuspectGate.Pass pass, IReadOnlyList<Events.StoredEvent> claimed, CancellationToken stopping) =>
        await await StartAsync(pass, claimed, stopping);

    /// <summary>
    /// Runs a claimed batch's handlers, and returns the writing of its fates (<see cref="BatchRunner.StartAsync"/>); a
    /// suspect (see <see cref="SuspectGate"/>) first waits to have the process to itself.
    /// </summary>
    private async Task<Task<ExecutionResult[]>> StartAsync(
        SuspectGate.Pass pass,
        IReadOnlyList<Events.StoredEvent> claimed,
        CancellationToken stopping,
        HashSet<Events.AggregateKey>? unfinishedAggregates = null)
    {
        if (SuspectGate.IsSuspect(claimed))
        {
            try
            {
                if (!await pass.RunAloneAsync(stopping))
                {
                    return await _runner.StartAsync(
                        claimed, stopping, "Released: another suspect runs alone in this process first (it may crash it).");
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                // Shutting down: the runner releases it unrun, with its attempt given back.
            }
        }

        return await _runner.StartAsync(claimed, stopping, unfinishedAggregates: unfinishedAggregates);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _wake.Dispose();
        _gate.Dispose();
        _sharedClaims.Dispose();
    }

    internal Task WaitForWorkAsync(TimeSpan timeout, CancellationToken stopping) => _wake.WaitAsync(timeout, stopping);
}

/// <summary>What an on-demand run found.</summary>
public enum ProcessEventStatus
{
    /// <summary>The event was claimed and run; see the outcome.</summary>
    Processed,

    /// <summary>No event has this id.</summary>
    NotFound,

    /// <summary>The event is already processed; replay it to run it again.</summary>
    AlreadyProcessed,

    /// <summary>Another worker holds the event right now.</summary>
    Held,

    /// <summary>
    /// Another event of the same aggregate comes first: an earlier one that is still pending, or one that is running
    /// now (a later event whose claim came before this event's insert committed). Order comes first.
    /// </summary>
    WaitingForEarlierEvent,
}

/// <summary>The result of <see cref="EventEngine.ProcessEventAsync"/>.</summary>
/// <param name="Status">What happened to the request.</param>
/// <param name="Outcome">When run, the event's fate.</param>
/// <param name="Error">When run and not completed, why.</param>
/// <param name="WaitingFor">When waiting, the event of its aggregate it waits for.</param>
public sealed record ProcessEventResult(ProcessEventStatus Status, OutcomeKind? Outcome, string? Error, Guid? WaitingFor);

/// <summary>One event of a batch run on demand, and its fate.</summary>
/// <param name="EventId">The event.</param>
/// <param name="Outcome">What became of it.</param>
public sealed record EventRunResult(Guid EventId, OutcomeKind Outcome);

/// <summary>The pending events, as the database counts them.</summary>
/// <param name="Pending">Events with <c>processed = false</c>.</param>
/// <param name="OldestPendingAgeSeconds">Age of the oldest of them; null when there are none.</param>
public sealed record Backlog(long Pending, double? OldestPendingAgeSeconds);
