using System.Collections.Concurrent;
using System.Diagnostics;
using Dapper;
using EventProcessor.Handling;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EventProcessor.Benchmarks;

/// <summary>A handler that does nothing: what the engine itself costs.</summary>
[HandlesEvent("bench.noop")]
internal sealed class NoOpHandler : IEventHandler<System.Text.Json.JsonElement>
{
    public Task HandleAsync(EventContext<System.Text.Json.JsonElement> context, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>The realistic projection: one row written in the event's transaction.</summary>
[HandlesEvent("bench.project")]
internal sealed class ProjectingHandler : IEventHandler<System.Text.Json.JsonElement>
{
    public async Task HandleAsync(EventContext<System.Text.Json.JsonElement> context, CancellationToken cancellationToken)
    {
        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(
            "INSERT INTO bench_projection (event_id) VALUES (@id)", new { id = context.Event.Id }, db.Transaction);
    }
}

/// <summary>Records when each event was handled, for latency.</summary>
[HandlesEvent("bench.latency")]
internal sealed class LatencyHandler(LatencyLog log) : IEventHandler<System.Text.Json.JsonElement>
{
    public Task HandleAsync(EventContext<System.Text.Json.JsonElement> context, CancellationToken cancellationToken)
    {
        log.Record(context.Event.CreatedAt, DateTimeOffset.UtcNow - context.Event.CreatedAt);
        return Task.CompletedTask;
    }
}

/// <summary>Latencies of the events inserted after the warm-up; of those inserted during it, only the worst.</summary>
internal sealed class LatencyLog
{
    private readonly ConcurrentQueue<TimeSpan> _latencies = new();
    private long _warmUpWorstTicks;
    private int _warmUpCount;

    public DateTimeOffset WarmUpEnds { get; set; } = DateTimeOffset.MaxValue;

    public int Count => _latencies.Count + Volatile.Read(ref _warmUpCount);

    public TimeSpan WarmUpWorst => TimeSpan.FromTicks(Interlocked.Read(ref _warmUpWorstTicks));

    public void Record(DateTimeOffset insertedAt, TimeSpan latency)
    {
        if (insertedAt >= WarmUpEnds)
        {
            _latencies.Enqueue(latency);
            return;
        }

        Interlocked.Increment(ref _warmUpCount);
        long seen;
        while (latency.Ticks > (seen = Interlocked.Read(ref _warmUpWorstTicks))
               && Interlocked.CompareExchange(ref _warmUpWorstTicks, latency.Ticks, seen) != seen)
        {
        }
    }

    public int Measured => _latencies.Count;

    public double Percentile(double p)
    {
        var sorted = _latencies.Select(l => l.TotalMilliseconds).Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p / 100 * sorted.Length) - 1)];
    }
}

/// <summary>The product: the engine hosted in-process, as an application would host it.</summary>
internal static class ProductRuns
{
    public static readonly TimeSpan LatencyWarmUp = TimeSpan.FromSeconds(1);

    public const int LatencyBatchSize = 100;

    /// <summary>One drain: events per second, this process's CPU seconds and peak working set, and the PostgreSQL
    /// server's CPU seconds (NaN when the server is not on this machine).</summary>
    public sealed record DrainResult(double EventsPerSecond, double CpuSeconds, double PeakWorkingSetMb, double PostgresCpuSeconds);

    public static async Task<DrainResult> DrainAsync(
        BenchDatabase database, int events, int batchSize, string eventType, int aggregates = 0, bool keepHistory = false, int? workers = null,
        int tenants = 0)
    {
        await database.ResetAsync(events, eventType, aggregates, keepHistory, tenants);
        if (eventType == "bench.project")
        {
            await using var connection = new Npgsql.NpgsqlConnection(database.ConnectionString);
            await connection.ExecuteAsync("CREATE TABLE IF NOT EXISTS bench_projection (event_id uuid PRIMARY KEY); TRUNCATE bench_projection");
        }

        // The clock times a running service draining a backlog, as the ceiling's loops are timed from their first
        // claim: the engine's claims wait on its claim lock, held here, until the host is up and claiming.
        await using var startLine = new Npgsql.NpgsqlConnection(database.ConnectionString);
        await startLine.OpenAsync();
        await startLine.ExecuteAsync(HoldClaimLock);
        using var host = Build(database, batchSize, workers, TimeSpan.FromMilliseconds(100), services => { });
        await host.StartAsync();
        var engine = host.Services.GetRequiredService<EventEngine>();
        await WaitForClaimsAsync(startLine);
        var meter = new ProcessMeter();
        var postgres = await PostgresMeter.StartAsync(database.ConnectionString);
        var stopwatch = Stopwatch.StartNew();
        await startLine.ExecuteAsync(HoldClaimLock.Replace("pg_advisory_lock", "pg_advisory_unlock", StringComparison.Ordinal));
        while (engine.Stats.TotalProcessed < events)
        {
            await Task.Delay(5);
        }

        stopwatch.Stop();
        var (cpu, peak) = meter.Stop();
        var postgresCpu = postgres?.Stop() ?? double.NaN;
        await host.StopAsync();
        var pending = await database.PendingAsync();
        if (pending != 0)
        {
            throw new InvalidOperationException($"{pending} events still pending after the drain.");
        }

        return new DrainResult(events / stopwatch.Elapsed.TotalSeconds, cpu, peak, postgresCpu);
    }

    // The engine's own claim lock (EventSql.TakeClaimLock), taken for the session rather than a transaction.
    private static readonly string HoldClaimLock =
        EventProcessor.Storage.EventSql.TakeClaimLock.Replace("pg_advisory_xact_lock", "pg_advisory_lock", StringComparison.Ordinal);

    private static async Task WaitForClaimsAsync(Npgsql.NpgsqlConnection connection)
    {
        var deadline = Stopwatch.StartNew();
        while (await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted") == 0)
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new InvalidOperationException("The engine did not start claiming within 30 s.");
            }

            await Task.Delay(10);
        }
    }

    /// <summary>
    /// Inserts at <paramref name="ratePerSecond"/> for <see cref="LatencyWarmUp"/> and then <paramref name="duration"/>,
    /// into a service started just before; the percentiles are of the events inserted after the warm-up. A service's
    /// first half second (connections opened, statements prepared, code compiled) is slower than the rest; its worst
    /// latency is returned apart.
    /// </summary>
    public static async Task<(double P50, double P95, double P99, int Count, TimeSpan WarmUpWorst)> LatencyAsync(
        BenchDatabase database, int ratePerSecond, TimeSpan duration, TimeSpan pollInterval)
    {
        await database.ResetAsync(0, "bench.latency");
        var log = new LatencyLog();
        using var host = Build(database, LatencyBatchSize, null, pollInterval, services => services.AddSingleton(log));
        await host.StartAsync();

        // Inserts at a steady rate from one connection, one row per statement, as producers do.
        await using var connection = new Npgsql.NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        var total = (int)(ratePerSecond * (LatencyWarmUp + duration).TotalSeconds);
        log.WarmUpEnds = DateTimeOffset.UtcNow + LatencyWarmUp;
        var stopwatch = Stopwatch.StartNew();
        for (var i = 0; i < total; i++)
        {
            var due = TimeSpan.FromSeconds((double)i / ratePerSecond);
            var wait = due - stopwatch.Elapsed;
            if (wait > TimeSpan.FromMilliseconds(1))
            {
                await Task.Delay(wait);
            }

            await connection.ExecuteAsync(
                "INSERT INTO events (id, event_type, payload) VALUES (@id, 'bench.latency', '{\"n\": 1}')",
                new { id = Guid.CreateVersion7() });
        }

        var deadline = Stopwatch.StartNew();
        while (log.Count < total && deadline.Elapsed < pollInterval + TimeSpan.FromSeconds(30))
        {
            await Task.Delay(20);
        }

        await host.StopAsync();
        return (log.Percentile(50), log.Percentile(95), log.Percentile(99), log.Measured, log.WarmUpWorst);
    }

    // workers: null for the engine's default (EventProcessorOptions.Workers).
    private static IHost Build(BenchDatabase database, int batchSize, int? workers, TimeSpan pollInterval, Action<IServiceCollection> services)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.Services
            .AddEventProcessor(options =>
            {
                options.ConnectionString = database.ConnectionString;
                options.BatchSize = batchSize;
                options.PollInterval = pollInterval;
                options.Workers = workers ?? options.Workers;
            })
            .AddHandler<NoOpHandler>()
            .AddHandler<ProjectingHandler>()
            .AddHandler<LatencyHandler>();
        services(builder.Services);
        return builder.Build();
    }
}
