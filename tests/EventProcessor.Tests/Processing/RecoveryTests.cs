using Dapper;
using EventProcessor.Processing;
using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Processing;

/// <summary>What happens when a holder dies, freezes, loses its lease or its database, or is asked to stop.</summary>
public sealed class RecoveryTests
{
    private TestDatabase _db = null!;
    private Recorder _recorder = null!;
    private Gate _gate = null!;

    [SetUp]
    public async Task SetUp()
    {
        _db = await TestDatabase.CreateAsync();
        _recorder = new Recorder();
        _gate = new Gate();
        await _db.ExecuteAsync("CREATE TABLE projection (event_id uuid NOT NULL, text text NOT NULL)");
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_db is not null)
        {
            await _db.DisposeAsync();
        }
    }

    private Task<EngineHost> StartAsync(Action<EventProcessorOptions>? configure = null, bool start = true) =>
        EngineHost.StartAsync(
            _db,
            p => p.AddHandler<RecordingHandler>().AddHandler<GatedProjectingHandler>().AddHandler<HangingHandler>(),
            configure,
            s => s.AddSingleton(_recorder).AddSingleton(new Failures()).AddSingleton(_gate),
            start);

    [Test]
    public async Task EventsHeldByACrashedProcessAreClaimedAgainOnceItsLeaseRunsOut()
    {
        var id = await _db.InsertEventAsync("test.recorded", new { text = "x" });
        // What a process killed mid-batch leaves behind: its claim, counted, and a lease that runs out soon.
        await _db.ExecuteAsync(
            "UPDATE events SET attempts = 1, locked_by = 'crashed:1:dead', locked_until = now() + interval '1 second' WHERE id = @id",
            new { id });
        await using var host = await StartAsync();
        await Task.Delay(300);
        Assert.That(_recorder.Calls, Is.Empty, "a live lease is respected");

        await _db.WaitForProcessedAsync(1);
        var row = await _db.GetEventAsync(id);
        Assert.Multiple(() =>
        {
            Assert.That(_recorder.Calls, Is.EqualTo(new[] { (id, 2) }), "the crashed attempt counts");
            Assert.That(row.LockedBy, Is.Null);
            Assert.That(row.DeadLettered, Is.False);
        });
    }

    [Test]
    public async Task APoisonEventThatKeepsKillingItsProcessIsDeadLetteredAfterMaxRetries()
    {
        var id = await _db.InsertEventAsync("test.recorded", new { text = "x" });
        // Three claims were committed and none reported back: three crashes.
        await _db.ExecuteAsync(
            "UPDATE events SET attempts = 3, locked_by = 'crashed:1:dead', locked_until = now() - interval '1 second' WHERE id = @id",
            new { id });
        await using var host = await StartAsync(o => o.MaxRetries = 3);
        await _db.WaitForProcessedAsync(1);

        var reason = await _db.ScalarAsync<string>("SELECT error_message FROM event_dead_letters WHERE event_id = @id", new { id });
        Assert.Multiple(async () =>
        {
            Assert.That(_recorder.Calls, Is.Empty, "the handler is not given a fourth chance to crash the process");
            Assert.That((await _db.GetEventAsync(id)).DeadLettered, Is.True);
            Assert.That(reason, Does.Contain("never finished"));
        });
    }

    [Test]
    public async Task ALateCompletionFromAHolderThatLostItsLeaseChangesNothing()
    {
        var id = await _db.InsertEventAsync("test.gated", new { text = "x" });
        await using var host = await StartAsync(o => o.EnablePolling = false);
        var run = host.Engine.ProcessBatchAsync(CancellationToken.None);
        await _gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));

        // Another instance rescues the event while this one is still inside its handler.
        await _db.ExecuteAsync(
            "UPDATE events SET locked_by = 'rescuer', locked_until = now() + interval '1 minute', attempts = attempts + 1 WHERE id = @id",
            new { id });
        _gate.Release.SetResult();
        await run;

        var row = await _db.GetEventAsync(id);
        Assert.Multiple(async () =>
        {
            Assert.That(row.Processed, Is.False);
            Assert.That(row.LockedBy, Is.EqualTo("rescuer"));
            Assert.That(row.Attempts, Is.EqualTo(2));
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM projection"), Is.Zero, "the late holder's writes rolled back");
        });
    }

    [TestCase("UPDATE events SET processed = true, processed_at = now(), locked_by = NULL, locked_until = NULL WHERE id = @id", "completed")]
    [TestCase("UPDATE events SET locked_until = now() + interval '1 minute' WHERE id = @id", "renewed")]
    [TestCase("UPDATE events SET next_attempt_at = now() + interval '1 minute', locked_by = NULL, locked_until = NULL WHERE id = @id", "scheduled for retry")]
    public async Task AClaimNeverTakesAnEventThatItsLateHolderWritesWhileTheClaimRuns(string holderWrite, string what)
    {
        // The holder's lease ran out and it writes the event in the very moment another claim reads it: the claim's
        // snapshot still shows the event due. The claim must leave it (skip it, or wait and look at it again), or it
        // would run an event that is done, held or waiting for its backoff.
        var id = await _db.InsertEventAsync("test.recorded", new { text = "x" });
        await _db.ExecuteAsync(
            "UPDATE events SET locked_by = 'late-holder', locked_until = now() - interval '1 second', attempts = 1 WHERE id = @id",
            new { id });
        var options = new EventProcessorOptions { ConnectionString = _db.ConnectionString, InstanceName = "claimer" };
        await using var database = new EventProcessor.Storage.EventDatabase(options);
        var claimer = new EventClaimer(database, options, new HeldEvents(), TimeProvider.System);

        await using var holder = await _db.DataSource.OpenConnectionAsync();
        await using var write = await holder.BeginTransactionAsync();
        await holder.ExecuteAsync(holderWrite, new { id }, write);
        var claim = claimer.ClaimBatchAsync(10, onDemand: false, CancellationToken.None);
        await WaitUntilAsync(async () => claim.IsCompleted || await _db.ScalarAsync<long>(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()") > 0);
        await write.CommitAsync();
        var claimed = (await claim.WaitAsync(TimeSpan.FromSeconds(10))).Events;

        var row = await _db.GetEventAsync(id);
        Assert.Multiple(() =>
        {
            Assert.That(claimed.Select(e => e.Id), Does.Not.Contain(id), $"an event its holder {what} is not claimed");
            Assert.That(row.LockedBy, Is.Not.EqualTo("claimer"));
            Assert.That(row.Attempts, Is.EqualTo(1), "no attempt counted for a claim that did not happen");
        });
    }

    /// <summary>
    /// Through a database outage the lease keeper cannot renew, and a lease can run out while its holder, alive, waits
    /// to write the event's fate. The holder's own claims must leave that event to it: a second attempt would be
    /// counted and run beside the first.
    /// </summary>
    [Test]
    public async Task AProcessNeverClaimsAnEventItStillHoldsEvenOnceItsLeaseRanOut()
    {
        var id = await _db.InsertEventAsync("test.gated", new { text = "x" });
        await using var host = await StartAsync(o => o.Workers = 2);
        await _gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));

        // As if renewals had failed through an outage: the lease has run out while the handler runs.
        await _db.ExecuteAsync("UPDATE events SET locked_until = now() - interval '1 second' WHERE id = @id", new { id });
        var claimed = (await host.Services.GetRequiredService<EventClaimer>().ClaimBatchAsync(10, onDemand: false, CancellationToken.None)).Events;
        var byId = await host.Engine.ProcessEventAsync(id, CancellationToken.None);
        _gate.Release.SetResult();
        await _db.WaitForProcessedAsync(1);

        var row = await _db.GetEventAsync(id);
        Assert.Multiple(() =>
        {
            Assert.That(claimed, Is.Empty, "the batch claim leaves it");
            Assert.That(byId.Status, Is.EqualTo(ProcessEventStatus.Held), "so does a claim by id");
            Assert.That(row.Attempts, Is.EqualTo(1), "one attempt, written by its holder");
        });
        Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM projection"), Is.EqualTo(2), "its handler ran once");
    }

    [Test]
    public async Task AClaimThatWaitedForTheClaimLockStillGetsItsWholeLease()
    {
        var id = await _db.InsertEventAsync("test.recorded", new { text = "x" });
        var options = new EventProcessorOptions
        {
            ConnectionString = _db.ConnectionString,
            InstanceName = "claimer",
            LeaseDuration = TimeSpan.FromSeconds(6),
        };
        await using var database = new EventProcessor.Storage.EventDatabase(options);
        var claimer = new EventClaimer(database, options, new HeldEvents(), TimeProvider.System);

        // Another claimer holds the claim lock for 3 s: this claim's transaction starts, then waits.
        await using var other = await _db.DataSource.OpenConnectionAsync();
        var holdLock = EventProcessor.Storage.EventSql.TakeClaimLock.Replace("pg_advisory_xact_lock", "pg_advisory_lock", StringComparison.Ordinal);
        await other.ExecuteAsync(holdLock);
        var claim = claimer.ClaimBatchAsync(10, onDemand: false, CancellationToken.None);
        await WaitUntilAsync(async () => await _db.ScalarAsync<long>("""
            SELECT count(*) FROM pg_locks
            WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """) > 0);
        await Task.Delay(TimeSpan.FromSeconds(3));
        await other.ExecuteAsync(holdLock.Replace("pg_advisory_lock", "pg_advisory_unlock", StringComparison.Ordinal));
        Assert.That((await claim.WaitAsync(TimeSpan.FromSeconds(10))).Events.Select(e => e.Id), Is.EqualTo(new[] { id }));

        var left = await _db.ScalarAsync<double>(
            "SELECT extract(epoch FROM locked_until - clock_timestamp())::float8 FROM events WHERE id = @id", new { id });
        Assert.That(left, Is.GreaterThan(5), "the lease runs from when the claim ran, not from when it began to wait (3 s earlier)");
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!await condition())
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the claim neither finished nor waited for the holder's write");
            await Task.Delay(20);
        }
    }

    [Test]
    public async Task LosingTheDatabaseMidAttemptReleasesTheEventWithoutSpendingAnAttempt()
    {
        var id = await _db.InsertEventAsync("test.gated", new { text = "x" });
        await using var host = await StartAsync(o => o.EnablePolling = false);
        var run = host.Engine.ProcessBatchAsync(CancellationToken.None);
        await _gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));

        await _db.ExecuteAsync("SELECT pg_terminate_backend(@pid)", new { pid = _gate.BackendPid });
        _gate.Release.SetResult();
        await run;

        var row = await _db.GetEventAsync(id);
        Assert.Multiple(async () =>
        {
            Assert.That(row.Processed, Is.False);
            Assert.That(row.Attempts, Is.Zero, "the attempt is given back");
            Assert.That(row.RetryCount, Is.Null, "no failure is recorded");
            Assert.That(row.LockedBy, Is.Null, "claimable again at once");
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM projection"), Is.Zero);
            Assert.That(host.Engine.Stats.ReleasedCount, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task StoppingReleasesTheEventInFlightAndEverythingNotStarted()
    {
        var hung = await _db.InsertEventAsync("test.hang", new { }, createdAt: DateTimeOffset.UtcNow.AddSeconds(-2));
        var waiting = await _db.InsertEventAsync("test.recorded", new { text = "x" });
        var host = await StartAsync(o =>
        {
            o.ShutdownGrace = TimeSpan.FromMilliseconds(200);
            o.HandlerTimeout = TimeSpan.FromMinutes(1);
        });
        await TestDatabase.WaitUntilAsync(
            async () => (await _db.GetEventAsync(hung)).LockedBy is not null, "the hanging event is claimed");

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        await host.DisposeAsync();
        stopwatch.Stop();

        Assert.Multiple(async () =>
        {
            Assert.That(stopwatch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
            foreach (var id in new[] { hung, waiting })
            {
                var row = await _db.GetEventAsync(id);
                Assert.That(row.LockedBy, Is.Null, "released");
                Assert.That(row.Attempts, Is.Zero, "no attempt spent on shutdown");
                Assert.That(row.Processed, Is.False);
            }
        });
    }

    [Test]
    public async Task ALiveEngineRenewsItsLeaseWhileAHandlerRunsLongerThanTheLease()
    {
        var id = await _db.InsertEventAsync("test.gated", new { text = "x" });
        await using var host = await StartAsync(o =>
        {
            o.EnablePolling = false;
            o.LeaseDuration = TimeSpan.FromSeconds(1);
        });
        var run = host.Engine.ProcessBatchAsync(CancellationToken.None);
        await _gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var firstLease = await _db.ScalarAsync<DateTime>("SELECT locked_until FROM events WHERE id = @id", new { id });
        await Task.Delay(1_500);
        var laterLease = await _db.ScalarAsync<DateTime>("SELECT locked_until FROM events WHERE id = @id", new { id });
        _gate.Release.SetResult();
        await run;

        Assert.Multiple(async () =>
        {
            Assert.That(laterLease, Is.GreaterThan(firstLease), "renewed");
            Assert.That(laterLease, Is.GreaterThan(DateTime.UtcNow.AddMilliseconds(-100)), "still live after the original lease ran out");
            Assert.That((await _db.GetEventAsync(id)).Processed, Is.True);
        });
    }

    [Test]
    public async Task ProcessEventRunsOneEventNowWhenPollingIsDisabled()
    {
        var id = await _db.InsertEventAsync("test.recorded", new { text = "x" });
        await using var host = await StartAsync(o => o.EnablePolling = false);

        var result = await host.Engine.ProcessEventAsync(id, CancellationToken.None);
        var again = await host.Engine.ProcessEventAsync(id, CancellationToken.None);
        var missing = await host.Engine.ProcessEventAsync(Guid.NewGuid(), CancellationToken.None);

        Assert.Multiple(async () =>
        {
            Assert.That(result.Outcome, Is.EqualTo(OutcomeKind.Completed));
            Assert.That((await _db.GetEventAsync(id)).Processed, Is.True);
            Assert.That(again.Status, Is.EqualTo(ProcessEventStatus.AlreadyProcessed));
            Assert.That(missing.Status, Is.EqualTo(ProcessEventStatus.NotFound));
        });
    }
}
