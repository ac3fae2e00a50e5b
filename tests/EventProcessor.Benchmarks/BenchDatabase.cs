using System.Diagnostics;
using Dapper;
using EventProcessor.Migrations;
using Npgsql;
using NpgsqlTypes;

namespace EventProcessor.Benchmarks;

/// <summary>
/// A migrated database of its own on the benchmark's server: the product's real table and indexes, filled by COPY.
/// </summary>
internal sealed class BenchDatabase(string adminConnectionString, string name) : IAsyncDisposable
{
    // About 300 bytes of JSON, like the figures in the issue.
    private const string Payload =
        """{"user_id":"7d1e5c3b-2a4f-4b6e-9c8d-0f1a2b3c4d5e","email":"someone@example.com","name":"Someone Example","plan":"pro","source":"signup-form","referrer":"https://example.com/pricing","tags":["trial","newsletter"],"created_at":"2026-11-23T12:00:00Z","locale":"en-GB"}""";

    public string ConnectionString { get; } =
        new NpgsqlConnectionStringBuilder(adminConnectionString) { Database = name, MaxPoolSize = 50 }.ConnectionString;

    public static async Task<BenchDatabase> CreateAsync(string adminConnectionString, string name)
    {
        await using (var admin = new NpgsqlConnection(adminConnectionString))
        {
            await admin.OpenAsync();
            await admin.ExecuteAsync($"DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            await admin.ExecuteAsync($"CREATE DATABASE {name}");
        }

        var database = new BenchDatabase(adminConnectionString, name);
        await SchemaMigrator.MigrateAsync(database.ConnectionString);
        return database;
    }

    /// <summary>
    /// Empties the tables (or, with <paramref name="keepHistory"/>, deletes all but the rows <see cref="AddProcessedAsync"/>
    /// added) and inserts <paramref name="count"/> pending events of <paramref name="aggregates"/> aggregates (0: none),
    /// dealt in turn to <paramref name="tenants"/> tenants (0: no tenant).
    /// </summary>
    public async Task ResetAsync(int count, string eventType, int aggregates = 0, bool keepHistory = false, int tenants = 0)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await connection.ExecuteAsync(
            keepHistory
                ? "DELETE FROM events WHERE event_type <> 'bench.history'; TRUNCATE event_dead_letters, event_aggregate_leases"
                : "TRUNCATE events, event_dead_letters, event_aggregate_leases",
            commandTimeout: 0);
        await CopyAsync(connection, count, eventType, aggregates, tenants);
        await connection.ExecuteAsync("VACUUM ANALYZE events", commandTimeout: 0);
    }

    /// <summary>Adds processed rows, to see whether a large table slows the claim.</summary>
    public async Task AddProcessedAsync(int count)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await connection.ExecuteAsync(
            """
            INSERT INTO events (id, event_type, payload, processed, processed_at, created_at)
            SELECT gen_random_uuid(), 'bench.history', '{"n": 1}', true, now(), now() - interval '1 day'
            FROM generate_series(1, @count)
            """,
            new { count },
            commandTimeout: 0);
        await connection.ExecuteAsync("VACUUM ANALYZE events", commandTimeout: 0);
    }

    public async Task<long> PendingAsync()
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM events WHERE processed = false");
    }

    /// <summary>
    /// The plans of the engine's own claim (batch 1,000) and completion (of 1,000 pending events), as PostgreSQL would
    /// run them now, with <paramref name="backlog"/> events pending beside whatever history the table holds.
    /// </summary>
    public async Task<string> ExplainEngineAsync(int backlog)
    {
        await ResetAsync(backlog, "bench.noop", aggregates: 1_000, keepHistory: true);
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        var counts = await connection.QuerySingleAsync<(long Processed, long Pending)>(
            "SELECT count(*) FILTER (WHERE processed), count(*) FILTER (WHERE NOT processed) FROM events");

        // Planned as the engine plans them: in a transaction that starts with the engine's plan settings.
        await using var transaction = await connection.BeginTransactionAsync();
        await connection.ExecuteAsync(EventProcessor.Storage.EventSql.PrepareAcknowledgement, transaction: transaction);

        await using var claim = new NpgsqlCommand($"EXPLAIN (COSTS OFF) {EventProcessor.Storage.EventSql.ClaimBatch}", connection, transaction);
        claim.Parameters.Add(new NpgsqlParameter<int>("limit", 1000));
        claim.Parameters.Add(new NpgsqlParameter<string>("owner", "bench"));
        claim.Parameters.Add(new NpgsqlParameter<TimeSpan>("lease", TimeSpan.FromSeconds(30)));
        claim.Parameters.Add(new NpgsqlParameter<Guid[]>("held", []));

        var ids = (await connection.QueryAsync<Guid>("SELECT id FROM events WHERE NOT processed ORDER BY created_at, id LIMIT 1000", transaction: transaction)).ToArray();
        await using var complete = new NpgsqlCommand($"EXPLAIN (COSTS OFF) {EventProcessor.Storage.EventSql.CompleteBatch}", connection, transaction);
        complete.Parameters.Add(new NpgsqlParameter<Guid[]>("ids", ids));
        complete.Parameters.Add(new NpgsqlParameter<int[]>("attempts", new int[ids.Length]));
        complete.Parameters.Add(new NpgsqlParameter<int[]>("kinds", new int[ids.Length]));
        complete.Parameters.Add(new NpgsqlParameter<string?[]>("errors", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = new string?[ids.Length] });
        complete.Parameters.Add(new NpgsqlParameter<TimeSpan[]>("delays", NpgsqlDbType.Array | NpgsqlDbType.Interval) { TypedValue = new TimeSpan[ids.Length] });
        complete.Parameters.Add(new NpgsqlParameter<string>("owner", "bench"));
        complete.Parameters.Add(new NpgsqlParameter<Guid[]>("new_ids", []));
        complete.Parameters.Add(new NpgsqlParameter<Guid[]>("new_causes", []));
        foreach (var name in new[] { "new_types", "new_aggregate_types", "new_payloads", "new_metadata", "new_tenants" })
        {
            complete.Parameters.Add(new NpgsqlParameter<string?[]>(name, NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = [] });
        }

        complete.Parameters.Add(new NpgsqlParameter<Guid?[]>("new_aggregate_ids", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { TypedValue = [] });
        return $"""
            table: {counts.Processed:N0} processed rows, {counts.Pending:N0} pending over 1,000 aggregates

            claim (EventSql.ClaimBatch, batch 1,000):
            {await PlanAsync(claim)}

            completion (EventSql.CompleteBatch, 1,000 events):
            {await PlanAsync(complete)}
            """;
    }

    private static async Task<string> PlanAsync(NpgsqlCommand explain)
    {
        var lines = new List<string>();
        await using var reader = await explain.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            lines.Add("    " + reader.GetString(0));
        }

        return string.Join(Environment.NewLine, lines);
    }

    private static async Task CopyAsync(NpgsqlConnection connection, int count, string eventType, int aggregates, int tenants)
    {
        var tenantIds = Enumerable.Range(0, tenants).Select(t => $"bench-tenant-{t:D3}").ToArray();
        var aggregateIds = Enumerable.Range(0, Math.Max(aggregates, 1)).Select(_ => Guid.NewGuid()).ToArray();
        var start = DateTime.UtcNow.AddMinutes(-10);
        await using var writer = await connection.BeginBinaryImportAsync(
            "COPY events (id, event_type, aggregate_id, payload, created_at, tenant_id) FROM STDIN (FORMAT BINARY)");
        for (var i = 0; i < count; i++)
        {
            await writer.StartRowAsync();
            await writer.WriteAsync(Guid.CreateVersion7(), NpgsqlDbType.Uuid);
            await writer.WriteAsync(eventType, NpgsqlDbType.Varchar);
            if (aggregates > 0)
            {
                await writer.WriteAsync(aggregateIds[i % aggregates], NpgsqlDbType.Uuid);
            }
            else
            {
                await writer.WriteNullAsync();
            }

            await writer.WriteAsync(Payload, NpgsqlDbType.Jsonb);
            await writer.WriteAsync(start.AddTicks(i * 10L), NpgsqlDbType.TimestampTz);
            if (tenants > 0)
            {
                await writer.WriteAsync(tenantIds[i % tenants], NpgsqlDbType.Varchar);
            }
            else
            {
                await writer.WriteNullAsync();
            }
        }

        await writer.CompleteAsync();
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(adminConnectionString);
        await admin.OpenAsync();
        await admin.ExecuteAsync($"DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    }
}

/// <summary>CPU and memory of this process over one measurement.</summary>
internal sealed class ProcessMeter
{
    private readonly Process _process = Process.GetCurrentProcess();
    private readonly TimeSpan _cpuAtStart;
    private long _peakWorkingSet;
    private readonly Timer _sampler;

    public ProcessMeter()
    {
        _process.Refresh();
        _cpuAtStart = _process.TotalProcessorTime;
        _sampler = new Timer(_ => Sample(), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(100));
    }

    public (double CpuSeconds, double PeakWorkingSetMb) Stop()
    {
        _sampler.Dispose();
        Sample();
        _process.Refresh();
        return ((_process.TotalProcessorTime - _cpuAtStart).TotalSeconds, _peakWorkingSet / 1024.0 / 1024.0);
    }

    private void Sample()
    {
        _process.Refresh();
        var current = _process.WorkingSet64;
        if (current > Interlocked.Read(ref _peakWorkingSet))
        {
            Interlocked.Exchange(ref _peakWorkingSet, current);
        }
    }
}

/// <summary>
/// CPU spent by the PostgreSQL server over one measurement: its backends and background processes while they live,
/// and (through the postmaster's counts of the children it has reaped) those that exited meanwhile. Read from /proc, so
/// only for a server on this machine: the one that serves the connection string it is started with.
/// </summary>
internal sealed class PostgresMeter
{
    private readonly int _postmaster;
    private readonly double _atStart;

    private PostgresMeter(int postmaster)
    {
        _postmaster = postmaster;
        _atStart = Read();
    }

    public static async Task<PostgresMeter?> StartAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var backend = await connection.ExecuteScalarAsync<int>("SELECT pg_backend_pid()");
        return Stat(backend) is { } stat && Stat(stat.Parent) is not null ? new PostgresMeter(stat.Parent) : null;
    }

    /// <summary>Seconds of CPU since the start.</summary>
    public double Stop() => Read() - _atStart;

    private double Read()
    {
        var ticks = 0L;
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), out var pid) && Stat(pid) is { } stat
                && (pid == _postmaster || stat.Parent == _postmaster))
            {
                ticks += stat.Own + (pid == _postmaster ? stat.Children : 0);
            }
        }

        return ticks / 100.0; // USER_HZ
    }

    private static (int Parent, long Own, long Children)? Stat(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
            // After the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), counted from state as 1.
            return (int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture),
                long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture),
                long.Parse(fields[13], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[14], System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }
}
