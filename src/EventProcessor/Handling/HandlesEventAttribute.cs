namespace EventProcessor.Handling;

/// <summary>Declares an event type a handler class handles, and what it does with it.</summary>
/// <param name="eventType">An exact event type (<c>user.created</c>) or a prefix ending in <c>*</c> (<c>user.*</c>).</param>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class HandlesEventAttribute(string eventType) : Attribute
{
    /// <summary>An exact event type, or a prefix ending in <c>*</c>.</summary>
    public string EventType { get; } = eventType;

    /// <summary>One line on what the handler does, shown by <c>/health</c> and in logs.</summary>
    public string Description { get; init; } = "";
}
