using System.Text.Json;
using EventProcessor.Events;
using EventProcessor.Processing;

namespace EventProcessor.Handling;

/// <summary>What a handler receives: the event, its typed payload, and its share of the batch's transaction.</summary>
/// <typeparam name="TPayload">The handler's payload type.</typeparam>
public sealed class EventContext<TPayload>
{
    private readonly EventAttempt _attempt;

    internal EventContext(EventAttempt attempt, TPayload payload)
    {
        _attempt = attempt;
        Payload = payload;
    }

    /// <summary>The event as stored, with the attempt number.</summary>
    public StoredEvent Event => _attempt.Event;

    /// <summary>The payload, deserialized.</summary>
    public TPayload Payload { get; }

    /// <summary>The correlation id that follow-up events inherit.</summary>
    public string CorrelationId => _attempt.Event.CorrelationId;

    /// <summary>
    /// The open connection and transaction for database work that must commit atomically with this event.
    /// The first call per event takes a savepoint, so handlers that never call it cost no round trip.
    /// </summary>
    public ValueTask<EventTransaction> GetTransactionAsync(CancellationToken cancellationToken) =>
        _attempt.EnterTransactionAsync(cancellationToken);

    /// <summary>
    /// Appends a follow-up event, inserted in the same transaction that marks this event processed. Its metadata
    /// carries <c>causation_id</c> (this event's id) and <c>correlation_id</c> (this event's correlation id).
    /// </summary>
    /// <returns>The new event's id.</returns>
    public Guid Append<TFollowUp>(
        string eventType,
        TFollowUp payload,
        Guid? aggregateId = null,
        string? aggregateType = null,
        Guid? id = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(eventType);
        var followUpId = id ?? Guid.CreateVersion7();
        var metadata = JsonSerializer.Serialize(new FollowUpMetadata(Event.Id.ToString(), CorrelationId));
        _attempt.FollowUps.Add(new FollowUpEvent(
            followUpId,
            Event.Id,
            eventType,
            aggregateId,
            aggregateType,
            JsonSerializer.Serialize(payload, _attempt.SerializerOptions),
            metadata,
            Event.TenantId));
        return followUpId;
    }

    private sealed record FollowUpMetadata(
        [property: System.Text.Json.Serialization.JsonPropertyName("causation_id")] string CausationId,
        [property: System.Text.Json.Serialization.JsonPropertyName("correlation_id")] string CorrelationId);
}
