using System.Diagnostics;
using Npgsql;

namespace EventProcessor.Benchmarks;

/// <summary>
/// The ceiling: a raw Npgsql loop on the product's table and indexes, one statement that claims a batch with
/// <c>FOR UPDATE SKIP LOCKED</c> and marks it processed, on several connections. Nothing a product can beat.
/// </summary>
internal static class Ceiling
{
    private const string ClaimAndMark =
        """
        WITH c AS (
          SELECT id FROM events WHERE processed = false AND coalesce(tenant_id, '') = '' ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED
        )
        UPDATE events e SET processed = true, processed_at = now() FROM c WHERE e.id = c.id
        """;

    /// <returns>Events per second, and the PostgreSQL server's CPU seconds over the drain (NaN when not on this machine).</returns>
    public static async Task<(double EventsPerSecond, double PostgresCpuSeconds)> DrainAsync(
        BenchDatabase database, int events, int batchSize, int connections = 4)
    {
        await database.ResetAsync(events, "bench.noop");
        var postgres = await PostgresMeter.StartAsync(database.ConnectionString);
        var stopwatch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, connections).Select(_ => LoopAsync(database.ConnectionString, batchSize)));
        stopwatch.Stop();
        return (events / stopwatch.Elapsed.TotalSeconds, postgres?.Stop() ?? double.NaN);
    }

    private static async Task LoopAsync(string connectionString, int batchSize)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(ClaimAndMark, connection) { Parameters = { new() { Value = batchSize } } };
        await command.PrepareAsync();
        while (await command.ExecuteNonQueryAsync() > 0)
        {
        }
    }
}
