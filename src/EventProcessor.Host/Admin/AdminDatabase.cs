using Npgsql;

namespace EventProcessor.Host.Admin;

/// <summary>
/// The admin endpoints' own connection pool (replay, dead-letter retry, the audit log), apart from the engine's so
/// that admin requests never take the poll loop's connections. It waits 3 s at most for a connection: an admin
/// caller hears "503, try again" quickly rather than after the pool's usual 15 s.
/// </summary>
internal sealed class AdminDatabase : IAsyncDisposable
{
    private const int ConnectionTimeoutSeconds = 3;

    public AdminDatabase(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        builder.ConnectionStringBuilder.ApplicationName = "event-processor-admin";
        var timeout = builder.ConnectionStringBuilder.Timeout; // 0 would mean "wait for ever"
        builder.ConnectionStringBuilder.Timeout = timeout is > 0 and < ConnectionTimeoutSeconds ? timeout : ConnectionTimeoutSeconds;
        DataSource = builder.Build();
    }

    public NpgsqlDataSource DataSource { get; }

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();
}
