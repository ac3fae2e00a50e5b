using FluentMigrator;

namespace EventProcessor.Migrations;

/// <summary>
/// What keeps one tenant's events from changing how another's run: engine state in a column no producer writes,
/// aggregates held per tenant, a per-tenant walk of the backlog for fair claims, and a per-client rate.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>events.last_failed_attempt</c> replaces <c>metadata.retry_count</c> as what the claim's suspect rule reads.
/// Producers write <c>metadata</c>; a forged <c>retry_count</c> could make every event a suspect (claimed alone, the
/// process stopping its other claims while it runs) or none. The engine still writes <c>retry_count</c> for people
/// (the seed's queries read it), and reads only the column.</item>
/// <item><c>event_aggregate_leases</c> holds an aggregate of one tenant: <c>tenant_key</c> is the tenant id, or
/// <c>''</c> for events without one (a client id is never empty). Two tenants that use the same aggregate id never
/// wait for each other.</item>
/// <item><c>events_claim_fifo</c> is now <c>(coalesce(tenant_id, ''), created_at, id)</c>: a claim finds the queues
/// with pending events, a tenant's or <c>''</c> for events without one (one probe each), and walks each one's backlog
/// in FIFO order. The old shape, <c>(created_at, id)</c>, goes: a claim would walk it for the events without a
/// tenant, past every tenant's. Claims stay heap-only: it indexes no column they write.</item>
/// <item><c>clients.rate_limit_per_second</c>: the events a client may publish per second; NULL takes the service's
/// default.</item>
/// </list>
/// </remarks>
[Migration(7, "tenant isolation")]
public sealed class M0007_TenantIsolation : ForwardOnlyMigration
{
    public override void Up() => Execute.Sql(
        """
        -- The attempt whose failure was last recorded (0: none). attempts > last_failed_attempt means an attempt after
        -- it started and never ended: it may have killed its process, so the claim runs the event alone (a suspect).
        ALTER TABLE events ADD COLUMN last_failed_attempt INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE events ADD CONSTRAINT events_last_failed_attempt_not_negative CHECK (last_failed_attempt >= 0);

        -- Pending events carry their failures in metadata until now.
        UPDATE events
        SET last_failed_attempt = least(attempts::numeric, greatest(0, (metadata->>'retry_count')::numeric))::integer
        WHERE processed = false AND jsonb_typeof(metadata->'retry_count') = 'number';

        DROP INDEX events_claim_fifo;
        CREATE INDEX events_claim_fifo ON events ((coalesce(tenant_id, '')), created_at, id) WHERE processed = false;

        CREATE OR REPLACE FUNCTION events_reset_on_replay() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          NEW.attempts := 0;
          NEW.last_failed_attempt := 0;
          NEW.next_attempt_at := now();
          NEW.locked_by := NULL;
          NEW.locked_until := NULL;
          NEW.processed_at := NULL;
          NEW.metadata := (coalesce(NEW.metadata, '{}'::jsonb)
                            - 'retry_count' - 'last_error' - 'next_attempt_at' - 'dead_lettered' - 'skipped' - 'skip_reason')
                          || jsonb_build_object('replay_count',
                               CASE WHEN jsonb_typeof(NEW.metadata->'replay_count') = 'number'
                                    THEN (NEW.metadata->>'replay_count')::numeric + 1 ELSE 1 END);
          RETURN NEW;
        END;
        $$;

        ALTER TABLE event_aggregate_leases ADD COLUMN tenant_key TEXT NOT NULL DEFAULT '';
        UPDATE event_aggregate_leases l
        SET tenant_key = coalesce((SELECT e.tenant_id FROM events e
                                   WHERE e.aggregate_id = l.aggregate_id AND e.locked_by = l.locked_by AND e.processed = false
                                   LIMIT 1), '');
        ALTER TABLE event_aggregate_leases DROP CONSTRAINT event_aggregate_leases_pkey;
        ALTER TABLE event_aggregate_leases ADD CONSTRAINT event_aggregate_leases_pkey PRIMARY KEY (aggregate_id, tenant_key);
        COMMENT ON COLUMN event_aggregate_leases.tenant_key IS 'The tenant whose aggregate this is; empty for events without a tenant.';

        ALTER TABLE clients ADD COLUMN rate_limit_per_second INTEGER;
        ALTER TABLE clients ADD CONSTRAINT clients_rate_limit_positive CHECK (rate_limit_per_second IS NULL OR rate_limit_per_second >= 0);
        COMMENT ON COLUMN clients.rate_limit_per_second IS
          'Events per second this client may publish over HTTP, per instance; 0 is no limit, NULL the service default.';
        """);
}
