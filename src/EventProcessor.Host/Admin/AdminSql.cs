namespace EventProcessor.Host.Admin;

/// <summary>
/// Every statement the admin endpoints run, and the start-up's removal of the sample clients, named for the method
/// that runs it. A change and its audit row are one statement, so they commit together or not at all.
/// </summary>
internal static class AdminSql
{
    /// <summary>The most ids of one kind (already pending, unknown) an audit row lists; it counts them all.</summary>
    public const int AuditSampleSize = 20;

    /// <summary>
    /// The seed's replay (<c>UPDATE events SET processed = false, metadata = metadata || '{"replayed": true}'</c>) on
    /// those of @ids that are processed; the <c>events_reset_on_replay</c> trigger makes each a fresh start. Events
    /// still pending are left alone (they will run anyway). Writes the audit row when any id is known: the ids it
    /// reset, and of the others only counts and the first <see cref="AuditSampleSize"/> of each kind, in the order
    /// asked, since unknown ids cost the caller nothing and would make every row as large as the request. Returns each
    /// requested id: known or not, reset or not.
    /// </summary>
    public const string ReplayEvents =
        """
        WITH requested AS (
          SELECT id, n FROM unnest(@ids) WITH ORDINALITY AS r(id, n)
        ), found AS (
          SELECT e.id FROM events e JOIN requested r ON r.id = e.id
        ), replayed AS (
          UPDATE events e
          SET processed = false, metadata = coalesce(e.metadata, '{}'::jsonb) || '{"replayed": true}'::jsonb
          FROM found f
          WHERE e.id = f.id AND e.processed
          RETURNING e.id
        ), not_reset AS (
          SELECT r.id, r.n, EXISTS (SELECT 1 FROM found f WHERE f.id = r.id) AS known
          FROM requested r
          WHERE NOT EXISTS (SELECT 1 FROM replayed p WHERE p.id = r.id)
        ), audited AS (
          INSERT INTO audit_log (actor, action, target_ids, outcome, detail, request_id)
          SELECT @actor, 'replay', ARRAY(SELECT id FROM replayed ORDER BY id), 'reset',
                 jsonb_build_object(
                   'reset', (SELECT count(*) FROM replayed),
                   'already_pending', (SELECT count(*) FROM not_reset WHERE known),
                   'unknown', (SELECT count(*) FROM not_reset WHERE NOT known),
                   'already_pending_sample', (SELECT coalesce(jsonb_agg(id ORDER BY n), '[]'::jsonb)
                                              FROM (SELECT id, n FROM not_reset WHERE known ORDER BY n LIMIT @sample) s),
                   'unknown_sample', (SELECT coalesce(jsonb_agg(id ORDER BY n), '[]'::jsonb)
                                      FROM (SELECT id, n FROM not_reset WHERE NOT known ORDER BY n LIMIT @sample) s)),
                 @requestId
          WHERE EXISTS (SELECT 1 FROM found)
        )
        SELECT r.id,
               EXISTS (SELECT 1 FROM found f WHERE f.id = r.id) AS known,
               EXISTS (SELECT 1 FROM replayed p WHERE p.id = r.id) AS reset
        FROM requested r
        ORDER BY r.n
        """;

    /// <summary>
    /// Replays the event of dead letter @id, the same way as <see cref="ReplayEvents"/>, when that event is still
    /// dead-lettered; writes the audit row when it did. Returns no row for an unknown dead letter, else its event id,
    /// whether that event exists (a delivery refused at the door has none) and whether it was reset.
    /// </summary>
    public const string RetryDeadLetter =
        """
        WITH letter AS (
          SELECT d.event_id FROM event_dead_letters d WHERE d.id = @id
        ), replayed AS (
          UPDATE events e
          SET processed = false, metadata = coalesce(e.metadata, '{}'::jsonb) || '{"replayed": true}'::jsonb
          FROM letter l
          WHERE e.id = l.event_id AND e.processed AND e.metadata @> '{"dead_lettered": true}'
          RETURNING e.id
        ), audited AS (
          INSERT INTO audit_log (actor, action, target_ids, outcome, detail, request_id)
          SELECT @actor, 'retry_dead_letter', ARRAY[p.id], 'reset', jsonb_build_object('dead_letter_id', @id), @requestId
          FROM replayed p
        )
        SELECT l.event_id, e.id IS NOT NULL AS event_exists, EXISTS (SELECT 1 FROM replayed) AS reset
        FROM letter l LEFT JOIN events e ON e.id = l.event_id
        """;

    /// <summary>The audit row of a change made elsewhere (an on-demand run, in the engine's own transactions).</summary>
    public const string RecordAudit =
        """
        INSERT INTO audit_log (actor, action, target_ids, outcome, detail, request_id)
        VALUES (@actor, @action, @targetIds, @outcome, @detail::jsonb, @requestId)
        """;

    /// <summary>
    /// Deletes the clients whose key is one of the public sample keys (@hashes, their SHA-256), whatever their id: a
    /// client added with <c>clients add</c> has a random key and stays. Returns the ids removed.
    /// </summary>
    public const string RemoveSampleClients =
        """
        DELETE FROM clients WHERE api_key_hash = ANY(@hashes) RETURNING id
        """;
}
