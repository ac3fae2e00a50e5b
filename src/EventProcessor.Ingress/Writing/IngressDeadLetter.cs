namespace EventProcessor.Ingress.Writing;

/// <summary>
/// A delivery that can never be accepted, kept in <c>event_dead_letters</c> with its reason so that it is neither
/// lost nor retried forever.
/// </summary>
/// <param name="Id">The dead letter's id: derived from the delivery, so a redelivered refusal is recorded once.</param>
/// <param name="EventId">The id the event would have had.</param>
/// <param name="EventType">The type it claimed, or what the adapter calls it when it claimed none.</param>
/// <param name="PayloadJson">What arrived, as JSON.</param>
/// <param name="Reason">Why it was refused.</param>
/// <param name="ReceiveCount">How many times the source had delivered it.</param>
/// <param name="SentAt">When the source first had it.</param>
public sealed record IngressDeadLetter(
    Guid Id,
    Guid EventId,
    string EventType,
    string PayloadJson,
    string Reason,
    int ReceiveCount,
    DateTimeOffset SentAt);
