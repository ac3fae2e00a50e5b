using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Dapper;
using Npgsql;
using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// A pool of three connections, fifty clients hammering the admin endpoint, and the poll loop draining at the same
/// time, for two minutes (EVENTPROC_PRESSURE_SECONDS): every request gets an answer, never a 500, and the loop never
/// stalls.
/// </summary>
[Category("Faults")]
[NonParallelizable]
public sealed class PoolPressureTests
{
    private const int Clients = 50;

    [Test]
    public async Task UnderSustainedAdminPressureOnASmallPoolEveryRequestIsAnsweredAndTheLoopKeepsDraining()
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("EVENTPROC_PRESSURE_SECONDS"), out var s) ? s : 120;
        await using var run = await FaultRun.CreateAsync();
        var settings = run.Settings();
        settings["DATABASE_URL"] = $"{run.Url}?maxpoolsize=3";
        settings["BATCH_SIZE"] = "10";
        // The per-minute budget out of the way, so that the pool and the concurrency cap take the pressure.
        settings["ADMIN_RATE_LIMIT_PER_MINUTE"] = "1000000";
        var service = await run.StartAsync(settings);

        var statuses = new ConcurrentDictionary<int, int>();
        var missingRetryAfter = 0;
        var slowest = TimeSpan.Zero;
        var progress = new List<long>();
        var inserted = 0;
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));

        // Work for the loop: a steady 50 events a second, as a producer would insert them.
        var producer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await run.InsertAsync(5, first: Interlocked.Add(ref inserted, 5) - 4);
                await Task.Delay(100);
            }
        });

        // Fifty clients asking for events to be run now, each as fast as it is answered.
        var clients = Enumerable.Range(0, Clients).Select(_ => Task.Run(async () =>
        {
            using var http = new HttpClient { BaseAddress = service.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
            while (!stop.IsCancellationRequested)
            {
                var started = Stopwatch.GetTimestamp();
                using var response = await http.PostAsJsonAsync("/process-event", new { event_id = Guid.NewGuid() });
                var took = Stopwatch.GetElapsedTime(started);
                statuses.AddOrUpdate((int)response.StatusCode, 1, (_, n) => n + 1);
                if (response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable
                    && response.Headers.RetryAfter is null)
                {
                    Interlocked.Increment(ref missingRetryAfter);
                }

                lock (progress)
                {
                    slowest = took > slowest ? took : slowest;
                }
            }
        })).ToArray();

        // The loop's progress, every 10 s.
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromSeconds(10));
            progress.Add(await run.CountAsync("SELECT count(*) FROM events WHERE processed"));
        }

        await Task.WhenAll(clients);
        await producer;
        await run.WaitUntilAsync(async () => await run.PendingAsync() == 0, "the backlog drains after the pressure", TimeSpan.FromSeconds(120));
        var connections = await SettledConnectionsAsync(run);
        var state = await run.StateAsync();
        await FaultRun.WriteAsync(
            $"{seconds} s, {Clients} clients, pool 3: answers {string.Join(", ", statuses.OrderBy(p => p.Key).Select(p => $"{p.Key}×{p.Value}"))}; " +
            $"slowest answer {slowest.TotalSeconds:0.00} s; processed every 10 s: {string.Join(", ", progress)}; " +
            $"{state.Processed} events drained, connections afterwards {connections}");

        Assert.Multiple(() =>
        {
            Assert.That(statuses.Keys, Is.All.AnyOf(404, 429, 503), "unknown ids get 404, the rest 429 or 503; never a 500");
            Assert.That(missingRetryAfter, Is.Zero, "every 429 and 503 carries Retry-After");
            Assert.That(slowest, Is.LessThan(TimeSpan.FromSeconds(30)), "no request hangs");
            Assert.That(progress.Zip(progress.Skip(1), (a, b) => b > a), Is.All.True, "the loop progressed in every 10 s window");
            Assert.That(service.HasExited, Is.False);
            Assert.That(state.Processed, Is.EqualTo(state.Events));
            Assert.That(state.DeadLettered + state.WithRetryCount, Is.Zero, "no attempt failed for want of a connection");
            Assert.That(connections, Is.LessThanOrEqualTo(7), "the pools settled back to their size (engine and ingress, 3 each), beside the listener's one connection");
        });
    }

    private static async Task<long> SettledConnectionsAsync(FaultRun run)
    {
        var database = new NpgsqlConnectionStringBuilder(run.ConnectionString).Database;
        long busy = -1, total = 0;
        for (var i = 0; i < 100 && busy != 0; i++)
        {
            await using var admin = new NpgsqlConnection(PostgresServer.AdminConnectionString);
            await admin.OpenAsync();
            (busy, total) = await admin.QuerySingleAsync<(long, long)>(
                """
                SELECT count(*) FILTER (WHERE state <> 'idle'), count(*) FROM pg_stat_activity
                WHERE datname = @database AND application_name LIKE 'event-processor%'
                """,
                new { database });
            await Task.Delay(100);
        }

        Assert.That(busy, Is.Zero, "no connection is left busy");
        return total;
    }
}
