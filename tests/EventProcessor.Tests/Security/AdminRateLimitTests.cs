using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Dapper;
using EventProcessor.Tests.Host;
using EventProcessor.Tests.Processing;
using EventProcessor.Tests.Support;
using Npgsql;

namespace EventProcessor.Tests.Security;

/// <summary>
/// How the admin endpoints behave under load: a per-minute budget and a concurrency cap (429 with Retry-After),
/// a quick 503 with Retry-After when no connection is free, and a poll loop that keeps going meanwhile.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.All)]
public sealed class AdminRateLimitTests
{
    private const string AdminKey = "rate-limited-admin-key";

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
    public async Task Over_the_per_minute_budget_admin_requests_get_429_with_Retry_After_and_health_is_unaffected()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ADMIN_RATE_LIMIT_PER_MINUTE", "3")]);
        for (var i = 0; i < 3; i++)
        {
            using var accepted = await service.PostAsync("/process-batch", null);
            Assert.That(accepted.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), $"request {i + 1} of 3 is within the budget");
        }

        var id = await _db.InsertEventAsync("nobody.handles.this");
        using var refused = await service.ProcessEventAsync(id);
        var (json, text) = await ResponseJson.ReadAsync(refused);

        Assert.Multiple(async () =>
        {
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests), text);
            Assert.That(refused.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
            Assert.That(json.GetProperty("status").GetInt32(), Is.EqualTo(429));
            Assert.That(json.GetProperty("detail").GetString(), Does.Contain("ADMIN_RATE_LIMIT_PER_MINUTE"));
            Assert.That(RetryAfterSeconds(refused), Is.InRange(1, 60), "Retry-After: the seconds left in the minute");
            Assert.That((await _db.GetEventAsync(id)).Attempts, Is.Zero, "the refused request ran nothing");
        });
        for (var i = 0; i < 5; i++)
        {
            await service.AssertStillServingAsync();
        }

        using var publish = await service.PostAsync("/events", """{"event_type": "not.limited", "payload": {}}""");
        Assert.That(publish.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), "the ingress door has no admin budget");
    }

    [Test]
    public async Task Requests_without_the_admin_key_do_not_use_up_the_admins_budget()
    {
        await using var service = await ServiceAppFixture.StartAsync(
            _db, settings: [new("ADMIN_API_KEY", AdminKey), new("ADMIN_RATE_LIMIT_PER_MINUTE", "3")]);
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 10; i++)
        {
            using var response = await service.PostAsync("/process-batch", null, ("X-API-Key", "guessed-key-" + i));
            statuses.Add(response.StatusCode);
        }

        using var admin = await service.PostAsync("/process-batch", null, ("X-API-Key", AdminKey));

        Assert.Multiple(() =>
        {
            Assert.That(statuses, Is.All.AnyOf(HttpStatusCode.Unauthorized, HttpStatusCode.TooManyRequests));
            Assert.That(statuses.Skip(3), Is.All.EqualTo(HttpStatusCode.TooManyRequests), "guessing is limited too");
            Assert.That(admin.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), "the admin's budget is untouched");
        });
    }

    [Test]
    public async Task With_every_connection_taken_process_event_answers_503_with_Retry_After_in_seconds_not_the_pools_15()
    {
        var gate = new Gate();
        await _db.InsertEventAsync("security.holding");
        var waiting = await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(
            $"{_db.Url}?maxpoolsize=1",
            enablePolling: true,
            settings: [new("POLL_INTERVAL_MS", "100")],
            services: SecurityHandlers.Register(gate));
        await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var clock = Stopwatch.StartNew();
        using var response = await service.ProcessEventAsync(waiting);
        var elapsed = clock.Elapsed;
        var (json, text) = await ResponseJson.ReadAsync(response);
        gate.Release.TrySetResult();

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
            Assert.That(RetryAfterSeconds(response), Is.EqualTo(5));
            Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(12)), "the on-demand claim waits 3 s for a connection, not the pool's 15 s");
            Assert.That(json.GetProperty("detail").GetString(), Is.Not.Empty);
            Assert.That(text, Does.Not.Contain("pool").IgnoreCase.And.Not.Contain("Npgsql"), "no internals");
        });
        await _db.WaitForProcessedAsync(2);
    }

    [Test]
    public async Task Fifty_concurrent_process_event_requests_on_a_pool_of_three_get_answers_with_Retry_After_and_the_loop_goes_on()
    {
        const int Requested = 50;
        var ids = new List<Guid>();
        for (var i = 0; i < Requested + 10; i++)
        {
            ids.Add(await _db.InsertEventAsync("security.slow"));
        }

        await using var service = await ServiceAppFixture.StartAsync(
            $"{_db.Url}?maxpoolsize=3",
            enablePolling: true,
            settings: [new("POLL_INTERVAL_MS", "100"), new("BATCH_SIZE", "5")],
            services: SecurityHandlers.Register());

        var clock = Stopwatch.StartNew();
        var responses = await Task.WhenAll(ids.Take(Requested).Select(async id =>
        {
            using var response = await service.ProcessEventAsync(id);
            return (Status: response.StatusCode, RetryAfter: RetryAfterSeconds(response), Body: await response.Content.ReadAsStringAsync());
        }));
        var answeredWithin = clock.Elapsed;
        var byStatus = responses.GroupBy(r => r.Status).ToDictionary(g => g.Key, g => g.Count());
        await TestContext.Out.WriteLineAsync(
            $"answered within {answeredWithin.TotalSeconds:0.0} s: {string.Join(", ", byStatus.Select(s => $"{(int)s.Key}: {s.Value}"))}");

        Assert.Multiple(() =>
        {
            Assert.That(
                responses.Select(r => r.Status),
                Is.All.AnyOf(HttpStatusCode.Accepted, HttpStatusCode.Conflict, HttpStatusCode.TooManyRequests, HttpStatusCode.ServiceUnavailable),
                "202, 409 (the loop has it), 429 or 503; never a 500");
            Assert.That(
                responses.Where(r => r.Status is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable).Select(r => r.RetryAfter),
                Is.All.GreaterThan(0),
                "every 429 and 503 says when to come back");
            Assert.That(byStatus.GetValueOrDefault(HttpStatusCode.TooManyRequests), Is.GreaterThan(0), "the concurrency cap (half the pool: 1) turned some away");
            Assert.That(answeredWithin, Is.LessThan(TimeSpan.FromSeconds(30)), "no request hangs");
        });

        await _db.WaitForProcessedAsync(ids.Count, TimeSpan.FromSeconds(90));
        Assert.That(
            await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE attempts > 1 OR metadata ? 'last_error'"),
            Is.Zero,
            "no attempt failed for want of a connection");
        await AssertConnectionsSettleAsync(poolSize: 3);
        using var after = await service.ProcessEventAsync(await _db.InsertEventAsync("nobody.handles.this"));
        Assert.That(after.StatusCode, Is.AnyOf(HttpStatusCode.Accepted, HttpStatusCode.Conflict), "the pool is usable afterwards");
    }

    /// <summary>
    /// The service's connections to the test database end idle (none active or stuck in a transaction), and no
    /// pool holds more than its size: nothing leaked.
    /// </summary>
    private async Task AssertConnectionsSettleAsync(int poolSize)
    {
        var sessions = new List<(string Application, string State)>();
        await TestDatabase.WaitUntilAsync(
            async () =>
            {
                await using var connection = new NpgsqlConnection(PostgresServer.AdminConnectionString);
                await connection.OpenAsync();
                sessions = (await connection.QueryAsync<(string, string)>(
                    """
                    SELECT application_name, coalesce(state, '') FROM pg_stat_activity
                    WHERE datname = @name AND application_name LIKE 'event-processor%' AND pid <> pg_backend_pid()
                    """,
                    new { name = _db.Name })).ToList();
                return sessions.All(s => s.State == "idle");
            },
            "the service's connections are idle",
            TimeSpan.FromSeconds(30));
        var perPool = sessions.GroupBy(s => s.Application).ToDictionary(g => g.Key, g => g.Count());
        await TestContext.Out.WriteLineAsync($"connections afterwards: {JsonSerializer.Serialize(perPool)}");
        Assert.That(perPool.Values, Is.All.LessThanOrEqualTo(poolSize), "no pool grew past its size");
    }

    private static int RetryAfterSeconds(HttpResponseMessage response) =>
        response.Headers.RetryAfter?.Delta is { } delta ? (int)delta.TotalSeconds : 0;
}
