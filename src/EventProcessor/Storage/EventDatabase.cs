using Npgsql;

namespace EventProcessor.Storage;

/// <summary>The engine's own connection pool, so that its session settings never leak into the host's.</summary>
internal sealed class EventDatabase : IAsyncDisposable
{
    public EventDatabase(EventProcessorOptions options)
    {
        var builder = new NpgsqlDataSourceBuilder(options.ConnectionString);
        var settings = builder.ConnectionStringBuilder;
        settings.ApplicationName ??= "event-processor";

        // Server-side guard for a process that freezes inside a batch transaction (SIGSTOP, a stuck VM): the server
        // ends the transaction, and the locks it holds, once it has sat idle longer than any handler may run.
        var idleLimit = (long)(options.HandlerTimeout + options.LeaseDuration).TotalMilliseconds;
        settings.Options = $"{settings.Options} -c idle_in_transaction_session_timeout={idleLimit}".Trim();
        DataSource = builder.Build();
    }

    public NpgsqlDataSource DataSource { get; }

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();
}
