namespace EventProcessor.Storage;

/// <summary>
/// Every statement the engine runs against the events table, one constant per operation, named like the method
/// that runs it. Every state change is fenced on the expected state and owner.
/// </summary>
internal static class EventSql
{
    /// <summary>
    /// Serializes claims across every instance for the length of one claim (a few milliseconds). Without it, two
    /// claims taken at once could each see the other's head-of-aggregate as free and split one aggregate's events
    /// between them. Sent in the same round trip as the claim, in one implicit transaction.
    /// </summary>
    public const string TakeClaimLock = "SELECT pg_advisory_xact_lock(4571875329581024115)";

    /// <summary>
    /// Sent before the claim and the completion, in their transaction: their plans are index scans whatever the
    /// statistics say. A queue table's statistics are wrong most of the time (analyzed while empty, then a burst;
    /// analyzed during a backlog, then drained), and a prepared statement keeps the plan it chose in its first runs.
    /// Planned while the table was nearly empty, the claim probed each candidate's predecessors with a sequential
    /// scan, and kept doing so as a burst grew the backlog: seconds per claim. The settings are local to the
    /// transaction, and sent after a handler's statements, so those are planned as usual. JIT goes off with them:
    /// a disabled scan is priced at 10^10, which would send the statement to the JIT compiler (hundreds of ms) on a
    /// server where it is on, whatever the connection asked for.
    /// <para>
    /// They are also planned once per connection, not at every run: PostgreSQL re-plans a prepared statement each time
    /// while its generic plan looks dearer than a custom one, which the claim's always does (its LIMIT is a parameter),
    /// and re-planning cost about a tenth of the server's time in a drain. Pinned as above, the generic plan is the
    /// same plan.
    /// </para>
    /// </summary>
    public const string PinIndexPlans =
        "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)";

    /// <summary>
    /// Sent before the completion, in its transaction: <see cref="PinIndexPlans"/>, and the commit does not wait for
    /// its WAL to reach disk. Losing a completion to a database crash in that window (at most three
    /// <c>wal_writer_delay</c>s, 600 ms by default) is the same as losing it to a crash of this process before it
    /// committed, which the lease already covers: the event's handler writes go with it and it runs again. Nothing
    /// else in the transaction is weakened, and the setting ends with it.
    /// </summary>
    public const string PrepareAcknowledgement = PinIndexPlans + ", set_config('synchronous_commit', 'off', true)";

    // The columns a claim returns, shared by both claims so that the reader has one shape to read.
    private const string ClaimedColumns =
        """
        e.id, e.event_type, e.aggregate_id, e.aggregate_type, e.payload::text AS payload,
        coalesce(e.metadata, '{}'::jsonb)::text AS metadata, coalesce(e.version, 1) AS version, e.created_at,
        e.created_by, e.tenant_id, e.attempts, e.metadata->>'correlation_id' AS correlation_id,
        e.attempts - 1 > e.last_failed_attempt AS suspect
        """;

    /// <summary>
    /// Claims up to @limit due events and leases them to @owner, fairly across tenants: each tenant's backlog (and the
    /// backlog of events without a tenant, as one more) is walked in FIFO order, and the claim takes their events in
    /// turns, the first of each, then the second of each, and so on. A tenant with a burst of a hundred thousand events
    /// delays another's next event by a turn, not by the burst; with one tenant (or none) the claim is plain FIFO.
    /// <para>
    /// An event is due when it is not processed, its backoff is over, no one holds a live lease on it, and this process
    /// does not hold it (@held). Per-aggregate order, where an aggregate is the pair of tenant and aggregate id: an event
    /// waits while an earlier pending event of its aggregate waits for a retry or is held (or was held, and is being
    /// rescued); earlier events that are due themselves come first in the same claim, so one claim can carry a run of
    /// one aggregate. It also waits while any event of its aggregate is held, later ones included: an insert that
    /// commits late (its created_at is its transaction's start) can become visible while a later event of its aggregate
    /// is running, and must not run beside it. The attempt is counted here, committed before any handler runs.
    /// </para>
    /// </summary>
    /// <remarks>
    /// The queues with pending events (a tenant's id, or <c>''</c> for events without one) are found by skipping through
    /// <c>events_claim_fifo</c>, one probe per queue, and each queue's backlog is read from it in order: an equality on
    /// its first column, so the read stops at the share. (<c>tenant_id IS NULL</c> would not order the read: the
    /// planner then sorts every event of the queue.) Each tenant offers at most twice its equal share of @limit (all of it when it is alone), so that a
    /// tenant with few due events leaves its room to the others without the claim reading every tenant's backlog up to
    /// @limit; <c>more</c> says whether any tenant had more to offer, so that a claim cut short by the shares is
    /// followed at once by another.
    /// <para>
    /// Whether a candidate's aggregate is held is one primary-key probe of <c>event_aggregate_leases</c>, which holds
    /// only what is claimed right now, so the check costs the same however deep an aggregate's backlog is; the claim
    /// writes a row there for each aggregate it takes. Its write to <c>events</c> touches no indexed column, so it is a
    /// heap-only (HOT) update: no index entry is written (see migration 6). A row that anyone is writing right now (the
    /// late completion or renewal of a holder whose lease ran out) is skipped, not waited for, and is looked at again,
    /// as it is then, by the next claim.
    /// </para>
    /// <para>
    /// A suspect is an event with more attempts counted than its last failed attempt: an attempt of it never finished,
    /// so it may be what killed that process (a handler calling FailFast, a native crash). The rule reads
    /// <c>last_failed_attempt</c>, which only the engine writes, never <c>metadata</c>, which producers write. A suspect
    /// is claimed in a batch of its own (a claim ends before the first suspect in its order, and a suspect at its head
    /// goes alone); if it kills this process too, it takes no other event's attempt with it, and it reaches the dead
    /// letters after MAX_RETRIES crashes while the events that merely shared its first batch run normally.
    /// </para>
    /// </remarks>
    public const string ClaimBatch =
        $"""
        WITH RECURSIVE queues AS (
          (SELECT coalesce(t.tenant_id, '') AS tenant_key FROM events t
           WHERE t.processed = false
           ORDER BY coalesce(t.tenant_id, '') LIMIT 1)
          UNION ALL
          SELECT (SELECT coalesce(t.tenant_id, '') FROM events t
                  WHERE t.processed = false AND coalesce(t.tenant_id, '') > queues.tenant_key
                  ORDER BY coalesce(t.tenant_id, '') LIMIT 1)
          FROM queues WHERE queues.tenant_key IS NOT NULL
        ), share AS (
          SELECT least(@limit, ceil(2.0 * @limit / greatest(count(*), 1)))::integer AS per_queue
          FROM queues WHERE tenant_key IS NOT NULL
        ), offered AS (
          SELECT c.*, row_number() OVER (PARTITION BY q.tenant_key ORDER BY c.created_at, c.id) AS turn
          FROM queues q CROSS JOIN LATERAL (
            SELECT {CandidateColumns} FROM events e
            WHERE coalesce(e.tenant_id, '') = q.tenant_key AND {IsDueAndFree}
            ORDER BY e.created_at, e.id
            LIMIT (SELECT per_queue FROM share)
            FOR UPDATE SKIP LOCKED) c
          WHERE q.tenant_key IS NOT NULL
        ), picked AS (
          SELECT * FROM offered ORDER BY turn, created_at, id LIMIT @limit
        ), first_suspect AS (
          SELECT turn, created_at, id FROM picked WHERE suspect ORDER BY turn, created_at, id LIMIT 1
        ), due AS (
          -- The run before the first suspect; or, when a suspect heads the run, that suspect alone.
          SELECT p.ctid, p.turn FROM picked p
          WHERE NOT EXISTS (SELECT 1 FROM first_suspect f WHERE (f.turn, f.created_at, f.id) <= (p.turn, p.created_at, p.id))
             OR (p.id = (SELECT id FROM first_suspect)
                 AND NOT EXISTS (SELECT 1 FROM picked b WHERE (b.turn, b.created_at, b.id) < (p.turn, p.created_at, p.id)))
        ), claimed AS (
          UPDATE events e
          SET attempts = e.attempts + 1, locked_by = @owner, locked_until = statement_timestamp() + @lease
          FROM due
          -- By the row's address, which the lock taken above keeps valid: no second walk down the primary key. (Were a
          -- row ever locked in a newer version than the address read, the update would find no row there: that event
          -- is simply not claimed this time, and nothing of it is written.)
          WHERE e.ctid = due.ctid
          RETURNING {ClaimedColumns}, due.turn
        ), {LeaseAggregates}
        SELECT c.*, EXISTS (SELECT 1 FROM offered o WHERE o.turn = (SELECT per_queue FROM share)) AS more
        FROM claimed c ORDER BY c.turn, c.created_at, c.id
        """;

    // What a claim reads of each candidate: enough to order it, find it again, and tell a suspect.
    private const string CandidateColumns =
        "e.id, e.ctid, e.created_at, e.attempts > e.last_failed_attempt AS suspect";

    // The claim's rule for one candidate e, whatever its tenant; see ClaimBatch.
    private const string IsDueAndFree =
        """
        e.processed = false
              AND e.next_attempt_at <= now()
              AND (e.locked_until IS NULL OR e.locked_until < now())
              -- Only a row last leased to this instance can be one it holds: the others skip the search of @held, which
              -- compared every candidate with every held id (thousands of each at batch 1,000).
              AND CASE WHEN e.locked_by = @owner THEN e.id <> ALL(@held) ELSE true END
              -- A scalar subquery with LIMIT 1, not NOT EXISTS: the planner cannot turn it into a join, so it stays one
              -- probe of events_pending_by_aggregate per candidate. As an anti-join, the planner (which expects almost
              -- no row to have locked_by set) read every pending row of every aggregate on each claim instead.
              AND (SELECT 1 FROM events p
                   WHERE p.aggregate_id = e.aggregate_id
                     AND p.tenant_id IS NOT DISTINCT FROM e.tenant_id
                     AND p.processed = false
                     AND (p.created_at, p.id) < (e.created_at, e.id)
                     AND (p.next_attempt_at > now() OR p.locked_by IS NOT NULL)
                   LIMIT 1) IS NULL
              AND NOT EXISTS (SELECT 1 FROM event_aggregate_leases l
                              WHERE l.aggregate_id = e.aggregate_id AND l.tenant_key = coalesce(e.tenant_id, '')
                                AND l.locked_until >= now())
        """;

    // Takes the aggregates of what was claimed. A row already there holds nothing (a live one kept them out of the
    // claim, and claims are serialised): a lease that ran out is taken over. Leases run from statement_timestamp(),
    // when the claim itself started, not now(), when its transaction began and then waited for the claim lock.
    private const string LeaseAggregates =
        """
        leased AS (
          INSERT INTO event_aggregate_leases (aggregate_id, tenant_key, locked_by, locked_until)
          SELECT DISTINCT c.aggregate_id, coalesce(c.tenant_id, ''), @owner, statement_timestamp() + @lease
          FROM claimed c WHERE c.aggregate_id IS NOT NULL
          ON CONFLICT (aggregate_id, tenant_key) DO UPDATE SET locked_by = EXCLUDED.locked_by, locked_until = EXCLUDED.locked_until
        )
        """;

    /// <summary>
    /// Claims one event by id for an on-demand run: the same rules as <see cref="ClaimBatch"/> except that a
    /// pending backoff is skipped, since someone asked for it now, and that any earlier pending event of its
    /// aggregate (the same tenant's) makes it wait, as does any event of its aggregate that is held.
    /// </summary>
    public const string ClaimById =
        $"""
        WITH claimed AS (
        UPDATE events e
        SET attempts = e.attempts + 1, locked_by = @owner, locked_until = statement_timestamp() + @lease
        WHERE e.id = (
          SELECT c.id FROM events c
          WHERE c.id = @id
            AND c.processed = false
            AND (c.locked_until IS NULL OR c.locked_until < now())
            AND CASE WHEN c.locked_by = @owner THEN c.id <> ALL(@held) ELSE true END
            AND NOT EXISTS (
              SELECT 1 FROM events p
              WHERE p.aggregate_id = c.aggregate_id
                AND p.tenant_id IS NOT DISTINCT FROM c.tenant_id
                AND p.processed = false
                AND (p.created_at, p.id) < (c.created_at, c.id))
            AND NOT EXISTS (
              SELECT 1 FROM event_aggregate_leases l
              WHERE l.aggregate_id = c.aggregate_id AND l.tenant_key = coalesce(c.tenant_id, '')
                AND l.locked_until >= now())
          FOR UPDATE SKIP LOCKED)
        RETURNING {ClaimedColumns}
        ), {LeaseAggregates}
        SELECT * FROM claimed
        """;

    /// <summary>
    /// Why <see cref="ClaimById"/> claimed nothing: no row, processed, held, or waiting for another event of its
    /// aggregate (the first earlier pending one, else one that is held right now).
    /// </summary>
    public const string ExplainUnclaimable =
        """
        SELECT e.processed,
               (e.locked_until IS NOT NULL AND e.locked_until >= now()) AS held,
               coalesce(
                 (SELECT p.id FROM events p
                  WHERE p.aggregate_id = e.aggregate_id AND p.tenant_id IS NOT DISTINCT FROM e.tenant_id
                    AND p.processed = false AND (p.created_at, p.id) < (e.created_at, e.id)
                  ORDER BY p.created_at, p.id LIMIT 1),
                 (SELECT p.id FROM events p
                  WHERE p.aggregate_id = e.aggregate_id AND p.tenant_id IS NOT DISTINCT FROM e.tenant_id
                    AND p.processed = false AND p.id <> e.id
                    AND p.locked_by IS NOT NULL AND p.locked_until >= now()
                  LIMIT 1)) AS waiting_for
        FROM events e WHERE e.id = @id
        """;

    /// <summary>
    /// Writes the fate of a whole batch in one statement: completed, retry later, dead-lettered (and copied to
    /// <c>event_dead_letters</c>), skipped, or released untouched (the attempt is given back). Each row is fenced on
    /// owner and attempt, so a holder that lost its lease changes nothing. Follow-up events are inserted only for
    /// events whose completion was applied. The aggregates of the applied rows are given back (their lease rows
    /// deleted). Outcome codes are <see cref="Processing.OutcomeKind"/>.
    /// </summary>
    public const string CompleteBatch =
        """
        WITH outcome AS (
          SELECT * FROM unnest(@ids, @attempts, @kinds, @errors, @delays) AS o(id, attempts, kind, error, delay)
        ), fated AS (
          UPDATE events e
          SET processed = o.kind IN (0, 2, 3),
              processed_at = CASE WHEN o.kind IN (0, 2, 3) THEN now() END,
              attempts = CASE WHEN o.kind = 4 THEN e.attempts - 1 ELSE e.attempts END,
              last_failed_attempt = CASE WHEN o.kind IN (1, 2) THEN o.attempts ELSE e.last_failed_attempt END,
              next_attempt_at = CASE WHEN o.kind = 1 THEN now() + o.delay ELSE e.next_attempt_at END,
              locked_by = NULL,
              locked_until = NULL,
              metadata = CASE o.kind
                WHEN 1 THEN coalesce(e.metadata, '{}'::jsonb) || jsonb_build_object(
                  'retry_count', o.attempts, 'last_error', o.error, 'next_attempt_at', now() + o.delay)
                WHEN 2 THEN coalesce(e.metadata, '{}'::jsonb) || jsonb_build_object(
                  'retry_count', o.attempts, 'last_error', o.error, 'dead_lettered', true)
                WHEN 3 THEN coalesce(e.metadata, '{}'::jsonb) || jsonb_build_object(
                  'skipped', true, 'skip_reason', o.error)
                ELSE e.metadata END
          FROM outcome o
          -- The fence is wrapped in a CASE so that the planner cannot estimate it: it would take "locked_by = @owner"
          -- for one row in the whole table (most rows hold NULL) and scan the pending set for it, once per outcome.
          -- As written, each outcome finds its row by primary key and the fence is checked there.
          WHERE e.id = o.id
            AND CASE WHEN e.locked_by = @owner AND e.attempts = o.attempts AND e.processed = false THEN true ELSE false END
          RETURNING e.id, o.kind, e.event_type, e.aggregate_id, e.tenant_id, o.error, o.attempts, e.created_at
        ), unleased AS (
          DELETE FROM event_aggregate_leases l
          WHERE (l.aggregate_id, l.tenant_key) IN (SELECT f.aggregate_id, coalesce(f.tenant_id, '') FROM fated f
                                                   WHERE f.aggregate_id IS NOT NULL)
            AND l.locked_by = @owner
        ), dead AS (
          INSERT INTO event_dead_letters (id, event_id, event_type, payload, error_message, retry_count, original_created_at)
          SELECT gen_random_uuid(), f.id, f.event_type, d.payload, f.error, f.attempts, f.created_at
          FROM fated f JOIN events d ON d.id = f.id WHERE f.kind = 2
        ), followed AS (
          INSERT INTO events (id, event_type, aggregate_id, aggregate_type, payload, metadata, tenant_id, created_by)
          SELECT n.id, n.event_type, n.aggregate_id, n.aggregate_type, n.payload::jsonb, n.metadata::jsonb, n.tenant_id,
                 'event-processor'
          FROM unnest(@new_ids, @new_causes, @new_types, @new_aggregate_ids, @new_aggregate_types, @new_payloads,
                      @new_metadata, @new_tenants)
               AS n(id, cause, event_type, aggregate_id, aggregate_type, payload, metadata, tenant_id)
          JOIN fated f ON f.id = n.cause AND f.kind = 0
        )
        SELECT id FROM fated
        """;

    /// <summary>
    /// Renews the lease on the events this instance holds (@ids: it keeps the list) and on their aggregates. Rows
    /// being completed right now are skipped, not waited for.
    /// </summary>
    public const string RenewLeases =
        """
        WITH renewed AS (
          UPDATE events SET locked_until = now() + @lease
          WHERE id IN (SELECT id FROM events WHERE id = ANY(@ids) AND locked_by = @owner AND processed = false
                       FOR UPDATE SKIP LOCKED)
        )
        UPDATE event_aggregate_leases SET locked_until = now() + @lease
        WHERE aggregate_id IN (SELECT aggregate_id FROM event_aggregate_leases WHERE locked_by = @owner FOR UPDATE SKIP LOCKED)
        """;

    /// <summary>The backlog: how many events are pending and how old the oldest is.</summary>
    public const string ReadBacklog =
        """
        SELECT count(*) AS pending, extract(epoch FROM now() - min(created_at))::float8 AS oldest_age_seconds
        FROM events WHERE processed = false
        """;

    /// <summary>
    /// The channel the schema's triggers notify when an event becomes pending, inserted or replayed (migration
    /// M0005). The payload is empty: a notification means "claim now", nothing more.
    /// </summary>
    public const string PendingEventsChannel = "events_pending";

    /// <summary>Subscribes the listener's session to <see cref="PendingEventsChannel"/>.</summary>
    public const string ListenForPendingEvents = $"LISTEN {PendingEventsChannel}";
}
