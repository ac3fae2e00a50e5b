using System.Text.Json;
using Dapper;
using EventProcessor.Handlers.Schemas;
using EventProcessor.Ingress.Classification;
using EventProcessor.Ingress.Clients;
using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Service;

/// <summary>The service binary's <c>clients</c> and <c>produce</c> commands, run as real processes.</summary>
[Parallelizable(ParallelScope.All)]
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed class CommandTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

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
    public async Task Clients_add_prints_a_working_key_alone_on_its_last_line_and_list_and_disable_follow()
    {
        var (added, addOutput, _) = await RunAsync("clients", "add", "--id", "acme", "--types", "integration, billing.*", "--name", "Acme Corp");
        var key = addOutput.TrimEnd().Split('\n')[^1];
        var store = new ClientStore(_db.DataSource);
        var client = await store.FindByApiKeyAsync(key);
        var (_, listed, _) = await RunAsync("clients", "list");
        var (disabled, _, _) = await RunAsync("clients", "disable", "--id", "acme");
        var (_, listedAfter, _) = await RunAsync("clients", "list");
        var storedHash = await _db.ScalarAsync<byte[]>("SELECT api_key_hash FROM clients WHERE id = 'acme'");

        Assert.Multiple(() =>
        {
            Assert.That(added, Is.Zero, addOutput);
            Assert.That(key, Does.Match("^epk_[A-Za-z0-9_-]{43}$"), "the key, alone on the last line");
            Assert.That(client, Is.Not.Null);
            Assert.That(client!.Id, Is.EqualTo("acme"));
            Assert.That(client.Name, Is.EqualTo("Acme Corp"));
            Assert.That(client.AllowedEventTypes, Is.EqualTo(new[] { "integration", "billing.*" }));
            Assert.That(storedHash, Has.Length.EqualTo(32), "only a SHA-256 is stored");
            Assert.That(listed, Does.Contain("acme").And.Contain("integration,billing.*").And.Not.Contain(key), "list never shows keys");
            Assert.That(listed.Split('\n').Single(l => l.StartsWith("acme", StringComparison.Ordinal)), Does.Contain(" yes "));
            Assert.That(disabled, Is.Zero);
            Assert.That(listedAfter.Split('\n').Single(l => l.StartsWith("acme", StringComparison.Ordinal)), Does.Contain(" no "));
        });
    }

    [TestCase(new[] { "clients", "add", "--id", "acme" }, 2, "usage: clients add")]
    [TestCase(new[] { "clients", "add", "--id", "has space", "--types", "x" }, 2, "Client id 'has space' is invalid")]
    [TestCase(new[] { "clients", "add", "--id", "x", "--types", "a*b" }, 2, "Event type 'a*b' is invalid")]
    [TestCase(new[] { "clients", "disable", "--id", "ghost" }, 1, "no client has id 'ghost'")]
    [TestCase(new[] { "clients", "remove" }, 2, "usage:")]
    [TestCase(new[] { "clients", "add", "--id", "x", "--types", "x", "--rate", "-5" }, 2, "--rate '-5' is invalid")]
    [TestCase(new[] { "clients", "add", "--id", "x", "--types", "x", "--rate", "default" }, 2, "--rate 'default' is invalid")]
    [TestCase(new[] { "clients", "update", "--id", "x" }, 2, "usage:")]
    [TestCase(new[] { "clients", "update", "--id", "ghost", "--rate", "5" }, 1, "no client has id 'ghost'")]
    [TestCase(new[] { "produce", "--type", "nope" }, 2, "has no shipped sample; known types:")]
    [TestCase(new[] { "produce", "--rate", "0" }, 2, "--rate '0' is invalid")]
    [TestCase(new[] { "produce", "--to", "kafka" }, 2, "--to 'kafka' is invalid")]
    public async Task Commands_refuse_bad_arguments_with_a_clear_line(string[] arguments, int exitCode, string expected)
    {
        var (code, output, error) = await RunAsync(arguments);

        Assert.Multiple(() =>
        {
            Assert.That(code, Is.EqualTo(exitCode), output + error);
            Assert.That(error, Does.Contain(expected));
        });
    }

    [Test]
    public async Task A_clients_rate_is_set_at_add_changed_by_update_put_back_on_the_default_and_listed()
    {
        var (added, addOutput, addError) = await RunAsync("clients", "add", "--id", "metered", "--types", "x", "--rate", "50");
        var (_, listedAdded, _) = await RunAsync("clients", "list");
        var (updated, updateOutput, updateError) = await RunAsync("clients", "update", "--id", "metered", "--rate", "0", "--types", "x,y.*");
        var (_, listedUpdated, _) = await RunAsync("clients", "list");
        var atNone = await _db.ScalarAsync<int>("SELECT rate_limit_per_second FROM clients WHERE id = 'metered'");
        var (reset, _, _) = await RunAsync("clients", "update", "--id", "metered", "--rate", "default");
        var (_, listedReset, _) = await RunAsync("clients", "list");

        Assert.Multiple(async () =>
        {
            Assert.That(added, Is.Zero, addOutput + addError);
            Assert.That(addOutput, Does.Contain("rate: 50 events per second"));
            Assert.That(listedAdded.Split('\n').Single(l => l.StartsWith("metered", StringComparison.Ordinal)), Does.Contain(" 50 "));
            Assert.That(updated, Is.Zero, updateOutput + updateError);
            Assert.That(updateOutput, Does.Contain("allowed to send x, y.*; rate: no limit"));
            Assert.That(listedUpdated.Split('\n').Single(l => l.StartsWith("metered", StringComparison.Ordinal)), Does.Contain(" none "));
            Assert.That(atNone, Is.Zero);
            Assert.That(reset, Is.Zero);
            Assert.That(listedReset.Split('\n').Single(l => l.StartsWith("metered", StringComparison.Ordinal)), Does.Contain(" default "));
            Assert.That(await _db.ScalarAsync<bool>("SELECT rate_limit_per_second IS NULL FROM clients WHERE id = 'metered'"), Is.True);
        });
    }

    [Test]
    public async Task Adding_a_client_twice_is_refused()
    {
        await RunAsync("clients", "add", "--id", "twice", "--types", "x");

        var (code, _, error) = await RunAsync("clients", "add", "--id", "twice", "--types", "x");

        Assert.Multiple(() =>
        {
            Assert.That(code, Is.EqualTo(2));
            Assert.That(error, Does.Contain("A client with id 'twice' already exists."));
        });
    }

    [Test]
    public async Task Produce_writes_one_valid_sample_per_shipped_schema_into_the_table()
    {
        var (code, output, error) = await RunAsync("produce");
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var types = (await connection.QueryAsync<string>("SELECT event_type FROM events ORDER BY event_type")).ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(code, Is.Zero, output + error);
            Assert.That(types, Is.EqualTo(ShippedSchemas.Samples.Keys.Order(StringComparer.Ordinal).ToArray()));
            Assert.That(output, Does.StartWith($"Produced {types.Length} events"));
        });
    }

    [Test]
    public async Task Produce_sends_a_steady_stream_at_the_rate_for_the_duration_with_the_clients_tenant()
    {
        await new ClientStore(_db.DataSource).AddAsync("producer-1", null, ["transaction"]);

        var (code, output, error) = await RunAsync("produce", "--type", "transaction", "--client", "producer-1", "--rate", "40", "--duration", "2");
        var count = await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE event_type = 'transaction' AND tenant_id = 'producer-1'");
        var seconds = double.Parse(output.Split(" in ")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);

        Assert.Multiple(() =>
        {
            Assert.That(code, Is.Zero, output + error);
            Assert.That(count, Is.EqualTo(80));
            Assert.That(seconds, Is.GreaterThanOrEqualTo(1.9), "paced over the duration, not sent at once");
        });
    }

    [Test]
    public async Task Produce_refuses_a_client_that_may_not_send_the_type()
    {
        await new ClientStore(_db.DataSource).AddAsync("narrow", null, ["integration"]);

        var (code, _, error) = await RunAsync("produce", "--type", "transaction", "--client", "narrow");

        Assert.Multiple(async () =>
        {
            Assert.That(code, Is.EqualTo(4));
            Assert.That(error, Does.Contain("Client 'narrow' may not send events of type 'transaction'"));
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events"), Is.Zero);
        });
    }

    [Test]
    public async Task Produce_onto_sqs_sends_envelopes_that_the_sqs_door_accepts()
    {
        await SqsServer.StartAsync();
        var queue = await SqsServer.CreateQueueAsync("produce", fifo: true);

        var (code, output, error) = await RunAsync(
            new Dictionary<string, string?>
            {
                ["Sqs__ServiceUrl"] = SqsServer.ServiceUrl.ToString(),
                ["Sqs__Region"] = SqsServer.Region,
                ["AWS_ACCESS_KEY_ID"] = "test",
                ["AWS_SECRET_ACCESS_KEY"] = "test",
            },
            "produce", "--to", "sqs", "--queue-url", queue, "--client", "client-002");
        var messages = await SqsServer.ReceiveAllAsync(queue);
        var classifier = new EventClassifier(new IngressLimits());
        var classified = messages
            .Select(m => classifier.ClassifySqsMessage(JsonSerializer.SerializeToUtf8Bytes(new
            {
                messageId = m.MessageId,
                body = m.Body,
                messageAttributes = m.MessageAttributes.ToDictionary(a => a.Key, a => new { stringValue = a.Value.StringValue, dataType = a.Value.DataType }),
                attributes = m.Attributes,
                eventSource = "aws:sqs",
            })).Single())
            .ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(code, Is.Zero, output + error);
            Assert.That(classified.Select(e => e.EventType).Order(StringComparer.Ordinal), Is.EqualTo(ShippedSchemas.Samples.Keys.Order(StringComparer.Ordinal)));
            Assert.That(classified.Select(e => e.TenantId).Distinct(), Is.EqualTo(new[] { "client-002" }));
            Assert.That(messages.Select(m => m.Attributes["MessageGroupId"]).Distinct(), Is.EqualTo(new[] { "client-002" }), "FIFO: the client is the message group");
        });
    }

    [Test]
    public async Task In_development_the_service_seeds_the_three_sample_clients_and_their_keys_publish()
    {
        await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = _db.Url,
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
            ["ENABLE_POLLING"] = "false",
        });
        await service.WaitUntilAsync(
            async () => await _db.ScalarAsync<long>("SELECT count(*) FROM clients") == 3, "the sample clients are seeded");
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var clients = (await connection.QueryAsync<(string Id, string[] Types)>("SELECT id, allowed_event_types FROM clients ORDER BY id")).ToArray();
        using var allowed = await PostAsync(service, "epk_dev_client_001_not_secret", $$"""{"event_type": "integration", "payload": {{ShippedSchemas.Samples["integration"]}}}""");
        using var refused = await PostAsync(service, "epk_dev_client_001_not_secret", """{"event_type": "transaction", "payload": {}}""");

        Assert.Multiple(async () =>
        {
            Assert.That(clients.Select(c => c.Id), Is.EqualTo(new[] { "client-001", "client-002", "client-003" }));
            Assert.That(clients.Select(c => string.Join(",", c.Types)), Is.EqualTo(new[] { "integration", "transaction,integration", "transaction,integration" }));
            Assert.That(allowed.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.Accepted), await allowed.Content.ReadAsStringAsync());
            Assert.That(refused.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.Forbidden), "client-001 may send integration only");
        });
    }

    [Test]
    public async Task In_development_with_an_admin_key_no_sample_clients_are_seeded_and_their_keys_open_nothing()
    {
        await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = _db.Url,
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
            ["ADMIN_API_KEY"] = "dev-admin-key-5e2a",
            ["ENABLE_POLLING"] = "false",
        });
        using var refused = await PostAsync(service, "epk_dev_client_001_not_secret", IntegrationEvent());

        Assert.Multiple(async () =>
        {
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM clients"), Is.Zero, "nothing seeded");
            Assert.That(refused.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.Unauthorized), await refused.Content.ReadAsStringAsync());
        });
    }

    [TestCase("Development", "ADMIN_API_KEY", "dev-admin-key-5e2a", TestName = "Sample clients seeded by an open development run are removed when it starts again with an admin key")]
    [TestCase("Production", "ALLOW_UNAUTHENTICATED", "true", TestName = "Sample clients seeded by an open development run are removed when the database is served outside Development")]
    public async Task Sample_clients_seeded_earlier_are_removed_at_a_start_that_would_not_seed_them(string environment, string setting, string value)
    {
        var realKey = (await new ClientStore(_db.DataSource).AddAsync("client-real", "A real tenant", ["integration"])).ApiKey;
        await using (var open = await ServiceProcess.StartAsync(new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = _db.Url,
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
            ["ENABLE_POLLING"] = "false",
        }))
        {
            using var accepted = await PostAsync(open, "epk_dev_client_002_not_secret", IntegrationEvent());
            Assert.That(accepted.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.Accepted), "precondition: the open run seeded the sample clients");
        }

        await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = _db.Url,
            ["ASPNETCORE_ENVIRONMENT"] = environment,
            [setting] = value,
            ["ENABLE_POLLING"] = "false",
        });
        var answers = new List<System.Net.HttpStatusCode>();
        foreach (var (_, _, key) in ClientStore.DevelopmentClients)
        {
            using var response = await PostAsync(service, key, IntegrationEvent());
            answers.Add(response.StatusCode);
        }

        using var real = await PostAsync(service, realKey, IntegrationEvent());
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var left = (await connection.QueryAsync<string>("SELECT id FROM clients ORDER BY id")).ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(answers, Is.All.EqualTo(System.Net.HttpStatusCode.Unauthorized), "no sample key authenticates any more");
            Assert.That(left, Is.EqualTo(new[] { "client-real" }), "only the sample clients are removed");
            Assert.That(real.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.Accepted), "a real client's key still publishes");
            Assert.That(service.Output, Does.Contain("Removed the sample clients"), "the removal is logged");
        });
    }

    [Test]
    public async Task Outside_development_no_sample_clients_are_seeded()
    {
        await using var service = await ServiceProcess.StartAsync(new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = _db.Url,
            ["ENABLE_POLLING"] = "false",
        });
        using var refused = await PostAsync(service, "epk_dev_client_001_not_secret", """{"event_type": "integration", "payload": {}}""");

        Assert.Multiple(async () =>
        {
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM clients"), Is.Zero);
            Assert.That(refused.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.Unauthorized), "the public development keys open nothing in production");
        });
    }

    private static string IntegrationEvent() =>
        $$"""{"event_type": "integration", "payload": {{ShippedSchemas.Samples["integration"]}}}""";

    private static async Task<HttpResponseMessage> PostAsync(ServiceProcess service, string key, string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/events", UriKind.Relative))
        {
            Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-API-Key", key);
        return await service.Http.SendAsync(request);
    }

    private Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] arguments) =>
        RunAsync(new Dictionary<string, string?>(), arguments);

    private async Task<(int ExitCode, string Output, string Error)> RunAsync(Dictionary<string, string?> settings, params string[] arguments)
    {
        settings["DATABASE_URL"] = _db.Url;
        settings["RUN_MIGRATIONS"] = "false";
        await using var process = ServiceProcess.Launch(settings, arguments);
        var exitCode = await process.WaitForExitAsync(Patience);
        return (exitCode, process.StandardOutput, process.StandardError);
    }
}
