using EventProcessor.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EventProcessor.Processing;

/// <summary>
/// Holds one connection that listens on <see cref="EventSql.PendingEventsChannel"/> and wakes a poll loop
/// (<see cref="EventEngine.Wake"/>) on each notification, so a new or replayed event is claimed at once instead of at
/// the end of the poll interval. Runs only when polling does.
/// </summary>
/// <remarks>
/// A notification sent while no session of ours listens is lost for good: PostgreSQL delivers only to sessions
/// listening when the sender commits. So every LISTEN, the first and each one after a reconnect, is followed by one
/// wake-up, whose claim finds whatever became pending meanwhile. The poll interval remains the fallback for what
/// this cannot see (a connection that died silently, until keepalive notices). A lost connection is retried with
/// the same backoff as the poll loop's claims, whatever the error, for as long as it takes: this only speeds
/// things up, so it never gives up and never stops the host.
/// </remarks>
internal sealed class PendingEventListener(
    EventEngine engine,
    EventDatabase database,
    EventProcessorOptions options,
    TimeProvider timeProvider,
    ILogger<PendingEventListener> logger) : BackgroundService
{
    // When the listener stopped listening (connection lost, or never made), for the log line of its return; null while
    // it listens. Touched by the one ExecuteAsync flow only.
    private DateTimeOffset? _deafSince;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.EnablePolling)
        {
            return;
        }

        await Task.Yield();
        var listen = DatabaseResilience.Create(timeProvider, static _ => true, OnListenFailed);
        while (!stoppingToken.IsCancellationRequested)
        {
            NpgsqlConnection connection;
            try
            {
                connection = await listen.ExecuteAsync(static (self, token) => self.ListenAsync(token), this, stoppingToken);
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }

            await using (connection)
            {
                // Anything that became pending before this LISTEN took effect notified no one of ours.
                engine.Wake();
                if (_deafSince is { } since)
                {
                    Log.ListenerReconnected(logger, timeProvider.GetUtcNow() - since);
                }
                else
                {
                    Log.Listening(logger, EventSql.PendingEventsChannel);
                }

                _deafSince = null;
                try
                {
                    while (true)
                    {
                        // Raises connection.Notification for each notification; pings the server every KeepAlive.
                        await connection.WaitAsync(stoppingToken);
                    }
                }
                catch (Exception) when (stoppingToken.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception exception)
                {
                    _deafSince = timeProvider.GetUtcNow();
                    Log.ListenerLost(logger, options.PollInterval, exception);
                }
            }
        }
    }

    /// <summary>Opens the listener's connection and subscribes it; the connection is the caller's to dispose.</summary>
    private async ValueTask<NpgsqlConnection> ListenAsync(CancellationToken cancellationToken)
    {
        var connection = database.ListenerDataSource.CreateConnection();
        try
        {
            // Subscribed before LISTEN, so that a notification arriving with LISTEN's own answer is not missed.
            connection.Notification += (_, _) => engine.Wake();
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand(EventSql.ListenForPendingEvents, connection);
            await command.ExecuteNonQueryAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private void OnListenFailed(int attempt, TimeSpan retryDelay, Exception? exception)
    {
        if (_deafSince is null)
        {
            // The first connection never came up: say so once, like a lost one.
            _deafSince = timeProvider.GetUtcNow();
            Log.ListenerUnavailable(logger, attempt, retryDelay, options.PollInterval, exception);
        }
        else
        {
            Log.ListenerStillUnavailable(logger, attempt, retryDelay, exception);
        }
    }
}
