using EventProcessor.Processing;

namespace EventProcessor.Handling;

/// <summary>One subscription: a handler, the event types it takes, and the payload type it wants.</summary>
public sealed class HandlerRegistration
{
    internal HandlerRegistration(
        string eventType,
        string description,
        Type handlerType,
        Type payloadType,
        Func<IServiceProvider, EventAttempt, object?, CancellationToken, Task> invoke)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(eventType);
        if (eventType.IndexOf('*', StringComparison.Ordinal) is var star and >= 0 && star != eventType.Length - 1)
        {
            throw new ArgumentException($"Event type pattern '{eventType}' may only end in '*'.", nameof(eventType));
        }

        EventType = eventType;
        Description = description;
        HandlerType = handlerType;
        PayloadType = payloadType;
        Invoke = invoke;
    }

    /// <summary>An exact event type, or a prefix ending in <c>*</c>.</summary>
    public string EventType { get; }

    /// <summary>What the handler does.</summary>
    public string Description { get; }

    /// <summary>The handler class.</summary>
    public Type HandlerType { get; }

    /// <summary>The type the payload is deserialized into.</summary>
    public Type PayloadType { get; }

    internal Func<IServiceProvider, EventAttempt, object?, CancellationToken, Task> Invoke { get; }

    internal bool Matches(string eventType) =>
        EventType.EndsWith('*')
            ? eventType.StartsWith(EventType.AsSpan(0, EventType.Length - 1), StringComparison.Ordinal)
            : string.Equals(EventType, eventType, StringComparison.Ordinal);
}
