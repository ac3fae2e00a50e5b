using System.Diagnostics;
using System.Globalization;
using Dapper;
using EventProcessor.FaultHost;
using EventProcessor.Tests.Service;
using EventProcessor.Tests.Support;
using Npgsql;
using NUnit.Framework.Interfaces;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// What one fault test starts: a database of its own (with <c>fault_effects</c>), a directory for the external-call
/// logs, and fault-host processes (<c>dotnet EventProcessor.FaultHost.dll</c>: the real service plus the
/// <c>fault.*</c> handlers). Disposing stops every process it started, prints their last lines when the test failed,
/// and drops the database.
/// </summary>
public sealed class FaultRun : IAsyncDisposable
{
    private readonly List<ServiceProcess> _services = [];
    private readonly Func<ValueTask> _dropDatabase;

    private FaultRun(string connectionString, string url, Func<ValueTask> dropDatabase)
    {
        ConnectionString = connectionString;
        Url = url;
        _dropDatabase = dropDatabase;
        DataSource = NpgsqlDataSource.Create(connectionString);
        LogDirectory = Directory.CreateTempSubdirectory("eventproc-faults-").FullName;
    }

    public string ConnectionString { get; }

    /// <summary>The database as a <c>postgres://</c> URL, for DATABASE_URL.</summary>
    public string Url { get; }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>FAULT_LOG_DIR: every process's external calls, one file per process.</summary>
    public string LogDirectory { get; }

    /// <summary>A database cloned from the migrated template on the tests' server.</summary>
    public static async Task<FaultRun> CreateAsync()
    {
        var database = await TestDatabase.CreateAsync();
        var run = new FaultRun(database.ConnectionString, database.Url, database.DisposeAsync);
        await FaultEffects.CreateTableAsync(run.ConnectionString);
        return run;
    }

    /// <summary>An already migrated database somewhere else (a server of the test's own).</summary>
    public static async Task<FaultRun> CreateAsync(string connectionString, string url)
    {
        var run = new FaultRun(connectionString, url, () => ValueTask.CompletedTask);
        await FaultEffects.CreateTableAsync(run.ConnectionString);
        return run;
    }

    /// <summary>The settings every fault test starts from; tests change what their fault needs.</summary>
    public Dictionary<string, string?> Settings() => new(StringComparer.Ordinal)
    {
        ["DATABASE_URL"] = Url,
        ["POLL_INTERVAL_MS"] = "50",
        ["BATCH_SIZE"] = "20",
        ["MAX_RETRIES"] = "5",
        ["RETRY_BASE_DELAY_MS"] = "100",
        ["RETRY_MAX_DELAY_MS"] = "2000",
        ["LEASE_MS"] = "2000",
        ["HANDLER_TIMEOUT_MS"] = "10000",
        ["FAULT_LOG_DIR"] = LogDirectory,
        ["FAULT_HANDLER_DELAY_MS"] = "0",
    };

    /// <summary>Starts a fault host and waits until its <c>GET /health</c> answers 200.</summary>
    public async Task<ServiceProcess> StartAsync(IReadOnlyDictionary<string, string?> settings)
    {
        var service = await ServiceProcess.StartAsync(settings, TimeSpan.FromSeconds(60), ServiceProcess.FaultHostAssembly);
        _services.Add(service);
        return service;
    }

    /// <summary>
    /// Starts a fault host and returns at once, as a supervisor does: a poison met in the first batch can take the
    /// process down before its <c>GET /health</c> ever answers.
    /// </summary>
    public ServiceProcess Launch(IReadOnlyDictionary<string, string?> settings)
    {
        var service = ServiceProcess.Launch(ServiceProcess.FaultHostAssembly, settings);
        _services.Add(service);
        return service;
    }

    /// <summary>
    /// Inserts <paramref name="count"/> events of <paramref name="eventType"/> in one statement, 1 ms apart in
    /// <c>created_at</c> (an hour ago), round-robin over <paramref name="aggregates"/> new aggregates (none when 0).
    /// The payload is <paramref name="payload"/> plus <c>n</c>, the event's position: <paramref name="first"/>,
    /// then on (a later call continues the FIFO order where an earlier one stopped).
    /// </summary>
    public Task InsertAsync(int count, int aggregates = 0, string eventType = FaultTypes.Record, string payload = "{}", int first = 1)
    {
        var aggregateIds = Enumerable.Range(0, aggregates).Select(_ => Guid.NewGuid()).ToArray();
        var aggregateOfEach = aggregates == 0 ? [] : Enumerable.Range(first, count).Select(n => aggregateIds[n % aggregates]).ToArray();
        return InsertAsync(count, aggregateOfEach, eventType, payload, first);
    }

    /// <summary>
    /// As above, with the aggregate of each event given: event <c>n</c> goes to
    /// <c>aggregateOfEach[n - first]</c> (none when the array is empty).
    /// </summary>
    public async Task InsertAsync(int count, Guid[] aggregateOfEach, string eventType = FaultTypes.Record, string payload = "{}", int first = 1)
    {
        ArgumentNullException.ThrowIfNull(aggregateOfEach);
        if (aggregateOfEach.Length != 0 && aggregateOfEach.Length != count)
        {
            throw new ArgumentException($"{aggregateOfEach.Length} aggregates for {count} events.", nameof(aggregateOfEach));
        }

        await using var connection = await DataSource.OpenConnectionAsync();
        await connection.ExecuteAsync(
            """
            INSERT INTO events (id, event_type, aggregate_id, payload, created_at)
            SELECT gen_random_uuid(), @eventType,
                   CASE WHEN cardinality(@aggregateOfEach) > 0 THEN (@aggregateOfEach)[1 + g - @first] END,
                   @payload::jsonb || jsonb_build_object('n', g),
                   now() - interval '1 hour' + g * interval '1 ms'
            FROM generate_series(@first, @first + @count - 1) AS g
            """,
            new { eventType, aggregateOfEach, payload, count, first },
            commandTimeout: 120);
    }

    public async Task<long> CountAsync(string sql)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<long>(sql);
    }

    public Task<long> PendingAsync() => CountAsync("SELECT count(*) FROM events WHERE processed = false");

    /// <summary>
    /// The events the process <paramref name="pid"/> holds right now (a lease that may have run out, not yet taken
    /// over), and the database's clock.
    /// </summary>
    public async Task<(DateTime Now, Guid[] Held)> HeldAsync(int pid)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        var now = await connection.ExecuteScalarAsync<DateTime>("SELECT clock_timestamp()");
        // locked_by is "<host>:<pid>:<suffix>" (EventProcessorOptions.InstanceName).
        var held = await connection.QueryAsync<Guid>(
            "SELECT id FROM events WHERE split_part(locked_by, ':', 2) = @pid", new { pid = pid.ToString(CultureInfo.InvariantCulture) });
        return (now, [.. held]);
    }

    /// <summary>The events claimed more than once.</summary>
    public async Task<Guid[]> ReattemptedAsync()
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        return [.. await connection.QueryAsync<Guid>("SELECT id FROM events WHERE attempts > 1")];
    }

    /// <summary>When the last of <paramref name="ids"/> was marked processed (the database's clock).</summary>
    public async Task<DateTime> LastProcessedAtAsync(Guid[] ids)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<DateTime>("SELECT max(processed_at) FROM events WHERE id = ANY(@ids)", new { ids });
    }

    /// <summary>The state of the table after a run, for the asserts every fault test makes.</summary>
    public async Task<TableState> StateAsync()
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        return await connection.QuerySingleAsync<TableState>(
            """
            WITH effects AS (SELECT event_id, count(*) AS n FROM fault_effects GROUP BY event_id)
            SELECT count(*) AS Events,
                   count(*) FILTER (WHERE e.processed) AS Processed,
                   count(*) FILTER (WHERE e.metadata ? 'dead_lettered') AS DeadLettered,
                   (SELECT count(*) FROM event_dead_letters) AS DeadLetterRows,
                   count(*) FILTER (WHERE e.locked_by IS NOT NULL OR e.locked_until IS NOT NULL) AS Locked,
                   count(*) FILTER (WHERE e.attempts > 1) AS Reattempted,
                   count(*) FILTER (WHERE e.metadata ? 'retry_count') AS WithRetryCount,
                   coalesce(max(e.attempts), 0) AS MaxAttempts,
                   (SELECT count(*) FROM fault_effects) AS Effects,
                   count(*) FILTER (WHERE coalesce(x.n, 0) <> 1) AS NotExactlyOneEffect,
                   count(*) FILTER (WHERE NOT e.processed AND x.n IS NOT NULL) AS EffectButNotProcessed
            FROM events e LEFT JOIN effects x ON x.event_id = e.id
            """);
    }

    /// <summary>Every committed <c>fault_effects</c> row with its event's order key, in the order the handlers began.</summary>
    public async Task<List<EffectRow>> EffectsAsync()
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        var rows = await connection.QueryAsync<EffectRow>(
            """
            SELECT f.event_id AS EventId, f.aggregate_id AS AggregateId, f.attempt AS Attempt, f.pid AS Pid,
                   f.started_at AS StartedAt, e.created_at AS CreatedAt
            FROM fault_effects f JOIN events e ON e.id = f.event_id
            ORDER BY f.started_at, f.id
            """);
        return [.. rows];
    }

    /// <summary>Every external call any process made, as logged.</summary>
    public List<FaultCall> ExternalCalls() => FaultLog.ReadAll(LogDirectory);

    /// <summary>Polls until <paramref name="condition"/> holds; fails naming <paramref name="what"/> and the services' last lines.</summary>
    public async Task WaitUntilAsync(Func<Task<bool>> condition, string what, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            if (deadline.Elapsed > timeout)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:0} s waiting until {what}.{string.Concat(_services.Select(s => s.Tail(20)))}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>A figure for the README (the test project runs with invariant globalization).</summary>
    public static Task WriteAsync(string line) => TestContext.Out.WriteLineAsync(line);

    public async ValueTask DisposeAsync()
    {
        var failed = TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed;
        foreach (var service in _services)
        {
            if (failed)
            {
                await TestContext.Out.WriteLineAsync(service.Tail(60));
            }

            await service.DisposeAsync();
        }

        await DataSource.DisposeAsync();
        await _dropDatabase();
        try
        {
            Directory.Delete(LogDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A temp directory left behind is harmless.
        }
    }
}

public sealed record TableState(
    long Events,
    long Processed,
    long DeadLettered,
    long DeadLetterRows,
    long Locked,
    long Reattempted,
    long WithRetryCount,
    int MaxAttempts,
    long Effects,
    long NotExactlyOneEffect,
    long EffectButNotProcessed);

public sealed record EffectRow(Guid EventId, Guid? AggregateId, int Attempt, int Pid, DateTime StartedAt, DateTime CreatedAt);
