using Dapper;
using EventProcessor.Tests.Support;
using Npgsql;

namespace EventProcessor.Tests.Service;

/// <summary>
/// A brand-new database with no tables at all (plain <c>CREATE DATABASE</c>, not the migrated template), for
/// tests of what the service itself creates. Dropped afterwards.
/// </summary>
public sealed class EmptyDatabase : IAsyncDisposable
{
    private static int _counter;

    private EmptyDatabase(string name)
    {
        Name = name;
        ConnectionString = PostgresServer.ConnectionStringFor(name);
        DataSource = NpgsqlDataSource.Create(ConnectionString);
    }

    public string Name { get; }

    public string ConnectionString { get; }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>The database as a <c>postgres://</c> URL, the way the service reads DATABASE_URL.</summary>
    public string Url => UrlFor(Name);

    public static async Task<EmptyDatabase> CreateAsync()
    {
        var name = $"eventproc_empty_{Environment.ProcessId}_{Interlocked.Increment(ref _counter)}";
        await using var admin = new NpgsqlConnection(PostgresServer.AdminConnectionString);
        await admin.OpenAsync();
        await admin.ExecuteAsync($"CREATE DATABASE {name}");
        return new EmptyDatabase(name);
    }

    /// <summary>A <c>postgres://</c> URL for <paramref name="database"/> on the test server.</summary>
    public static string UrlFor(string database)
    {
        var builder = new NpgsqlConnectionStringBuilder(PostgresServer.AdminConnectionString);
        var password = string.IsNullOrEmpty(builder.Password) ? "" : $":{Uri.EscapeDataString(builder.Password)}";
        return $"postgres://{Uri.EscapeDataString(builder.Username!)}{password}@{builder.Host}:{builder.Port}/{database}";
    }

    /// <summary>Whether a table of this name exists in the public schema.</summary>
    public async Task<bool> TableExistsAsync(string table)
    {
        return await ScalarAsync<bool>("SELECT to_regclass(@name) IS NOT NULL", new { name = $"public.{table}" });
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

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        await using var admin = new NpgsqlConnection(PostgresServer.AdminConnectionString);
        await admin.OpenAsync();
        await admin.ExecuteAsync($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)");
    }
}
