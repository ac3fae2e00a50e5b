namespace EventProcessor.Ingress;

/// <summary>One row on its way into <c>events</c>, as an ingress adapter made it from what arrived.</summary>
/// <param name="Id">The row's id: the source's own id when it is a UUID, else a name-based UUID (v5) of the source's
/// natural key, so that a redelivery maps to the same row.</param>
/// <param name="EventType">The routing key, such as <c>aws.ecs.ecs_task_state_change</c>.</param>
/// <param name="AggregateId">Events of one aggregate are handled in order (a log stream, a WebSocket connection).</param>
/// <param name="AggregateType">Free text naming what <paramref name="AggregateId"/> identifies.</param>
/// <param name="PayloadJson">The payload as JSON text.</param>
/// <param name="MetadataJson">The metadata as a JSON object's text.</param>
/// <param name="TenantId">The client that sent the event, when one did.</param>
public sealed record IncomingEvent(
    Guid Id,
    string EventType,
    Guid? AggregateId,
    string? AggregateType,
    string PayloadJson,
    string MetadataJson,
    string? TenantId);
