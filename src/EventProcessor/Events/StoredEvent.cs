namespace EventProcessor.Events;

/// <summary>An event row as a handler sees it: the seed's columns plus the attempt being made.</summary>
/// <param name="Id">The event's id (primary key).</param>
/// <param name="EventType">The routing key, such as <c>user.created</c>.</param>
/// <param name="AggregateId">The aggregate the event belongs to; events of one aggregate are handled in order.</param>
/// <param name="AggregateType">The aggregate's type, free text.</param>
/// <param name="Payload">The payload as JSON text, exactly as stored.</param>
/// <param name="Metadata">The metadata as JSON text (<c>{}</c> when the column is NULL).</param>
/// <param name="Version">The seed's <c>version</c> column.</param>
/// <param name="CreatedAt">When the event was inserted.</param>
/// <param name="CreatedBy">Who inserted it, free text.</param>
/// <param name="TenantId">The tenant that owns the event, if any.</param>
/// <param name="Attempt">1 for the first attempt, 2 for the first retry, and so on.</param>
/// <param name="CorrelationId">The <c>correlation_id</c> from metadata, or the event's own id when it starts a chain.</param>
public sealed record StoredEvent(
    Guid Id,
    string EventType,
    Guid? AggregateId,
    string? AggregateType,
    string Payload,
    string Metadata,
    int Version,
    DateTimeOffset CreatedAt,
    string? CreatedBy,
    string? TenantId,
    int Attempt,
    string CorrelationId)
{
    /// <summary>
    /// An attempt of this event before this one started and never ended (<c>attempts</c> over
    /// <c>last_failed_attempt</c>, as the claim read them): it may have killed its process.
    /// </summary>
    internal bool Suspect { get; init; }

    /// <summary>The aggregate whose order this event keeps: its tenant's, so that two tenants never share one.</summary>
    internal AggregateKey? Aggregate => AggregateId is { } aggregateId ? new AggregateKey(TenantId, aggregateId) : null;
}

/// <summary>An aggregate as the engine orders it: the aggregate id within its tenant (none for events without one).</summary>
/// <param name="TenantId">The tenant, or null.</param>
/// <param name="AggregateId">The aggregate id the producer gave.</param>
internal readonly record struct AggregateKey(string? TenantId, Guid AggregateId);
