namespace EventProcessor.Events;

/// <summary>
/// An event a handler appends while handling another. It is inserted in the same transaction that marks the
/// handled event processed, so it exists if and only if that handling committed.
/// </summary>
internal sealed record FollowUpEvent(
    Guid Id,
    Guid CausationId,
    string EventType,
    Guid? AggregateId,
    string? AggregateType,
    string PayloadJson,
    string MetadataJson,
    string? TenantId);
