using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using EventProcessor.Tests.Support;
using NUnit.Framework.Interfaces;

namespace EventProcessor.Tests.Service;

/// <summary>
/// The real service as a child process (<c>dotnet EventProcessor.Host.dll</c>) against its own database and a real
/// webhook receiver: what an operator and a webhook consumer see. Each test has its own database and ports, so the
/// tests run in parallel.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.All)]
public sealed class ServiceProcessTests
{
    private const string EventType = "order.placed";

    private static readonly string Secret = "whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    private static readonly string[] WebhookBodyColumns =
        ["id", "event_type", "aggregate_id", "aggregate_type", "payload", "metadata", "version", "created_at", "created_by"];

    private static readonly string[] StatsKeys = ["totalProcessed", "successCount", "errorCount", "deadLetterCount", "lastProcessedAt"];

    private static readonly string[] ConfigKeys = ["pollIntervalMs", "batchSize", "maxRetries", "pollingEnabled"];

    private static readonly string[] SubscribedTypes = ["order.*"];

    private static readonly int[] FourFailures = [500, 500, 500, 500];

    private static readonly int[] FourFailuresThenSuccess = [500, 500, 500, 500, 200];

    private readonly List<ServiceProcess> _services = [];
    private readonly List<IAsyncDisposable> _resources = [];
    private WebhookReceiver _receiver = null!;

    [SetUp]
    public async Task SetUp() => _receiver = await WebhookReceiver.StartAsync();

    [TearDown]
    public async Task TearDown()
    {
        var failed = TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed;
        foreach (var service in _services)
        {
            if (failed)
            {
                await TestContext.Out.WriteLineAsync(service.Tail(200));
            }

            await service.DisposeAsync();
        }

        if (_receiver is not null)
        {
            await _receiver.DisposeAsync();
        }

        for (var i = _resources.Count - 1; i >= 0; i--)
        {
            await _resources[i].DisposeAsync();
        }
    }

    [Test]
    public async Task CreatesItsTablesAndHandlesAnEventInsertedWithPlainSql()
    {
        var db = Track(await EmptyDatabase.CreateAsync());
        Assert.That(await db.TableExistsAsync("events"), Is.False, "precondition: the database starts empty");

        var service = await StartAsync(Settings(db.Url));
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await db.TableExistsAsync("events"), Is.True, "the start-up migration created events");
            Assert.That(await db.TableExistsAsync("event_dead_letters"), Is.True, "the start-up migration created event_dead_letters");
        });

        // What a producer that knows nothing of the engine writes: the seed's columns only.
        var id = Guid.NewGuid();
        await db.ExecuteAsync($$"""INSERT INTO events (id, event_type, payload) VALUES ('{{id}}', '{{EventType}}', '{"order_id": 42}')""");

        await service.WaitUntilAsync(
            () => db.ScalarAsync<bool>("SELECT processed FROM events WHERE id = @id", new { id }),
            "the event inserted with plain SQL is processed");

        var deliveries = _receiver.For(id);
        Assert.That(deliveries, Has.Count.EqualTo(1), "delivered once");
        using var body = JsonDocument.Parse(deliveries[0].Body);
        Assert.Multiple(() =>
        {
            Assert.That(deliveries[0].Status, Is.EqualTo(200));
            Assert.That(deliveries[0].Path, Is.EqualTo("/hooks/orders"));
            Assert.That(body.RootElement.GetProperty("event_type").GetString(), Is.EqualTo(EventType));
            Assert.That(body.RootElement.GetProperty("payload").GetProperty("order_id").GetInt32(), Is.EqualTo(42));
        });
    }

    [Test]
    public async Task DeliversWebhooksWithValidStandardWebhooksSignatures()
    {
        var db = Track(await TestDatabase.CreateAsync());
        var key = RandomNumberGenerator.GetBytes(24);
        var settings = Settings(db.Url);
        settings["Webhooks__0__Secret"] = "whsec_" + Convert.ToBase64String(key);
        var aggregate = Guid.NewGuid();
        const string Payload = """{"order_id": 42, "lines": [{"sku": "A-1", "qty": 2}], "note": "café ☕ \"quoted\"", "gift": false, "coupon": null}""";
        var id = await db.InsertEventAsync(EventType, Payload, aggregate);

        var service = await StartAsync(settings);
        await service.WaitUntilAsync(() => _receiver.For(id).Count > 0, "the webhook receives the event");
        var hook = _receiver.For(id)[0];
        var createdAt = await db.ScalarAsync<DateTime>("SELECT created_at FROM events WHERE id = @id", new { id });

        // The signature, recomputed here from the Standard Webhooks spec rather than with the product's code.
        var signedContent = Encoding.UTF8.GetBytes($"{hook.WebhookId}.{hook.WebhookTimestamp}.").Concat(hook.Body).ToArray();
        var expectedSignature = "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, signedContent));
        var wrongKeySignature = "v1," + Convert.ToBase64String(HMACSHA256.HashData(RandomNumberGenerator.GetBytes(24), signedContent));

        using var document = JsonDocument.Parse(hook.Body);
        var body = document.RootElement;
        Assert.Multiple(() =>
        {
            Assert.That(hook.WebhookId, Is.EqualTo(id.ToString()), "webhook-id is the event id, for deduplication");
            Assert.That(long.TryParse(hook.WebhookTimestamp, out var timestamp), Is.True, $"webhook-timestamp '{hook.WebhookTimestamp}' is Unix seconds");
            Assert.That(timestamp, Is.InRange(hook.ArrivedAt.ToUnixTimeSeconds() - 5, hook.ArrivedAt.ToUnixTimeSeconds() + 5), "webhook-timestamp is now");
            Assert.That(hook.WebhookSignature?.Split(' '), Does.Contain(expectedSignature), "webhook-signature is v1,<HMAC-SHA256>");
            Assert.That(hook.WebhookSignature?.Split(' '), Does.Not.Contain(wrongKeySignature));
            Assert.That(hook.ContentType, Does.StartWith("application/json"));

            var names = body.EnumerateObject().Select(p => p.Name).ToList();
            Assert.That(names, Is.SupersetOf(WebhookBodyColumns));
            Assert.That(names, Has.All.Match("^[a-z][a-z0-9_]*$"), "top-level keys are the table's snake_case columns");
            Assert.That(body.GetProperty("id").GetString(), Is.EqualTo(id.ToString()));
            Assert.That(body.GetProperty("event_type").GetString(), Is.EqualTo(EventType));
            Assert.That(body.GetProperty("aggregate_id").GetString(), Is.EqualTo(aggregate.ToString()));
            Assert.That(body.GetProperty("aggregate_type").ValueKind, Is.EqualTo(JsonValueKind.Null));
            Assert.That(
                JsonNode.DeepEquals(JsonNode.Parse(body.GetProperty("payload").GetRawText()), JsonNode.Parse(Payload)),
                Is.True,
                $"payload is the stored JSON; got {body.GetProperty("payload").GetRawText()}");
            Assert.That(body.GetProperty("metadata").ValueKind, Is.EqualTo(JsonValueKind.Object));
            Assert.That(body.GetProperty("version").GetInt32(), Is.EqualTo(1));
            Assert.That(body.GetProperty("created_at").GetDateTimeOffset().UtcDateTime, Is.EqualTo(createdAt.ToUniversalTime()), "created_at is the row's");
        });
    }

    [Test]
    public async Task RetriesAFailingDeliveryWithGrowingDelaysThenDeadLettersItThenReplaysIt()
    {
        const int BaseDelayMs = 300;
        var db = Track(await TestDatabase.CreateAsync());
        var settings = Settings(db.Url);
        settings["MAX_RETRIES"] = "4";
        settings["RETRY_BASE_DELAY_MS"] = BaseDelayMs.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["RETRY_MAX_DELAY_MS"] = "10000";
        settings["POLL_INTERVAL_MS"] = "50";
        var service = await StartAsync(settings);

        // Gaps are timed against a warm process: a first failure in a cold one pays for JIT and first-use costs,
        // which would be counted in the first gap only. The warm-up event fails once, then succeeds.
        var warmUp = await db.InsertEventAsync("order.warm_up", new { });
        _receiver.Respond = r => r.EventId == warmUp && r.DeliveryNumber > 1 ? (200, TimeSpan.Zero) : (500, TimeSpan.Zero);
        await service.WaitUntilAsync(
            () => db.ScalarAsync<bool>("SELECT processed FROM events WHERE id = @id", new { id = warmUp }),
            "the warm-up event is processed on its second attempt");

        var id = await db.InsertEventAsync(EventType, new { order_id = 7 });
        await service.WaitUntilAsync(
            async () => await db.ScalarAsync<long>("SELECT count(*) FROM event_dead_letters WHERE event_id = @id", new { id }) > 0,
            "the event is dead-lettered");

        var deliveries = _receiver.For(id);
        Assert.That(deliveries.Select(d => d.Status), Is.EqualTo(FourFailures), "MAX_RETRIES=4 means four attempts");
        var gaps = deliveries.Zip(deliveries.Skip(1), (a, b) => (b.ArrivedAt - a.ArrivedAt).TotalMilliseconds).ToArray();
        await TestContext.Out.WriteLineAsync($"gaps between deliveries (ms): {string.Join(", ", gaps.Select(g => g.ToString("0", System.Globalization.CultureInfo.InvariantCulture)))}");
        var deadLetter = await QueryDeadLetterAsync(db, id);
        var row = await db.GetEventAsync(id);
        var health = await GetJsonAsync(service, "health");
        var stats = health.GetProperty("stats");
        await Assert.MultipleAsync(async () =>
        {
            for (var n = 1; n <= gaps.Length; n++)
            {
                // Retry n waits base × 2^(n-1) with ±20 % jitter; the gap also includes the poll and the round trip.
                var floor = (0.8 * BaseDelayMs * Math.Pow(2, n - 1)) - 25;
                Assert.That(gaps[n - 1], Is.GreaterThanOrEqualTo(floor), $"gap {n} is at least 80 % of {BaseDelayMs} × 2^{n - 1} ms");
            }

            Assert.That(gaps[1], Is.GreaterThan(gaps[0]), "the second gap is longer than the first");
            Assert.That(gaps[2], Is.GreaterThan(gaps[1]), "the third gap is longer than the second");

            Assert.That(deadLetter.Count, Is.EqualTo(1), "one dead letter");
            Assert.That(deadLetter.RetryCount, Is.EqualTo(4));
            Assert.That(deadLetter.ErrorMessage, Does.Contain("500"));
            Assert.That(deadLetter.EventType, Is.EqualTo(EventType));
            Assert.That(JsonNode.DeepEquals(JsonNode.Parse(deadLetter.Payload), JsonNode.Parse("""{"order_id": 7}""")), Is.True, deadLetter.Payload);
            Assert.That(deadLetter.SameCreatedAt, Is.True, "original_created_at is the event's created_at");

            Assert.That(row.Processed, Is.True, "a dead-lettered event leaves the backlog");
            Assert.That(
                await db.ScalarAsync<string>("SELECT metadata->>'dead_lettered' FROM events WHERE id = @id", new { id }),
                Is.EqualTo("true"));
            Assert.That(row.RetryCount, Is.EqualTo(4));
            Assert.That(row.LockedBy, Is.Null);

            // The warm-up event accounts for one failure and one success.
            Assert.That(stats.GetProperty("errorCount").GetInt64(), Is.EqualTo(5));
            Assert.That(stats.GetProperty("deadLetterCount").GetInt64(), Is.EqualTo(1));
            Assert.That(stats.GetProperty("successCount").GetInt64(), Is.EqualTo(1));
        });

        // The receiver is fixed; the operator replays with the seed's SQL, verbatim.
        _receiver.Respond = _ => (200, TimeSpan.Zero);
        await db.ExecuteAsync(
            $$"""
            UPDATE events
            SET processed = false, metadata = metadata || '{"replayed": true}'::jsonb
            WHERE id IN ('{{id}}');
            """);
        await service.WaitUntilAsync(
            () => db.ScalarAsync<bool>("SELECT processed FROM events WHERE id = @id", new { id }),
            "the replayed event is processed again");

        var replayed = await db.GetEventAsync(id);
        var afterReplay = _receiver.For(id);
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(afterReplay.Select(d => d.Status), Is.EqualTo(FourFailuresThenSuccess), "delivered once more, successfully");
            Assert.That(replayed.DeadLettered, Is.False);
            Assert.That(
                await db.ScalarAsync<string>("SELECT metadata->>'replayed' FROM events WHERE id = @id", new { id }),
                Is.EqualTo("true"));
            Assert.That(
                await db.ScalarAsync<bool>("SELECT metadata ? 'dead_lettered' FROM events WHERE id = @id", new { id }),
                Is.False,
                $"no dead_lettered key after a successful replay; metadata: {replayed.Metadata}");
            Assert.That(
                await db.ScalarAsync<long>("SELECT count(*) FROM event_dead_letters WHERE event_id = @id", new { id }),
                Is.EqualTo(1),
                "the dead letter stays as history");
        });
    }

    [TestCase(307)]
    [TestCase(308)]
    [TestCase(302)]
    public async Task DoesNotFollowAWebhookRedirectToAnotherHostAndFailsTheAttemptNamingTheLocation(int status)
    {
        // The receiver points elsewhere. Followed, a 307 or 308 re-sends the signed POST there (a 302, a GET), and a
        // 200 from there marks the event delivered.
        await using var elsewhere = await WebhookReceiver.StartAsync();
        _receiver.Respond = _ => (status, TimeSpan.Zero);
        _receiver.Location = _ => new Uri(elsewhere.BaseUrl, "collect?token=taken");
        var db = Track(await TestDatabase.CreateAsync());
        var settings = Settings(db.Url);
        settings["MAX_RETRIES"] = "2";
        var id = await db.InsertEventAsync(EventType, new { order_id = 9 });

        var service = await StartAsync(settings);
        await service.WaitUntilAsync(
            async () => await db.ScalarAsync<long>("SELECT count(*) FROM event_dead_letters WHERE event_id = @id", new { id }) > 0,
            "the event is dead-lettered");

        var deadLetter = await QueryDeadLetterAsync(db, id);
        var health = await GetJsonAsync(service, "health");
        Assert.Multiple(() =>
        {
            Assert.That(elsewhere.Received, Is.Empty, "nothing reached the host the redirect points to");
            Assert.That(_receiver.For(id).Select(d => d.Status), Is.EqualTo(new[] { status, status }), "both attempts went to the configured URL only");
            Assert.That(deadLetter.ErrorMessage, Does.Contain($"answered {status}"));
            Assert.That(deadLetter.ErrorMessage, Does.Contain(new Uri(elsewhere.BaseUrl, "collect").ToString()), "the error names where the redirect points");
            Assert.That(deadLetter.ErrorMessage, Does.Not.Contain("token=taken"), "but not its query string");
            Assert.That(health.GetProperty("stats").GetProperty("successCount").GetInt64(), Is.Zero, "no attempt counted as a delivery");
        });
    }

    [Test]
    public async Task KeepsPerAggregateOrderAcrossRetries()
    {
        var db = Track(await TestDatabase.CreateAsync());
        var settings = Settings(db.Url);
        settings["RETRY_BASE_DELAY_MS"] = "200";
        settings["RETRY_MAX_DELAY_MS"] = "1000";
        var aggregate = Guid.NewGuid();
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        var first = await db.InsertEventAsync(EventType, new { step = 1 }, aggregate, createdAt: start);
        var second = await db.InsertEventAsync(EventType, new { step = 2 }, aggregate, createdAt: start.AddSeconds(1));
        var third = await db.InsertEventAsync(EventType, new { step = 3 }, aggregate, createdAt: start.AddSeconds(2));
        var other = await db.InsertEventAsync(EventType, new { step = 1 }, Guid.NewGuid(), createdAt: start.AddSeconds(3));
        _receiver.Respond = r => r.EventId == first && r.DeliveryNumber <= 2 ? (500, TimeSpan.Zero) : (200, TimeSpan.Zero);

        var service = await StartAsync(settings);
        await service.WaitUntilAsync(
            async () => await db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed") == 4,
            "all four events are processed");

        var received = _receiver.Received;
        var firstSuccesses = received.Where(r => r.Status == 200).Select(r => r.EventId).Distinct().ToList();
        var firstSucceededAt = received.ToList().FindIndex(r => r.EventId == first && r.Status == 200);
        var trace = string.Join(", ", received.Select(r => $"{Name(r.EventId)}:{r.Status}"));

        string Name(Guid id) => id == first ? "e1" : id == second ? "e2" : id == third ? "e3" : id == other ? "other" : id.ToString();

        Assert.Multiple(() =>
        {
            Assert.That(
                firstSuccesses.Where(id => id != other).ToList(),
                Is.EqualTo(new[] { first, second, third }),
                $"the aggregate's events succeed in order; deliveries: {trace}");
            Assert.That(
                received.Take(firstSucceededAt).Select(r => r.EventId),
                Does.Not.Contain(second).And.Not.Contain(third),
                $"no later event of the aggregate is delivered before the first succeeds; deliveries: {trace}");
            Assert.That(
                received.ToList().FindIndex(r => r.EventId == other),
                Is.LessThan(firstSucceededAt),
                $"the other aggregate is not held up by the retries; deliveries: {trace}");
            Assert.That(received.Count(r => r.EventId == first), Is.EqualTo(3), trace);
            Assert.That(received.Count(r => r.EventId == second), Is.EqualTo(1), trace);
            Assert.That(received.Count(r => r.EventId == third), Is.EqualTo(1), trace);
        });
    }

    [Test]
    public async Task AnswersTheHttpContract()
    {
        var db = Track(await TestDatabase.CreateAsync());
        var settings = Settings(db.Url);
        settings["ENABLE_POLLING"] = "false";
        settings["ADMIN_API_KEY"] = "k";
        var start = DateTimeOffset.UtcNow.AddMinutes(-5);
        var first = await db.InsertEventAsync(EventType, new { n = 1 }, createdAt: start);
        var second = await db.InsertEventAsync(EventType, new { n = 2 }, createdAt: start.AddSeconds(1));

        var service = await StartAsync(settings);

        var health = await GetJsonAsync(service, "health");
        var asAdmin = await GetJsonAsync(service, "health", ("X-API-Key", "k"));
        Assert.Multiple(() =>
        {
            Assert.That(health.GetProperty("status").GetString(), Is.EqualTo("healthy"));
            Assert.That(health.GetProperty("service").GetString(), Is.EqualTo("event-processor"));
            Assert.That(health.GetProperty("timestamp").TryGetDateTimeOffset(out var timestamp), Is.True, "timestamp is a date");
            Assert.That(timestamp, Is.EqualTo(DateTimeOffset.UtcNow).Within(TimeSpan.FromMinutes(1)));
            Assert.That(health.GetProperty("uptime").ValueKind, Is.EqualTo(JsonValueKind.Number));
            Assert.That(Keys(health.GetProperty("stats")), Is.SupersetOf(StatsKeys));
            Assert.That(health.GetProperty("stats").GetProperty("totalProcessed").GetInt64(), Is.Zero);
            Assert.That(Keys(health.GetProperty("config")), Is.SupersetOf(ConfigKeys));
            Assert.That(health.GetProperty("config").GetProperty("pollIntervalMs").GetInt64(), Is.EqualTo(50));
            Assert.That(health.GetProperty("config").GetProperty("batchSize").GetInt32(), Is.EqualTo(20));
            Assert.That(health.GetProperty("config").GetProperty("maxRetries").GetInt32(), Is.EqualTo(5));
            Assert.That(health.GetProperty("config").GetProperty("pollingEnabled").GetBoolean(), Is.False);
            Assert.That(
                health.GetProperty("registry").GetProperty("totalHandlers").GetInt32(),
                Is.EqualTo(ShippedHandlers.EventTypes.Length + 1));
            Assert.That(health.GetProperty("registry").TryGetProperty("eventTypes", out _), Is.False, "the types are the admin's to see");
            Assert.That(health.TryGetProperty("ingress", out _), Is.False, "and so are the ingress counts");
            Assert.That(
                asAdmin.GetProperty("registry").GetProperty("eventTypes").EnumerateArray().Select(e => e.GetString()),
                Is.EqualTo(ShippedHandlers.EventTypesWith(SubscribedTypes)));
            Assert.That(asAdmin.GetProperty("ingress").GetProperty("written").GetInt64(), Is.Zero);
            Assert.That(health.GetProperty("backlog").GetProperty("pending").GetInt64(), Is.EqualTo(2), "polling is off: both events wait");
            Assert.That(health.GetProperty("backlog").GetProperty("oldestPendingAgeSeconds").GetDouble(), Is.GreaterThanOrEqualTo(299));
        });

        using (var noKey = await PostAsync(service, "process-event", $$"""{"event_id": "{{first}}"}"""))
        using (var wrongKey = await PostAsync(service, "process-event", $$"""{"event_id": "{{first}}"}""", ("X-API-Key", "not-k")))
        {
            Assert.Multiple(() =>
            {
                Assert.That(noKey.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
                Assert.That(wrongKey.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            });
        }

        Assert.That(await db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed"), Is.Zero, "a refused request runs nothing");

        using (var accepted = await PostAsync(service, "process-event", $$"""{"event_id": "{{first}}"}""", ("X-API-Key", "k")))
        {
            var body = await ReadJsonAsync(accepted);
            Assert.Multiple(() =>
            {
                Assert.That(accepted.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), body.GetRawText());
                Assert.That(body.GetProperty("success").GetBoolean(), Is.True);
                Assert.That(body.GetProperty("message").GetString(), Is.EqualTo("Event processing started"));
                Assert.That(body.GetProperty("event_id").GetString(), Is.EqualTo(first.ToString()));
            });
        }

        await service.WaitUntilAsync(
            () => db.ScalarAsync<bool>("SELECT processed FROM events WHERE id = @id", new { id = first }),
            "the event asked for is processed");
        Assert.That(_receiver.For(first), Has.Count.EqualTo(1));
        Assert.That(await db.ScalarAsync<bool>("SELECT processed FROM events WHERE id = @id", new { id = second }), Is.False, "only the event asked for ran");

        var unknown = Guid.NewGuid();
        using (var notFound = await PostAsync(service, "process-event", $$"""{"event_id": "{{unknown}}"}""", ("X-API-Key", "k")))
        using (var malformed = await PostAsync(service, "process-event", """{"event_id": "nope"}""", ("X-API-Key", "k")))
        using (var notJson = await PostAsync(service, "process-event", "event_id=1", ("X-API-Key", "k")))
        using (var again = await PostAsync(service, "process-event", $$"""{"event_id": "{{first}}"}""", ("X-API-Key", "k")))
        {
            Assert.Multiple(() =>
            {
                Assert.That(notFound.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
                Assert.That(malformed.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
                Assert.That(notJson.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
                Assert.That(again.StatusCode, Is.EqualTo(HttpStatusCode.Conflict), "an event already processed is not run again");
            });
        }

        var third = await db.InsertEventAsync(EventType, new { n = 3 }, createdAt: start.AddSeconds(2));
        using (var noKeyBatch = await PostAsync(service, "process-batch", ""))
        {
            Assert.That(noKeyBatch.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        }

        using (var batch = await PostAsync(service, "process-batch", "", ("Authorization", "Bearer k")))
        {
            var body = await ReadJsonAsync(batch);
            Assert.Multiple(() =>
            {
                Assert.That(batch.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), body.GetRawText());
                Assert.That(body.GetProperty("success").GetBoolean(), Is.True);
                Assert.That(body.GetProperty("message").GetString(), Is.EqualTo("Batch processing started"));
            });
        }

        await service.WaitUntilAsync(
            async () => await db.ScalarAsync<long>("SELECT count(*) FROM events WHERE NOT processed") == 0,
            "the pending events are processed by the batch");
        var after = await GetJsonAsync(service, "health");
        Assert.Multiple(() =>
        {
            Assert.That(_receiver.For(second), Has.Count.EqualTo(1));
            Assert.That(_receiver.For(third), Has.Count.EqualTo(1));
            Assert.That(after.GetProperty("stats").GetProperty("successCount").GetInt64(), Is.EqualTo(3));
            Assert.That(after.GetProperty("stats").GetProperty("lastProcessedAt").ValueKind, Is.EqualTo(JsonValueKind.String));
            Assert.That(after.GetProperty("backlog").GetProperty("pending").GetInt64(), Is.Zero);
        });
    }

    [Test]
    public async Task ExitsZeroWithinTenSecondsOnSigtermWhileAHandlerIsSlow()
    {
        var db = Track(await TestDatabase.CreateAsync());
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        var ids = new List<Guid>();
        for (var i = 0; i < 10; i++)
        {
            ids.Add(await db.InsertEventAsync(EventType, new { n = i }, createdAt: start.AddSeconds(i)));
        }

        _receiver.Respond = _ => (200, TimeSpan.FromSeconds(3));
        var service = await StartAsync(Settings(db.Url));
        await service.WaitUntilAsync(() => _receiver.Count > 0, "the first delivery arrives");

        var clock = Stopwatch.StartNew();
        service.SignalTerm();
        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(10));
        clock.Stop();
        await TestContext.Out.WriteLineAsync($"exited with {exitCode} {clock.Elapsed.TotalSeconds:0.0} s after SIGTERM");

        var delivered = _receiver.Received.Select(r => r.EventId).Distinct().ToList();
        var rows = await QueryStatesAsync(db);
        var left = rows.Where(r => !r.Processed).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero, $"exit code after SIGTERM{service.Tail()}");
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
            Assert.That(
                rows.Where(r => delivered.Contains(r.Id) && !r.Processed).Select(r => r.Id),
                Is.Empty,
                "a delivery that got its 200 during shutdown is recorded as processed");
            Assert.That(left.Where(r => r.LockedBy is not null).Select(r => r.Id), Is.Empty, "nothing is left locked");
            Assert.That(
                left.Where(r => r.Attempts > 0 && r.RetryCount != r.Attempts).Select(r => $"{r.Id}: attempts {r.Attempts}, retry_count {r.RetryCount}"),
                Is.Empty,
                "unstarted or interrupted events get their attempt back");
        });

        _receiver.Respond = _ => (200, TimeSpan.Zero);
        var second = await StartAsync(Settings(db.Url));
        await second.WaitUntilAsync(
            async () => await db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed") == 10,
            "the second process handles the rest");
        var received = _receiver.Received;
        Assert.Multiple(() =>
        {
            Assert.That(received.Select(r => r.EventId).Distinct(), Is.EquivalentTo(ids), "every event is delivered");
            Assert.That(received, Has.Count.EqualTo(10), "a graceful stop delivers nothing twice");
        });
    }

    [Test]
    public async Task RecoversEverythingAfterKillDashNine()
    {
        var db = Track(await TestDatabase.CreateAsync());
        const int BatchSize = 20;
        const int Workers = 4;
        var settings = Settings(db.Url);
        settings["LEASE_MS"] = "2000";
        settings["BATCH_SIZE"] = BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["WORKERS"] = Workers.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await db.ExecuteAsync(
            $"""
            INSERT INTO events (id, event_type, payload, created_at)
            SELECT gen_random_uuid(), '{EventType}', jsonb_build_object('n', g), now() - interval '1 hour' + g * interval '1 ms'
            FROM generate_series(1, 200) AS g
            """);
        _receiver.Respond = _ => (200, TimeSpan.FromMilliseconds(20));

        var clock = Stopwatch.StartNew();
        var first = await StartAsync(settings);
        var started = clock.Elapsed;
        await first.WaitUntilAsync(() => _receiver.Count >= 50, "about 50 deliveries arrive");
        var killedAt = clock.Elapsed;
        first.Kill();
        await first.WaitForExitAsync(TimeSpan.FromSeconds(10));
        var beforeKill = _receiver.Count;

        var second = await StartAsync(settings);
        var restarted = clock.Elapsed;
        await second.WaitUntilAsync(
            async () => await db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed") == 200,
            "all 200 events are processed after the restart",
            TimeSpan.FromSeconds(60));
        await TestContext.Out.WriteLineAsync(
            $"healthy after {started.TotalSeconds:0.0} s, killed at {killedAt.TotalSeconds:0.0} s, restarted healthy at " +
            $"{restarted.TotalSeconds:0.0} s, all processed at {clock.Elapsed.TotalSeconds:0.0} s");

        var received = _receiver.Received;
        var distinct = received.Select(r => r.EventId).Distinct().Count();
        var duplicates = received.Count - distinct;
        await TestContext.Out.WriteLineAsync(
            $"kill -9 after {beforeKill} deliveries; {received.Count} deliveries in all; {duplicates} events delivered more than once");
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(distinct, Is.EqualTo(200), "every event is delivered");
            Assert.That(duplicates, Is.LessThanOrEqualTo(BatchSize * Workers), "at most the batches in flight, one per poll loop, are delivered again");
            Assert.That(await db.ScalarAsync<long>("SELECT count(*) FROM event_dead_letters"), Is.Zero, "nothing is dead-lettered");
            Assert.That(await db.ScalarAsync<long>("SELECT count(*) FROM events WHERE metadata ? 'dead_lettered'"), Is.Zero);
            Assert.That(await db.ScalarAsync<long>("SELECT count(*) FROM events WHERE locked_by IS NOT NULL"), Is.Zero, "no row is left locked");
        });
    }

    [Test]
    public async Task RejectsAnInvalidSettingWithOneLineAndExitCode2()
    {
        var settings = Settings(EmptyDatabase.UrlFor("eventproc_never_created"));
        settings["BATCH_SIZE"] = "0";
        var service = Track(ServiceProcess.Launch(settings));

        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(30));

        var lines = service.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.EqualTo(2), service.Tail());
            Assert.That(lines, Has.Length.EqualTo(1), $"one line on stderr{service.Tail()}");
            Assert.That(lines.FirstOrDefault(), Does.Contain("BATCH_SIZE"));
        });
    }

    [Test]
    public async Task MigrateCommandCreatesTheSchemaAndExits()
    {
        var db = Track(await EmptyDatabase.CreateAsync());
        var service = Track(ServiceProcess.Launch(new Dictionary<string, string?> { ["DATABASE_URL"] = db.Url }, "migrate"));

        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(60));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(exitCode, Is.Zero, service.Tail());
            Assert.That(await db.TableExistsAsync("events"), Is.True);
            Assert.That(await db.TableExistsAsync("event_dead_letters"), Is.True);
        });
    }

    [Test]
    public async Task WarnsAtStartWhenThePoolIsSmallerThanTheLoopsNeedAndStillDrains()
    {
        var db = Track(await TestDatabase.CreateAsync());
        var small = Settings($"{db.Url}?maxpoolsize=5"); // the default 16 loops may need 19
        var enough = Settings($"{db.Url}?maxpoolsize=5");
        enough["WORKERS"] = "2";

        var warned = await StartAsync(small);
        await warned.WaitUntilAsync(() => warned.Output.Contains("Maximum Pool Size", StringComparison.Ordinal), "the pool warning");
        var quiet = await StartAsync(enough);
        await quiet.WaitUntilAsync(() => quiet.Output.Contains("Polling every", StringComparison.Ordinal), "polling starts");
        await db.InsertEventAsync(EventType, new { step = 1 });
        await warned.WaitUntilAsync(
            async () => await db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed") == 1, "the event is processed");

        Assert.Multiple(() =>
        {
            Assert.That(warned.Output, Does.Contain("\"PoolSize\":5,\"Needed\":19,\"Workers\":16"), warned.Tail());
            Assert.That(quiet.Output, Does.Not.Contain("Maximum Pool Size"), quiet.Tail());
        });
    }

    private Dictionary<string, string?> Settings(string databaseUrl) => new(StringComparer.Ordinal)
    {
        ["DATABASE_URL"] = databaseUrl,
        ["POLL_INTERVAL_MS"] = "50",
        ["MAX_RETRIES"] = "5",
        ["RETRY_BASE_DELAY_MS"] = "100",
        ["RETRY_MAX_DELAY_MS"] = "2000",
        ["LEASE_MS"] = "5000",
        ["HANDLER_TIMEOUT_MS"] = "10000",
        ["Webhooks__0__Url"] = new Uri(_receiver.BaseUrl, "hooks/orders").ToString(),
        ["Webhooks__0__EventTypes__0"] = "order.*",
        ["Webhooks__0__Secret"] = Secret,
    };

    private async Task<ServiceProcess> StartAsync(Dictionary<string, string?> settings) =>
        Track(await ServiceProcess.StartAsync(settings));

    private ServiceProcess Track(ServiceProcess service)
    {
        _services.Add(service);
        return service;
    }

    private T Track<T>(T resource)
        where T : IAsyncDisposable
    {
        _resources.Add(resource);
        return resource;
    }

    private static async Task<HttpResponseMessage> PostAsync(ServiceProcess service, string path, string body, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative))
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return await service.Http.SendAsync(request);
    }

    private static async Task<JsonElement> GetJsonAsync(ServiceProcess service, string path, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await service.Http.SendAsync(request);
        Assert.That(response.Headers.Contains("Server"), Is.False, $"GET /{path}: no Server header names the web server");
        var body = await ReadJsonAsync(response);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), $"GET /{path}: {body.GetRawText()}");
        return body;
    }

    private static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            Assert.Fail($"{(int)response.StatusCode} answered with a body that is not JSON: '{text}'");
            throw;
        }
    }

    private static List<string> Keys(JsonElement element) => [.. element.EnumerateObject().Select(p => p.Name)];

    private static async Task<DeadLetterRow> QueryDeadLetterAsync(TestDatabase db, Guid id)
    {
        await using var connection = await db.DataSource.OpenConnectionAsync();
        return await connection.QuerySingleAsync<DeadLetterRow>(
            """
            SELECT (SELECT count(*) FROM event_dead_letters WHERE event_id = @id) AS Count,
                   d.event_type AS EventType, d.payload::text AS Payload, d.error_message AS ErrorMessage,
                   d.retry_count AS RetryCount, d.original_created_at = e.created_at AS SameCreatedAt
            FROM event_dead_letters d JOIN events e ON e.id = d.event_id
            WHERE d.event_id = @id
            ORDER BY d.created_at
            LIMIT 1
            """,
            new { id });
    }

    private static async Task<List<StateRow>> QueryStatesAsync(TestDatabase db)
    {
        await using var connection = await db.DataSource.OpenConnectionAsync();
        var rows = await connection.QueryAsync<StateRow>(
            """
            SELECT id, processed, attempts, locked_by AS LockedBy, (metadata->>'retry_count')::int AS RetryCount
            FROM events ORDER BY created_at, id
            """);
        return [.. rows];
    }

    private sealed record DeadLetterRow(long Count, string EventType, string Payload, string ErrorMessage, int RetryCount, bool SameCreatedAt);

    private sealed record StateRow(Guid Id, bool Processed, int Attempts, string? LockedBy, int? RetryCount);
}
