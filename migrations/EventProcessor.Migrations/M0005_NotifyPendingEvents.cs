using FluentMigrator;

namespace EventProcessor.Migrations;

/// <summary>
/// A notification on the channel <c>events_pending</c> whenever an event becomes pending: inserted, or replayed.
/// Each engine listens on it and wakes a poll loop, so a new event is claimed within milliseconds rather than at the
/// next poll; the poll interval stays the fallback for a notification that never arrives (an engine reconnecting).
/// </summary>
[Migration(5, "events_pending notifications")]
public sealed class M0005_NotifyPendingEvents : ForwardOnlyMigration
{
    public override void Up() => Execute.Sql(
        """
        -- The payload is empty: a notification only says "claim now"; the claim decides what runs. The channel name is
        -- shared with the engine (EventSql.PendingEventsChannel).
        CREATE FUNCTION events_notify_pending() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_notify('events_pending', '');
          RETURN NULL;
        END;
        $$;

        -- Once per INSERT statement, not per row, and PostgreSQL folds identical notifications of one transaction
        -- into one: a 1,000-row insert, or 1,000 single-row inserts in one transaction, send one notification.
        -- What it costs: a transaction that notifies holds a cluster-wide lock from its pre-commit to the end of its
        -- commit (WAL flush included), so transactions that insert events commit one after another instead of
        -- sharing a flush. With many producers committing single rows at once, insert in batches, or trade latency
        -- for throughput: ALTER TABLE events DISABLE TRIGGER events_notify_on_insert goes back to polling alone.
        -- An INSERT that writes no row (ON CONFLICT DO NOTHING on a redelivery) still notifies; that costs one empty
        -- claim, less than copying every inserted row into a transition table to check.
        CREATE TRIGGER events_notify_on_insert
          AFTER INSERT ON events
          FOR EACH STATEMENT
          EXECUTE FUNCTION events_notify_pending();

        -- A replay (processed flipped back to false, see events_reset_on_replay) makes an event pending again. A
        -- statement-level trigger would need transition tables to tell a replay from the engine's own updates, and
        -- PostgreSQL allows no transition tables on an UPDATE OF <column> trigger: it would run on every claim, lease
        -- renewal and completion and copy each row it touched. Row-level with this WHEN, the engine's updates cost
        -- one comparison, and a replay of 1,000 rows still sends one notification (folded, as above).
        CREATE TRIGGER events_notify_on_replay
          AFTER UPDATE OF processed ON events
          FOR EACH ROW
          WHEN (OLD.processed IS TRUE AND NEW.processed IS NOT TRUE)
          EXECUTE FUNCTION events_notify_pending();
        """);
}
