using System.IO.Compression;
using System.Net;
using System.Text;
using System.Text.Json;
using Dapper;
using EventProcessor.Ingress.Clients;
using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Host;

/// <summary>POST /process and POST /events against the real service and database, with polling off.</summary>
[Parallelizable(ParallelScope.All)]
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed class IngressEndpointTests
{
    private const string AdminKey = "admin-secret";

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

    [TestCaseSource(typeof(AwsFixtures), nameof(AwsFixtures.All))]
    public async Task Posting_a_fixture_twice_writes_its_rows_once_and_counts_the_duplicate(string fixture)
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("HEALTH_DETAILS", "true")]);
        var body = await File.ReadAllTextAsync(fixture);

        var (first, firstText) = await PostJsonAsync(service, "/process", body);
        var (second, secondText) = await PostJsonAsync(service, "/process", body);
        var rows = await CountAsync("SELECT count(*) FROM events");
        var (health, _) = await ResponseJson.ReadAsync(await service.GetHealthAsync());

        Assert.Multiple(() =>
        {
            Assert.That(first.GetProperty("written").GetInt32(), Is.EqualTo(1), firstText);
            Assert.That(first.GetProperty("duplicates").GetInt32(), Is.Zero, firstText);
            Assert.That(second.GetProperty("written").GetInt32(), Is.Zero, secondText);
            Assert.That(second.GetProperty("duplicates").GetInt32(), Is.EqualTo(1), secondText);
            Assert.That(second.GetProperty("ids")[0].GetString(), Is.EqualTo(first.GetProperty("ids")[0].GetString()), "same delivery, same id");
            Assert.That(rows, Is.EqualTo(1));
            Assert.That(health.GetProperty("ingress").GetProperty("duplicates").GetInt64(), Is.EqualTo(1));
            Assert.That(health.GetProperty("ingress").GetProperty("written").GetInt64(), Is.EqualTo(1));
        });
    }

    [Test]
    public async Task Each_fixture_becomes_the_event_type_the_readme_promises()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);
        foreach (var fixture in AwsFixtures.All)
        {
            await PostJsonAsync(service, "/process", await File.ReadAllTextAsync(fixture));
        }

        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var types = (await connection.QueryAsync<string>("SELECT event_type FROM events ORDER BY event_type")).ToArray();
        var ecs = await connection.QuerySingleAsync<(Guid Id, string Payload, string Metadata)>(
            "SELECT id, payload::text, metadata::text FROM events WHERE event_type = 'aws.ecs.ecs_task_state_change'");

        Assert.Multiple(() =>
        {
            Assert.That(types, Is.EqualTo(new[] { "aws.ecs.ecs_task_state_change", "aws.logs.batch", "aws.sqs.message", "websocket.connect" }));
            Assert.That(ecs.Id, Is.EqualTo(Guid.Parse("9bcdac79-b31f-4d3d-9410-fbd727c29fab")), "EventBridge ids are kept");
            Assert.That(JsonDocument.Parse(ecs.Payload).RootElement.GetProperty("detail").GetProperty("version").GetInt32(), Is.EqualTo(4), "the whole event is the payload");
            Assert.That(JsonDocument.Parse(ecs.Metadata).RootElement.GetProperty("ingress").GetString(), Is.EqualTo("http:/process"));
        });
    }

    [Test]
    public async Task A_control_message_is_acknowledged_and_stores_nothing()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);
        var body = LogsDelivery("""{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1432826855000,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}""");

        var (json, text) = await PostJsonAsync(service, "/process", body);

        Assert.Multiple(async () =>
        {
            Assert.That(json.GetProperty("acknowledged").GetString(), Does.Contain("CONTROL_MESSAGE"), text);
            Assert.That(json.GetProperty("ids").GetArrayLength(), Is.Zero);
            Assert.That(await CountAsync("SELECT count(*) FROM events"), Is.Zero);
        });
    }

    [TestCase("{\"x\": 1}", "not a shape this service knows")]
    [TestCase("{\"source\": \"aws.ecs\"", "not valid JSON")]
    [TestCase("[1, 2]", "a Lambda event is a JSON object")]
    [TestCase("{\"awslogs\": {\"data\": \"%%%not base64%%%\"}}", "not valid base64")]
    [TestCase("{\"awslogs\": {\"data\": \"aGVsbG8gd29ybGQ=\"}}", "not gzip")]
    [TestCase("{\"Records\": [{\"eventSource\": \"aws:s3\"}]}", "only SQS records")]
    [TestCase("{\"requestContext\": {\"eventType\": \"CONNECT\"}}", "connectionId")]
    [TestCase("{\"event_type\": \"x\", \"payload\": {\"a\": \"nul\\u0000here\"}}", "cannot store")]
    public async Task Process_refuses_what_it_cannot_use_with_400_and_writes_nothing(string body, string expected)
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.PostAsync("/process", body);
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
            Assert.That(json.GetProperty("detail").GetString(), Does.Contain(expected));
            Assert.That(await CountAsync("SELECT count(*) FROM events"), Is.Zero);
        });
        await service.AssertStillServingAsync();
    }

    [Test]
    public async Task A_body_over_the_limit_gets_413_whether_or_not_it_announces_its_length()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("MAX_BODY_BYTES", "2048")]);
        var big = JsonSerializer.Serialize(new { event_type = "big", payload = new { text = new string('x', 4096) } });

        using var announced = await service.PostAsync("/events", big);
        using var chunked = new HttpRequestMessage(HttpMethod.Post, new Uri("/events", UriKind.Relative))
        {
            Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big))) { Headers = { ContentType = new("application/json") } },
        };
        chunked.Headers.TransferEncodingChunked = true;
        using var streamed = await service.Client.SendAsync(chunked);

        Assert.Multiple(async () =>
        {
            Assert.That(announced.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
            Assert.That(await announced.Content.ReadAsStringAsync(), Does.Contain("MAX_BODY_BYTES"));
            Assert.That(streamed.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
            Assert.That(await CountAsync("SELECT count(*) FROM events"), Is.Zero);
        });
        await service.AssertStillServingAsync();
    }

    [Test]
    public async Task A_gzip_bomb_in_awslogs_data_is_refused_with_413()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("MAX_DECOMPRESSED_BYTES", "65536")]);
        var bomb = LogsDelivery(new string(' ', 10 * 1024 * 1024));

        using var response = await service.PostAsync("/process", bomb);
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge), text);
            Assert.That(json.GetProperty("detail").GetString(), Does.Contain("decompresses to more than 65536 bytes"));
        });
    }

    [Test]
    public async Task Events_accepts_one_envelope_or_an_array_and_a_retried_publish_is_a_duplicate()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);
        const string Batch = """
            [
              {"id": "order-1", "event_type": "order.placed", "aggregate_id": "customer-9", "payload": {"total": 12.5}},
              {"id": "order-1-paid", "event_type": "order.paid", "aggregate_id": "customer-9", "payload": {"total": 12.5}, "metadata": {"request_id": "c-1"}}
            ]
            """;

        var (first, firstText) = await PostJsonAsync(service, "/events", Batch);
        var (again, againText) = await PostJsonAsync(service, "/events", Batch);
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var rows = (await connection.QueryAsync<(string EventType, Guid? AggregateId, string Metadata)>(
            "SELECT event_type, aggregate_id, metadata::text FROM events ORDER BY created_at, id")).ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(first.GetProperty("written").GetInt32(), Is.EqualTo(2), firstText);
            Assert.That(again.GetProperty("written").GetInt32(), Is.Zero, againText);
            Assert.That(again.GetProperty("duplicates").GetInt32(), Is.EqualTo(2));
            Assert.That(rows.Select(r => r.EventType), Is.EqualTo(new[] { "order.placed", "order.paid" }), "written in the order sent");
            Assert.That(rows[0].AggregateId, Is.Not.Null.And.EqualTo(rows[1].AggregateId), "one aggregate key, one aggregate id");
            Assert.That(JsonDocument.Parse(rows[1].Metadata).RootElement.GetProperty("request_id").GetString(), Is.EqualTo("c-1"));
            Assert.That(JsonDocument.Parse(rows[0].Metadata).RootElement.GetProperty("aggregate_key").GetString(), Is.EqualTo("customer-9"));
        });
    }

    [TestCase("1e131072")]
    [TestCase("1e-16384")]
    public async Task A_number_the_database_cannot_store_is_a_400_in_the_products_words(string number)
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.PostAsync("/events", $$"""{"event_type": "t", "payload": {"n": {{number}}} }""");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), text);
            Assert.That(text, Does.Contain("The event has a number too large or too precise to store"), text);
            Assert.That(text, Does.Not.Contain("PostgreSQL").And.Not.Contain("overflows"), "the database's own words stay out");
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events"), Is.Zero);
        });
    }

    [Test]
    public async Task Events_lists_every_envelope_violation_with_400()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.PostAsync("/events", """[{"event_type": "ok", "payload": {}}, {"eventType": "typo", "payload": null}]""");
        var (json, text) = await ResponseJson.ReadAsync(response);
        var violations = json.GetProperty("violations").EnumerateArray().Select(v => v.GetString()).ToArray();

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), text);
            Assert.That(violations, Has.Some.StartsWith("[1].eventType: unknown property"));
            Assert.That(violations, Has.Some.StartsWith("[1].event_type: required"));
            Assert.That(violations, Has.Some.StartsWith("[1].payload: required"));
            Assert.That(await CountAsync("SELECT count(*) FROM events"), Is.Zero, "nothing of a refused array is written");
        });
    }

    [Test]
    public async Task Events_refuses_a_payload_that_violates_its_schema_with_422_listing_the_violations()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.PostAsync("/events", """{"event_type": "user.created", "payload": {"email": 42}}""");
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.UnprocessableEntity), text);
            Assert.That(json.GetProperty("title").GetString(), Is.EqualTo("Schema violation"));
            Assert.That(json.GetProperty("violations").GetArrayLength(), Is.GreaterThan(0));
            Assert.That(json.GetProperty("violations")[0].GetString(), Does.StartWith("user.created: "));
            Assert.That(await CountAsync("SELECT count(*) FROM events"), Is.Zero);
        });
    }

    [Test]
    public async Task A_clients_key_stamps_its_tenant_and_refuses_types_it_may_not_send_with_403()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ADMIN_API_KEY", AdminKey)]);
        var store = service.Services.GetRequiredService<ClientStore>();
        var (_, key) = await store.AddAsync("client-001", "Client One", ["integration", "billing.*"]);

        var (allowed, allowedText) = await PostJsonAsync(service, "/events", """{"event_type": "billing.invoiced", "payload": {"n": 1}}""", ("X-API-Key", key));
        using var forbidden = await service.PostAsync("/events", """{"event_type": "transaction", "payload": {}}""", ("Authorization", $"Bearer {key}"));
        var (problem, problemText) = await ResponseJson.ReadAsync(forbidden);
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var tenant = await connection.QuerySingleAsync<string>("SELECT tenant_id FROM events");

        Assert.Multiple(() =>
        {
            Assert.That(allowed.GetProperty("written").GetInt32(), Is.EqualTo(1), allowedText);
            Assert.That(tenant, Is.EqualTo("client-001"));
            Assert.That(forbidden.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden), problemText);
            Assert.That(problem.GetProperty("detail").GetString(), Is.EqualTo(
                "Client 'client-001' may not send events of type 'transaction'; it may send: integration, billing.*."));
        });
    }

    [Test]
    public async Task Keys_are_checked_unknown_and_missing_keys_get_401_and_a_disabled_client_403()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ADMIN_API_KEY", AdminKey)]);
        var store = service.Services.GetRequiredService<ClientStore>();
        var (_, key) = await store.AddAsync("client-002", null, ["*"]);
        await store.DisableAsync("client-002");
        const string Body = """{"event_type": "audit.note", "payload": {"text": "hello"}}""";

        using var missing = await service.PostAsync("/events", Body);
        using var unknown = await service.PostAsync("/events", Body, ("X-API-Key", "epk_made_up"));
        using var disabled = await service.PostAsync("/events", Body, ("X-API-Key", key));
        using var admin = await service.PostAsync("/events", Body, ("X-API-Key", AdminKey));
        using var processWithoutKey = await service.PostAsync("/process", Body);

        Assert.Multiple(async () =>
        {
            Assert.That(missing.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(unknown.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(disabled.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That(await disabled.Content.ReadAsStringAsync(), Does.Contain("disabled"));
            Assert.That(admin.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), "the admin key publishes without a tenant");
            Assert.That(processWithoutKey.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), "/process is an admin endpoint");
            Assert.That(await CountAsync("SELECT count(*) FROM events WHERE tenant_id IS NULL"), Is.EqualTo(1));
        });
    }

    private async Task<long> CountAsync(string sql)
    {
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<long>(sql);
    }

    private static async Task<(JsonElement Json, string Text)> PostJsonAsync(
        ServiceAppFixture service, string path, string body, params (string Name, string Value)[] headers)
    {
        using var response = await service.PostAsync(path, body, headers);
        var result = await ResponseJson.ReadAsync(response);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), result.Text);
        return result;
    }

    /// <summary>A CloudWatch Logs subscription delivery: <paramref name="document"/> gzipped, then base64.</summary>
    internal static string LogsDelivery(string document)
    {
        using var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, CompressionLevel.Optimal))
        {
            gzip.Write(Encoding.UTF8.GetBytes(document));
        }

        return JsonSerializer.Serialize(new { awslogs = new { data = Convert.ToBase64String(compressed.ToArray()) } });
    }
}
