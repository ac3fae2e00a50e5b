using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Dapper;
using EventProcessor.Migrations;
using Npgsql;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// PostgreSQL stopped for 20 s in the middle of a drain, then started again: the service stays up, reports
/// unhealthy meanwhile, reconnects on its own, and the outage costs no event an attempt.
/// </summary>
[Category("Faults")]
[NonParallelizable]
public sealed class DatabaseRestartTests
{
    private const int Events = 3_000;
    private const int Workers = 4;
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(20);

    [Test]
    public async Task TheServiceWaitsOutADatabaseRestartAndNoEventSpendsAnAttemptOnIt()
    {
        if (!OwnPostgres.BinariesAvailable())
        {
            Assert.Ignore("This test stops a PostgreSQL of its own: it needs the server binaries (/usr/lib/postgresql/*/bin).");
        }

        await using var server = await OwnPostgres.StartAsync();
        await using (var admin = new NpgsqlConnection(server.ConnectionStringFor("postgres")))
        {
            await admin.OpenAsync();
            await admin.ExecuteAsync("CREATE DATABASE eventproc");
        }

        await SchemaMigrator.MigrateAsync(server.ConnectionStringFor("eventproc"));
        await using var run = await FaultRun.CreateAsync(server.ConnectionStringFor("eventproc"), server.UrlFor("eventproc"));
        var settings = run.Settings();
        settings["FAULT_HANDLER_DELAY_MS"] = "5";
        settings["WORKERS"] = Workers.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await run.InsertAsync(600, aggregates: 100);
        var service = await run.StartAsync(settings);
        var pid = service.ProcessId;
        await run.WaitUntilAsync(async () => await run.PendingAsync() == 0, "the first 600 events are processed", TimeSpan.FromSeconds(60));

        // Event 601, alone in the table, calls a slow service for 3 s before it asks for the transaction: the
        // database goes away in that gap, so its batch has no connection yet when it does.
        await run.InsertAsync(1, payload: """{"delay_before_ms": 3000}""", first: 601);
        await run.WaitUntilAsync(
            async () => await run.CountAsync("SELECT count(*) FROM events WHERE payload ? 'delay_before_ms' AND locked_by IS NOT NULL") == 1,
            "event 601 is claimed",
            TimeSpan.FromSeconds(10));
        var claimedAt = Stopwatch.StartNew();
        Assert.That(
            await run.CountAsync("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'"),
            Is.Zero,
            "precondition: event 601's batch has not opened its transaction yet");

        // The rest arrive, and the other loops take them in batches whose transactions are open (each handler writes,
        // then sleeps 5 ms) when the database goes away: their connections break under them.
        await run.InsertAsync(Events - 601, aggregates: 100, first: 602);
        const string OpenTransactions =
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'";
        await run.WaitUntilAsync(async () => await run.CountAsync(OpenTransactions) > 0, "another loop's batch has its transaction open", TimeSpan.FromSeconds(2));
        var inTransactionAtStop = await run.CountAsync(OpenTransactions);
        Assert.That(claimedAt.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2.5)), "precondition: event 601's handler still waits for its slow call");

        var clock = Stopwatch.StartNew();
        await server.StopAsync();
        var downAt = clock.Elapsed;
        var duringOutage = new List<HttpStatusCode>();
        while (clock.Elapsed < Outage)
        {
            duringOutage.Add(await HealthAsync(service));
            await Task.Delay(250);
        }

        Assert.That(service.HasExited, Is.False, $"the service is still running during the outage{service.Tail()}");
        await server.StartAgainAsync();
        var upAt = clock.Elapsed;
        run.DataSource.Clear();
        var restartedAt = await ScalarAsync<DateTime>(run, "SELECT clock_timestamp()");

        await run.WaitUntilAsync(
            async () => await HealthAsync(service) == HttpStatusCode.OK,
            "GET /health answers 200 again",
            TimeSpan.FromSeconds(60));
        var healthyAt = clock.Elapsed;
        await run.WaitUntilAsync(
            async () => await ScalarAsync<long>(run, "SELECT count(*) FROM events WHERE processed_at >= @restartedAt", new { restartedAt }) > 0,
            "the service processes events again",
            TimeSpan.FromSeconds(60));
        var resumedAt = clock.Elapsed;
        await run.WaitUntilAsync(async () => await run.PendingAsync() == 0, "every event is processed", TimeSpan.FromSeconds(120));
        var drainedAt = clock.Elapsed;

        var state = await run.StateAsync();
        var stats = await StatsAsync(service);
        await FaultRun.WriteAsync(
            $"{Events} events, FAULT_HANDLER_DELAY_MS 5, WORKERS {Workers}; at the stop event 601's batch had no connection yet, " +
            $"{inTransactionAtStop} other batch transaction(s) were open; PostgreSQL stopped (fast) in {downAt.TotalSeconds:0.00} s, down for " +
            $"{(upAt - downAt).TotalSeconds:0.0} s (start took {(upAt - Outage).TotalSeconds:0.00} s)");
        await FaultRun.WriteAsync(
            $"after PostgreSQL was back: /health 200 in {(healthyAt - upAt).TotalSeconds:0.00} s, processing resumed in {(resumedAt - upAt).TotalSeconds:0.00} s, " +
            $"drained {(drainedAt - upAt).TotalSeconds:0.0} s later; /health during the outage: {string.Join(", ", duringOutage.GroupBy(c => (int)c).Select(g => $"{g.Count()}x{g.Key}"))}");
        await FaultRun.WriteAsync(
            $"same process {pid}; stats: released {stats.GetProperty("releasedCount").GetInt64()}, errors {stats.GetProperty("errorCount").GetInt64()}; " +
            $"max attempts {state.MaxAttempts}, events with retry_count {state.WithRetryCount}");

        Assert.Multiple(() =>
        {
            Assert.That(service.HasExited, Is.False, "the service rode out the outage without restarting");
            Assert.That(service.ProcessId, Is.EqualTo(pid));
            Assert.That(duringOutage, Has.Member(HttpStatusCode.ServiceUnavailable), "GET /health answers 503 while the database is away");
            Assert.That(duringOutage, Has.No.Member(HttpStatusCode.OK), "and never 200");
            Assert.That(state.Processed, Is.EqualTo(Events), "every event is processed");
            Assert.That(state.DeadLettered, Is.Zero, "nothing is dead-lettered");
            Assert.That(state.DeadLetterRows, Is.Zero);
            Assert.That(state.MaxAttempts, Is.EqualTo(1), "no event spent an attempt on the outage");
            Assert.That(state.WithRetryCount, Is.Zero, "no event was scheduled for a retry");
            Assert.That(stats.GetProperty("errorCount").GetInt64(), Is.Zero, "no attempt failed");
            Assert.That(state.Effects, Is.EqualTo(Events), "one fault_effects row per event");
            Assert.That(state.NotExactlyOneEffect, Is.Zero);
            Assert.That(state.Locked, Is.Zero);
        });
    }

    private static async Task<HttpStatusCode> HealthAsync(Service.ServiceProcess service)
    {
        try
        {
            using var response = await service.Http.GetAsync(new Uri("health", UriKind.Relative));
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return 0;
        }
    }

    private static async Task<JsonElement> StatsAsync(Service.ServiceProcess service)
    {
        using var response = await service.Http.GetAsync(new Uri("health", UriKind.Relative));
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return body.RootElement.GetProperty("stats").Clone();
    }

    private static async Task<T> ScalarAsync<T>(FaultRun run, string sql, object? parameters = null)
    {
        await using var connection = await run.DataSource.OpenConnectionAsync();
        return (await connection.ExecuteScalarAsync<T>(sql, parameters))!;
    }
}
