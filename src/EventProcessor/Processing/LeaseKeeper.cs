using EventProcessor.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EventProcessor.Processing;

/// <summary>
/// Renews the leases on what this instance holds (<see cref="HeldEvents"/>, and their aggregates), every third of the
/// lease, while it holds anything. A process that
/// dies or freezes stops renewing, and its events become claimable once the lease runs out.
/// </summary>
internal sealed class LeaseKeeper(
    EventDatabase database,
    HeldEvents held,
    EventProcessorOptions options,
    TimeProvider timeProvider,
    ILogger<LeaseKeeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.LeaseDuration / 3, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                if (!held.IsEmpty)
                {
                    await RenewAsync(stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutdown: the batch in flight completes or releases what it holds.
        }
    }

    private async Task RenewAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand(EventSql.RenewLeases, connection);
            command.Parameters.Add(new NpgsqlParameter<Guid[]>("ids", held.ToArray()));
            command.Parameters.Add(new NpgsqlParameter<string>("owner", options.InstanceName));
            command.Parameters.Add(new NpgsqlParameter<TimeSpan>("lease", options.LeaseDuration));
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            // The next tick tries again; if the database stays away longer than the lease, others may take over,
            // and the fenced completion makes sure our late write then changes nothing.
            Log.LeaseRenewalFailed(logger, exception);
        }
    }
}
