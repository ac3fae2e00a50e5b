using System.Text.Json;
using EventProcessor.Events;
using EventProcessor.Handling;

namespace EventProcessor.Processing;

/// <summary>One claimed event while its handlers run: what they appended and whether they wrote to the database.</summary>
internal sealed class EventAttempt(StoredEvent storedEvent, BatchSession session, JsonSerializerOptions serializerOptions)
{
    private List<FollowUpEvent>? _followUps;

    public StoredEvent Event { get; } = storedEvent;

    public JsonSerializerOptions SerializerOptions { get; } = serializerOptions;

    /// <summary>True once a handler asked for the transaction: this event's writes live or die with it.</summary>
    public bool UsedTransaction { get; private set; }

    public List<FollowUpEvent> FollowUps => _followUps ??= [];

    public bool HasFollowUps => _followUps is { Count: > 0 };

    public void DiscardFollowUps() => _followUps?.Clear();

    public ValueTask<EventTransaction> EnterTransactionAsync(CancellationToken cancellationToken)
    {
        UsedTransaction = true;
        return session.EnterAsync(this, cancellationToken);
    }
}
