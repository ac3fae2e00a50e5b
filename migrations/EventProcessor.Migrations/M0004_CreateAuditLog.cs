using FluentMigrator;

namespace EventProcessor.Migrations;

/// <summary>
/// Who asked the service to change what, and how it ended: one row per accepted admin request that could change
/// something (run an event or a batch now, replay, retry a dead letter; a batch run that claimed nothing writes none).
/// Written by the HTTP API, in the same transaction as the change when the change is one statement; never updated.
/// </summary>
[Migration(4, "audit_log")]
public sealed class M0004_CreateAuditLog : ForwardOnlyMigration
{
    public override void Up() => Execute.Sql(
        """
        CREATE TABLE audit_log (
          id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          occurred_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          -- Who: 'admin' (the admin key), 'anonymous' (admin endpoints open: Development or ALLOW_UNAUTHENTICATED),
          -- or a client id. Never a key.
          actor VARCHAR(100) NOT NULL,
          -- What: process_event, process_batch, replay, retry_dead_letter.
          action VARCHAR(50) NOT NULL,
          -- The events it touched.
          target_ids UUID[] NOT NULL DEFAULT '{}',
          -- How it ended: the event's outcome (completed, retry_scheduled, ...), claimed, or reset.
          outcome VARCHAR(50) NOT NULL,
          -- The rest of the answer the caller got (counts, ids not found, the dead letter retried).
          detail JSONB NOT NULL DEFAULT '{}'::jsonb,
          -- The request, to find its lines in the logs.
          request_id VARCHAR(100),

          CONSTRAINT audit_log_actor_not_blank CHECK (btrim(actor) <> ''),
          CONSTRAINT audit_log_action_known CHECK (action IN ('process_event', 'process_batch', 'replay', 'retry_dead_letter'))
        );

        CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);
        CREATE INDEX audit_log_target_ids ON audit_log USING gin (target_ids);

        COMMENT ON TABLE audit_log IS 'Accepted admin requests: who (never a key), when, what, on which events, and the outcome.';

        -- History is not rewritten: rows may be deleted (retention), never changed.
        CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'audit_log rows are never updated';
        END;
        $$;

        CREATE TRIGGER audit_log_is_append_only
          BEFORE UPDATE ON audit_log
          FOR EACH ROW
          EXECUTE FUNCTION audit_log_is_append_only();
        """);
}
