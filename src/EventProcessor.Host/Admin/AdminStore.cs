using System.Text.Json;
using EventProcessor.Ingress.Clients;
using Npgsql;

namespace EventProcessor.Host.Admin;

/// <summary>
/// The admin endpoints' writes: replay, dead-letter retry, and the audit rows of accepted admin requests; and the
/// start-up's removal of the sample clients.
/// </summary>
internal sealed class AdminStore(AdminDatabase database, ILogger<AdminStore> logger)
{
    /// <summary>Replays those of <paramref name="ids"/> that are processed, and audits it, in one statement.</summary>
    /// <exception cref="NpgsqlException">The database could not be reached; nothing changed.</exception>
    public async Task<ReplayResult> ReplayAsync(IReadOnlyList<Guid> ids, AuditContext audit, CancellationToken cancellationToken)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(AdminSql.ReplayEvents, connection);
        command.Parameters.Add(new NpgsqlParameter<Guid[]>("ids", [.. ids]));
        command.Parameters.Add(new NpgsqlParameter<int>("sample", AdminSql.AuditSampleSize));
        AddAuditParameters(command, audit);
        var reset = new List<Guid>();
        var pending = new List<Guid>();
        var unknown = new List<Guid>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var id = reader.GetGuid(0);
            (reader.GetBoolean(2) ? reset : reader.GetBoolean(1) ? pending : unknown).Add(id);
        }

        return new ReplayResult(reset, pending, unknown);
    }

    /// <summary>Replays the event of dead letter <paramref name="deadLetterId"/> when it is still dead-lettered, and audits it, in one statement.</summary>
    /// <exception cref="NpgsqlException">The database could not be reached; nothing changed.</exception>
    public async Task<DeadLetterRetry> RetryDeadLetterAsync(Guid deadLetterId, AuditContext audit, CancellationToken cancellationToken)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(AdminSql.RetryDeadLetter, connection);
        command.Parameters.Add(new NpgsqlParameter<Guid>("id", deadLetterId));
        AddAuditParameters(command, audit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return new DeadLetterRetry(DeadLetterRetryStatus.NotFound, null);
        }

        var eventId = reader.GetGuid(0);
        var status = reader.GetBoolean(2) ? DeadLetterRetryStatus.Reset
            : reader.GetBoolean(1) ? DeadLetterRetryStatus.NoLongerDeadLettered
            : DeadLetterRetryStatus.NoEvent;
        return new DeadLetterRetry(status, eventId);
    }

    /// <summary>
    /// Writes the audit row of a change the engine made in its own transactions (an on-demand run). The change is
    /// done whatever happens here, so a failure is logged as an error rather than reported to the caller as one.
    /// </summary>
    public async Task RecordAsync(
        AuditContext audit, string action, IReadOnlyList<Guid> targetIds, string outcome, object? detail, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand(AdminSql.RecordAudit, connection);
            AddAuditParameters(command, audit);
            command.Parameters.Add(new NpgsqlParameter<string>("action", action));
            command.Parameters.Add(new NpgsqlParameter<Guid[]>("targetIds", [.. targetIds]));
            command.Parameters.Add(new NpgsqlParameter<string>("outcome", outcome));
            command.Parameters.Add(new NpgsqlParameter<string>("detail", JsonSerializer.Serialize(detail ?? new { })));
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException or OperationCanceledException)
        {
            Log.AuditWriteFailed(logger, action, audit.Actor, string.Join(",", targetIds), exception);
        }
    }

    /// <summary>
    /// Removes the seed's sample clients (<see cref="ClientStore.DevelopmentClients"/>), found by their public keys,
    /// and returns their ids. Their keys are in the README, so they may exist only while the service runs in
    /// Development without an admin key; a database seeded by such a run keeps them until this runs.
    /// </summary>
    /// <exception cref="NpgsqlException">The database could not be reached; nothing changed.</exception>
    public async Task<IReadOnlyList<string>> RemoveSampleClientsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(AdminSql.RemoveSampleClients, connection);
        command.Parameters.Add(new NpgsqlParameter<byte[][]>("hashes", [.. ClientStore.DevelopmentClients.Select(c => ClientStore.Hash(c.ApiKey))]));
        var removed = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            removed.Add(reader.GetString(0));
        }

        return removed;
    }

    private static void AddAuditParameters(NpgsqlCommand command, AuditContext audit)
    {
        command.Parameters.Add(new NpgsqlParameter<string>("actor", audit.Actor));
        command.Parameters.Add(new NpgsqlParameter<string>("requestId", audit.RequestId));
    }
}

/// <summary>Who made an admin request, and which request it was (for the logs).</summary>
/// <param name="Actor">"admin" (the admin key) or "anonymous" (admin endpoints open); never a key.</param>
/// <param name="RequestId">The request's trace identifier.</param>
internal sealed record AuditContext(string Actor, string RequestId);

/// <summary>What a replay did with each id asked for.</summary>
internal sealed record ReplayResult(IReadOnlyList<Guid> Reset, IReadOnlyList<Guid> AlreadyPending, IReadOnlyList<Guid> Unknown);

/// <summary>What a dead-letter retry found.</summary>
internal sealed record DeadLetterRetry(DeadLetterRetryStatus Status, Guid? EventId);

internal enum DeadLetterRetryStatus
{
    /// <summary>The event was dead-lettered and is now pending again.</summary>
    Reset,

    /// <summary>No dead letter has this id.</summary>
    NotFound,

    /// <summary>The dead letter is a delivery refused at the door: there is no event to run.</summary>
    NoEvent,

    /// <summary>The event is no longer dead-lettered (replayed since): nothing to retry.</summary>
    NoLongerDeadLettered,
}
