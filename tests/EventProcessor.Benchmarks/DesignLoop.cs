using System.Diagnostics;
using EventProcessor.Processing;
using EventProcessor.Storage;

namespace EventProcessor.Benchmarks;

/// <summary>
/// The product's own statements with nothing around them: the engine's claimer and completer in a loop on several
/// connections, every event completed, no handler, no executor. What the design's two statements per batch cost,
/// so that the engine can be measured against them and the statements against the ceiling.
/// </summary>
internal static class DesignLoop
{
    public static async Task<double> DrainAsync(BenchDatabase database, int events, int batchSize, int connections = 4)
    {
        await database.ResetAsync(events, "bench.noop");
        var options = new EventProcessorOptions { ConnectionString = database.ConnectionString, BatchSize = batchSize };
        await using var eventDatabase = new EventDatabase(options);
        var claimer = new EventClaimer(eventDatabase, options, new HeldEvents(), TimeProvider.System);
        var completer = new EventCompleter(options);
        var stopwatch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, connections).Select(_ => Task.Run(() => LoopAsync(eventDatabase, claimer, completer, options))));
        stopwatch.Stop();
        return events / stopwatch.Elapsed.TotalSeconds;
    }

    private static async Task LoopAsync(EventDatabase database, EventClaimer claimer, EventCompleter completer, EventProcessorOptions options)
    {
        await using var session = new BatchSession(database.DataSource);
        while (true)
        {
            var claimed = (await claimer.ClaimBatchAsync(options.BatchSize, onDemand: false, CancellationToken.None)).Events;
            if (claimed.Count == 0)
            {
                return;
            }

            var attempts = claimed.Select(e => new EventAttempt(e, session, options.SerializerOptions)).ToArray();
            var results = Enumerable.Repeat(ExecutionResult.Completed, attempts.Length).ToArray();
            await using var connection = await database.DataSource.OpenConnectionAsync();
            await completer.CompleteAsync(connection, null, attempts, results, CancellationToken.None);
        }
    }
}
