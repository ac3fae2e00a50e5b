namespace EventProcessor.Handling;

/// <summary>
/// Handles events whose payload deserializes to <typeparamref name="TPayload"/>. Declare the event types it
/// handles with <see cref="HandlesEventAttribute"/> and register it with
/// <see cref="EventProcessorBuilder.AddHandler{THandler}()"/> or an assembly scan.
/// </summary>
/// <remarks>
/// Throwing fails the attempt: the event is retried with backoff and dead-lettered after <c>MAX_RETRIES</c>.
/// Writes made through <see cref="EventContext{TPayload}.GetTransactionAsync"/> commit with the event's processed
/// mark or not at all (exactly once); calls to the outside world may repeat (at least once), so make them idempotent,
/// for example keyed on <see cref="Events.StoredEvent.Id"/>.
/// </remarks>
/// <typeparam name="TPayload">The payload type; System.Text.Json deserializes the stored JSON into it.</typeparam>
public interface IEventHandler<TPayload>
{
    /// <summary>Handles one event. Honour <paramref name="cancellationToken"/>: it fires on timeout and shutdown.</summary>
    Task HandleAsync(EventContext<TPayload> context, CancellationToken cancellationToken);
}
