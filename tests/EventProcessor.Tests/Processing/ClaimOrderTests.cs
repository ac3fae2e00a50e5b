using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Processing;

public sealed class ClaimOrderTests
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

    /// <summary>
    /// Each claim takes the head of the FIFO, so the claims, one after another (the claim lock serialises them),
    /// take the events in created_at, id order. A claim serves every poll loop waiting to claim (at most
    /// BATCH_SIZE × WORKERS events), and the loops' batches run side by side, so events of different batches are not
    /// handled in one global order: only their claims are. That each batch runs in FIFO order is
    /// <see cref="SharedClaimTests"/>'s to show, where a batch can be told from a claim.
    /// </summary>
    [Test]
    public async Task ClaimsEventsInCreatedAtThenIdOrderAndHandlesEachBatchInIt()
    {
        await _db.ExecuteAsync(
            """
            CREATE TABLE claim_log (event_id uuid NOT NULL, claim bigint NOT NULL, at timestamptz NOT NULL);
            CREATE FUNCTION log_claim() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              INSERT INTO claim_log VALUES (NEW.id, txid_current(), clock_timestamp());
              RETURN NEW;
            END;
            $$;
            CREATE TRIGGER log_claim AFTER UPDATE OF attempts ON events FOR EACH ROW
              WHEN (NEW.attempts > OLD.attempts) EXECUTE FUNCTION log_claim();
            """);
        var start = DateTimeOffset.UtcNow.AddMinutes(-10);
        for (var i = 0; i < 30; i++)
        {
            // Inserted in reverse time order; three share one created_at, so id breaks the tie.
            var createdAt = start.AddSeconds(30 - (i / 3));
            await _db.InsertEventAsync("test.recorded", new { text = "x" }, createdAt: createdAt);
        }

        var ordered = await _db.ScalarAsync<Guid[]>("SELECT array_agg(id ORDER BY created_at, id) FROM events");
        var recorder = new Recorder();
        await using var host = await EngineHost.StartAsync(
            _db,
            p => p.AddHandler<RecordingHandler>(),
            o => o.BatchSize = 7,
            s => s.AddSingleton(recorder).AddSingleton(new Failures()));
        await _db.WaitForProcessedAsync(30);

        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var batches = (await Dapper.SqlMapper.QueryAsync<Guid[]>(
            connection,
            """
            SELECT array_agg(c.event_id ORDER BY e.created_at, e.id)
            FROM claim_log c JOIN events e ON e.id = c.event_id
            GROUP BY c.claim ORDER BY min(c.at)
            """)).ToList();
        var handled = recorder.Ids.ToList();
        Assert.Multiple(() =>
        {
            Assert.That(host.Engine.Options.Workers, Is.GreaterThan(1), "precondition: several poll loops");
            Assert.That(batches.SelectMany(b => b), Is.EqualTo(ordered), "claim after claim, the FIFO in created_at, id order");
            Assert.That(batches.Select(b => b.Length), Has.All.LessThanOrEqualTo(7 * host.Engine.Options.Workers));
            Assert.That(handled, Is.EquivalentTo(ordered), "every event handled once");
        });
    }

    [Test]
    public async Task TwoEnginesNeverHandleTheSameEvent()
    {
        for (var i = 0; i < 300; i++)
        {
            await _db.InsertEventAsync("test.recorded", new { text = "x" });
        }

        var recorder = new Recorder();
        void Services(IServiceCollection s) => s.AddSingleton(recorder).AddSingleton(new Failures());
        await using var first = await EngineHost.StartAsync(_db, p => p.AddHandler<RecordingHandler>(), o => o.BatchSize = 5, Services);
        await using var second = await EngineHost.StartAsync(_db, p => p.AddHandler<RecordingHandler>(), o => o.BatchSize = 5, Services);
        await _db.WaitForProcessedAsync(300);

        Assert.Multiple(() =>
        {
            Assert.That(recorder.Ids, Has.Count.EqualTo(300));
            Assert.That(recorder.Ids, Is.Unique);
            Assert.That(first.Engine.Stats.SuccessCount, Is.GreaterThan(0), "the first engine took part");
            Assert.That(second.Engine.Stats.SuccessCount, Is.GreaterThan(0), "the second engine took part");
        });
    }

    [Test]
    public async Task LaterEventOfAnAggregateWaitsWhileAnEarlierOneIsPendingRetry()
    {
        var aggregate = Guid.NewGuid();
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        var first = await _db.InsertEventAsync("test.recorded", new { text = "1" }, aggregate, createdAt: start);
        var second = await _db.InsertEventAsync("test.recorded", new { text = "2" }, aggregate, createdAt: start.AddSeconds(1));
        var third = await _db.InsertEventAsync("test.recorded", new { text = "3" }, aggregate, createdAt: start.AddSeconds(2));
        var other = await _db.InsertEventAsync("test.recorded", new { text = "other" }, Guid.NewGuid(), createdAt: start.AddSeconds(3));

        var failures = new Failures();
        failures.FailFirst(first, 2);
        var recorder = new Recorder();
        await using var host = await EngineHost.StartAsync(
            _db,
            p => p.AddHandler<RecordingHandler>(),
            o =>
            {
                o.RetryBaseDelay = TimeSpan.FromMilliseconds(300);
                o.RetryMaxDelay = TimeSpan.FromSeconds(1);
            },
            s => s.AddSingleton(recorder).AddSingleton(failures));
        await _db.WaitForProcessedAsync(4);

        var calls = recorder.Calls;
        Assert.Multiple(() =>
        {
            // The other aggregate is not held up by the retries.
            Assert.That(calls.Select(c => c.Id).ToList().IndexOf(other), Is.LessThan(calls.Select(c => c.Id).ToList().IndexOf(second)));
            // The aggregate's events run in order, and only after its first event finally succeeded.
            Assert.That(
                calls.Where(c => c.Id != other).ToList(),
                Is.EqualTo(new[] { (first, 1), (first, 2), (first, 3), (second, 1), (third, 1) }));
        });
    }

    /// <summary>
    /// A claim takes the tenants' events in turns (the first of each, then the second of each, ...), events without a
    /// tenant as one more tenant, each tenant's in FIFO order; each offers at most twice its equal share of the claim,
    /// and the claim says whether one had more to give.
    /// </summary>
    [Test]
    public async Task A_claim_takes_the_tenants_events_in_turns_each_tenant_in_FIFO_order()
    {
        var start = DateTimeOffset.UtcNow.AddMinutes(-10);
        var ids = new Dictionary<string, List<Guid>>();
        var order = new[] { "a", "a", "a", "a", "a", "b", "b", "", "" };
        for (var i = 0; i < order.Length; i++)
        {
            var id = await _db.InsertEventAsync("test.recorded", new { text = "x" }, createdAt: start.AddSeconds(i));
            if (order[i].Length > 0)
            {
                await _db.ExecuteAsync("UPDATE events SET tenant_id = @tenant WHERE id = @id", new { tenant = order[i], id });
            }

            (ids.TryGetValue(order[i], out var list) ? list : ids[order[i]] = []).Add(id);
        }

        var options = new EventProcessorOptions { ConnectionString = _db.ConnectionString, InstanceName = "test" };
        await using var database = new EventProcessor.Storage.EventDatabase(options);
        var claimer = new EventProcessor.Processing.EventClaimer(database, options, new EventProcessor.Processing.HeldEvents(), TimeProvider.System);

        // Three queues and a claim of 4: each offers at most ceil(2 × 4 / 3) = 3, and "a" had more than that.
        var first = await claimer.ClaimBatchAsync(4, onDemand: false, CancellationToken.None);
        var rest = await claimer.ClaimBatchAsync(100, onDemand: false, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(first.Events.Select(e => e.Id), Is.EqualTo(new[] { ids["a"][0], ids["b"][0], ids[""][0], ids["a"][1] }));
            Assert.That(first.More, Is.True);
            Assert.That(rest.Events.Select(e => e.Id), Is.EqualTo(new[] { ids["a"][2], ids["b"][1], ids[""][1], ids["a"][3], ids["a"][4] }));
            Assert.That(rest.More, Is.False, "nobody had more than its share, and the claim was not full");
        });
    }
}
