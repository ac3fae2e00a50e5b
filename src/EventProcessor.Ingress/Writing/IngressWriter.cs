using Npgsql;
using NpgsqlTypes;

namespace EventProcessor.Ingress.Writing;

/// <summary>Writes accepted events, and refused deliveries, in one transaction. Writes rows and nothing else.</summary>
public sealed class IngressWriter(NpgsqlDataSource dataSource, IngressStats stats)
{
    /// <summary>
    /// Inserts <paramref name="events"/> (skipping ids already present for the same tenant) and
    /// <paramref name="deadLetters"/> atomically. When this returns, both are committed; when it throws, neither is,
    /// but for a conflict: then the dead letters are committed and no event is.
    /// </summary>
    /// <exception cref="IngressRejectedException">
    /// <see cref="IngressRejection.Conflict"/>: an event's id is stored for another tenant, or for none.
    /// </exception>
    /// <param name="events">The rows to add, in delivery order.</param>
    /// <param name="deadLetters">Refused deliveries to record.</param>
    /// <param name="createdBy">Stored in <c>created_by</c>, such as <c>ingress:sqs</c>.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    public async Task<IngressReceipt> WriteAsync(
        IReadOnlyList<IncomingEvent> events,
        IReadOnlyList<IngressDeadLetter> deadLetters,
        string createdBy,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(events);
        ArgumentNullException.ThrowIfNull(deadLetters);
        if (events.Count == 0 && deadLetters.Count == 0)
        {
            return new IngressReceipt([], 0, 0);
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var batch = new NpgsqlBatch(connection);
        if (events.Count > 0)
        {
            batch.BatchCommands.Add(InsertEventsCommand(events, createdBy));
        }

        if (deadLetters.Count > 0)
        {
            batch.BatchCommands.Add(InsertDeadLettersCommand(deadLetters));
        }

        // One round trip, one implicit transaction: an NpgsqlBatch runs atomically without BEGIN/COMMIT.
        var written = 0;
        Guid[] taken = [];
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken))
        {
            if (events.Count > 0 && await reader.ReadAsync(cancellationToken))
            {
                written = reader.GetInt32(0);
                taken = reader.GetFieldValue<Guid[]>(1);
            }
        }

        if (taken.Length > 0)
        {
            stats.RecordRejected(deadLetters.Count);
            throw new IngressRejectedException(
                IngressRejection.Conflict,
                $"The event id {taken[0]} is already used by an event of another tenant, or of none; nothing was written. " +
                "Send the event with an id of its own.");
        }

        var duplicates = events.Count - written;
        stats.RecordWritten(written, duplicates);
        stats.RecordRejected(deadLetters.Count);
        return new IngressReceipt(events.Select(e => e.Id).ToArray(), written, duplicates);
    }

    private static NpgsqlBatchCommand InsertEventsCommand(IReadOnlyList<IncomingEvent> events, string createdBy) =>
        new(IngressSql.InsertEvents)
        {
            Parameters =
            {
                new("ids", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = events.Select(e => e.Id).ToArray() },
                new("eventTypes", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = events.Select(e => e.EventType).ToArray() },
                new("aggregateIds", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = events.Select(e => e.AggregateId).ToArray() },
                new("aggregateTypes", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = events.Select(e => e.AggregateType).ToArray() },
                new("payloads", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = events.Select(e => e.PayloadJson).ToArray() },
                new("metadata", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = events.Select(e => e.MetadataJson).ToArray() },
                new("tenantIds", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = events.Select(e => e.TenantId).ToArray() },
                new("createdBy", NpgsqlDbType.Text) { Value = createdBy },
            },
        };

    private static NpgsqlBatchCommand InsertDeadLettersCommand(IReadOnlyList<IngressDeadLetter> deadLetters) =>
        new(IngressSql.InsertDeadLetters)
        {
            Parameters =
            {
                new("ids", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = deadLetters.Select(d => d.Id).ToArray() },
                new("eventIds", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = deadLetters.Select(d => d.EventId).ToArray() },
                new("eventTypes", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = deadLetters.Select(d => d.EventType).ToArray() },
                new("payloads", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = deadLetters.Select(d => d.PayloadJson).ToArray() },
                new("reasons", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = deadLetters.Select(d => d.Reason).ToArray() },
                new("retryCounts", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = deadLetters.Select(d => d.ReceiveCount).ToArray() },
                new("sentAts", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { Value = deadLetters.Select(d => d.SentAt.UtcDateTime).ToArray() },
            },
        };
}
