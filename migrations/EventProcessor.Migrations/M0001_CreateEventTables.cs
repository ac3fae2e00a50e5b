using FluentMigrator;

namespace EventProcessor.Migrations;

/// <summary>
/// The seed's <c>events</c> and <c>event_dead_letters</c> tables, column for column, plus what the engine needs
/// to claim, retry and rescue events. The seed's own SQL (replay, backlog count, dead-letter queries) runs unchanged.
/// </summary>
[Migration(1, "events and event_dead_letters")]
public sealed class M0001_CreateEventTables : ForwardOnlyMigration
{
    public override void Up() => Execute.Sql(
        """
        CREATE TABLE events (
          id UUID PRIMARY KEY,
          event_type VARCHAR(100) NOT NULL,
          aggregate_id UUID,
          aggregate_type VARCHAR(50),
          payload JSONB NOT NULL,
          metadata JSONB DEFAULT '{}'::jsonb,
          processed BOOLEAN NOT NULL DEFAULT FALSE,
          version INTEGER DEFAULT 1,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          created_by VARCHAR(100),

          -- NOT NULL on processed and created_at is stricter than the seed: a NULL there would hide an event from
          -- the backlog (processed = false) or from FIFO order, so the schema refuses it instead.

          -- Engine columns. Who owns what: producers write the seed's columns; the engine writes the ones below.
          tenant_id VARCHAR(100),
          -- Attempts started since the event was inserted or last replayed. Incremented (and committed) by the claim,
          -- before any handler runs, so a poison event that kills the process still runs out of attempts.
          attempts INTEGER NOT NULL DEFAULT 0,
          -- The earliest time the next attempt may start: now() for new events, now() + backoff after a failure.
          next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          -- The engine instance that holds the event, and until when; a holder that stops renewing loses it.
          locked_by TEXT,
          locked_until TIMESTAMPTZ,
          processed_at TIMESTAMPTZ,

          CONSTRAINT events_attempts_not_negative CHECK (attempts >= 0),
          CONSTRAINT events_lock_is_whole CHECK ((locked_by IS NULL) = (locked_until IS NULL)),
          CONSTRAINT events_event_type_not_blank CHECK (btrim(event_type) <> '')
        );

        COMMENT ON TABLE events IS 'Event log consumed by the event processor; processed = false is the backlog.';

        -- The claim query walks pending events in FIFO order; processed rows never enter this index, so it stays
        -- the size of the backlog however many millions of processed rows the table holds.
        CREATE INDEX events_claim_fifo ON events (created_at, id) WHERE processed = false;

        -- Per-aggregate order: "is there an earlier pending event of this aggregate?" is one probe here.
        CREATE INDEX events_pending_by_aggregate ON events (aggregate_id, created_at, id)
          WHERE processed = false AND aggregate_id IS NOT NULL;

        -- Lease renewal and rescue touch only what is held.
        CREATE INDEX events_held_by ON events (locked_by) WHERE locked_by IS NOT NULL;

        CREATE INDEX events_event_type_created_at ON events (event_type, created_at);

        CREATE TABLE event_dead_letters (
          id UUID PRIMARY KEY,
          event_id UUID NOT NULL,
          event_type VARCHAR(100) NOT NULL,
          payload JSONB NOT NULL,
          error_message TEXT NOT NULL,
          retry_count INTEGER NOT NULL,
          original_created_at TIMESTAMPTZ NOT NULL,
          created_at TIMESTAMPTZ DEFAULT now()
        );

        CREATE INDEX event_dead_letters_event_id ON event_dead_letters (event_id);
        CREATE INDEX event_dead_letters_created_at ON event_dead_letters (created_at);

        -- Replay is the seed's contract: UPDATE events SET processed = false ... WHERE id IN (...).
        -- Whoever flips processed back to false starts a fresh life for the event: no attempts spent, due now,
        -- held by no one, and the previous outcome's markers moved out of the way.
        CREATE FUNCTION events_reset_on_replay() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          NEW.attempts := 0;
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

        CREATE TRIGGER events_reset_on_replay
          BEFORE UPDATE OF processed ON events
          FOR EACH ROW
          WHEN (OLD.processed IS TRUE AND NEW.processed IS NOT TRUE)
          EXECUTE FUNCTION events_reset_on_replay();
        """);
}
