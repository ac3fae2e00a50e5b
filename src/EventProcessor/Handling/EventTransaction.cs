using Npgsql;

namespace EventProcessor.Handling;

/// <summary>
/// The open connection and transaction of the batch, positioned at a savepoint taken for this event: what the
/// handler writes here commits with the event's processed mark, and is rolled back if this event fails.
/// </summary>
/// <param name="Connection">The open connection. Do not close it, and do not commit or roll back the transaction.</param>
/// <param name="Transaction">The transaction to pass to every command.</param>
public sealed record EventTransaction(NpgsqlConnection Connection, NpgsqlTransaction Transaction);
