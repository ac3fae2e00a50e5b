using System.Collections.Concurrent;
using EventProcessor.Events;

namespace EventProcessor.Processing;

/// <summary>The events this instance holds right now, from claim to completion: what the lease keeper renews.</summary>
internal sealed class HeldEvents
{
    private readonly ConcurrentDictionary<Guid, byte> _ids = new();

    public bool IsEmpty => _ids.IsEmpty;

    public void Add(IReadOnlyList<StoredEvent> events)
    {
        foreach (var storedEvent in events)
        {
            _ids[storedEvent.Id] = 0;
        }
    }

    public void Remove(IReadOnlyList<StoredEvent> events)
    {
        foreach (var storedEvent in events)
        {
            _ids.TryRemove(storedEvent.Id, out _);
        }
    }

    public Guid[] ToArray() => [.. _ids.Keys];
}
