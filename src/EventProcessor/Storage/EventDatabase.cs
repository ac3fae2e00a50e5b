using Npgsql;

namespace EventProcessor.Storage;

/// <summary>The engine's own connection pool, so that its session settings never leak into the host's.</summary>
internal sealed class EventDatabase : IAsyncDisposable
{
    /// <summary>Appended to the engine's application_name on the listener's connection, so that it can be told apart.</summary>
    public const string ListenerApplicationNameSuffix = "-listener";

    public EventDatabase(EventProcessorOptions options)
    {
        var builder = new NpgsqlDataSourceBuilder(options.ConnectionString);
        var settings = builder.ConnectionStringBuilder;
        settings.ApplicationName ??= "event-processor";

        // Server-side guard for a process that freezes inside a batch transaction (SIGSTOP, a stuck VM): the server
        // ends the transaction, and the locks it holds, once it has sat idle longer than any handler may run.
        var idleLimit = (long)(options.HandlerTimeout + options.LeaseDuration).TotalMilliseconds;
        // No JIT: the claim's estimated cost crosses jit_above_cost once the backlog is large, and compiling it takes
        // hundreds of milliseconds for a statement that runs in one.
        settings.Options = $"{settings.Options} -c idle_in_transaction_session_timeout={idleLimit} -c jit=off".Trim();

        // The listener's one connection is not pooled: closing it must end its session, for a pooled session would
        // stay subscribed, and the server would keep notifications for it that no one reads. Keepalive makes a wait
        // on it ping the server every 15 s, so that a connection that died without a word (a dropped NAT entry, a
        // failed-over host) is noticed within about twice that, instead of never.
        var listener = new NpgsqlConnectionStringBuilder(settings.ConnectionString)
        {
            ApplicationName = settings.ApplicationName + ListenerApplicationNameSuffix,
            Pooling = false,
            KeepAlive = 15,
        };
        DataSource = builder.Build();
        ListenerDataSource = NpgsqlDataSource.Create(listener);
    }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>Where <see cref="Processing.PendingEventListener"/> opens its connection.</summary>
    public NpgsqlDataSource ListenerDataSource { get; }

    public async ValueTask DisposeAsync()
    {
        await ListenerDataSource.DisposeAsync();
        await DataSource.DisposeAsync();
    }
}
