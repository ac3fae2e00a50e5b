using EventProcessor.Events;
using EventProcessor.Storage;
using Npgsql;

namespace EventProcessor.Processing;

/// <summary>
/// Leases due events to this instance: a batch for the poll loop, or one event asked for by id. Never an event this
/// process still holds (<see cref="HeldEvents"/>), even once its lease has run out (renewals failed through a database
/// outage): this process writes that event's fate itself, and taking it again would count a second attempt and run
/// it beside the first. Other instances rescue it when its lease runs out; this process, once it has let go of it.
/// </summary>
internal sealed class EventClaimer(EventDatabase database, EventProcessorOptions options, HeldEvents held, TimeProvider timeProvider)
{
    /// <param name="limit">The most events to claim.</param>
    /// <param name="onDemand">True for a run someone asked for: the connection wait is bounded (see <see cref="OpenAsync"/>).</param>
    /// <param name="cancellationToken">Cancels the claim.</param>
    public async Task<ClaimedBatch> ClaimBatchAsync(int limit, bool onDemand, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(onDemand, cancellationToken);
        var claim = new NpgsqlBatchCommand(EventSql.ClaimBatch);
        claim.Parameters.Add(new NpgsqlParameter<int>("limit", limit));
        AddLeaseParameters(claim.Parameters);
        var (events, more) = await ReadClaimedAsync(connection, claim, cancellationToken);
        return new ClaimedBatch(events, events.Count == limit || more);
    }

    public async Task<ClaimByIdResult> ClaimByIdAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(onDemand: true, cancellationToken);
        var claim = new NpgsqlBatchCommand(EventSql.ClaimById);
        claim.Parameters.Add(new NpgsqlParameter<Guid>("id", id));
        AddLeaseParameters(claim.Parameters);
        var (claimed, _) = await ReadClaimedAsync(connection, claim, cancellationToken);
        if (claimed.Count == 1)
        {
            return new ClaimByIdResult(ProcessEventStatus.Processed, claimed[0], null);
        }

        await using var explain = new NpgsqlCommand(EventSql.ExplainUnclaimable, connection);
        explain.Parameters.Add(new NpgsqlParameter<Guid>("id", id));
        await using var reader = await explain.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return new ClaimByIdResult(ProcessEventStatus.NotFound, null, null);
        }

        if (reader.GetBoolean(0))
        {
            return new ClaimByIdResult(ProcessEventStatus.AlreadyProcessed, null, null);
        }

        if (!reader.IsDBNull(2))
        {
            return new ClaimByIdResult(ProcessEventStatus.WaitingForEarlierEvent, null, reader.GetGuid(2));
        }

        // Held by a live lease, or locked for an instant by a completion in flight.
        return new ClaimByIdResult(ProcessEventStatus.Held, null, null);
    }

    /// <summary>
    /// A connection for a claim. The poll loop waits for one as long as the pool's own timeout says; an on-demand run
    /// waits <see cref="EventProcessorOptions.OnDemandConnectionTimeout"/> at most, so that a caller whose request
    /// cannot get a connection (an exhausted pool) hears so at once instead of after the pool's 15 s.
    /// </summary>
    private async Task<NpgsqlConnection> OpenAsync(bool onDemand, CancellationToken cancellationToken)
    {
        if (!onDemand)
        {
            return await database.DataSource.OpenConnectionAsync(cancellationToken);
        }

        using var timeout = new CancellationTokenSource(options.OnDemandConnectionTimeout, timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            return await database.DataSource.OpenConnectionAsync(linked.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException(
                $"No database connection within {options.OnDemandConnectionTimeout.TotalMilliseconds:0} ms (pool exhausted or database slow).");
        }
    }

    private void AddLeaseParameters(NpgsqlParameterCollection parameters)
    {
        parameters.Add(new NpgsqlParameter<string>("owner", options.InstanceName));
        parameters.Add(new NpgsqlParameter<TimeSpan>("lease", options.LeaseDuration));
        parameters.Add(new NpgsqlParameter<Guid[]>("held", held.ToArray()));
    }

    private static async Task<(List<StoredEvent> Events, bool More)> ReadClaimedAsync(
        NpgsqlConnection connection,
        NpgsqlBatchCommand claim,
        CancellationToken cancellationToken)
    {
        // One round trip, one implicit transaction: the claim lock is held until the claim commits.
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands = { new NpgsqlBatchCommand(EventSql.TakeClaimLock), new NpgsqlBatchCommand(EventSql.PinIndexPlans), claim },
        };

        // Planning the claim costs about as much as running it; a pooled connection keeps it prepared after the first.
        await batch.PrepareAsync(cancellationToken);
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.NextResultAsync(cancellationToken);
        await reader.NextResultAsync(cancellationToken);
        var claimed = new List<StoredEvent>();
        var more = false;
        while (await reader.ReadAsync(cancellationToken))
        {
            var id = reader.GetGuid(0);
            claimed.Add(new StoredEvent(
                Id: id,
                EventType: reader.GetString(1),
                AggregateId: reader.IsDBNull(2) ? null : reader.GetGuid(2),
                AggregateType: reader.IsDBNull(3) ? null : reader.GetString(3),
                Payload: reader.GetString(4),
                Metadata: reader.GetString(5),
                Version: reader.GetInt32(6),
                CreatedAt: reader.GetFieldValue<DateTimeOffset>(7),
                CreatedBy: reader.IsDBNull(8) ? null : reader.GetString(8),
                TenantId: reader.IsDBNull(9) ? null : reader.GetString(9),
                Attempt: reader.GetInt32(10),
                CorrelationId: reader.IsDBNull(11) ? id.ToString() : reader.GetString(11))
            {
                Suspect = reader.GetBoolean(12),
            });

            // A batch claim's last column, the same on every row.
            more = reader.FieldCount > 14 && reader.GetBoolean(14);
        }

        return (claimed, more);
    }
}

/// <summary>What a batch claim took, in the order to run it.</summary>
/// <param name="Events">The events, each tenant's in FIFO order, the tenants in turns.</param>
/// <param name="More">More may be due now: the claim came back full, or a tenant had more to offer than its share.</param>
internal sealed record ClaimedBatch(List<StoredEvent> Events, bool More);

/// <summary>What became of a claim by id.</summary>
internal sealed record ClaimByIdResult(ProcessEventStatus Status, StoredEvent? Event, Guid? WaitingFor);
