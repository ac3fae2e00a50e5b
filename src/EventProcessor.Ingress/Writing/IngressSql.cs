namespace EventProcessor.Ingress.Writing;

/// <summary>Every statement the ingress path runs, named for the method that runs it.</summary>
internal static class IngressSql
{
    /// <summary>
    /// Inserts the delivery's rows and skips ids the table already has. <c>created_at</c> steps by a microsecond per
    /// row: rows written together share <c>now()</c>, and the claim's FIFO order must still be the delivery's order.
    /// </summary>
    public const string InsertEvents =
        """
        INSERT INTO events (id, event_type, aggregate_id, aggregate_type, payload, metadata, tenant_id, created_by, created_at)
        SELECT e.id, e.event_type, e.aggregate_id, e.aggregate_type, e.payload::jsonb, e.metadata::jsonb, e.tenant_id,
               @createdBy, now() + (e.ord - 1) * interval '1 microsecond'
        FROM unnest(@ids, @eventTypes, @aggregateIds, @aggregateTypes, @payloads, @metadata, @tenantIds)
             WITH ORDINALITY AS e(id, event_type, aggregate_id, aggregate_type, payload, metadata, tenant_id, ord)
        ON CONFLICT (id) DO NOTHING
        RETURNING id
        """;

    /// <summary>Records refused deliveries; a refusal delivered again is recorded once.</summary>
    public const string InsertDeadLetters =
        """
        INSERT INTO event_dead_letters (id, event_id, event_type, payload, error_message, retry_count, original_created_at)
        SELECT d.id, d.event_id, d.event_type, d.payload::jsonb, d.error_message, d.retry_count, d.sent_at
        FROM unnest(@ids, @eventIds, @eventTypes, @payloads, @reasons, @retryCounts, @sentAts)
             AS d(id, event_id, event_type, payload, error_message, retry_count, sent_at)
        ON CONFLICT (id) DO NOTHING
        """;
}
