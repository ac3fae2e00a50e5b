using System.Text;
using System.Text.Json;
using EventProcessor.Host.Endpoints;
using EventProcessor.Tests.Host;
using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Security;

/// <summary>
/// A corpus of hostile requests against every HTTP endpoint: malformed, truncated and deeply nested JSON, wrong
/// types, bodies over the limit, NUL characters and invalid UTF-8, unknown and repeated fields, SQL metacharacters,
/// unknown and repeated ids, wrong content types, bad keys. Each must get a 4xx problem+json whose detail says what
/// is wrong, write nothing, show nothing of the service's insides, and leave the service serving.
/// </summary>
/// <remarks>
/// One service and one database serve the whole corpus, run one request at a time: every request is checked against
/// the row counts taken just before it. The database holds a pending event, a processed one and a dead letter whose
/// event is dead-lettered, so that a request wrongly accepted would change something visible.
/// </remarks>
[Parallelizable(ParallelScope.Self)]
public sealed class HostileInputCorpusTests
{
    private const string AdminKey = "corpus-admin-key-3b9d";
    private const string ClientKey = "epk_corpus_tenant_key_5d21";
    private const string Json = "application/json";
    private const int MaxBodyBytes = 64 * 1024;
    private const string Sql = "'; DROP TABLE events; --";

    /// <summary>The deadline the corpus's service has for receiving a request (REQUEST_TIMEOUT_MS).</summary>
    private const int RequestTimeoutMs = 3000;

    /// <summary>How trickled bodies are sent: 500 bytes/s, twice Kestrel's floor, so only the deadline stops them.</summary>
    private const int TrickleBytes = 50;

    private static readonly TimeSpan TrickleInterval = TimeSpan.FromMilliseconds(100);

    private static readonly Guid Pending = Guid.Parse("0b7e5c1a-0000-4000-8000-000000000001");
    private static readonly Guid Processed = Guid.Parse("0b7e5c1a-0000-4000-8000-000000000002");
    private static readonly Guid DeadLettered = Guid.Parse("0b7e5c1a-0000-4000-8000-000000000003");
    private static readonly Guid DeadLetter = Guid.Parse("0b7e5c1a-0000-4000-8000-0000000000d1");
    private static readonly Guid Unknown = Guid.Parse("0b7e5c1a-0000-4000-8000-00000000ffff");

    private TestDatabase _db = null!;
    private ServiceAppFixture _service = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _db = await TestDatabase.CreateAsync();
        await _db.InsertEventAsync("corpus.pending", new { n = 1 }, id: Pending);
        await _db.InsertEventAsync("corpus.processed", new { n = 2 }, id: Processed);
        await _db.InsertEventAsync("corpus.dead", new { n = 3 }, id: DeadLettered);
        await _db.ExecuteAsync(
            """
            UPDATE events SET processed = true, processed_at = now() WHERE id = @Processed;
            UPDATE events SET processed = true, processed_at = now(), attempts = 5,
                   metadata = '{"dead_lettered": true, "retry_count": 5, "last_error": "boom"}' WHERE id = @DeadLettered;
            INSERT INTO event_dead_letters (id, event_id, event_type, payload, error_message, retry_count, original_created_at)
            VALUES (@DeadLetter, @DeadLettered, 'corpus.dead', '{"n": 3}', 'boom', 5, now());
            INSERT INTO clients (id, name, api_key_hash, allowed_event_types)
            VALUES ('corpus-tenant', 'A tenant', sha256(convert_to(@ClientKey, 'UTF8')), '{*}');
            """,
            new { Processed, DeadLettered, DeadLetter, ClientKey });
        _service = await ServiceAppFixture.StartAsync(
            _db,
            settings:
            [
                new("ADMIN_API_KEY", AdminKey),
                new("ADMIN_RATE_LIMIT_PER_MINUTE", "1000000"),
                new("MAX_BODY_BYTES", MaxBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                new("REQUEST_TIMEOUT_MS", RequestTimeoutMs.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ]);
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_service is not null)
        {
            await _service.DisposeAsync();
        }

        if (_db is not null)
        {
            await _db.DisposeAsync();
        }
    }

    [TestCaseSource(nameof(Corpus))]
    public async Task Is_refused_with_a_clear_problem_writing_nothing_and_the_service_keeps_serving(HostileRequest hostile)
    {
        var before = await SecurityChecks.CountRowsAsync(_db);

        using var response = await SendAsync(hostile);
        var text = await response.Content.ReadAsStringAsync();
        var after = await SecurityChecks.CountRowsAsync(_db);

        Assert.Multiple(() =>
        {
            Assert.That((int)response.StatusCode, Is.EqualTo(hostile.Expected), text);
            Assert.That(after, Is.EqualTo(before), "nothing was written");
            Assert.That(response.Headers.Contains("Server"), Is.False, "no Server header names the web server");
            SecurityChecks.AssertNothingLeaks(text, hostile.ToString(), AdminKey, ClientKey);
        });
        if (hostile.RefusedBeforeTheApp)
        {
            // Kestrel's own answer: the status only.
        }
        else if (hostile.Expected >= 400)
        {
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"), text);
            using var problem = JsonDocument.Parse(text);
            Assert.Multiple(() =>
            {
                Assert.That(problem.RootElement.GetProperty("status").GetInt32(), Is.EqualTo(hostile.Expected), text);
                Assert.That(problem.RootElement.TryGetProperty("detail", out var detail) ? detail.GetString() : null, Is.Not.Null.And.Not.Empty, "the detail says what is wrong");
            });
        }
        else
        {
            var health = JsonDocument.Parse(text).RootElement;
            Assert.Multiple(() =>
            {
                Assert.That(health.GetProperty("status").GetString(), Is.EqualTo("healthy"), text);
                Assert.That(health.GetProperty("registry").TryGetProperty("eventTypes", out _), Is.False, $"no event types without the admin key: {text}");
                Assert.That(health.TryGetProperty("ingress", out _), Is.False, $"no ingress counts without the admin key: {text}");
            });
        }

        await _service.AssertStillServingAsync();
    }

    public static IEnumerable<TestCaseData> Corpus() =>
        ProcessEvent().Concat(ProcessBatch()).Concat(Replay()).Concat(RetryDeadLetter()).Concat(Events()).Concat(Process()).Concat(Health())
            .Concat(SlowBodiesAndProbes()).Concat(TenantAttacks())
            .Select(c => new TestCaseData(c).SetName($"{c.Endpoint}: {c.Name}"));

    private static IEnumerable<HostileRequest> ProcessEvent()
    {
        const string Path = "/process-event";
        var valid = $$"""{"event_id": "{{Pending}}"}""";
        foreach (var common in Common(Path, valid, AdminEndpoints.MaxBodyBytes, maxNesting: 1_000, emptyObjectIsValid: false))
        {
            yield return common;
        }

        yield return Post(Path, "event_id a number", """{"event_id": 42}""", 400);
        yield return Post(Path, "event_id an array", $$"""{"event_id": ["{{Pending}}"]}""", 400);
        yield return Post(Path, "event_id an object (operator injection)", """{"event_id": {"$ne": null}}""", 400);
        yield return Post(Path, "event_id null", """{"event_id": null}""", 400);
        yield return Post(Path, "event_id true", """{"event_id": true}""", 400);
        yield return Post(Path, "event_id with SQL", $$"""{"event_id": "{{Sql}}"}""", 400);
        yield return Post(Path, "event_id with a quote and OR", $$"""{"event_id": "{{Pending}}' OR '1'='1"}""", 400);
        yield return Post(Path, "event_id with dollar quotes", """{"event_id": "$$ SELECT pg_sleep(10) $$"}""", 400);
        yield return Post(Path, "event_id with backslashes", """{"event_id": "\\\\x00\\\\"}""", 400);
        yield return Post(Path, "event_id an unpaired surrogate", """{"event_id": "\udfff"}""", 400);
        yield return Post(Path, "event_id with NUL", $$"""{"event_id": "{{Pending}}\u0000"}""", 400);
        yield return Post(Path, "event_id 3000 characters", $$"""{"event_id": "{{new string('9', 3000)}}"}""", 400);
        yield return Post(Path, "unknown field beside a pending id", $$"""{"event_id": "{{Pending}}", "force": true}""", 400);
        yield return Post(Path, "event_id given twice", $$"""{"event_id": "{{Unknown}}", "event_id": "{{Pending}}"}""", 400);
        yield return Post(Path, "misnamed id", $$"""{"id": "{{Pending}}"}""", 400);
        yield return Post(Path, "unknown id", $$"""{"event_id": "{{Unknown}}"}""", 404);
        yield return Post(Path, "processed id", $$"""{"event_id": "{{Processed}}"}""", 409);
        yield return Post(Path, "dead-lettered id", $$"""{"event_id": "{{DeadLettered}}"}""", 409);
        yield return Post(Path, "the nil UUID", $$"""{"event_id": "{{Guid.Empty}}"}""", 404);
    }

    private static IEnumerable<HostileRequest> ProcessBatch()
    {
        const string Path = "/process-batch";
        foreach (var common in Common(Path, "{}", AdminEndpoints.MaxBodyBytes, maxNesting: 1_000, emptyObjectIsValid: true))
        {
            yield return common;
        }

        yield return Post(Path, "a field", """{"limit": 1000000}""", 400);
        yield return Post(Path, "an array", "[]", 400);
        yield return Post(Path, "an empty string", "\"\"", 400);
        yield return Post(Path, "SQL as a field name", $$"""{"{{Sql}}": 1}""", 400);
    }

    private static IEnumerable<HostileRequest> Replay()
    {
        const string Path = "/replay";
        var valid = $$"""{"event_ids": ["{{Processed}}"]}""";
        foreach (var common in Common(Path, valid, AdminEndpoints.MaxReplayBodyBytes, maxNesting: 1_000, emptyObjectIsValid: false))
        {
            yield return common;
        }

        yield return Post(Path, "event_ids a string", $$"""{"event_ids": "{{Processed}}"}""", 400);
        yield return Post(Path, "event_ids empty", """{"event_ids": []}""", 400);
        yield return Post(Path, "event_ids null", """{"event_ids": null}""", 400);
        yield return Post(Path, "event_ids with a number", """{"event_ids": [42]}""", 400);
        yield return Post(Path, "event_ids with null", """{"event_ids": [null]}""", 400);
        yield return Post(Path, "event_ids with a nested array", $$"""{"event_ids": [["{{Processed}}"]]}""", 400);
        yield return Post(Path, "event_ids with SQL", $$"""{"event_ids": ["{{Sql}}"]}""", 400);
        yield return Post(Path, "event_ids with SQL after a processed id", $$"""{"event_ids": ["{{Processed}}", "') OR true; --"]}""", 400);
        yield return Post(Path, "event_ids with an unpaired surrogate", """{"event_ids": ["\ud800"]}""", 400);
        yield return Post(Path, "event_ids with NUL", $$"""{"event_ids": ["{{Processed}}\u0000"]}""", 400);
        yield return Post(Path, "a processed id twice", $$"""{"event_ids": ["{{Processed}}", "{{Processed}}"]}""", 400);
        yield return Post(Path, "the same id in two spellings", $$"""{"event_ids": ["{{Processed}}", "{{Processed.ToString().ToUpperInvariant()}}"]}""", 400);
        yield return Post(Path, "event_ids given twice", $$"""{"event_ids": ["{{Unknown}}"], "event_ids": ["{{Processed}}"]}""", 400);
        yield return Post(Path, "unknown field beside a processed id", $$"""{"event_ids": ["{{Processed}}"], "force": true}""", 400);
        yield return Post(Path, "1001 ids", JsonSerializer.Serialize(new { event_ids = Enumerable.Range(0, 1001).Select(i => new Guid(i, 0, 0, new byte[8])) }), 400);
        yield return Post(Path, "only unknown ids", $$"""{"event_ids": ["{{Unknown}}", "{{Guid.Empty}}"]}""", 404);
    }

    private static IEnumerable<HostileRequest> RetryDeadLetter()
    {
        var path = $"/dead-letters/{DeadLetter}/retry";
        foreach (var common in Common(path, "{}", AdminEndpoints.MaxBodyBytes, maxNesting: 1_000, emptyObjectIsValid: true, endpoint: "/dead-letters/{id}/retry"))
        {
            yield return common;
        }

        const string Endpoint = "/dead-letters/{id}/retry";
        yield return Post(path, "a field", """{"force": true}""", 400, endpoint: Endpoint);
        yield return Post("/dead-letters/" + Uri.EscapeDataString(Sql) + "/retry", "SQL as the id", (string?)null, 400, endpoint: Endpoint);
        yield return Post("/dead-letters/" + Uri.EscapeDataString("' OR 1=1 --") + "/retry", "OR 1=1 as the id", (string?)null, 400, endpoint: Endpoint);
        yield return Post("/dead-letters/" + Uri.EscapeDataString("$$x$$") + "/retry", "dollar quotes as the id", (string?)null, 400, endpoint: Endpoint);
        yield return Post("/dead-letters/" + new string('a', 2000) + "/retry", "a 2000-character id", (string?)null, 400, endpoint: Endpoint);
        yield return Post($"/dead-letters/{DeadLetter}%00/retry", "a NUL after the id (refused by Kestrel, before the app)", (string?)null, 400, endpoint: Endpoint) with
        {
            RefusedBeforeTheApp = true,
        };
        yield return Post($"/dead-letters/{Unknown}/retry", "unknown dead letter", (string?)null, 404, endpoint: Endpoint);
        yield return Post($"/dead-letters/{DeadLettered}/retry", "an event id, not a dead letter id", (string?)null, 404, endpoint: Endpoint);
        yield return new HostileRequest(Endpoint, "GET", "GET", path, null, null, true, [], 405);
    }

    private static IEnumerable<HostileRequest> Events()
    {
        const string Path = "/events";
        var valid = """{"event_type": "corpus.new", "payload": {"n": 4}}""";
        foreach (var common in Common(Path, valid, MaxBodyBytes, maxNesting: 5_000, emptyObjectIsValid: false))
        {
            yield return common;
        }

        yield return Post(Path, "event_type a number", """{"event_type": 42, "payload": {}}""", 400);
        yield return Post(Path, "event_type blank", """{"event_type": "   ", "payload": {}}""", 400);
        yield return Post(Path, "event_type 101 characters", $$$"""{"event_type": "{{{new string('t', 101)}}}", "payload": {}}""", 400);
        yield return Post(Path, "event_type 10000 characters", $$$"""{"event_type": "{{{new string('t', 10_000)}}}", "payload": {}}""", 400);
        yield return Post(Path, "event_type with NUL", """{"event_type": "corpus\u0000new", "payload": {}}""", 400);
        yield return Post(Path, "aggregate_type 51 characters", $$$"""{"event_type": "corpus.new", "aggregate_type": "{{{new string('a', 51)}}}", "payload": {}}""", 400);
        yield return Post(Path, "payload missing", """{"event_type": "corpus.new"}""", 400);
        yield return Post(Path, "payload null", """{"event_type": "corpus.new", "payload": null}""", 400);
        yield return Post(Path, "payload with NUL", """{"event_type": "corpus.new", "payload": {"s": "a\u0000b"}}""", 400);
        yield return Post(Path, "payload with an unpaired surrogate", """{"event_type": "corpus.new", "payload": {"s": "\ud800"}}""", 400);
        yield return Post(Path, "payload with a number that prints as 131072 digits", """{"event_type": "corpus.new", "payload": {"n": 1e131071}}""", 413);
        yield return Post(Path, "metadata a string", """{"event_type": "corpus.new", "payload": {}, "metadata": "x"}""", 400);
        yield return Post(Path, "aggregate_id a number", """{"event_type": "corpus.new", "payload": {}, "aggregate_id": 42}""", 400);
        yield return Post(Path, "unknown field", """{"event_type": "corpus.new", "payload": {}, "processed": true}""", 400);
        yield return Post(Path, "SQL as an unknown field", $$"""{"event_type": "corpus.new", "payload": {}, "{{Sql}}": 1}""", 400);
        yield return Post(Path, "a valid event then an invalid one", """[{"event_type": "corpus.new", "payload": {}}, {"event_type": 1, "payload": {}}]""", 400);
        yield return Post(Path, "a schema violation", """{"event_type": "user.created", "payload": {"email": 42}}""", 422);
        yield return Post(Path, "no key", valid, 401, withKey: false);
        yield return Post(Path, "an unknown client key", valid, 401, withKey: false, headers: [("X-API-Key", "epk_not_a_client")]);
        yield return Post(Path, "SQL as the key", valid, 401, withKey: false, headers: [("X-API-Key", Sql)]);
        yield return Post(Path, "OR 1=1 as a bearer key", valid, 401, withKey: false, headers: [("Authorization", "Bearer ' OR '1'='1")]);
        yield return Post(Path, "a 16 KB key", valid, 401, withKey: false, headers: [("X-API-Key", new string('k', 16 * 1024))]);
    }

    /// <summary>What a tenant sends to take over engine state or another's log lines, or to flood the table.</summary>
    private static IEnumerable<HostileRequest> TenantAttacks()
    {
        foreach (var key in EventProcessor.Ingress.Classification.EventClassifier.ReservedMetadataKeys)
        {
            yield return Post("/events", $"metadata.{key} forged", $$$"""{"event_type": "corpus.new", "payload": {}, "metadata": {"{{{key}}}": -1}}""", 400);
        }

        yield return Post("/process", "an envelope with metadata.retry_count forged", """{"event_type": "corpus.new", "payload": {}, "metadata": {"retry_count": -1}}""", 400);
        yield return Post("/process", "an envelope with metadata.tenant_id forged", """{"event_type": "corpus.new", "payload": {}, "metadata": {"tenant_id": "client-002"}}""", 400);
        yield return Post("/events", "event_type with a newline and a forged log line", """{"event_type": "corpus.new\n[12:00:00 INF] admin logged in", "payload": {}}""", 400);
        yield return Post("/events", "event_type with a carriage return", """{"event_type": "corpus.new\r", "payload": {}}""", 400);
        yield return Post("/events", "event_type with a terminal escape", """{"event_type": "corpus\u001b[31mnew", "payload": {}}""", 400);
        yield return Post("/events", "event_type with a space", """{"event_type": "corpus new", "payload": {}}""", 400);
        yield return Post("/events", "event_type starting with a dot", """{"event_type": ".corpus", "payload": {}}""", 400);
        yield return Post("/events", "event_type with a slash", """{"event_type": "corpus/../new", "payload": {}}""", 400);
        yield return Post("/events", "event_type with a line separator", """{"event_type": "corpus\u2028new", "payload": {}}""", 400);
        yield return Post("/process", "EventBridge source with a newline", """{"source": "aws.ecs\nforged", "detail-type": "x", "id": "e-1", "detail": {}}""", 400);
        yield return Post(
            "/events",
            "1,001 envelopes, over MAX_EVENTS_PER_REQUEST",
            "[" + string.Join(",", Enumerable.Repeat("""{"event_type": "corpus.new", "payload": 1}""", 1_001)) + "]",
            413);
    }

    private static IEnumerable<HostileRequest> Process()
    {
        const string Path = "/process";
        var valid = AwsFixtures.Read("ecs-task-state-change-event.json");
        foreach (var common in Common(Path, valid, MaxBodyBytes, maxNesting: 5_000, emptyObjectIsValid: false))
        {
            yield return common;
        }

        yield return Post(Path, "an unknown shape", """{"hello": "world"}""", 400);
        yield return Post(Path, "EventBridge without detail", """{"source": "aws.ecs", "detail-type": "ECS Task State Change", "id": "x"}""", 400);
        yield return Post(
            Path,
            "EventBridge with a 200-character detail-type",
            valid.Replace("ECS Task State Change", new string('D', 200), StringComparison.Ordinal),
            400);
        yield return Post(Path, "EventBridge with NUL in detail", valid.Replace("\"lastStatus\": \"", "\"lastStatus\": \"\\u0000", StringComparison.Ordinal), 400);
        yield return Post(Path, "awslogs data not base64", """{"awslogs": {"data": "!!! not base64 !!!"}}""", 400);
        yield return Post(Path, "awslogs data not gzip", """{"awslogs": {"data": "aGVsbG8gd29ybGQ="}}""", 400);
        yield return Post(Path, "awslogs data a number", """{"awslogs": {"data": 42}}""", 400);
        yield return Post(Path, "Records not an array", """{"Records": "x"}""", 400);
        yield return Post(Path, "an SQS record without a body", """{"Records": [{"eventSource": "aws:sqs", "messageId": "m1"}]}""", 400);
        yield return Post(Path, "no key", valid, 401, withKey: false);
        yield return Post(Path, "SQL as the key", valid, 401, withKey: false, headers: [("X-API-Key", Sql)]);
    }

    private static IEnumerable<HostileRequest> Health()
    {
        const string Endpoint = "/health";
        yield return new HostileRequest(Endpoint, "a JSON body on GET", "GET", "/health", Utf8("""{"status": "unhealthy"}"""), Json, false, [], 200);
        yield return new HostileRequest(Endpoint, "SQL in the query", "GET", "/health?q=" + Uri.EscapeDataString(Sql), null, null, false, [], 200);
        yield return new HostileRequest(Endpoint, "SQL as a key", "GET", "/health", null, null, false, [("X-API-Key", Sql)], 200);
        yield return new HostileRequest(Endpoint, "a 16 KB header", "GET", "/health", null, null, false, [("X-Padding", new string('p', 16 * 1024))], 200);
        yield return new HostileRequest(Endpoint, "POST", "POST", "/health", Utf8("{}"), Json, true, [], 405);
        yield return new HostileRequest(Endpoint, "DELETE", "DELETE", "/health", null, null, true, [], 405);
    }

    /// <summary>
    /// Requests that hold the service or probe it rather than confuse it: a valid body sent at twice Kestrel's
    /// 240 bytes/s floor but too slowly in all, cut off at <c>REQUEST_TIMEOUT_MS</c> with 408; keys that are not the
    /// admin's asking <c>GET /health</c> for the tenants' event types and traffic; a replay of 999 unknown ids.
    /// </summary>
    private static IEnumerable<HostileRequest> SlowBodiesAndProbes()
    {
        var envelope = $$$"""{"event_type": "corpus.new", "payload": {"text": "{{{new string('x', 2000 - 61)}}}"}}""";
        yield return Post("/events", "a valid event of 2000 bytes trickled in over 4 s", envelope, 408) with { Trickled = true };
        var replay = JsonSerializer.Serialize(new { event_ids = (Guid[])[Processed, .. Enumerable.Range(1, 49).Select(i => new Guid(i, 0, 0, new byte[8]))] });
        yield return Post("/replay", "a processed id among 50 (2000 bytes) trickled in over 4 s", replay, 408) with { Trickled = true };
        var lambda = AwsFixtures.Read("ecs-task-state-change-event.json");
        yield return Post("/process", "an ECS event padded to 2000 bytes trickled in over 4 s", lambda.PadRight(2000), 408) with { Trickled = true };

        // What GET /health shows a caller without the admin key: the seed's body, never the tenants' event types or
        // their traffic (checked for every 200 of the corpus).
        yield return new HostileRequest("/health", "a client's key", "GET", "/health", null, null, false, [("X-API-Key", ClientKey)], 200);
        yield return new HostileRequest("/health", "a client's key as a bearer", "GET", "/health", null, null, false, [("Authorization", $"Bearer {ClientKey}")], 200);
        yield return new HostileRequest("/health", "the admin key with a character more", "GET", "/health", null, null, false, [("X-API-Key", AdminKey + "x")], 200);
        yield return new HostileRequest("/health", "the admin key in the query string", "GET", "/health?api_key=" + AdminKey, null, null, false, [], 200);
        yield return new HostileRequest("/health", "the admin key as Basic credentials", "GET", "/health", null, null, false, [("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("admin:" + AdminKey)))], 200);
        yield return Post("/replay", "999 unknown ids", JsonSerializer.Serialize(new { event_ids = Enumerable.Range(1, 999).Select(i => new Guid(i, 7, 7, new byte[8])) }), 404);
    }

    /// <summary>What every POST endpoint gets: bad JSON of every kind, the wrong size, the wrong content type.</summary>
    /// <param name="path">Where to send it.</param>
    /// <param name="valid">A body the endpoint accepts (it would change something): sent with the wrong content types.</param>
    /// <param name="limit">The endpoint's body limit.</param>
    /// <param name="maxNesting">How deep the nested case goes: past every depth limit, within the body limit.</param>
    /// <param name="emptyObjectIsValid">Whether <c>{}</c> is accepted (endpoints that take no body).</param>
    /// <param name="endpoint">The name to show, when the path has an id in it.</param>
    private static IEnumerable<HostileRequest> Common(string path, string valid, int limit, int maxNesting, bool emptyObjectIsValid, string? endpoint = null)
    {
        endpoint ??= path;
        yield return Post(path, "malformed JSON", """{"a": }""", 400, endpoint: endpoint);
        yield return Post(path, "truncated JSON", valid[..(valid.Length / 2)], 400, endpoint: endpoint);
        yield return Post(path, "an unclosed string", "{\"a\": \"", 400, endpoint: endpoint);
        yield return Post(path, "not JSON", "hello there", 400, endpoint: endpoint);
        yield return Post(path, "JSON null", "null", 400, endpoint: endpoint);
        yield return Post(path, "a JSON number", "42", 400, endpoint: endpoint);
        yield return Post(path, "a JSON string", "\"{}\"", 400, endpoint: endpoint);
        yield return Post(path, "a trailing comma", "{\"a\": 1,}", 400, endpoint: endpoint);
        yield return Post(path, "a comment", "{} // comment", 400, endpoint: endpoint);
        yield return Post(path, "two documents", valid + valid, 400, endpoint: endpoint);
        if (!emptyObjectIsValid)
        {
            yield return Post(path, "an empty object", "{}", 400, endpoint: endpoint);
        }

        yield return Post(path, "a NUL in a string", """{"a": "x\u0000y"}""", 400, endpoint: endpoint);
        yield return Post(path, "an unpaired surrogate in a name", """{"\ud800": 1}""", 400, endpoint: endpoint);
        yield return Post(path, "an unpaired surrogate in a value", """{"a": "\udfff"}""", 400, endpoint: endpoint);
        yield return Post(path, "invalid UTF-8 bytes", [.. Utf8("{\"a\": \""), 0xFF, 0xFE, .. Utf8("\"}")], 400, endpoint: endpoint);
        yield return Post(path, "an overlong UTF-8 encoding", [.. Utf8("{\"a\": \""), 0xC0, 0xAF, .. Utf8("\"}")], 400, endpoint: endpoint);
        yield return Post(path, "a UTF-8 byte order mark then garbage", [0xEF, 0xBB, 0xBF, .. Utf8("garbage")], 400, endpoint: endpoint);
        yield return Post(path, $"nested {maxNesting} levels", new string('[', maxNesting) + new string(']', maxNesting), 400, endpoint: endpoint);
        yield return Post(path, $"nested {maxNesting / 2} objects", string.Concat(Enumerable.Repeat("{\"a\":", maxNesting / 2)) + "1" + new string('}', maxNesting / 2), 400, endpoint: endpoint);
        yield return Post(path, "a body one byte over the limit", Padded(limit + 1), 413, endpoint: endpoint);
        yield return Post(path, "a body of 8 MB, announced", Padded(8 * 1024 * 1024), 413, endpoint: endpoint);
        yield return Post(path, "text/plain", valid, 415, contentType: "text/plain", endpoint: endpoint);
        yield return Post(path, "multipart/form-data", valid, 415, contentType: "multipart/form-data; boundary=corpus", endpoint: endpoint);
        yield return Post(path, "a form", valid, 415, contentType: "application/x-www-form-urlencoded", endpoint: endpoint);
        yield return Post(path, "XML", valid, 415, contentType: "application/xml", endpoint: endpoint);
        yield return Post(path, "no content type", valid, 415, contentType: null, endpoint: endpoint);
        yield return Post(path, "JSON in UTF-16", valid, 415, contentType: "application/json; charset=utf-16", endpoint: endpoint);
        yield return Post(path, "a content type that is not one", valid, 415, contentType: "this is not a media type", endpoint: endpoint);
        yield return Post(path, "no key", valid, 401, withKey: false, endpoint: endpoint);
        yield return Post(path, "SQL as the key", valid, 401, withKey: false, headers: [("X-API-Key", Sql)], endpoint: endpoint);
        yield return Post(path, "the key with a character more", valid, 401, withKey: false, headers: [("X-API-Key", AdminKey + "x")], endpoint: endpoint);
    }

    private static HostileRequest Post(
        string path,
        string name,
        string? body,
        int expected,
        string? contentType = Json,
        bool withKey = true,
        (string Name, string Value)[]? headers = null,
        string? endpoint = null) =>
        Post(path, name, body is null ? null : Utf8(body), expected, contentType, withKey, headers, endpoint);

    private static HostileRequest Post(
        string path,
        string name,
        byte[]? body,
        int expected,
        string? contentType = Json,
        bool withKey = true,
        (string Name, string Value)[]? headers = null,
        string? endpoint = null) =>
        new(endpoint ?? path, name, "POST", path, body, body is null ? null : contentType, withKey, headers ?? [], expected);

    /// <summary>A JSON document of exactly <paramref name="size"/> bytes.</summary>
    private static string Padded(int size) => "{\"a\": \"" + new string('x', size - 9) + "\"}";

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private async Task<HttpResponseMessage> SendAsync(HostileRequest hostile)
    {
        using var request = new HttpRequestMessage(new HttpMethod(hostile.Method), new Uri(hostile.Path, UriKind.Relative));
        if (hostile.Body is not null)
        {
            request.Content = hostile.Trickled ? new TrickledContent(hostile.Body, TrickleBytes, TrickleInterval) : new ByteArrayContent(hostile.Body);
            request.Content.Headers.ContentType = null;
            if (hostile.ContentType is not null)
            {
                request.Content.Headers.TryAddWithoutValidation("Content-Type", hostile.ContentType);
            }
        }

        if (hostile.WithKey)
        {
            request.Headers.Add("X-API-Key", AdminKey);
        }

        // A client sending megabytes asks first, as HTTP/1.1 clients should; the service answers 413 without taking
        // them. One that pushes them regardless is cut off (RequestLimitTests).
        if (hostile.Body?.Length > 1024 * 1024)
        {
            request.Headers.ExpectContinue = true;
        }

        foreach (var (name, value) in hostile.Headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return await _service.Client.SendAsync(request);
    }
}

/// <summary>One request of the corpus and the status it must get.</summary>
/// <param name="Endpoint">The endpoint, as the README names it.</param>
/// <param name="Name">What is hostile about it.</param>
/// <param name="Method">The HTTP method.</param>
/// <param name="Path">The path and query.</param>
/// <param name="Body">The body's bytes; null for none.</param>
/// <param name="ContentType">The Content-Type header as sent; null for none.</param>
/// <param name="WithKey">Whether the admin key is sent.</param>
/// <param name="Headers">More headers.</param>
/// <param name="Expected">The status it must get.</param>
public sealed record HostileRequest(
    string Endpoint,
    string Name,
    string Method,
    string Path,
    byte[]? Body,
    string? ContentType,
    bool WithKey,
    (string Name, string Value)[] Headers,
    int Expected)
{
    /// <summary>Kestrel refuses the request before the application sees it, so the body is Kestrel's, not a problem.</summary>
    public bool RefusedBeforeTheApp { get; init; }

    /// <summary>The body is sent a few bytes at a time (<see cref="TrickledContent"/>), its length announced.</summary>
    public bool Trickled { get; init; }

    public override string ToString() => $"{Method} {Endpoint}: {Name}";
}

/// <summary>A body written <paramref name="bytesPerWrite"/> bytes at a time, <paramref name="interval"/> apart, its length announced.</summary>
internal sealed class TrickledContent(byte[] body, int bytesPerWrite, TimeSpan interval) : HttpContent
{
    protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context, CancellationToken cancellationToken)
    {
        for (var sent = 0; sent < body.Length; sent += bytesPerWrite)
        {
            await stream.WriteAsync(body.AsMemory(sent, Math.Min(bytesPerWrite, body.Length - sent)), cancellationToken);
            await stream.FlushAsync(cancellationToken);
            await Task.Delay(interval, cancellationToken);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = body.Length;
        return true;
    }
}
