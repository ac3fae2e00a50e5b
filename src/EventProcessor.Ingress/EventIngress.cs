using EventProcessor.Ingress.Clients;
using EventProcessor.Ingress.Writing;
using EventProcessor.Validation;

namespace EventProcessor.Ingress;

/// <summary>
/// What both doors do with classified events before they become rows: check the sending client's permissions,
/// check each payload against its event type's schema, then write. Nothing is written unless every event passes.
/// </summary>
public sealed class EventIngress(ClientStore clients, IEnumerable<IEventPayloadValidator> validators, IngressWriter writer, IngressStats stats)
{
    private readonly IEventPayloadValidator[] _validators = [.. validators];

    /// <summary>The counters <c>/health</c> reports.</summary>
    public IngressStats Stats => stats;

    /// <summary>Checks, then writes <paramref name="events"/> in one transaction.</summary>
    /// <exception cref="IngressRejectedException">A client may not send an event, or a payload violates its schema.</exception>
    public async Task<IngressReceipt> AcceptAsync(IReadOnlyList<IncomingEvent> events, string createdBy, CancellationToken cancellationToken)
    {
        try
        {
            await CheckAsync(events, cancellationToken);
        }
        catch (IngressRejectedException)
        {
            stats.RecordRejected();
            throw;
        }

        try
        {
            return await writer.WriteAsync(events, [], createdBy, cancellationToken);
        }
        catch (IngressRejectedException)
        {
            stats.RecordRejected();
            throw;
        }
    }

    /// <summary>Counts a delivery that the classifier refused before it reached this pipeline.</summary>
    public void RecordRejected() => stats.RecordRejected();

    /// <summary>
    /// Throws when any event may not be written: its tenant is unknown, disabled or not allowed its type (403), or
    /// its payload violates its schema (422, every violation listed).
    /// </summary>
    public async Task CheckAsync(IReadOnlyList<IncomingEvent> events, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(events);
        await AuthorizeAsync(events, cancellationToken);

        List<string>? violations = null;
        for (var i = 0; i < events.Count; i++)
        {
            foreach (var validator in _validators)
            {
                foreach (var violation in validator.Validate(events[i].EventType, events[i].PayloadJson))
                {
                    var where = events.Count == 1 ? "" : $"[{i}] ";
                    (violations ??= []).Add($"{where}{events[i].EventType}: {violation}");
                }
            }
        }

        if (violations is not null)
        {
            throw new IngressRejectedException(
                IngressRejection.SchemaViolation,
                "The payload does not match its event type's schema",
                violations);
        }
    }

    private async Task AuthorizeAsync(IReadOnlyList<IncomingEvent> events, CancellationToken cancellationToken)
    {
        var tenantIds = events.Where(e => e.TenantId is not null).Select(e => e.TenantId!).Distinct(StringComparer.Ordinal).ToArray();
        if (tenantIds.Length == 0)
        {
            return;
        }

        var found = await clients.FindAsync(tenantIds, cancellationToken);
        foreach (var incoming in events)
        {
            if (incoming.TenantId is not { } tenantId)
            {
                continue;
            }

            if (!found.TryGetValue(tenantId, out var client))
            {
                throw new IngressRejectedException(IngressRejection.Forbidden, $"Client '{tenantId}' is not registered.");
            }

            if (!client.Active)
            {
                throw new IngressRejectedException(IngressRejection.Forbidden, $"Client '{tenantId}' is disabled.");
            }

            if (!client.Allows(incoming.EventType))
            {
                throw new IngressRejectedException(
                    IngressRejection.Forbidden,
                    $"Client '{tenantId}' may not send events of type '{incoming.EventType}'; it may send: " +
                    $"{string.Join(", ", client.AllowedEventTypes)}.");
            }
        }
    }
}
