namespace EventProcessor.Ingress.Writing;

/// <summary>Every statement the ingress path runs, named for the method that runs it.</summary>
internal static class IngressSql
{
    /// <summary>
    /// Inserts the delivery's rows and skips ids the table already has for the same tenant (duplicates). An id the table
    /// has for another tenant, or for none, is taken: it is never counted as a duplicate of this delivery's event, and
    /// then nothing of the delivery is written. <c>created_at</c> steps by a microsecond per row: rows written together
    /// share <c>now()</c>, and the claim's FIFO order must still be the delivery's order.
    /// </summary>
    public const string InsertEvents =
        """
        WITH incoming AS (
          SELECT e.*
          FROM unnest(@ids, @eventTypes, @aggregateIds, @aggregateTypes, @payloads, @metadata, @tenantIds)
               WITH ORDINALITY AS e(id, event_type, aggregate_id, aggregate_type, payload, metadata, tenant_id, ord)
        ), taken AS (
          SELECT DISTINCT i.id FROM incoming i JOIN events e ON e.id = i.id
          WHERE e.tenant_id IS DISTINCT FROM i.tenant_id
        ), written AS (
          INSERT INTO events (id, event_type, aggregate_id, aggregate_type, payload, metadata, tenant_id, created_by, created_at)
          SELECT i.id, i.event_type, i.aggregate_id, i.aggregate_type, i.payload::jsonb, i.metadata::jsonb, i.tenant_id,
                 @createdBy, now() + (i.ord - 1) * interval '1 microsecond'
          FROM incoming i
          WHERE NOT EXISTS (SELECT 1 FROM taken)
          ON CONFLICT (id) DO NOTHING
          RETURNING id
        )
        SELECT (SELECT count(*) FROM written)::integer AS written, ARRAY(SELECT id FROM taken) AS taken
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
