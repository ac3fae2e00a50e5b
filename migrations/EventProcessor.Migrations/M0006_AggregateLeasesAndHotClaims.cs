using FluentMigrator;

namespace EventProcessor.Migrations;

/// <summary>
/// Makes the claim's write to <c>events</c> a heap-only (HOT) update, and moves "which aggregates are held right now"
/// into a table of its own.
/// </summary>
/// <remarks>
/// A claim sets <c>attempts</c>, <c>locked_by</c> and <c>locked_until</c>. PostgreSQL can write that new row version
/// into the same page without touching a single index (a HOT update) when no index covers those columns and the page
/// has room. The claim was the most expensive statement of a drain because <c>events_held_by</c> indexed
/// <c>locked_by</c>, so every claim wrote an entry into every index of the table. Now:
/// <list type="bullet">
/// <item><c>events_held_by</c> is gone. Renewal finds held events by id; rescue needs no index (an expired lease is
/// seen on the row the FIFO walk reads anyway).</item>
/// <item><c>event_aggregate_leases</c> says which aggregates a claim holds, one row per aggregate (none for events
/// without one), written by the claim and deleted by the completion in the same statements. The claim skips every
/// aggregate with a live row there: that is what keeps a late-committed earlier event from running beside a later
/// one of its aggregate, across workers and instances.</item>
/// <item><c>events</c> leaves half of each page free (fillfactor 50) for the claim's new row version. A pending event
/// is claimed once and completed once; the completion moves it out of the pending indexes, so it cannot be HOT.
/// The cost is disk: rows take about twice the pages. <c>ALTER TABLE events SET (fillfactor = 100)</c> trades the
/// speed back for the space.</item>
/// </list>
/// </remarks>
[Migration(6, "aggregate leases, HOT claims")]
public sealed class M0006_AggregateLeasesAndHotClaims : ForwardOnlyMigration
{
    public override void Up() => Execute.Sql(
        """
        DROP INDEX IF EXISTS events_held_by;

        ALTER TABLE events SET (fillfactor = 50);

        CREATE TABLE event_aggregate_leases (
          aggregate_id UUID PRIMARY KEY,
          locked_by TEXT NOT NULL,
          locked_until TIMESTAMPTZ NOT NULL
        ) WITH (
          -- A few rows at a time, written and deleted by every batch: vacuum it often, by row count.
          autovacuum_vacuum_scale_factor = 0,
          autovacuum_vacuum_threshold = 1000
        );

        COMMENT ON TABLE event_aggregate_leases IS
          'Aggregates held by a running batch of the event processor; a row whose locked_until has passed holds nothing.';
        """);
}
