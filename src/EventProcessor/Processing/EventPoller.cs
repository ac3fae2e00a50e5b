using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EventProcessor.Processing;

/// <summary>
/// Runs <see cref="EventProcessorOptions.Workers"/> poll loops. Each claims its share of a claim shared by every loop
/// waiting to claim (<see cref="EventEngine.RunSharedBatchAsync"/>), runs it, and goes on while its fates are written;
/// a loop whose claim says more is due claims again at once and wakes a sleeping one, so the loops fan out while there
/// is a backlog and fall back to one claim per wake-up when there is not: going round after every non-empty claim
/// would multiply tiny claims, which queue on the claim lock. A loop otherwise waits for its last fates to be written and sleeps until a wake-up (<see cref="EventEngine.Wake"/>:
/// a new or replayed event, through <see cref="PendingEventListener"/>, or an on-demand request) or the poll interval,
/// the fallback for a wake-up that never came. Database outages are waited out inside the engine; anything else is
/// logged and the loop goes on.
/// </summary>
internal sealed class EventPoller(EventEngine engine, EventProcessorOptions options, ILogger<EventPoller> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.EnablePolling)
        {
            Log.PollingDisabled(logger);
            return;
        }

        await Task.Yield();
        Log.PollingStarted(logger, options.PollInterval, options.BatchSize, options.Workers, options.InstanceName);

        // A handler transaction per loop, one claim and one completion at a time, the lease keeper; the listener has a
        // connection of its own, outside the pool. Fewer still works, with loops queueing for connections: say so once.
        var needed = options.Workers + 3;
        var pool = new Npgsql.NpgsqlConnectionStringBuilder(options.ConnectionString).MaxPoolSize;
        if (pool < needed)
        {
            Log.PoolSmallerThanWorkers(logger, pool, needed, options.Workers);
        }

        await Task.WhenAll(Enumerable.Range(0, options.Workers).Select(_ => Task.Run(() => LoopAsync(stoppingToken), CancellationToken.None)));
        Log.PollingStopped(logger);
    }

    private async Task LoopAsync(CancellationToken stoppingToken)
    {
        // The fates of this loop's last batch, written while it claims and runs the next: at most one batch written
        // and one running per loop.
        var writing = Task.CompletedTask;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var more = false;
                try
                {
                    (more, var next) = await engine.RunSharedBatchAsync(stoppingToken);
                    var previous = writing;
                    writing = next;
                    await previous;
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception exception)
                {
                    Log.PollFailed(logger, options.PollInterval, exception);
                }

                if (more)
                {
                    // More is waiting: go round again at once, and wake a sleeping loop to claim beside this one.
                    engine.Wake();
                    continue;
                }

                await WrittenAsync(writing);
                writing = Task.CompletedTask;
                try
                {
                    await engine.WaitForWorkAsync(options.PollInterval, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        finally
        {
            await WrittenAsync(writing);
        }
    }

    private async Task WrittenAsync(Task writing)
    {
        try
        {
            await writing;
        }
        catch (OperationCanceledException)
        {
            // Gave up on shutdown: the events are released by their leases running out.
        }
        catch (Exception exception)
        {
            Log.PollFailed(logger, options.PollInterval, exception);
        }
    }
}
