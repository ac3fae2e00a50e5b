using Dapper;
using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Processing;

/// <summary>Each fate an event can meet: completed, retried, dead-lettered, skipped, replayed.</summary>
public sealed class OutcomeTests
{
    private TestDatabase _db = null!;
    private Recorder _recorder = null!;
    private Failures _failures = null!;

    [SetUp]
    public async Task SetUp()
    {
        _db = await TestDatabase.CreateAsync();
        _recorder = new Recorder();
        _failures = new Failures();
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

    private Task<EngineHost> StartAsync(Action<EventProcessorOptions>? configure = null) =>
        EngineHost.StartAsync(
            _db,
            p => p.AddHandler<RecordingHandler>().AddHandler<ProjectingHandler>().AddHandler<FollowUpHandler>()
                .AddHandler<HangingHandler>().AddHandler<RunawayHandler>(),
            configure,
            s => s.AddSingleton(_recorder).AddSingleton(_failures));

    [Test]
    public async Task AFailingEventIsRetriedThenDeadLetteredWithItsReason()
    {
        var id = await _db.InsertEventAsync("test.recorded", new { text = "x" });
        _failures.FailFirst(id, int.MaxValue);
        await using var host = await StartAsync(o => o.MaxRetries = 3);
        await _db.WaitForProcessedAsync(1);

        var row = await _db.GetEventAsync(id);
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var dead = await connection.QuerySingleAsync<(Guid EventId, string EventType, string ErrorMessage, int RetryCount, DateTime OriginalCreatedAt)>(
            "SELECT event_id, event_type, error_message, retry_count, original_created_at FROM event_dead_letters");
        var createdAt = await _db.ScalarAsync<DateTime>("SELECT created_at FROM events WHERE id = @id", new { id });
        Assert.Multiple(() =>
        {
            Assert.That(_recorder.Calls, Is.EqualTo(new[] { (id, 1), (id, 2), (id, 3) }));
            Assert.That(row.DeadLettered, Is.True);
            Assert.That(row.RetryCount, Is.EqualTo(3));
            Assert.That(row.ProcessedAt, Is.Not.Null);
            Assert.That(dead.EventId, Is.EqualTo(id));
            Assert.That(dead.EventType, Is.EqualTo("test.recorded"));
            Assert.That(dead.RetryCount, Is.EqualTo(3));
            Assert.That(dead.ErrorMessage, Does.Contain("planned failure of attempt 3"));
            Assert.That(dead.OriginalCreatedAt, Is.EqualTo(createdAt));
            Assert.That(host.Engine.Stats.DeadLetterCount, Is.EqualTo(1));
            Assert.That(host.Engine.Stats.ErrorCount, Is.EqualTo(3));
        });
    }

    [Test]
    public async Task AFailedAttemptRecordsRetryCountErrorAndTheNextAttemptAfterBackoff()
    {
        var id = await _db.InsertEventAsync("test.recorded", new { text = "x" });
        _failures.FailFirst(id, 1);
        await using var host = await StartAsync(o =>
        {
            o.RetryBaseDelay = TimeSpan.FromHours(1);
            o.RetryMaxDelay = TimeSpan.FromHours(2);
        });
        await TestDatabase.WaitUntilAsync(async () => (await _db.GetEventAsync(id)).RetryCount == 1, "the first failure is recorded");

        var row = await _db.GetEventAsync(id);
        var waitSeconds = await _db.ScalarAsync<double>(
            "SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM events WHERE id = @id", new { id });
        Assert.Multiple(() =>
        {
            Assert.That(row.Processed, Is.False);
            Assert.That(row.LastError, Does.Contain("planned failure of attempt 1"));
            Assert.That(row.LockedBy, Is.Null);
            Assert.That(waitSeconds, Is.InRange(3600 * 0.8 - 5, 3600 * 1.2), "next attempt one base delay (±20 % jitter) away");
            Assert.That(_recorder.Calls, Has.Count.EqualTo(1), "no attempt before the backoff is over");
        });
    }

    [Test]
    public async Task APayloadThatDoesNotFitTheHandlersTypeIsDeadLetteredAtOnce()
    {
        var id = await _db.InsertEventAsync("test.recorded", "{\"text\": 42}");
        await using var host = await StartAsync(o => o.MaxRetries = 5);
        await _db.WaitForProcessedAsync(1);

        var row = await _db.GetEventAsync(id);
        var reason = await _db.ScalarAsync<string>("SELECT error_message FROM event_dead_letters WHERE event_id = @id", new { id });
        Assert.Multiple(() =>
        {
            Assert.That(_recorder.Calls, Is.Empty, "the handler never runs");
            Assert.That(row.DeadLettered, Is.True);
            Assert.That(row.Attempts, Is.EqualTo(1));
            Assert.That(reason, Does.Contain("Payload cannot be read as Note"));
        });
    }

    [Test]
    public async Task AnEventTypeWithoutAHandlerIsSkippedAndDoesNotBlockItsAggregate()
    {
        var aggregate = Guid.NewGuid();
        var unknown = await _db.InsertEventAsync("nobody.handles.this", new { }, aggregate, createdAt: DateTimeOffset.UtcNow.AddSeconds(-2));
        var next = await _db.InsertEventAsync("test.recorded", new { text = "x" }, aggregate);
        await using var host = await StartAsync();
        await _db.WaitForProcessedAsync(2);

        var row = await _db.GetEventAsync(unknown);
        Assert.Multiple(async () =>
        {
            Assert.That(row.Skipped, Is.True);
            Assert.That(row.Metadata, Does.Contain("No handler is registered for event type 'nobody.handles.this'"));
            Assert.That(row.Attempts, Is.EqualTo(1), "skipped, not retried");
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM event_dead_letters"), Is.Zero);
            Assert.That(_recorder.Ids, Is.EqualTo(new[] { next }));
            Assert.That(host.Engine.Stats.SkippedCount, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task ReplayWithTheSeedsSqlRunsADeadLetteredEventAgainAsAFreshAttempt()
    {
        var id = await _db.InsertEventAsync("test.recorded", new { text = "x" });
        _failures.FailFirst(id, 2);
        await using var host = await StartAsync(o => o.MaxRetries = 2);
        await _db.WaitForProcessedAsync(1);
        Assert.That((await _db.GetEventAsync(id)).DeadLettered, Is.True);
        _failures.FailFirst(id, 0);

        await _db.ExecuteAsync(
            $$"""UPDATE events SET processed = false, metadata = metadata || '{"replayed": true}'::jsonb WHERE id IN ('{{id}}')""");
        await TestDatabase.WaitUntilAsync(async () => (await _db.GetEventAsync(id)).Processed, "the replayed event is processed");

        var row = await _db.GetEventAsync(id);
        Assert.Multiple(() =>
        {
            Assert.That(_recorder.Calls, Is.EqualTo(new[] { (id, 1), (id, 2), (id, 1) }), "the replay starts again at attempt 1");
            Assert.That(row.DeadLettered, Is.False);
            Assert.That(row.RetryCount, Is.Null);
            Assert.That(row.Metadata, Does.Contain("\"replayed\": true"));
            Assert.That(row.Metadata, Does.Contain("\"replay_count\": 1"));
        });
    }

    [Test]
    public async Task HandlerWritesCommitWithTheEventAndRollBackWithItsFailureOnly()
    {
        var ok = await _db.InsertEventAsync("test.projected", new { text = "ok" }, createdAt: DateTimeOffset.UtcNow.AddSeconds(-3));
        var failing = await _db.InsertEventAsync("test.projected", new { text = "fail" }, createdAt: DateTimeOffset.UtcNow.AddSeconds(-2));
        var alsoOk = await _db.InsertEventAsync("test.projected", new { text = "ok too" }, createdAt: DateTimeOffset.UtcNow.AddSeconds(-1));
        await using var host = await StartAsync(o => o.MaxRetries = 2);
        await _db.WaitForProcessedAsync(3);

        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var written = (await connection.QueryAsync<Guid>("SELECT event_id FROM projection")).ToList();
        Assert.Multiple(async () =>
        {
            Assert.That(written, Is.EquivalentTo(new[] { ok, alsoOk }), "one row per successful event, none for the failing one");
            Assert.That((await _db.GetEventAsync(failing)).DeadLettered, Is.True);
        });
    }

    [Test]
    public async Task FollowUpEventsAreInsertedWithCausationAndCorrelation()
    {
        var aggregate = Guid.NewGuid();
        var cause = await _db.InsertEventAsync("test.cause", new { }, aggregate, metadata: """{"correlation_id": "order-17"}""");
        await using var host = await StartAsync();
        await TestDatabase.WaitUntilAsync(
            async () => await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE event_type = 'test.effect'") == 1,
            "the follow-up event exists");

        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var effect = await connection.QuerySingleAsync<(Guid? AggregateId, string Causation, string Correlation, string Text)>(
            """
            SELECT aggregate_id, metadata->>'causation_id', metadata->>'correlation_id', payload->>'text'
            FROM events WHERE event_type = 'test.effect'
            """);
        Assert.Multiple(() =>
        {
            Assert.That(effect.AggregateId, Is.EqualTo(aggregate));
            Assert.That(effect.Causation, Is.EqualTo(cause.ToString()));
            Assert.That(effect.Correlation, Is.EqualTo("order-17"));
            Assert.That(effect.Text, Is.EqualTo("effect"));
        });
    }

    [Test]
    public async Task AHungHandlerFailsItsAttemptAndTheOthersGoOn()
    {
        var hung = await _db.InsertEventAsync("test.hang", new { }, createdAt: DateTimeOffset.UtcNow.AddSeconds(-3));
        var runaway = await _db.InsertEventAsync("test.runaway", new { }, createdAt: DateTimeOffset.UtcNow.AddSeconds(-2));
        var fine = await _db.InsertEventAsync("test.recorded", new { text = "x" });
        await using var host = await StartAsync(o =>
        {
            o.HandlerTimeout = TimeSpan.FromMilliseconds(300);
            o.MaxRetries = 1;
        });
        await _db.WaitForProcessedAsync(3, TimeSpan.FromSeconds(20));

        Assert.Multiple(async () =>
        {
            Assert.That((await _db.GetEventAsync(hung)).LastError, Does.Contain("timed out after 300 ms"));
            Assert.That((await _db.GetEventAsync(runaway)).LastError, Does.Contain("timed out after 300 ms"));
            Assert.That((await _db.GetEventAsync(fine)).DeadLettered, Is.False);
            Assert.That(_recorder.Ids, Is.EqualTo(new[] { fine }));
        });
    }
}
