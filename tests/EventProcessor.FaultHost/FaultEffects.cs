using Dapper;
using Npgsql;

namespace EventProcessor.FaultHost;

/// <summary>
/// The <c>fault_effects</c> table: one row per handling whose transaction committed. It has no unique key on
/// purpose, so that an effect applied twice shows up as two rows instead of an error.
/// </summary>
public static class FaultEffects
{
    /// <summary>Creates the table if it is missing; safe when several hosts start at once.</summary>
    public const string CreateTable =
        """
        SELECT pg_advisory_xact_lock(7264115093418226351);
        CREATE TABLE IF NOT EXISTS fault_effects (
          id bigserial PRIMARY KEY,
          event_id uuid NOT NULL,
          aggregate_id uuid,
          attempt int NOT NULL,
          pid int NOT NULL,
          -- When the handler began (it writes first, then sleeps).
          started_at timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX IF NOT EXISTS fault_effects_event_id ON fault_effects (event_id);
        """;

    /// <summary>The handler's write, in the batch transaction.</summary>
    public const string Record =
        """
        INSERT INTO fault_effects (event_id, aggregate_id, attempt, pid)
        VALUES (@eventId, @aggregateId, @attempt, @pid)
        """;

    public static async Task CreateTableAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await connection.ExecuteAsync(CreateTable, transaction: transaction);
        await transaction.CommitAsync();
    }
}
