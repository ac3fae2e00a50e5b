using Dapper;
using EventProcessor.Events;
using EventProcessor.Handling;
using EventProcessor.Processing;
using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Processing;

/// <summary>
/// The poll loops of one instance claim together and complete together: one claim statement for every loop waiting
/// to claim, split by aggregate; one completion statement for every batch that finished while the last was written.
/// </summary>
public sealed class SharedClaimTests
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
    public void A_split_cuts_the_fifo_into_batches_and_keeps_each_aggregate_in_the_share_of_its_first_event()
    {
        var a = Guid.NewGuid();
        var b = Guid.NewGuid();
        StoredEvent[] claimed = [Event(a), Event(null), Event(a), Event(b), Event(null), Event(a), Event(null), Event(b), Event(a), Event(null)];

        var shares = SharedClaim.Split(claimed, 3, batchSize: 3);

        Assert.Multiple(() =>
        {
            Assert.That(shares.SelectMany(s => s), Is.EquivalentTo(claimed), "every event in exactly one share");
            Assert.That(shares[0], Is.EqualTo(new[] { claimed[0], claimed[1], claimed[2], claimed[5], claimed[8] }), "the head, and every later event of a");
            Assert.That(shares[1], Is.EqualTo(new[] { claimed[3], claimed[4], claimed[6], claimed[7] }), "the next three, and b's later event");
            Assert.That(shares[2], Is.EqualTo(new[] { claimed[9] }), "the rest");
            Assert.That(SharedClaim.Split(claimed[..2], 3, batchSize: 3)[0], Has.Count.EqualTo(2), "a short claim fills the first share first");
        });
    }

    [Test]
    public void An_aggregate_id_that_two_tenants_use_is_two_aggregates_in_a_split()
    {
        var shared = Guid.NewGuid();
        StoredEvent[] claimed = [Event(shared) with { TenantId = "a" }, Event(shared) with { TenantId = "b" }, Event(shared) with { TenantId = "a" }];

        var shares = SharedClaim.Split(claimed, 2, batchSize: 1);

        Assert.Multiple(() =>
        {
            Assert.That(shares[0], Is.EqualTo(new[] { claimed[0], claimed[2] }), "a's events together, in order");
            Assert.That(shares[1], Is.EqualTo(new[] { claimed[1] }), "b's event is not held behind a's");
        });
    }

    [Test]
    public async Task Callers_that_arrive_while_one_runs_go_together_next_and_share_its_failure()
    {
        var runs = new List<int[]>();
        var firstRunning = new TaskCompletionSource();
        var releaseFirst = new TaskCompletionSource();
        using var combiner = new Combiner<int, int>(async (requests, _) =>
        {
            lock (runs)
            {
                runs.Add([.. requests]);
            }

            if (requests.Contains(1))
            {
                firstRunning.SetResult();
                await releaseFirst.Task;
            }

            if (requests.Contains(-1))
            {
                throw new InvalidOperationException("the run failed");
            }

            return [.. requests.Select(r => r * 10)];
        });

        var first = combiner.RunAsync(1, CancellationToken.None);
        await firstRunning.Task;
        var queued = new[] { 2, 3, 4 }.Select(r => combiner.RunAsync(r, CancellationToken.None)).ToArray();
        releaseFirst.SetResult();
        var results = await Task.WhenAll([first, .. queued]);

        var failing = combiner.RunAsync(-1, CancellationToken.None);
        var exception = Assert.ThrowsAsync<InvalidOperationException>(async () => await failing);
        Assert.Multiple(() =>
        {
            Assert.That(results, Is.EqualTo(new[] { 10, 20, 30, 40 }), "each caller gets its own result");
            Assert.That(runs[0], Is.EqualTo(new[] { 1 }), "a caller alone runs at once");
            Assert.That(runs[1], Is.EquivalentTo(new[] { 2, 3, 4 }), "the callers that waited meanwhile run as one");
            Assert.That(exception!.Message, Is.EqualTo("the run failed"));
        });
    }

    /// <summary>
    /// Four loops, batches of 5, events over a few aggregates and none. The handler writes in its batch's transaction
    /// what the claim left on the row: a claim stamps every row it takes with one lease end, and each batch has one
    /// transaction. So the lease ends tell the claims apart and the transaction ids the batches.
    /// </summary>
    [Test]
    public async Task Loops_that_wait_together_are_served_by_one_claim_split_into_batches_of_the_batch_size()
    {
        await _db.ExecuteAsync(
            "CREATE TABLE handled_log (seq bigserial, event_id uuid NOT NULL, batch_tx bigint NOT NULL, claim timestamptz NOT NULL)");
        var aggregates = Enumerable.Range(0, 6).Select(_ => Guid.NewGuid()).ToArray();
        var start = DateTimeOffset.UtcNow.AddMinutes(-10);
        for (var i = 0; i < 160; i++)
        {
            await _db.InsertEventAsync(
                "test.claim-logged", new { n = i }, aggregateId: i % 2 == 0 ? aggregates[i % aggregates.Length] : null,
                createdAt: start.AddMilliseconds(i));
        }

        await using var host = await EngineHost.StartAsync(
            _db,
            p => p.AddHandler<ClaimLoggingHandler>(),
            o => (o.BatchSize, o.Workers, o.LeaseDuration) = (5, 4, TimeSpan.FromMinutes(5))); // no renewal restamps a lease end
        await _db.WaitForProcessedAsync(160);

        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var log = (await connection.QueryAsync<(Guid EventId, long BatchTx, DateTime Claim, Guid? Aggregate, long Order)>(
            """
            SELECT h.event_id, h.batch_tx, h.claim, e.aggregate_id,
                   row_number() OVER (ORDER BY e.created_at, e.id) AS "order"
            FROM handled_log h JOIN events e ON e.id = h.event_id ORDER BY h.seq
            """)).ToList();
        var batches = log.GroupBy(l => l.BatchTx).ToList();
        var claims = log.GroupBy(l => l.Claim).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(log.Select(l => l.EventId).Distinct().Count(), Is.EqualTo(160), "every event handled");
            Assert.That(log, Has.Count.EqualTo(160), "and once");
            Assert.That(batches.Select(b => b.Count()), Has.All.LessThanOrEqualTo(5), "no batch larger than BATCH_SIZE");
            Assert.That(claims.Select(c => c.Count()), Has.All.LessThanOrEqualTo(20), "no claim larger than BATCH_SIZE × WORKERS");
            Assert.That(
                claims.Count(c => c.Select(l => l.BatchTx).Distinct().Count() > 1),
                Is.GreaterThan(0),
                "some claim served several loops' batches");
            Assert.That(claims.Count, Is.LessThan(batches.Count), "fewer claims than batches");
            foreach (var batch in batches)
            {
                Assert.That(batch.Select(l => l.Order), Is.Ordered, "each batch runs in FIFO order");
            }

            foreach (var aggregate in log.Where(l => l.Aggregate is not null).GroupBy(l => l.Aggregate))
            {
                Assert.That(aggregate.Select(l => l.Order), Is.Ordered, "each aggregate's events handled in FIFO order");
            }
        });
    }

    /// <summary>
    /// Handlers that write nothing: each batch's fate is written by a completion statement, and statements that
    /// run together stamp every row with the same processed_at (their transaction's start).
    /// </summary>
    [Test]
    public async Task Batches_that_finish_while_a_completion_is_written_complete_together_in_the_next()
    {
        for (var i = 0; i < 200; i++)
        {
            await _db.InsertEventAsync("test.recorded", new { text = "x" });
        }

        var recorder = new Recorder();
        await using var host = await EngineHost.StartAsync(
            _db,
            p => p.AddHandler<RecordingHandler>(),
            o => (o.BatchSize, o.Workers) = (5, 4),
            s => s.AddSingleton(recorder).AddSingleton(new Failures()));
        await _db.WaitForProcessedAsync(200);

        var completions = (await _db.ScalarAsync<long[]>(
            "SELECT array_agg(n) FROM (SELECT count(*) AS n FROM events GROUP BY processed_at) c")).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(recorder.Ids.Distinct().Count(), Is.EqualTo(200), "every event handled");
            Assert.That(completions.Sum(), Is.EqualTo(200));
            Assert.That(completions.Max(), Is.GreaterThan(5), "some completion wrote several batches' fates");
            Assert.That(completions.Count, Is.LessThan(200 / 5), "fewer completions than batches");
        });
    }

    /// <summary>
    /// One loop, batches of 5. The first batch's completion is held up inside PostgreSQL (a trigger waits for a lock the
    /// test holds): the loop runs its second batch meanwhile, and no third, since a loop has at most one batch's fates
    /// being written while it runs the next. Once the completion goes through, everything is written once.
    /// </summary>
    [Test]
    public async Task A_loop_runs_its_next_batch_while_the_last_ones_fates_are_written_and_no_further()
    {
        await _db.ExecuteAsync(
            """
            CREATE FUNCTION hold_completion() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.processed AND NOT OLD.processed AND NEW.payload->>'text' = 'slow' THEN
                PERFORM pg_advisory_xact_lock(42);
              END IF;
              RETURN NEW;
            END;
            $$;
            CREATE TRIGGER hold_completion BEFORE UPDATE ON events FOR EACH ROW EXECUTE FUNCTION hold_completion();
            """);
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        for (var i = 0; i < 15; i++)
        {
            await _db.InsertEventAsync("test.recorded", new { text = i == 0 ? "slow" : "x" }, createdAt: start.AddMilliseconds(i));
        }

        await using var holder = await _db.DataSource.OpenConnectionAsync();
        await holder.ExecuteAsync("SELECT pg_advisory_lock(42)");
        var recorder = new Recorder();
        await using var host = await EngineHost.StartAsync(
            _db,
            p => p.AddHandler<RecordingHandler>(),
            o => (o.BatchSize, o.Workers) = (5, 1),
            s => s.AddSingleton(recorder).AddSingleton(new Failures()));

        await TestDatabase.WaitUntilAsync(() => Task.FromResult(recorder.Calls.Count >= 10), "the second batch ran while the first was being written");
        await Task.Delay(1000);
        var handledWhileHeld = recorder.Calls.Count;
        var processedWhileHeld = await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed");
        await holder.ExecuteAsync("SELECT pg_advisory_unlock(42)");
        await _db.WaitForProcessedAsync(15);

        Assert.Multiple(() =>
        {
            Assert.That(handledWhileHeld, Is.EqualTo(10), "two batches ran, the third waited for the first's fates");
            Assert.That(processedWhileHeld, Is.Zero, "the second batch's fates queue behind the first's");
            Assert.That(recorder.Calls, Has.Count.EqualTo(15), "every event handled once");
            Assert.That(recorder.Calls.Select(c => c.Attempt), Has.All.EqualTo(1));
        });
    }

    private static StoredEvent Event(Guid? aggregate) =>
        new(Guid.NewGuid(), "test", aggregate, null, "{}", "{}", 1, DateTimeOffset.UtcNow, null, null, 1, "c");
}

/// <summary>Writes, in its batch's transaction, which batch (transaction) and which claim (the lease end it set) ran the event.</summary>
[HandlesEvent("test.claim-logged")]
public sealed class ClaimLoggingHandler : IEventHandler<System.Text.Json.JsonElement>
{
    public async Task HandleAsync(EventContext<System.Text.Json.JsonElement> context, CancellationToken cancellationToken)
    {
        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(
            """
            INSERT INTO handled_log (event_id, batch_tx, claim)
            SELECT id, txid_current(), locked_until FROM events WHERE id = @id
            """,
            new { id = context.Event.Id },
            db.Transaction);
        await Task.Delay(2, cancellationToken);
    }
}
