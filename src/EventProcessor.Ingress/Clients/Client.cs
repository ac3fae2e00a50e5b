namespace EventProcessor.Ingress.Clients;

/// <summary>A publisher of events (the seed's client, a tenant): what it may send, and whether it may send at all.</summary>
/// <param name="Id">The client id, stamped on its events as <c>tenant_id</c>.</param>
/// <param name="Name">A human name.</param>
/// <param name="AllowedEventTypes">Exact types, <c>prefix*</c> patterns or <c>*</c>.</param>
/// <param name="Active">False once disabled: its key no longer works and its SQS messages are refused.</param>
/// <param name="CreatedAt">When the client was added.</param>
/// <param name="RateLimitPerSecond">
/// Events per second it may publish over HTTP, per instance: 0 for no limit, null for the service's default.
/// </param>
public sealed record Client(
    string Id, string Name, string[] AllowedEventTypes, bool Active, DateTimeOffset CreatedAt, int? RateLimitPerSecond = null)
{
    /// <summary>Whether this client may send <paramref name="eventType"/>.</summary>
    public bool Allows(string eventType)
    {
        ArgumentNullException.ThrowIfNull(eventType);
        foreach (var pattern in AllowedEventTypes)
        {
            if (pattern == "*"
                || string.Equals(pattern, eventType, StringComparison.Ordinal)
                || (pattern.EndsWith('*') && eventType.StartsWith(pattern[..^1], StringComparison.Ordinal)))
            {
                return true;
            }
        }

        return false;
    }
}
