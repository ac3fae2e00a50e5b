using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Amazon.SQS.Model;
using Dapper;
using EventProcessor.Ingress;
using EventProcessor.Ingress.Classification;
using EventProcessor.Ingress.Clients;
using EventProcessor.Tests.Service;
using EventProcessor.Tests.Support;
using NUnit.Framework.Interfaces;

namespace EventProcessor.Tests.Security;

/// <summary>
/// One tenant, holding nothing but its own client key, tries to harm another through the doors: by taking its ids, by
/// holding its aggregates, by forging the engine's metadata, and by flooding the table. Each attack runs against the
/// real service (a child process, with the <c>fault.*</c> handlers) and its own PostgreSQL database, and must fail.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.All)]
public sealed class TenantIsolationTests
{
    private const string AdminKey = "tenant-tests-admin-key-5c1e";
    private const string A = "tenant-a";
    private const string B = "tenant-b";

    private readonly Dictionary<string, string> _keys = [];
    private TestDatabase _db = null!;
    private ServiceProcess? _service;

    [SetUp]
    public async Task SetUp()
    {
        _db = await TestDatabase.CreateAsync();
        var clients = new ClientStore(_db.DataSource);
        _keys[A] = (await clients.AddAsync(A, null, ["fault.*"], rateLimitPerSecond: 3_000)).ApiKey;
        _keys[B] = (await clients.AddAsync(B, null, ["fault.*"])).ApiKey;
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_service is not null)
        {
            if (TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed)
            {
                await TestContext.Out.WriteLineAsync(_service.Tail(100));
            }

            await _service.DisposeAsync();
        }

        await _db.DisposeAsync();
    }

    [Test]
    public async Task Ids_another_tenant_sends_first_neither_suppress_nor_reveal_a_tenants_events()
    {
        await StartAsync();

        // What A can compute of B's "order-42": its name-based id, in the product's public namespace. A sends it as a
        // UUID, and sends "order-42" itself, before B does.
        var computedIdOfB = DeterministicGuid.Create($"envelope/{B}/order-42");
        Assert.That((await PublishAsync(A, Envelope("order-42"))).Written, Is.EqualTo(1));
        Assert.That((await PublishAsync(A, Envelope(computedIdOfB.ToString()))).Written, Is.EqualTo(1));

        var ofB = await PublishAsync(B, Envelope("order-42"));
        var again = await PublishAsync(B, Envelope("order-42"));

        // Nor can A learn whether an id of B's exists by sending it: it makes an event of A's.
        var otherOfB = await PublishAsync(B, Envelope(Guid.NewGuid().ToString()));
        var probe = await PublishAsync(A, Envelope(otherOfB.Ids[0].ToString()));
        await _service!.WaitUntilAsync(
            async () => await _db.ScalarAsync<bool>("SELECT processed FROM events WHERE id = @id", new { id = ofB.Ids[0] }),
            "B's order-42 is handled");

        Assert.Multiple(async () =>
        {
            Assert.That((ofB.Written, ofB.Duplicates), Is.EqualTo((1, 0)), "B's event is stored, whatever A sent first");
            Assert.That(await _db.ScalarAsync<string>("SELECT tenant_id FROM events WHERE id = @id", new { id = ofB.Ids[0] }), Is.EqualTo(B));
            Assert.That((again.Written, again.Duplicates), Is.EqualTo((0, 1)), "B's own redelivery is still B's duplicate");
            Assert.That((probe.Written, probe.Duplicates), Is.EqualTo((1, 0)), "B's stored id, sent by A, tells A nothing");
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE tenant_id = @A", new { A }), Is.EqualTo(3));
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE tenant_id = @B", new { B }), Is.EqualTo(2));
        });
    }

    [Test]
    public async Task An_id_stored_for_another_tenant_or_none_is_a_conflict_never_a_duplicate()
    {
        await StartAsync();

        // A row of no tenant (inserted by SQL, or through the admin key) that has the id B's next event will have.
        var idOfB = DeterministicGuid.Create($"envelope/{B}/order-7");
        await _db.InsertEventAsync("fault.record", new { }, id: idOfB);

        using var response = await PostAsync("/events", B, $$"""[{{Envelope("order-6")}}, {{Envelope("order-7")}}]""");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Conflict), text);
            Assert.That(text, Does.Contain($"The event id {idOfB} is already used by an event of another tenant, or of none"));
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE tenant_id = @B", new { B }), Is.Zero, "nothing of the delivery is written");
        });
    }

    [Test]
    public async Task A_tenants_failing_events_never_hold_another_tenants_aggregate()
    {
        await StartAsync(("RETRY_BASE_DELAY_MS", "30000"), ("MAX_RETRIES", "3"));

        // A's failing events, first: one in an aggregate id B uses as it is (a UUID), one in the aggregate B's
        // "account-7" is stored under (computable by A, and sent by A as a UUID).
        var uuidAggregate = Guid.NewGuid().ToString();
        var storedAggregateOfB = DeterministicGuid.Create($"aggregate/{B}/account-7").ToString();
        var failing = await PublishAsync(A, $$"""
            [{"event_type": "fault.fail", "aggregate_id": "{{uuidAggregate}}", "payload": {} },
             {"event_type": "fault.fail", "aggregate_id": "{{storedAggregateOfB}}", "payload": {} }]
            """);
        await _service!.WaitUntilAsync(
            async () => await _db.ScalarAsync<long>(
                "SELECT count(*) FROM events WHERE id = ANY(@ids) AND last_failed_attempt = 1 AND NOT processed", new { ids = failing.Ids.ToArray() }) == 2,
            "A's events have failed once and wait 30 s for their retry");

        var ofB = await PublishAsync(B, $$"""
            [{"event_type": "fault.record", "aggregate_id": "{{uuidAggregate}}", "payload": {} },
             {"event_type": "fault.record", "aggregate_id": "account-7", "payload": {} }]
            """);
        await _service.WaitUntilAsync(
            async () => await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE id = ANY(@ids) AND processed", new { ids = ofB.Ids.ToArray() }) == 2,
            "B's events are handled while A's earlier events of the same aggregate ids wait");

        // And while A's event of an aggregate id runs (its aggregate leased for it), B's event of that id runs too.
        var running = Guid.NewGuid().ToString();
        var slow = await PublishAsync(A, $$"""{"event_type": "fault.record", "aggregate_id": "{{running}}", "payload": {"delay_ms": 60000} }""");
        await _service.WaitUntilAsync(
            async () => await _db.ScalarAsync<bool>("SELECT locked_by IS NOT NULL AND attempts = 1 FROM events WHERE id = @id", new { id = slow.Ids[0] }),
            "A's slow event is claimed");
        var beside = await PublishAsync(B, $$"""{"event_type": "fault.record", "aggregate_id": "{{running}}", "payload": {} }""");
        await _service.WaitUntilAsync(
            async () => await _db.ScalarAsync<bool>("SELECT processed FROM events WHERE id = @id", new { id = beside.Ids[0] }),
            "B's event runs beside A's running event of the same aggregate id",
            TimeSpan.FromSeconds(15));

        Assert.Multiple(async () =>
        {
            Assert.That(
                await _db.ScalarAsync<long>("SELECT count(DISTINCT aggregate_id) FROM events WHERE id = ANY(@ids)", new { ids = failing.Ids.Concat(ofB.Ids).ToArray() }),
                Is.EqualTo(2),
                "the same aggregate ids in the table: only the tenant tells them apart");
            Assert.That(
                await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE id = ANY(@ids) AND NOT processed", new { ids = failing.Ids.ToArray() }),
                Is.EqualTo(2),
                "A's events still wait for their retry");
        });
    }

    [Test]
    public async Task An_event_run_on_demand_does_not_wait_for_another_tenants_earlier_event_of_its_aggregate_id()
    {
        await StartAsync(("ENABLE_POLLING", "false"));
        var aggregate = Guid.NewGuid().ToString();
        await PublishAsync(A, $$"""{"event_type": "fault.record", "aggregate_id": "{{aggregate}}", "payload": {} }""");
        var ofB = await PublishAsync(B, $$"""{"event_type": "fault.record", "aggregate_id": "{{aggregate}}", "payload": {} }""");

        using var response = await PostAsync("/process-event", AdminKey, $$"""{"event_id": "{{ofB.Ids[0]}}"}""", asKey: true);
        var text = await response.Content.ReadAsStringAsync();

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            Assert.That(JsonDocument.Parse(text).RootElement.GetProperty("outcome").GetString(), Is.EqualTo("completed"), text);
        });
    }

    [Test]
    public async Task Reserved_metadata_is_refused_at_both_HTTP_doors_and_nothing_is_written()
    {
        await StartAsync();
        foreach (var key in EventClassifier.ReservedMetadataKeys)
        {
            var envelope = $$"""{"event_type": "fault.record", "payload": {}, "metadata": {"{{key}}": -1} }""";
            using var published = await PostAsync("/events", A, envelope);
            using var processed = await PostAsync("/process", AdminKey, envelope, asKey: true);
            var publishedText = await published.Content.ReadAsStringAsync();
            var processedText = await processed.Content.ReadAsStringAsync();
            Assert.Multiple(() =>
            {
                Assert.That(published.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), publishedText);
                Assert.That(publishedText, Does.Contain($"metadata.{key}: reserved"), publishedText);
                Assert.That(processed.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), processedText);
                Assert.That(processedText, Does.Contain($"metadata.{key}: reserved"), processedText);
            });
        }

        Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events"), Is.Zero);
    }

    [Test]
    public async Task Reserved_metadata_and_an_invalid_event_type_on_SQS_are_dead_lettered_with_the_reason_and_never_stored_as_events()
    {
        await SqsServer.StartAsync();
        var queue = await SqsServer.CreateQueueAsync("tenant-forged");
        await StartAsync(
            ("Sqs__Queues__0__Url", queue),
            ("Sqs__ServiceUrl", SqsServer.ServiceUrl.ToString()),
            ("Sqs__Region", SqsServer.Region),
            ("Sqs__WaitTimeSeconds", "1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"));
        await SqsServer.Client.SendMessageAsync(new SendMessageRequest
        {
            QueueUrl = queue,
            MessageBody = """{"event_type": "fault.record", "payload": {}, "metadata": {"retry_count": -1}}""",
            MessageAttributes = new() { ["client_id"] = new MessageAttributeValue { DataType = "String", StringValue = A } },
        });
        await SqsServer.Client.SendMessageAsync(queue, """{"event_type": "fault.record\n[INF] forged", "payload": {}}""");
        await SqsServer.Client.SendMessageAsync(queue, """{"event_type": "fault.record", "payload": {"n": 2}}""");

        await _service!.WaitUntilAsync(
            async () => await _db.ScalarAsync<long>("SELECT count(*) FROM event_dead_letters") == 2
                && await _db.ScalarAsync<long>("SELECT count(*) FROM events") == 1,
            "the forged messages are dead-lettered and the other stored");

        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var reasons = (await connection.QueryAsync<string>("SELECT error_message FROM event_dead_letters")).ToList();
        Assert.Multiple(async () =>
        {
            Assert.That(reasons, Has.One.Contains("metadata.retry_count: reserved"));
            Assert.That(reasons, Has.One.Contains("event_type: \"fault.record\\n[INF] forged\" is not valid"), "the event type rule holds on SQS too");
            Assert.That(await _db.ScalarAsync<string>("SELECT payload::text FROM events"), Is.EqualTo("""{"n": 2}"""));
        });
    }

    [Test]
    public async Task A_forged_retry_count_in_a_row_never_changes_how_it_is_claimed()
    {
        // The attack of the issue, inserted by SQL so that no door stands in the way: three events whose metadata
        // claims fewer failures than attempts (the old suspect rule ran each alone, the process claiming nothing else
        // meanwhile), then ten of another tenant's. One event a batch: events of one batch run one after the other,
        // so only the suspect rule can make one event wait for another here.
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        var forged = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            forged.Add(await InsertAsync(A, """{"delay_ms": 5000}""", """{"retry_count": -1}""", start.AddMilliseconds(i)));
        }

        var others = new List<Guid>();
        for (var i = 0; i < 10; i++)
        {
            others.Add(await InsertAsync(B, "{}", "{}", start.AddMilliseconds(10 + i)));
        }

        await StartAsync(("BATCH_SIZE", "1"));
        await _service!.WaitUntilAsync(
            async () => await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed") == 13, "every event is handled", TimeSpan.FromSeconds(60));

        // Each handler writes its fault_effects row when it starts: B's events start while the first forged one still
        // sleeps (5 s), not after it.
        var othersStarted = await _db.ScalarAsync<DateTime>(
            "SELECT max(started_at) FROM fault_effects WHERE event_id = ANY(@others)", new { others = others.ToArray() });
        var forgedStarted = await _db.ScalarAsync<DateTime>(
            "SELECT min(started_at) FROM fault_effects WHERE event_id = ANY(@forged)", new { forged = forged.ToArray() });
        Assert.That(othersStarted, Is.LessThan(forgedStarted.AddSeconds(5)), "B's events ran beside the forged ones, not after them");
    }

    [Test]
    public async Task A_forged_retry_count_never_hides_an_attempt_that_did_not_finish()
    {
        // An event whose first attempt never ended (its process died), with metadata claiming a thousand failures. It is
        // still a suspect: it runs alone, so the other events wait for it.
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        var suspect = await InsertAsync(A, """{"delay_ms": 2000}""", """{"retry_count": 1000}""", start);
        await _db.ExecuteAsync("UPDATE events SET attempts = 1 WHERE id = @suspect", new { suspect });
        var others = new List<Guid>();
        for (var i = 0; i < 5; i++)
        {
            others.Add(await InsertAsync(B, "{}", "{}", start.AddMilliseconds(10 + i)));
        }

        await StartAsync(("BATCH_SIZE", "1"));
        await _service!.WaitUntilAsync(
            async () => await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed") == 6, "every event is handled");

        // Each handler writes its fault_effects row when it starts; the suspect then sleeps 2 s.
        var suspectStarted = await _db.ScalarAsync<DateTime>("SELECT started_at FROM fault_effects WHERE event_id = @suspect", new { suspect });
        var during = await _db.ScalarAsync<long>(
            "SELECT count(*) FROM fault_effects WHERE event_id = ANY(@others) AND started_at > @suspectStarted AND started_at < @suspectDone",
            new { others = others.ToArray(), suspectStarted, suspectDone = suspectStarted.AddSeconds(2) });
        Assert.That(during, Is.Zero, "the suspect ran alone: nothing else started while it ran");
    }

    [Test]
    public async Task A_burst_beyond_its_rate_gets_429_while_another_tenants_events_keep_their_latency()
    {
        await StartAsync();

        // A may publish 3,000 events a second, and sends requests of 1,000 (MAX_EVENTS_PER_REQUEST) as fast as it can
        // until it is refused. Each of A's events keeps a handler busy for 20 ms, so its backlog takes seconds to drain.
        var burst = "[" + string.Join(",", Enumerable.Repeat("""{"event_type": "fault.record", "payload": {"delay_ms": 20}}""", 1_000)) + "]";
        var accepted = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        HttpResponseMessage? over = null;
        for (var i = 0; i < 30 && over is null; i++)
        {
            var response = await PostAsync("/events", A, burst);
            if (response.StatusCode == HttpStatusCode.Accepted)
            {
                accepted += 1_000;
                response.Dispose();
            }
            else
            {
                over = response;
            }
        }

        var burstSeconds = clock.Elapsed.TotalSeconds;
        Assert.That(over, Is.Not.Null, $"A sent {accepted} events in {burstSeconds:0.0} s and was never refused");
        using var refused = over!;
        var overText = await refused.Content.ReadAsStringAsync();
        var retryAfter = refused.Headers.RetryAfter?.Delta;

        // B publishes one event at a time while A's backlog drains.
        var ofB = new List<Guid>();
        for (var i = 0; i < 10; i++)
        {
            ofB.Add((await PublishAsync(B, """{"event_type": "fault.record", "payload": {}}""")).Ids[0]);
            await Task.Delay(100);
        }

        await _service!.WaitUntilAsync(
            async () => await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed") == accepted + 10,
            "every event is handled",
            TimeSpan.FromSeconds(120));

        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var rows = (await connection.QueryAsync<(double LatencyMs, long Overtaken)>(
            """
            SELECT extract(epoch FROM b.processed_at - b.created_at) * 1000,
                   (SELECT count(*) FROM events a
                    WHERE a.tenant_id = @A AND a.created_at < b.created_at AND a.processed_at > b.processed_at)
            FROM events b WHERE b.id = ANY(@ofB)
            """,
            new { A, ofB = ofB.ToArray() })).ToList();
        var drain = await connection.ExecuteScalarAsync<double>(
            "SELECT extract(epoch FROM max(processed_at) - min(created_at)) FROM events WHERE tenant_id = @A", new { A });
        var latencies = rows.Select(r => r.LatencyMs).Order().ToArray();
        await TestContext.Out.WriteLineAsync(string.Create(
            CultureInfo.InvariantCulture,
            $"A was refused after {accepted} events in {burstSeconds:0.0} s; they drained in {drain:0.0} s; B's 10 events, insert to handled: p50 {latencies[4]:0} ms, max {latencies[^1]:0} ms; " +
            $"each overtook at least {rows.Min(r => r.Overtaken)} of A's earlier events."));

        Assert.Multiple(async () =>
        {
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests), overText);
            Assert.That(retryAfter, Is.Not.Null.And.GreaterThanOrEqualTo(TimeSpan.FromSeconds(1)), "Retry-After says when to come back");
            Assert.That(overText, Does.Contain($"Client '{A}' may publish 3000 events per second; nothing was written"));
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE tenant_id = @A", new { A }), Is.EqualTo(accepted), "a refused request writes nothing");
            Assert.That(accepted, Is.InRange(3_000, 3_000 * (1 + (int)Math.Ceiling(burstSeconds))), "a second's events at once, then the rate");

            // In FIFO order B's events would have waited behind A's backlog: none could overtake more than the events
            // already running (WORKERS x BATCH_SIZE, twice over while fates are written).
            Assert.That(rows.Min(r => r.Overtaken), Is.GreaterThan(2 * 16 * 20), "B's events went ahead of A's backlog, in turns");
        });
    }

    [Test]
    public async Task A_request_of_more_events_than_a_client_may_send_in_a_second_is_refused_whole()
    {
        await new ClientStore(_db.DataSource).UpdateAsync(B, rateLimitPerSecond: 5);
        await StartAsync();
        var six = "[" + string.Join(",", Enumerable.Repeat("""{"event_type": "fault.record", "payload": {}}""", 6)) + "]";

        using var response = await PostAsync("/events", B, six);
        var text = await response.Content.ReadAsStringAsync();

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge), text);
            Assert.That(text, Does.Contain("may send 5 per second, so at most 5 in one request"));
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events"), Is.Zero);
        });
    }

    [Test]
    public async Task A_row_inserted_by_SQL_with_an_invalid_event_type_is_dead_lettered_with_the_reason()
    {
        var id = await _db.InsertEventAsync("fault.record\n[INF] forged line");
        await StartAsync();

        await _service!.WaitUntilAsync(
            async () => await _db.ScalarAsync<long>("SELECT count(*) FROM event_dead_letters WHERE event_id = @id", new { id }) == 1,
            "the event is dead-lettered");

        Assert.That(
            await _db.ScalarAsync<string>("SELECT error_message FROM event_dead_letters WHERE event_id = @id", new { id }),
            Does.StartWith("Its event_type \"fault.record\\n[INF] forged line\" is not valid: an event type is 1 to 100 letters"));
    }

    private async Task StartAsync(params (string Key, string Value)[] settings)
    {
        var all = new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = _db.Url,
            ["ADMIN_API_KEY"] = AdminKey,
            ["RUN_MIGRATIONS"] = "false",
            ["LOG_LEVEL"] = "warn",
            ["RETRY_BASE_DELAY_MS"] = "100",
        };
        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        _service = await ServiceProcess.StartAsync(all, assembly: ServiceProcess.FaultHostAssembly);
    }

    private static string Envelope(string id) => $$"""{"id": "{{id}}", "event_type": "fault.record", "payload": {} }""";

    private async Task<Guid> InsertAsync(string tenant, string payload, string metadata, DateTimeOffset createdAt)
    {
        var id = Guid.NewGuid();
        await _db.ExecuteAsync(
            """
            INSERT INTO events (id, event_type, payload, metadata, tenant_id, created_at)
            VALUES (@id, 'fault.record', @payload::jsonb, @metadata::jsonb, @tenant, @createdAt)
            """,
            new { id, payload, metadata, tenant, createdAt });
        return id;
    }

    private async Task<Receipt> PublishAsync(string tenant, string body)
    {
        using var response = await PostAsync("/events", tenant, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
        using var json = JsonDocument.Parse(text);
        return new Receipt(
            [.. json.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetGuid())],
            json.RootElement.GetProperty("written").GetInt32(),
            json.RootElement.GetProperty("duplicates").GetInt32());
    }

    // tenant: a client's id, whose key is sent; or, with asKey, the key itself.
    private async Task<HttpResponseMessage> PostAsync(string path, string tenant, string body, bool asKey = false)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(body, Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
        request.Headers.Add("X-API-Key", asKey ? tenant : _keys[tenant]);
        return await _service!.Http.SendAsync(request);
    }

    private sealed record Receipt(List<Guid> Ids, int Written, int Duplicates);
}
