using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EventProcessor.Processing;

/// <summary>
/// Decides when to claim: again at once after a full batch, otherwise after the poll interval (or a wake-up).
/// Waits out database outages inside the engine; anything else is logged and the loop goes on.
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
        Log.PollingStarted(logger, options.PollInterval, options.BatchSize, options.InstanceName);
        while (!stoppingToken.IsCancellationRequested)
        {
            var claimed = 0;
            try
            {
                claimed = await engine.RunBatchAsync(waitOutOutage: true, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception exception)
            {
                Log.PollFailed(logger, options.PollInterval, exception);
            }

            if (claimed < options.BatchSize)
            {
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

        Log.PollingStopped(logger);
    }
}
