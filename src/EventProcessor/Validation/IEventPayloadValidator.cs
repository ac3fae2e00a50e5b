namespace EventProcessor.Validation;

/// <summary>
/// The contract of an event type's payload, checked again just before dispatch: a row written by hand, by an old
/// producer or before a schema tightened still never reaches a handler in a shape it was not written for. A violation
/// is permanent, so the event is dead-lettered at once, never retried.
/// </summary>
public interface IEventPayloadValidator
{
    /// <summary>The violations of <paramref name="payloadJson"/>, each a short sentence; empty when it is valid or
    /// when <paramref name="eventType"/> has no contract.</summary>
    IReadOnlyList<string> Validate(string eventType, string payloadJson);
}
