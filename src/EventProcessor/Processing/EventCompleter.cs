using EventProcessor.Storage;
using Npgsql;
using NpgsqlTypes;

namespace EventProcessor.Processing;

/// <summary>Writes the fate of a batch: one guarded statement for every outcome, whatever the mix.</summary>
internal sealed class EventCompleter(EventProcessorOptions options)
{
    /// <summary>
    /// Applies <paramref name="results"/> to the claimed rows, fenced on this instance's lease and the attempt number.
    /// Runs in <paramref name="transaction"/> when handlers wrote, so their writes commit with the outcome; otherwise
    /// on its own as one implicit transaction.
    /// </summary>
    /// <returns>The ids whose outcome was applied; a claimed id missing from it had lost its lease.</returns>
    public async Task<HashSet<Guid>> CompleteAsync(
        NpgsqlConnection connection,
        NpgsqlTransaction? transaction,
        IReadOnlyList<EventAttempt> attempts,
        IReadOnlyList<ExecutionResult> results,
        CancellationToken cancellationToken)
    {
        var count = attempts.Count;
        var ids = new Guid[count];
        var attemptNumbers = new int[count];
        var kinds = new int[count];
        var errors = new string?[count];
        var delays = new TimeSpan[count];
        var followUpCount = 0;
        for (var i = 0; i < count; i++)
        {
            ids[i] = attempts[i].Event.Id;
            attemptNumbers[i] = attempts[i].Event.Attempt;
            kinds[i] = (int)results[i].Kind;
            errors[i] = results[i].Error;
            delays[i] = results[i].RetryDelay;
            if (results[i].Kind == OutcomeKind.Completed && attempts[i].HasFollowUps)
            {
                followUpCount += attempts[i].FollowUps.Count;
            }
        }

        var newIds = new Guid[followUpCount];
        var causes = new Guid[followUpCount];
        var types = new string[followUpCount];
        var aggregateIds = new Guid?[followUpCount];
        var aggregateTypes = new string?[followUpCount];
        var payloads = new string[followUpCount];
        var metadata = new string[followUpCount];
        var tenants = new string?[followUpCount];
        var n = 0;
        for (var i = 0; i < count && followUpCount > 0; i++)
        {
            if (results[i].Kind != OutcomeKind.Completed || !attempts[i].HasFollowUps)
            {
                continue;
            }

            foreach (var followUp in attempts[i].FollowUps)
            {
                newIds[n] = followUp.Id;
                causes[n] = followUp.CausationId;
                types[n] = followUp.EventType;
                aggregateIds[n] = followUp.AggregateId;
                aggregateTypes[n] = followUp.AggregateType;
                payloads[n] = followUp.PayloadJson;
                metadata[n] = followUp.MetadataJson;
                tenants[n] = followUp.TenantId;
                n++;
            }
        }

        var command = new NpgsqlBatchCommand(EventSql.CompleteBatch);
        command.Parameters.Add(new NpgsqlParameter<Guid[]>("ids", ids));
        command.Parameters.Add(new NpgsqlParameter<int[]>("attempts", attemptNumbers));
        command.Parameters.Add(new NpgsqlParameter<int[]>("kinds", kinds));
        command.Parameters.Add(new NpgsqlParameter<string?[]>("errors", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = errors });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan[]>("delays", NpgsqlDbType.Array | NpgsqlDbType.Interval) { TypedValue = delays });
        command.Parameters.Add(new NpgsqlParameter<string>("owner", options.InstanceName));
        command.Parameters.Add(new NpgsqlParameter<Guid[]>("new_ids", newIds));
        command.Parameters.Add(new NpgsqlParameter<Guid[]>("new_causes", causes));
        command.Parameters.Add(new NpgsqlParameter<string[]>("new_types", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = types });
        command.Parameters.Add(new NpgsqlParameter<Guid?[]>("new_aggregate_ids", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { TypedValue = aggregateIds });
        command.Parameters.Add(new NpgsqlParameter<string?[]>("new_aggregate_types", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = aggregateTypes });
        command.Parameters.Add(new NpgsqlParameter<string[]>("new_payloads", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = payloads });
        command.Parameters.Add(new NpgsqlParameter<string[]>("new_metadata", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = metadata });
        command.Parameters.Add(new NpgsqlParameter<string?[]>("new_tenants", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = tenants });

        await using var batch = new NpgsqlBatch(connection, transaction)
        {
            BatchCommands = { new NpgsqlBatchCommand(EventSql.PrepareAcknowledgement), command },
        };
        await batch.PrepareAsync(cancellationToken);
        var applied = new HashSet<Guid>(count);
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.NextResultAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            applied.Add(reader.GetGuid(0));
        }

        return applied;
    }
}
