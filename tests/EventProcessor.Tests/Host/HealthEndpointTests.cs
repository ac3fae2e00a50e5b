using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using EventProcessor.Host.Configuration;
using EventProcessor.Ingress.Clients;
using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Host;

public sealed partial class HealthEndpointTests
{
    private static readonly string[] TopLevelKeys = ["status", "service", "timestamp", "uptime", "stats", "config", "registry", "backlog"];
    private static readonly string[] StatsKeys =
        ["totalProcessed", "successCount", "errorCount", "deadLetterCount", "lastProcessedAt", "skippedCount"];
    private static readonly string[] ConfigKeys = ["pollIntervalMs", "batchSize", "maxRetries", "pollingEnabled", "workers"];
    private static readonly string[] UserWildcard = ["user.*"];
    private static readonly string[] IngressKeys = ["written", "duplicates", "rejected"];

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
    public async Task Healthy_service_answers_200_with_the_seed_body()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.GetHealthAsync();
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"));
            Assert.That(response.Headers.Contains("Server"), Is.False, "no Server header names the web server");
            Assert.That(
                Names(json),
                Is.SupersetOf(TopLevelKeys));
            Assert.That(json.TryGetProperty("error", out _), Is.False, "no error when healthy");
            Assert.That(json.GetProperty("status").GetString(), Is.EqualTo("healthy"));
            Assert.That(json.GetProperty("service").GetString(), Is.EqualTo("event-processor"));

            var timestamp = json.GetProperty("timestamp").GetString()!;
            Assert.That(timestamp, Does.Match(IsoTimestamp()), "timestamp is ISO-8601 with an offset");
            Assert.That(
                DateTimeOffset.Parse(timestamp, CultureInfo.InvariantCulture),
                Is.EqualTo(DateTimeOffset.UtcNow).Within(TimeSpan.FromMinutes(1)));

            var uptime = json.GetProperty("uptime");
            Assert.That(uptime.ValueKind, Is.EqualTo(JsonValueKind.Number));
            Assert.That(uptime.TryGetInt64(out var seconds) && seconds >= 0, Is.True, $"uptime {uptime} is a whole number of seconds");

            var stats = json.GetProperty("stats");
            Assert.That(
                Names(stats),
                Is.SupersetOf(StatsKeys));
            foreach (var counter in StatsKeys.Where(k => k != "lastProcessedAt"))
            {
                Assert.That(stats.GetProperty(counter).GetInt64(), Is.Zero, counter);
            }

            Assert.That(stats.GetProperty("lastProcessedAt").ValueKind, Is.EqualTo(JsonValueKind.Null), "nothing processed yet");

            var config = json.GetProperty("config");
            Assert.That(Names(config), Is.SupersetOf(ConfigKeys));

            var registry = json.GetProperty("registry");
            Assert.That(
                registry.GetProperty("totalHandlers").GetInt32(),
                Is.EqualTo(ShippedHandlers.EventTypes.Length),
                "no webhooks configured: the shipped handlers only");
            Assert.That(registry.TryGetProperty("eventTypes", out _), Is.False, "outside Development the types are the admin's to see");
            Assert.That(json.TryGetProperty("ingress", out _), Is.False, "and so are the ingress counts");

            var backlog = json.GetProperty("backlog");
            Assert.That(backlog.GetProperty("pending").GetInt64(), Is.Zero);
            Assert.That(backlog.GetProperty("oldestPendingAgeSeconds").ValueKind, Is.EqualTo(JsonValueKind.Null));
        });
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task Config_reflects_the_settings_given(bool pollingEnabled)
    {
        await using var service = await ServiceAppFixture.StartAsync(
            _db,
            pollingEnabled,
            [new("POLL_INTERVAL_MS", "4321"), new("BATCH_SIZE", "7"), new("MAX_RETRIES", "3"), new("WORKERS", "2")]);

        using var response = await service.GetHealthAsync();
        var (json, text) = await ResponseJson.ReadAsync(response);
        var config = json.GetProperty("config");

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
            Assert.That(config.GetProperty("pollIntervalMs").GetInt64(), Is.EqualTo(4321));
            Assert.That(config.GetProperty("batchSize").GetInt32(), Is.EqualTo(7));
            Assert.That(config.GetProperty("maxRetries").GetInt32(), Is.EqualTo(3));
            Assert.That(config.GetProperty("pollingEnabled").GetBoolean(), Is.EqualTo(pollingEnabled));
            Assert.That(config.GetProperty("workers").GetInt32(), Is.EqualTo(2));
        });
    }

    [Test]
    public async Task Config_shows_the_seed_defaults_when_nothing_is_set()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, enablePolling: true);

        using var response = await service.GetHealthAsync();
        var (json, _) = await ResponseJson.ReadAsync(response);
        var config = json.GetProperty("config");

        Assert.Multiple(() =>
        {
            Assert.That(config.GetProperty("pollIntervalMs").GetInt64(), Is.EqualTo(10_000));
            Assert.That(config.GetProperty("batchSize").GetInt32(), Is.EqualTo(20));
            Assert.That(config.GetProperty("maxRetries").GetInt32(), Is.EqualTo(5));
            Assert.That(config.GetProperty("pollingEnabled").GetBoolean(), Is.True);
            Assert.That(config.GetProperty("workers").GetInt32(), Is.EqualTo(16));
        });
    }

    [Test]
    public async Task Backlog_counts_unprocessed_events_and_the_age_of_the_oldest()
    {
        var now = DateTimeOffset.UtcNow;
        await _db.InsertEventAsync("nobody.handles.this", createdAt: now.AddSeconds(-90));
        await _db.InsertEventAsync("nobody.handles.this", createdAt: now.AddSeconds(-5));
        var done = await _db.InsertEventAsync("nobody.handles.this", createdAt: now.AddHours(-1));
        await _db.ExecuteAsync("UPDATE events SET processed = true, processed_at = now() WHERE id = @done", new { done });
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.GetHealthAsync();
        var (json, text) = await ResponseJson.ReadAsync(response);
        var backlog = json.GetProperty("backlog");

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
            Assert.That(backlog.GetProperty("pending").GetInt64(), Is.EqualTo(2), "the processed event does not count");
            Assert.That(
                backlog.GetProperty("oldestPendingAgeSeconds").GetDouble(),
                Is.InRange(85.0, 150.0),
                "the oldest pending event is 90 s old; the hour-old processed one does not count");
        });
    }

    [Test]
    public async Task Stats_count_what_the_endpoints_processed()
    {
        var first = await _db.InsertEventAsync("nobody.handles.this");
        await _db.InsertEventAsync("nobody.handles.this.either");
        await using var service = await ServiceAppFixture.StartAsync(_db);
        (await service.ProcessEventAsync(first)).Dispose();
        (await service.PostAsync("/process-batch", null)).Dispose();

        using var response = await service.GetHealthAsync();
        var (json, text) = await ResponseJson.ReadAsync(response);
        var stats = json.GetProperty("stats");

        Assert.Multiple(() =>
        {
            Assert.That(stats.GetProperty("totalProcessed").GetInt64(), Is.EqualTo(2), text);
            Assert.That(stats.GetProperty("skippedCount").GetInt64(), Is.EqualTo(2));
            Assert.That(stats.GetProperty("successCount").GetInt64(), Is.Zero);
            Assert.That(stats.GetProperty("errorCount").GetInt64(), Is.Zero);
            Assert.That(stats.GetProperty("deadLetterCount").GetInt64(), Is.Zero);
            Assert.That(stats.GetProperty("lastProcessedAt").GetString(), Does.Match(IsoTimestamp()));
            Assert.That(json.GetProperty("backlog").GetProperty("pending").GetInt64(), Is.Zero);
        });
    }

    [Test]
    public async Task Registry_lists_configured_webhook_subscriptions()
    {
        await using var service = await ServiceAppFixture.StartAsync(
            _db,
            settings: [new("Webhooks:0:Url", "http://127.0.0.1:9/x"), new("Webhooks:0:EventTypes:0", "user.*"), new("Webhooks:0:Secret", "s"), new("ADMIN_API_KEY", "k")]);

        var registry = (await HealthAsync(service, ("X-API-Key", "k"))).GetProperty("registry");

        Assert.Multiple(() =>
        {
            Assert.That(registry.GetProperty("totalHandlers").GetInt32(), Is.EqualTo(ShippedHandlers.EventTypes.Length + 1));
            Assert.That(
                registry.GetProperty("eventTypes").EnumerateArray().Select(e => e.GetString()),
                Is.EqualTo(ShippedHandlers.EventTypesWith(UserWildcard)));
        });
    }

    [Test]
    public async Task Event_types_and_ingress_counts_are_shown_to_the_admin_key_alone()
    {
        const string AdminKey = "health-admin-key-91c4";
        var (_, clientKey) = await new ClientStore(_db.DataSource).AddAsync("tenant-a", "Tenant A", ["*"]);
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ADMIN_API_KEY", AdminKey)]);

        var anonymous = await HealthAsync(service);
        var client = await HealthAsync(service, ("X-API-Key", clientKey));
        var wrongKey = await HealthAsync(service, ("X-API-Key", AdminKey + "x"));
        var admin = await HealthAsync(service, ("X-API-Key", AdminKey));
        var bearer = await HealthAsync(service, ("Authorization", $"Bearer {AdminKey}"));

        Assert.Multiple(() =>
        {
            foreach (var (who, json) in new[] { ("anonymous", anonymous), ("a client's key", client), ("a wrong key", wrongKey) })
            {
                Assert.That(Names(json), Is.SupersetOf(TopLevelKeys), $"{who}: the seed's body");
                Assert.That(json.GetProperty("registry").GetProperty("totalHandlers").GetInt32(), Is.EqualTo(ShippedHandlers.EventTypes.Length), who);
                Assert.That(Names(json.GetProperty("registry")), Is.EqualTo(new[] { "totalHandlers" }), $"{who}: no event types");
                Assert.That(Names(json), Does.Not.Contain("ingress"), $"{who}: no ingress counts");
            }

            foreach (var (who, json) in new[] { ("the admin key", admin), ("the admin key as a bearer", bearer) })
            {
                Assert.That(
                    json.GetProperty("registry").GetProperty("eventTypes").EnumerateArray().Select(e => e.GetString()),
                    Is.EqualTo(ShippedHandlers.EventTypes),
                    who);
                Assert.That(Names(json.GetProperty("ingress")), Is.EqualTo(IngressKeys), who);
            }
        });
    }

    [Test]
    public async Task HEALTH_DETAILS_true_shows_event_types_and_ingress_counts_to_everyone()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ADMIN_API_KEY", "k"), new("HEALTH_DETAILS", "true")]);

        var anonymous = await HealthAsync(service);

        Assert.Multiple(() =>
        {
            Assert.That(anonymous.GetProperty("registry").GetProperty("eventTypes").GetArrayLength(), Is.EqualTo(ShippedHandlers.EventTypes.Length));
            Assert.That(Names(anonymous.GetProperty("ingress")), Is.EqualTo(IngressKeys));
        });
    }

    private static async Task<JsonElement> HealthAsync(ServiceAppFixture service, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/health", UriKind.Relative));
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await service.Client.SendAsync(request);
        var (json, text) = await ResponseJson.ReadAsync(response);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
        return json;
    }

    [Test]
    public async Task Unreachable_database_answers_503_unhealthy_without_leaking_the_connection()
    {
        const string Password = "hunter2-not-for-probes";
        var url = $"postgres://probe_user:{Password}@127.0.0.1:{ServiceAppFixture.ClosedPort()}/unreachable_db";
        await using var service = await ServiceAppFixture.StartAsync(url);
        var connectionString = service.Services.GetRequiredService<ServiceSettings>().ConnectionString;

        using var response = await service.GetHealthAsync();
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), text);
            Assert.That(json.GetProperty("status").GetString(), Is.EqualTo("unhealthy"));
            Assert.That(json.GetProperty("service").GetString(), Is.EqualTo("event-processor"));
            Assert.That(Names(json), Is.SupersetOf(TopLevelKeys.Except(["backlog"])));
            Assert.That(text, Does.Not.Contain(connectionString));
            Assert.That(text, Does.Not.Contain(url));
            Assert.That(text, Does.Not.Contain(Password));
            Assert.That(text, Does.Not.Contain("probe_user"));
            Assert.That(text, Does.Not.Contain("unreachable_db"));
            Assert.That(text, Does.Not.Contain("Npgsql").IgnoreCase);
        });

        // Still answering, and still honest, on the next probe.
        using var again = await service.GetHealthAsync();
        Assert.That(again.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
    }

    [Test]
    public async Task Uptime_counts_from_the_start_of_this_service()
    {
        // Make sure the clock of whatever service answered first in this process has been running a while.
        await using (var earlier = await ServiceAppFixture.StartAsync(_db))
        {
            await earlier.AssertStillServingAsync();
        }

        await Task.Delay(TimeSpan.FromSeconds(2.2));
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.GetHealthAsync();
        var (json, _) = await ResponseJson.ReadAsync(response);

        Assert.That(
            json.GetProperty("uptime").GetInt64(),
            Is.LessThan(2),
            "this service started a moment ago; its uptime must not include the time before it started");
    }

    private static IEnumerable<string> Names(JsonElement element) => element.EnumerateObject().Select(p => p.Name);

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")]
    private static partial Regex IsoTimestamp();
}
