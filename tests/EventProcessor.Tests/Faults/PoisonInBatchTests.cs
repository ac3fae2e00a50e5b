using Dapper;
using EventProcessor.Handling;
using EventProcessor.Tests.Processing;
using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// Poison events that do not kill the process (a handler that throws on a payload, one that hangs past its timeout,
/// one that ignores its cancellation while holding the batch's connection), claimed in the same batches as good
/// events: each poison fails only itself and reaches the dead letters after <c>MAX_RETRIES</c>; its batchmates
/// complete, each exactly once. The process-killing kinds need a separate host process and are tested elsewhere.
/// </summary>
[Category("Faults")]
public sealed class PoisonInBatchTests
{
    private const int MaxRetries = 3;
    private const int BatchSize = 10;
    private static readonly TimeSpan HandlerTimeout = TimeSpan.FromMilliseconds(500);

    private TestDatabase _db = null!;
    private Recorder _recorder = null!;

    [SetUp]
    public async Task SetUp()
    {
        _db = await TestDatabase.CreateAsync();
        _recorder = new Recorder();
        await _db.ExecuteAsync(
            """
            CREATE TABLE poison_projection (event_id uuid NOT NULL, text text NOT NULL);

            -- Every claim: a batch is the set of rows one claim leased, which share locked_by and locked_until.
            CREATE TABLE claim_log (event_id uuid NOT NULL, attempt int NOT NULL, batch text NOT NULL);
            CREATE FUNCTION log_claim() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              INSERT INTO claim_log VALUES (NEW.id, NEW.attempts, NEW.locked_by || ' ' || NEW.locked_until::text);
              RETURN NEW;
            END;
            $$;
            CREATE TRIGGER log_claim AFTER UPDATE OF attempts ON events FOR EACH ROW
              WHEN (NEW.attempts > OLD.attempts) EXECUTE FUNCTION log_claim();
            """);
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_db is not null)
        {
            await _db.DisposeAsync();
        }
    }

    [Test]
    public async Task AHandlerThatThrowsAndOneThatHangsFailOnlyTheirOwnEventsWhileTheirBatchmatesComplete()
    {
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        // The poisons come first in FIFO order, and retry at once, so every one of their attempts shares a batch
        // with good events.
        var throwing = await _db.InsertEventAsync(PoisonHandler.EventType, new { text = "throw" }, createdAt: start);
        var hanging = await _db.InsertEventAsync(PoisonHandler.EventType, new { text = "hang" }, createdAt: start.AddMilliseconds(1));
        var good = await InsertGoodEventsAsync(40, start.AddSeconds(1));

        // One poll loop: this test is about the batch a poison is claimed in, and needs good events left behind the
        // poisons for their second and third attempts. With more loops, the others claim every good event while the
        // poisons wait for their retry, and those attempts run alone (the runaway test below keeps the default).
        await using var host = await StartAsync(workers: 1);
        await _db.WaitForProcessedAsync(good.Count + 2, TimeSpan.FromSeconds(60));

        var report = await ReportAsync([throwing, hanging], good);
        await TestContext.Out.WriteLineAsync(report.Summary);
        Assert.Multiple(() =>
        {
            report.AssertPoisonDeadLettered(throwing, "PoisonHandler failed: InvalidOperationException: poison payload");
            report.AssertPoisonDeadLettered(hanging, $"PoisonHandler timed out after {HandlerTimeout.TotalMilliseconds:0} ms");
            report.AssertEveryPoisonAttemptHadBatchmates();
            report.AssertGoodEventsCompletedOnce();
            Assert.That(host.Engine.Stats.ReleasedCount, Is.Zero, "nobody else was even released");
        });
    }

    [Test]
    public async Task AHandlerThatIgnoresItsTimeoutWhileHoldingTheBatchConnectionCostsItsBatchmatesARerunNotAnAttempt()
    {
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        // One good event ahead of the runaway in each of its batches: its handler finishes, and its write is lost
        // with the batch's connection.
        var ahead = await _db.InsertEventAsync(PoisonHandler.EventType, new { text = "good, ahead" }, createdAt: start.AddMilliseconds(-1));
        var runaway = await _db.InsertEventAsync(PoisonHandler.EventType, new { text = "runaway" }, createdAt: start);
        var good = await InsertGoodEventsAsync(30, start.AddSeconds(1));
        good.Insert(0, ahead);

        await using var host = await StartAsync();
        await _db.WaitForProcessedAsync(good.Count + 1, TimeSpan.FromSeconds(60));

        var report = await ReportAsync([runaway], good);
        await TestContext.Out.WriteLineAsync(report.Summary);
        await TestContext.Out.WriteLineAsync($"batchmates released (writes lost with the runaway's connection, attempt given back): {host.Engine.Stats.ReleasedCount}");
        Assert.Multiple(() =>
        {
            report.AssertPoisonDeadLettered(runaway, $"PoisonHandler timed out after {HandlerTimeout.TotalMilliseconds:0} ms");
            report.AssertEveryPoisonAttemptHadBatchmates();
            report.AssertGoodEventsCompletedOnce();
            Assert.That(host.Engine.Stats.ReleasedCount, Is.GreaterThan(0), "batchmates of the runaway were released, not failed");
            Assert.That(_recorder.Calls.Count(c => c.Id == ahead), Is.EqualTo(MaxRetries + 1),
                "the one ahead ran beside each runaway attempt, its write lost each time, and once more; still at attempt 1");
        });
    }

    private Task<EngineHost> StartAsync(int? workers = null) =>
        EngineHost.StartAsync(
            _db,
            p => p.AddHandler<PoisonHandler>(),
            o =>
            {
                o.MaxRetries = MaxRetries;
                o.BatchSize = BatchSize;
                o.Workers = workers ?? o.Workers;
                o.HandlerTimeout = HandlerTimeout;
            },
            s => s.AddSingleton(_recorder));

    private async Task<List<Guid>> InsertGoodEventsAsync(int count, DateTimeOffset from)
    {
        var ids = new List<Guid>();
        for (var i = 0; i < count; i++)
        {
            ids.Add(await _db.InsertEventAsync(PoisonHandler.EventType, new { text = $"good {i}" }, createdAt: from.AddMilliseconds(i)));
        }

        return ids;
    }

    private async Task<PoisonReport> ReportAsync(Guid[] poisons, List<Guid> good)
    {
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var events = (await connection.QueryAsync<(Guid Id, bool Dead, int Attempts, int? RetryCount)>(
            """
            SELECT id, coalesce((metadata->>'dead_lettered')::boolean, false), attempts, (metadata->>'retry_count')::int
            FROM events WHERE processed
            """)).ToDictionary(e => e.Id);
        var deadLetters = (await connection.QueryAsync<(Guid EventId, string Error, int RetryCount)>(
            "SELECT event_id, error_message, retry_count FROM event_dead_letters")).ToList();
        var projected = (await connection.QueryAsync<Guid>("SELECT event_id FROM poison_projection")).ToList();
        var claims = (await connection.QueryAsync<(Guid EventId, int Attempt, string Batch)>(
            "SELECT event_id, attempt, batch FROM claim_log")).ToList();
        return new PoisonReport(poisons, good, events, deadLetters, projected, claims, _recorder.Calls);
    }

    private sealed record PoisonReport(
        Guid[] Poisons,
        List<Guid> Good,
        Dictionary<Guid, (Guid Id, bool Dead, int Attempts, int? RetryCount)> Events,
        List<(Guid EventId, string Error, int RetryCount)> DeadLetters,
        List<Guid> Projected,
        List<(Guid EventId, int Attempt, string Batch)> Claims,
        IReadOnlyList<(Guid Id, int Attempt)> Calls)
    {
        private HashSet<Guid> GoodSet { get; } = [.. Good];

        /// <summary>For each attempt of each poison, how many good events were claimed in its batch.</summary>
        private List<(Guid Poison, int Attempt, int Batchmates)> PoisonBatches =>
            [.. Claims.Where(c => Poisons.Contains(c.EventId))
                .Select(c => (c.EventId, c.Attempt, Claims.Count(o => o.Batch == c.Batch && GoodSet.Contains(o.EventId))))];

        public string Summary =>
            $"{Poisons.Length} poison and {Good.Count} good events, batches of {BatchSize}, MAX_RETRIES {MaxRetries}: " +
            $"poison attempts {string.Join(", ", Poisons.Select(p => Events[p].Attempts))}, dead letters {DeadLetters.Count}; " +
            $"good events claimed beside each poison attempt: {string.Join(", ", PoisonBatches.Select(b => b.Batchmates))}; " +
            $"good: {Good.Count(g => !Events[g].Dead && Events[g].Attempts == 1)} completed at attempt 1, claims {Claims.Count(c => GoodSet.Contains(c.EventId))}, " +
            $"handler calls {Calls.Count(c => GoodSet.Contains(c.Id))}, projection rows {Projected.Count(GoodSet.Contains)}";

        public void AssertPoisonDeadLettered(Guid poison, string reason)
        {
            Assert.That(Events[poison].Dead, Is.True, "the poison is dead-lettered");
            Assert.That(Events[poison].Attempts, Is.EqualTo(MaxRetries), "after exactly MAX_RETRIES attempts");
            Assert.That(Calls.Where(c => c.Id == poison).Select(c => c.Attempt), Is.EqualTo(Enumerable.Range(1, MaxRetries)));
            var dead = DeadLetters.Where(d => d.EventId == poison).ToList();
            Assert.That(dead, Has.Count.EqualTo(1));
            Assert.That(dead.Single().Error, Does.Contain(reason));
            Assert.That(dead.Single().RetryCount, Is.EqualTo(MaxRetries));
            Assert.That(Projected, Does.Not.Contain(poison), "the poison's writes rolled back");
        }

        public void AssertEveryPoisonAttemptHadBatchmates()
        {
            Assert.That(PoisonBatches, Has.Count.EqualTo(Poisons.Length * MaxRetries));
            Assert.That(PoisonBatches.Where(b => b.Batchmates == 0), Is.Empty, "every poison attempt was claimed beside good events");
        }

        public void AssertGoodEventsCompletedOnce()
        {
            Assert.That(Good.Where(g => Events[g].Dead || Events[g].Attempts != 1 || Events[g].RetryCount is not null), Is.Empty,
                "every good event completed at its first attempt, with no failure recorded");
            Assert.That(DeadLetters.Where(d => GoodSet.Contains(d.EventId)), Is.Empty);
            Assert.That(Projected.Where(GoodSet.Contains), Is.EquivalentTo(Good), "each good event's write committed exactly once");
        }
    }
}

/// <summary>Writes a row in the event's transaction, then succeeds, throws, hangs, or runs away, as its note says.</summary>
[HandlesEvent(EventType)]
public sealed class PoisonHandler(Recorder recorder) : IEventHandler<Note>
{
    public const string EventType = "fault.poison";

    public async Task HandleAsync(EventContext<Note> context, CancellationToken cancellationToken)
    {
        recorder.Record(context.Event.Id, context.Event.Attempt);
        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(
            "INSERT INTO poison_projection (event_id, text) VALUES (@id, @text)",
            new { id = context.Event.Id, text = context.Payload.Text },
            db.Transaction);
        switch (context.Payload.Text)
        {
            case "throw":
                throw new InvalidOperationException("poison payload");
            case "hang":
                await Task.Delay(Timeout.Infinite, cancellationToken);
                break;
            case "runaway":
                // Ignores its token, keeping the batch's connection well past the timeout, then lets go.
                await Task.Delay(TimeSpan.FromSeconds(3), CancellationToken.None);
                break;
        }
    }
}
