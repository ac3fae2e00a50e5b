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
    // A connection lost sooner than this after its LISTEN counts as a quick loss (see _quickLosses).
    private static readonly TimeSpan QuickLoss = TimeSpan.FromMinutes(1);

    // The fields below are touched by the one ExecuteAsync flow only.

    // When the listener stopped listening (connection lost, or never made), for the log line of its return; null
    // while it listens.
    private DateTimeOffset? _deafSince;

    // Quick losses in a row. A connection that keeps breaking right after it is made (a proxy dropping sessions)
    // would otherwise reconnect without pause: the backoff covers failed connects only, and starts over after each one
    // that works. So each quick loss in a row doubles a pause before the next connect.
    private int _quickLosses;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.EnablePolling)
        {
            return;
        }

        await Task.Yield();
        // Whatever the error (a timeout is an NpgsqlException), except the cancellation that means shutdown.
        var listen = DatabaseResilience.Create(timeProvider, static e => e is not OperationCanceledException, OnListenFailed);
        while (!stoppingToken.IsCancellationRequested)
        {
            if (_quickLosses > 0)
            {
                await Task.Delay(PauseAfterQuickLosses(_quickLosses), timeProvider, stoppingToken)
                    .ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (stoppingToken.IsCancellationRequested)
                {
                    break;
                }
            }

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
                var listeningSince = timeProvider.GetUtcNow();
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
                    _quickLosses = _deafSince - listeningSince < QuickLoss ? _quickLosses + 1 : 0;
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

    /// <summary>200 ms after one quick loss, doubling with each one in a row, 15 s at most.</summary>
    private static TimeSpan PauseAfterQuickLosses(int losses) =>
        TimeSpan.FromMilliseconds(Math.Min(15_000, 200 * Math.Pow(2, Math.Min(losses - 1, 10))));

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
