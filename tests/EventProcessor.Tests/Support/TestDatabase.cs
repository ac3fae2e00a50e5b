using System.Text.Json;
using Dapper;
using Npgsql;

namespace EventProcessor.Tests.Support;

/// <summary>A database of its own for one test, cloned from the migrated template and dropped afterwards.</summary>
public sealed class TestDatabase : IAsyncDisposable
{
    private static int _counter;

    private TestDatabase(string name)
    {
        Name = name;
        ConnectionString = PostgresServer.ConnectionStringFor(name);
        DataSource = NpgsqlDataSource.Create(ConnectionString);
    }

    public string Name { get; }

    public string ConnectionString { get; }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>The database as a <c>postgres://</c> URL, the way the service reads DATABASE_URL.</summary>
    public string Url
    {
        get
        {
            var builder = new NpgsqlConnectionStringBuilder(ConnectionString);
            var password = string.IsNullOrEmpty(builder.Password) ? "" : $":{Uri.EscapeDataString(builder.Password)}";
            return $"postgres://{Uri.EscapeDataString(builder.Username!)}{password}@{builder.Host}:{builder.Port}/{Name}";
        }
    }

    public static async Task<TestDatabase> CreateAsync()
    {
        var name = $"eventproc_test_{Environment.ProcessId}_{Interlocked.Increment(ref _counter)}";
        await using var admin = new NpgsqlConnection(PostgresServer.AdminConnectionString);
        await admin.OpenAsync();
        await admin.ExecuteAsync($"CREATE DATABASE {name} TEMPLATE {PostgresServer.TemplateName} STRATEGY FILE_COPY");
        return new TestDatabase(name);
    }

    public async Task<Guid> InsertEventAsync(
        string eventType,
        object? payload = null,
        Guid? aggregateId = null,
        Guid? id = null,
        DateTimeOffset? createdAt = null,
        string? metadata = null)
    {
        var eventId = id ?? Guid.NewGuid();
        await using var connection = await DataSource.OpenConnectionAsync();
        await connection.ExecuteAsync(
            """
            INSERT INTO events (id, event_type, aggregate_id, payload, metadata, created_at)
            VALUES (@eventId, @eventType, @aggregateId, @payload::jsonb, coalesce(@metadata::jsonb, '{}'), coalesce(@createdAt, now()))
            """,
            new
            {
                eventId,
                eventType,
                aggregateId,
                payload = payload as string ?? JsonSerializer.Serialize(payload ?? new { }),
                metadata,
                createdAt,
            });
        return eventId;
    }

    public async Task<EventRow> GetEventAsync(Guid id)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        return await connection.QuerySingleAsync<EventRow>(
            """
            SELECT id, event_type AS EventType, processed, attempts, metadata::text AS Metadata, next_attempt_at AS NextAttemptAt,
                   locked_by AS LockedBy, processed_at AS ProcessedAt,
                   (metadata->>'retry_count')::int AS RetryCount, metadata->>'last_error' AS LastError,
                   coalesce((metadata->>'dead_lettered')::boolean, false) AS DeadLettered,
                   coalesce((metadata->>'skipped')::boolean, false) AS Skipped
            FROM events WHERE id = @id
            """,
            new { id });
    }

    public async Task<T> ScalarAsync<T>(string sql, object? parameters = null)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<T>(sql, parameters) ?? throw new InvalidOperationException($"No value from: {sql}");
    }

    public async Task ExecuteAsync(string sql, object? parameters = null)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await connection.ExecuteAsync(sql, parameters);
    }

    /// <summary>Polls until <paramref name="condition"/> holds; fails with <paramref name="what"/> after the timeout.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting until {what}.");
            }

            await Task.Delay(50);
        }
    }

    public Task WaitForProcessedAsync(int count, TimeSpan? timeout = null) =>
        WaitUntilAsync(
            async () => await ScalarAsync<long>("SELECT count(*) FROM events WHERE processed") >= count,
            $"{count} events are processed",
            timeout);

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        await using var admin = new NpgsqlConnection(PostgresServer.AdminConnectionString);
        await admin.OpenAsync();
        await admin.ExecuteAsync($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)");
    }
}

public sealed record EventRow(
    Guid Id,
    string EventType,
    bool Processed,
    int Attempts,
    string Metadata,
    DateTime NextAttemptAt,
    string? LockedBy,
    DateTime? ProcessedAt,
    int? RetryCount,
    string? LastError,
    bool DeadLettered,
    bool Skipped);
