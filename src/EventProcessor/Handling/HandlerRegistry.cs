using System.Collections.Concurrent;

namespace EventProcessor.Handling;

/// <summary>Maps an event type to the handlers subscribed to it, in registration order.</summary>
public sealed class HandlerRegistry
{
    // Event types come from the table, which anyone may write to; cap the cache so odd types cannot grow it forever.
    private const int MaxCachedEventTypes = 10_000;

    private readonly HandlerRegistration[] _registrations;
    private readonly ConcurrentDictionary<string, HandlerRegistration[]> _byEventType = new(StringComparer.Ordinal);

    /// <summary>Creates the registry from every registration in the container.</summary>
    public HandlerRegistry(IEnumerable<HandlerRegistration> registrations)
    {
        _registrations = [.. registrations];
    }

    /// <summary>All subscriptions, in registration order.</summary>
    public IReadOnlyList<HandlerRegistration> Registrations => _registrations;

    /// <summary>The distinct event types and patterns that have a handler.</summary>
    public IReadOnlyList<string> EventTypes =>
        [.. _registrations.Select(r => r.EventType).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];

    /// <summary>The handlers for <paramref name="eventType"/>; empty when none is registered.</summary>
    public IReadOnlyList<HandlerRegistration> For(string eventType)
    {
        if (_byEventType.TryGetValue(eventType, out var cached))
        {
            return cached;
        }

        HandlerRegistration[] matching = [.. _registrations.Where(r => r.Matches(eventType))];
        if (_byEventType.Count < MaxCachedEventTypes)
        {
            _byEventType.TryAdd(eventType, matching);
        }

        return matching;
    }
}
