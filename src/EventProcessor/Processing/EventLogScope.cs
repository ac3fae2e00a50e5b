using System.Collections;
using EventProcessor.Events;

namespace EventProcessor.Processing;

/// <summary>
/// The properties every log line about one event carries: its id, type, attempt and correlation id. Named like the
/// table's columns; <c>EventId</c> would collide with the logging framework's own event id.
/// </summary>
internal sealed class EventLogScope(StoredEvent storedEvent) : IReadOnlyList<KeyValuePair<string, object?>>
{
    public int Count => 4;

    public KeyValuePair<string, object?> this[int index] => index switch
    {
        0 => new("event_id", storedEvent.Id),
        1 => new("event_type", storedEvent.EventType),
        2 => new("attempt", storedEvent.Attempt),
        3 => new("correlation_id", storedEvent.CorrelationId),
        _ => throw new ArgumentOutOfRangeException(nameof(index)),
    };

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
    {
        for (var i = 0; i < Count; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => $"event {storedEvent.Id} ({storedEvent.EventType}, attempt {storedEvent.Attempt})";
}
