using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Dapper;
using EventProcessor.Handling;
using EventProcessor.Tests.Processing;
using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// Inserts that commit late: a transaction that inserts an event and sits on it while events inserted after it are
/// committed and handled. A processor that tracks a high-water mark skips such an event; this one claims from
/// <c>processed = false</c>, so it must find every one of them, and keep each aggregate's order as the claim saw it.
/// </summary>
[Category("Faults")]
public sealed class LateCommitTests
{
    private TestDatabase _db = null!;

    [SetUp]
    public async Task SetUp() => _db = await TestDatabase.CreateAsync();

    [TearDown]
    public async Task TearDown()
    {
        if (_db is not null)
        {
            await _db.DisposeAsync();
        }
    }

    [Test]
    public async Task EveryLateCommitIsHandledExactlyOnceThoughLaterEventsWereHandledBeforeIt()
    {
        const int LateCount = 100;
        const int WaveSize = 25;
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var delays = Enumerable.Range(0, LateCount)
            .Select(i => i % WaveSize == 0 ? TimeSpan.FromSeconds(5) : TimeSpan.FromMilliseconds(random.Next(0, 5_001)))
            .ToArray();

        var recorder = new Recorder();
        void Services(IServiceCollection s) => s.AddSingleton(recorder).AddSingleton(new Failures());
        await using var first = await EngineHost.StartAsync(_db, p => p.AddHandler<RecordingHandler>(), o => o.BatchSize = 10, Services);
        await using var second = await EngineHost.StartAsync(_db, p => p.AddHandler<RecordingHandler>(), o => o.BatchSize = 10, Services);

        // A steady stream of other events all along, so that both engines keep claiming past the open inserts.
        using var stopStream = new CancellationTokenSource();
        var streamed = StreamEventsAsync(TimeSpan.FromMilliseconds(20), stopStream.Token);

        var stopwatch = Stopwatch.StartNew();
        var results = new List<LateCommit>();
        for (var wave = 0; wave < LateCount / WaveSize; wave++)
        {
            var waveDelays = delays.Skip(wave * WaveSize).Take(WaveSize);
            results.AddRange(await Task.WhenAll(waveDelays.Select(CommitLateAsync)));
        }

        await stopStream.CancelAsync();
        var streamCount = await streamed;
        var total = LateCount * 2 + streamCount;
        await _db.WaitForProcessedAsync(total, TimeSpan.FromSeconds(60));
        stopwatch.Stop();

        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var lateIds = results.Select(r => r.LateId).ToArray();
        var lateRows = (await connection.QueryAsync<(Guid Id, bool Processed, int Attempts, bool Dead, bool Skipped, DateTime ProcessedAt)>(
            """
            SELECT id, processed, attempts, coalesce((metadata->>'dead_lettered')::boolean, false),
                   coalesce((metadata->>'skipped')::boolean, false), processed_at
            FROM events WHERE id = ANY(@lateIds)
            """,
            new { lateIds })).ToList();
        var calls = recorder.Ids.GroupBy(id => id).ToDictionary(g => g.Key, g => g.Count());
        var latency = results.Select(r => lateRows.Single(row => row.Id == r.LateId).ProcessedAt - r.CommittedAt).ToList();

        await TestContext.Out.WriteLineAsync(
            $"late commits: {LateCount} in {LateCount / WaveSize} waves of {WaveSize}, seed {seed}; delays " +
            $"{delays.Min().TotalMilliseconds:0}–{delays.Max().TotalMilliseconds:0} ms ({delays.Count(d => d == TimeSpan.FromSeconds(5))} of 5 s), " +
            $"mean {delays.Average(d => d.TotalMilliseconds):0} ms");
        await TestContext.Out.WriteLineAsync(
            $"every late commit came after a later event was handled: within its delay for {results.Count(r => r.LaterHandledWithinDelay)}/{LateCount}, " +
            $"the others waited up to {results.Max(r => r.ExtraWait.TotalMilliseconds):0} ms more for it");
        await TestContext.Out.WriteLineAsync(
            $"events: {total} ({LateCount} late, {LateCount} later, {streamCount} streamed); handler calls {recorder.Ids.Count}; " +
            $"late event commit → processed: max {latency.Max().TotalMilliseconds:0} ms, mean {latency.Average(l => l.TotalMilliseconds):0} ms; " +
            $"whole run {stopwatch.Elapsed.TotalSeconds:0.0} s");

        Assert.Multiple(() =>
        {
            Assert.That(lateRows, Has.Count.EqualTo(LateCount));
            Assert.That(lateRows.Where(r => !r.Processed || r.Dead || r.Skipped || r.Attempts != 1).Select(r => r.Id), Is.Empty,
                "every late event completed at its first attempt");
            Assert.That(lateIds.Where(id => calls.GetValueOrDefault(id) != 1), Is.Empty, "each late event handled exactly once");
            Assert.That(recorder.Ids, Has.Count.EqualTo(total), "every event handled, none twice");
            Assert.That(recorder.Ids, Is.Unique);
        });
    }

    [Test]
    public async Task AnEarlierEventOfAnAggregateThatCommitsBeforeTheLaterOneIsClaimedRunsFirst()
    {
        var aggregate = Guid.NewGuid();
        var timeline = new Timeline();
        await using var host = await StartAsync(timeline, pollingEnabled: false);

        await using var late = await BeginLateInsertAsync(aggregate);
        var a2 = await _db.InsertEventAsync(Timeline.EventType, new { }, aggregate);
        await late.CommitAsync();
        var claimed = await host.Engine.ProcessBatchAsync(CancellationToken.None);

        await PrintOrderAsync(late.Id, a2, timeline);
        Assert.Multiple(async () =>
        {
            Assert.That(await CreatedBeforeAsync(late.Id, a2), Is.True, "A1 has the earlier created_at");
            Assert.That(claimed, Is.EqualTo(2), "one claim saw both");
            Assert.That(timeline.Ids, Is.EqualTo(new[] { late.Id, a2 }), "A1 first: created_at order");
        });
    }

    [Test]
    public async Task AnEarlierEventOfAnAggregateThatCommitsWhileTheLaterOneIsHeldWaitsForItThenRuns()
    {
        var aggregate = Guid.NewGuid();
        var timeline = new Timeline();
        await using var holder = await StartAsync(timeline, pollingEnabled: false);
        await using var other = await StartAsync(timeline, pollingEnabled: false);

        await using var late = await BeginLateInsertAsync(aggregate);
        var a2 = await _db.InsertEventAsync(Timeline.EventType, new { }, aggregate);
        timeline.Hold(a2);
        var holding = holder.Engine.ProcessBatchAsync(CancellationToken.None);
        await timeline.Entered(a2).WaitAsync(TimeSpan.FromSeconds(30));
        await late.CommitAsync();

        // A2 is running on one instance; the late A1 is now visible to the other.
        var claimedMeanwhile = await other.Engine.ProcessBatchAsync(CancellationToken.None);
        var byId = await other.Engine.ProcessEventAsync(late.Id, CancellationToken.None);
        timeline.Release(a2);
        var heldClaim = await holding;
        var claimedAfter = await other.Engine.ProcessBatchAsync(CancellationToken.None);

        await PrintOrderAsync(late.Id, a2, timeline);
        await TestContext.Out.WriteLineAsync(
            $"claimed by the other instance while A2 was held: {claimedMeanwhile} (batch), {byId.Status} (by id); after: {claimedAfter}");
        Assert.Multiple(async () =>
        {
            Assert.That(await CreatedBeforeAsync(late.Id, a2), Is.True, "A1 has the earlier created_at");
            Assert.That(heldClaim, Is.EqualTo(1), "A1 was not visible to the claim that took A2");
            Assert.That(claimedMeanwhile, Is.Zero, "A1 waits while A2 of its aggregate is held");
            Assert.That(byId.Status, Is.EqualTo(ProcessEventStatus.WaitingForEarlierEvent), "nor can it be run by id");
            Assert.That(byId.WaitingFor, Is.EqualTo(a2));
            Assert.That(claimedAfter, Is.EqualTo(1));
            Assert.That(timeline.Ids, Is.EqualTo(new[] { a2, late.Id }), "A2 first: the order the claims saw");
            Assert.That(timeline.Overlapped(a2, late.Id), Is.False, "one at a time");
        });
    }

    [Test]
    public async Task ALaterEventHeldByACrashedInstanceDoesNotHoldBackALateEarlierOneOnceItsLeaseRanOut()
    {
        var aggregate = Guid.NewGuid();
        var timeline = new Timeline();
        await using var host = await StartAsync(timeline, pollingEnabled: false);

        await using var late = await BeginLateInsertAsync(aggregate);
        var a2 = await _db.InsertEventAsync(Timeline.EventType, new { }, aggregate);
        // What an instance killed while running A2 leaves behind: its claim, with a lease that has run out.
        await _db.ExecuteAsync(
            "UPDATE events SET attempts = 1, locked_by = 'crashed:1:dead', locked_until = now() - interval '1 second' WHERE id = @a2",
            new { a2 });
        await late.CommitAsync();
        // A2's attempt never finished, so A2 is a suspect and runs in a batch of its own: A1 first, then A2.
        var claimed = await host.Engine.ProcessBatchAsync(CancellationToken.None);
        claimed += await host.Engine.ProcessBatchAsync(CancellationToken.None);

        await PrintOrderAsync(late.Id, a2, timeline);
        Assert.Multiple(async () =>
        {
            Assert.That(claimed, Is.EqualTo(2), "both are claimable: a dead lease holds nothing back");
            Assert.That(timeline.Ids, Is.EqualTo(new[] { late.Id, a2 }), "in created_at order, as the claim saw them");
            Assert.That((await _db.GetEventAsync(a2)).Attempts, Is.EqualTo(2), "the crashed attempt counts");
        });
    }

    [Test]
    public async Task AnEarlierEventOfAnAggregateThatCommitsAfterTheLaterOneWasHandledRunsAfterIt()
    {
        var aggregate = Guid.NewGuid();
        var timeline = new Timeline();
        await using var host = await StartAsync(timeline, pollingEnabled: true);

        await using var late = await BeginLateInsertAsync(aggregate);
        var a2 = await _db.InsertEventAsync(Timeline.EventType, new { }, aggregate);
        await TestDatabase.WaitUntilAsync(async () => (await _db.GetEventAsync(a2)).Processed, "A2 is handled");
        await late.CommitAsync();
        await TestDatabase.WaitUntilAsync(async () => (await _db.GetEventAsync(late.Id)).Processed, "the late A1 is handled");

        var row = await _db.GetEventAsync(late.Id);
        await PrintOrderAsync(late.Id, a2, timeline);
        Assert.Multiple(async () =>
        {
            Assert.That(await CreatedBeforeAsync(late.Id, a2), Is.True, "A1 has the earlier created_at");
            Assert.That(timeline.Ids, Is.EqualTo(new[] { a2, late.Id }), "A2 first: A1 was not there when A2 was claimed");
            Assert.That(row.Attempts, Is.EqualTo(1));
            Assert.That(row.DeadLettered || row.Skipped, Is.False);
        });
    }

    private Task<EngineHost> StartAsync(Timeline timeline, bool pollingEnabled) =>
        EngineHost.StartAsync(
            _db,
            p => p.AddHandler<TimelineHandler>(),
            o => o.EnablePolling = pollingEnabled,
            s => s.AddSingleton(timeline));

    /// <summary>
    /// One late commit: inserts an event in a transaction (its created_at is the transaction's start), inserts and
    /// commits a later event at once, waits <paramref name="delay"/>, and then as long as the later event is not yet
    /// handled (so that every late insert is overtaken by a handled event), and commits.
    /// </summary>
    private async Task<LateCommit> CommitLateAsync(TimeSpan delay)
    {
        await using var late = await BeginLateInsertAsync(aggregateId: null, eventType: "test.recorded");
        var laterId = await _db.InsertEventAsync("test.recorded", new { text = "later" });
        await Task.Delay(delay);
        var handledWithinDelay = (await _db.GetEventAsync(laterId)).Processed;
        var overtime = Stopwatch.StartNew();
        await TestDatabase.WaitUntilAsync(async () => (await _db.GetEventAsync(laterId)).Processed, "the later event is handled");
        overtime.Stop();
        await late.CommitAsync();
        return new LateCommit(late.Id, laterId, delay, overtime.Elapsed, handledWithinDelay, DateTime.UtcNow);
    }

    private async Task<int> StreamEventsAsync(TimeSpan interval, CancellationToken stop)
    {
        var count = 0;
        while (!stop.IsCancellationRequested)
        {
            await _db.InsertEventAsync("test.recorded", new { text = "stream" });
            count++;
            try
            {
                await Task.Delay(interval, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return count;
    }

    private async Task<LateInsert> BeginLateInsertAsync(Guid? aggregateId, string eventType = Timeline.EventType)
    {
        var connection = await _db.DataSource.OpenConnectionAsync();
        var transaction = await connection.BeginTransactionAsync();
        var id = Guid.NewGuid();
        await connection.ExecuteAsync(
            "INSERT INTO events (id, event_type, aggregate_id, payload) VALUES (@id, @eventType, @aggregateId, '{\"text\": \"late\"}')",
            new { id, eventType, aggregateId },
            transaction);
        return new LateInsert(id, connection, transaction);
    }

    private async Task<bool> CreatedBeforeAsync(Guid a1, Guid a2) =>
        await _db.ScalarAsync<bool>(
            "SELECT (SELECT created_at FROM events WHERE id = @a1) < (SELECT created_at FROM events WHERE id = @a2)",
            new { a1, a2 });

    private static async Task PrintOrderAsync(Guid a1, Guid a2, Timeline timeline) =>
        await TestContext.Out.WriteLineAsync(
            $"handled in order: {string.Join(", ", timeline.Ids.Select(id => id == a1 ? "A1 (late)" : id == a2 ? "A2" : id.ToString()))}");

    private sealed record LateCommit(
        Guid LateId,
        Guid LaterId,
        TimeSpan Delay,
        TimeSpan ExtraWait,
        bool LaterHandledWithinDelay,
        DateTime CommittedAt);

    /// <summary>An insert whose transaction is still open.</summary>
    private sealed class LateInsert(Guid id, NpgsqlConnection connection, NpgsqlTransaction transaction) : IAsyncDisposable
    {
        public Guid Id { get; } = id;

        public Task CommitAsync() => transaction.CommitAsync();

        public async ValueTask DisposeAsync()
        {
            await transaction.DisposeAsync();
            await connection.DisposeAsync();
        }
    }
}

/// <summary>When each call of <see cref="TimelineHandler"/> began and ended; holds an event while the test says so.</summary>
public sealed class Timeline
{
    public const string EventType = "fault.timeline";

    private readonly ConcurrentQueue<(Guid Id, long Started, long Ended)> _calls = new();
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _entered = new();
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _held = new();

    /// <summary>The events handled, in the order their handlers began.</summary>
    public IReadOnlyList<Guid> Ids => [.. _calls.OrderBy(c => c.Started).Select(c => c.Id)];

    public void Hold(Guid id) => _held[id] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Release(Guid id) => _held[id].TrySetResult();

    public Task Entered(Guid id) => EnteredSource(id).Task;

    /// <summary>Whether a call for <paramref name="a"/> and one for <paramref name="b"/> ran at the same time.</summary>
    public bool Overlapped(Guid a, Guid b) =>
        _calls.Where(c => c.Id == a).Any(x => _calls.Where(c => c.Id == b).Any(y => x.Started < y.Ended && y.Started < x.Ended));

    public async Task RunAsync(Guid id, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            EnteredSource(id).TrySetResult();
            if (_held.TryGetValue(id, out var hold))
            {
                await hold.Task.WaitAsync(cancellationToken);
            }
        }
        finally
        {
            _calls.Enqueue((id, started, Stopwatch.GetTimestamp()));
        }
    }

    private TaskCompletionSource EnteredSource(Guid id) =>
        _entered.GetOrAdd(id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
}

[HandlesEvent(Timeline.EventType)]
public sealed class TimelineHandler(Timeline timeline) : IEventHandler<JsonElement>
{
    public Task HandleAsync(EventContext<JsonElement> context, CancellationToken cancellationToken) =>
        timeline.RunAsync(context.Event.Id, cancellationToken);
}
