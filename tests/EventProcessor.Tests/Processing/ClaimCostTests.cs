using Dapper;
using EventProcessor.Processing;
using EventProcessor.Storage;
using EventProcessor.Tests.Support;
using Npgsql;

namespace EventProcessor.Tests.Processing;

/// <summary>
/// What keeps the claim cheap, checked on the real statements: its write is heap-only (no index entry written), and
/// the claim and the completion stay index scans however many processed rows the table holds.
/// </summary>
public sealed class ClaimCostTests
{
    private TestDatabase _db = null!;

    [SetUp]
    public async Task SetUp() => _db = await TestDatabase.CreateAsync();

    [TearDown]
    public async Task TearDown()
    {
        if (_db is not null)
        {
            await _db.DisposeAsync();
        }
    }

    [Test]
    public async Task A_claim_updates_every_row_it_takes_heap_only()
    {
        await InsertPendingAsync(100, aggregates: 10);
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using (var claim = new NpgsqlCommand(EventSql.ClaimBatch, connection, transaction))
        {
            AddClaimParameters(claim, limit: 100);
            await claim.ExecuteNonQueryAsync();
        }

        // This transaction's own counts: one update per event claimed, and every one of them HOT.
        var (updates, hot) = await connection.QuerySingleAsync<(long Updates, long Hot)>(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'events'", transaction: transaction);
        var leases = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM event_aggregate_leases", transaction: transaction);
        await TestContext.Out.WriteLineAsync($"{updates} rows claimed, {hot} of them heap-only");
        Assert.Multiple(() =>
        {
            Assert.That(updates, Is.EqualTo(100), "one batch takes runs of several aggregates");

            // Half of each page is kept free for this; the last rows of a page can still find it full (a row's new
            // version needs a little more than the old one took), so not quite all.
            Assert.That(hot, Is.GreaterThanOrEqualTo(updates * 8 / 10), "no index entry was written for nearly every claimed row (91 of 100 when measured)");
            Assert.That(leases, Is.EqualTo(10), "each claimed aggregate is leased once");
        });
    }

    [Test]
    public async Task The_claim_and_the_completion_are_index_scans_beside_many_processed_rows()
    {
        await _db.ExecuteAsync(
            """
            INSERT INTO events (id, event_type, payload, processed, processed_at, created_at)
            SELECT gen_random_uuid(), 'test.history', '{}', true, now(), now() - interval '1 day' + g * interval '1 ms'
            FROM generate_series(1, 200000) AS g
            """);
        await InsertPendingAsync(1_000, aggregates: 100);
        await _db.ExecuteAsync("VACUUM ANALYZE events");
        await using var connection = await _db.DataSource.OpenConnectionAsync();

        await using var claim = new NpgsqlCommand($"EXPLAIN (COSTS OFF) {EventSql.ClaimBatch}", connection);
        AddClaimParameters(claim, limit: 1_000);
        var claimPlan = await PlanAsync(claim);

        var ids = (await connection.QueryAsync<Guid>("SELECT id FROM events WHERE NOT processed LIMIT 1000")).ToArray();
        var completePlan = await CompletionPlanAsync(connection, null, ids);
        await TestContext.Out.WriteLineAsync($"claim:\n{claimPlan}\n\ncompletion:\n{completePlan}");

        Assert.Multiple(() =>
        {
            Assert.That(claimPlan, Does.Not.Contain("Seq Scan on events"), claimPlan);
            Assert.That(claimPlan, Does.Contain("Index Scan using events_claim_fifo on events"), claimPlan);
            Assert.That(claimPlan, Does.Contain("Tid Scan on events"), "the claim writes each row it locked at the row's address, with no second walk down the primary key");
            Assert.That(completePlan, Does.Not.Contain("Seq Scan on events"), completePlan);
            Assert.That(completePlan, Does.Contain("Index Scan using events_pkey on events e"), "each outcome finds its row by key, not by walking the pending set");
        });
    }

    [Test]
    public async Task A_claim_reads_each_tenants_backlog_from_its_own_range_of_the_fifo_index()
    {
        // Planned, as the engine plans it (a generic plan, prepared on its connection's first claim), while the table
        // holds a few events without a tenant; then one tenant gets a deep backlog and two a few events. The claim
        // must still read each queue from its own range of the index, and each candidate's predecessors by one probe.
        await InsertPendingAsync(50, aggregates: 5);
        await _db.ExecuteAsync("VACUUM ANALYZE events");
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await connection.ExecuteAsync(EventSql.PinIndexPlans, transaction: transaction);
        var positional = EventSql.ClaimBatch
            .Replace("@limit", "$1", StringComparison.Ordinal).Replace("@owner", "$2", StringComparison.Ordinal)
            .Replace("@lease", "$3", StringComparison.Ordinal).Replace("@held", "$4", StringComparison.Ordinal);
        await connection.ExecuteAsync($"PREPARE claim (integer, text, interval, uuid[]) AS {positional}", transaction: transaction);
        const string Execute = "EXECUTE claim(20, 'test', '30 seconds', '{}')";
        await connection.ExecuteAsync(Execute, transaction: transaction);
        await connection.ExecuteAsync(
            """
            INSERT INTO events (id, event_type, aggregate_id, payload, tenant_id, created_at)
            SELECT gen_random_uuid(), 'test.recorded', CASE WHEN g % 3 = 0 THEN gen_random_uuid() END, '{}',
                   CASE WHEN g <= 20000 THEN 'deep' WHEN g % 2 = 0 THEN 'few-1' ELSE 'few-2' END,
                   now() - interval '2 hours' + g * interval '1 ms'
            FROM generate_series(1, 20010) AS g
            """,
            transaction: transaction);

        await using var explain = new NpgsqlCommand($"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {Execute}", connection, transaction);
        var plan = await PlanAsync(explain);
        await transaction.RollbackAsync();
        await TestContext.Out.WriteLineAsync(plan);

        Assert.Multiple(() =>
        {
            Assert.That(plan, Does.Not.Contain("Seq Scan on events"), plan);
            Assert.That(plan, Does.Match(@"Index Scan using events_claim_fifo on events e \(actual rows=\d+ loops=4\)"), "each of the four queues read from the index");
            Assert.That(plan, Does.Contain("Index Cond: ((COALESCE(tenant_id, ''::character varying))::text = (q.tenant_key)::text)"), "each from its own range");
            Assert.That(plan, Does.Not.Contain("Sort Key: e.created_at"), "in order: no queue's backlog is read whole and sorted");
            Assert.That(plan, Does.Contain("Index Scan using events_pending_by_aggregate on events p"), "each candidate's predecessors are one index probe");
            Assert.That(plan, Does.Not.Match(@"Rows Removed by Filter: \d{3,}"), "no scan reads past hundreds of rows it does not want");
        });
    }

    [Test]
    public async Task The_engine_plans_index_scans_even_when_the_table_is_nearly_empty()
    {
        // A prepared statement keeps the plan it chose after its first few runs. When those runs met a nearly empty
        // table (a new deployment, a drained queue), the cheapest plan probed each candidate's predecessors with a
        // sequential scan, and that plan stayed as the backlog grew: 3 s per claim at 30,000 pending events (the
        // benchmark at 2,000 inserts/s), and the service fell behind. Planned from here, the plan must serve any size.
        await _db.ExecuteAsync("VACUUM ANALYZE events");
        await InsertPendingAsync(20, aggregates: 5);
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using (var pin = new NpgsqlCommand(EventSql.PinIndexPlans, connection, transaction))
        {
            await pin.ExecuteNonQueryAsync();
        }

        await using var claim = new NpgsqlCommand($"EXPLAIN (COSTS OFF) {EventSql.ClaimBatch}", connection, transaction);
        AddClaimParameters(claim, limit: 100);
        var claimPlan = await PlanAsync(claim);
        var ids = (await connection.QueryAsync<Guid>("SELECT id FROM events", transaction: transaction)).ToArray();
        var completePlan = await CompletionPlanAsync(connection, transaction, ids);
        await TestContext.Out.WriteLineAsync($"claim:\n{claimPlan}\n\ncompletion:\n{completePlan}");

        Assert.Multiple(() =>
        {
            Assert.That(completePlan, Does.Not.Contain("Seq Scan on events"), completePlan);
            Assert.That(claimPlan, Does.Not.Contain("Seq Scan on events"), claimPlan);
            Assert.That(claimPlan, Does.Not.Contain("Bitmap Heap Scan on events"), "the FIFO head is read in order and the read stops at the limit");
            Assert.That(claimPlan, Does.Contain("Index Scan using events_pending_by_aggregate on events p"), "each candidate's predecessors are one index probe");
        });
    }

    [Test]
    public async Task A_completion_commits_without_waiting_for_its_wal_flush_and_only_for_its_own_transaction()
    {
        await InsertPendingAsync(3, aggregates: 1);
        var options = new EventProcessorOptions { ConnectionString = _db.ConnectionString, InstanceName = "test" };
        await using var database = new EventDatabase(options);
        var claimed = (await new EventClaimer(database, options, new HeldEvents(), TimeProvider.System).ClaimBatchAsync(3, onDemand: false, CancellationToken.None)).Events;
        await using var session = new BatchSession(database.DataSource);
        var attempts = claimed.Select(e => new EventAttempt(e, session, options.SerializerOptions)).ToArray();
        var results = attempts.Select(_ => ExecutionResult.Completed).ToArray();

        await using var connection = await database.DataSource.OpenConnectionAsync();
        // The test server runs with synchronous_commit off altogether; a production server has it on.
        await connection.ExecuteAsync("SET synchronous_commit = on");
        await using var transaction = await connection.BeginTransactionAsync();
        var applied = await new EventCompleter(options).CompleteAsync(connection, transaction, attempts, results, CancellationToken.None);
        var during = await connection.ExecuteScalarAsync<string>("SHOW synchronous_commit", transaction: transaction);
        await transaction.CommitAsync();
        var after = await connection.ExecuteScalarAsync<string>("SHOW synchronous_commit");

        Assert.Multiple(() =>
        {
            Assert.That(applied, Has.Count.EqualTo(3));
            Assert.That(during, Is.EqualTo("off"), "the completion's commit does not wait for the WAL flush");
            Assert.That(after, Is.EqualTo("on"), "the setting ends with the completion's transaction");
        });
    }

    [Test]
    public async Task The_claim_and_the_completion_are_planned_once_per_connection_not_at_every_run()
    {
        await InsertPendingAsync(40, aggregates: 40);

        // One connection in the pool: every statement below runs on it, and so does the look at what it prepared.
        var options = new EventProcessorOptions { ConnectionString = $"{_db.ConnectionString};Maximum Pool Size=1", InstanceName = "test" };
        await using var database = new EventDatabase(options);
        var claimer = new EventClaimer(database, options, new HeldEvents(), TimeProvider.System);
        var completer = new EventCompleter(options);
        await using var session = new BatchSession(database.DataSource);
        const int runs = 8;
        for (var run = 0; run < runs; run++)
        {
            var claimed = (await claimer.ClaimBatchAsync(5, onDemand: false, CancellationToken.None)).Events;
            var attempts = claimed.Select(e => new EventAttempt(e, session, options.SerializerOptions)).ToArray();
            await using var connection = await database.DataSource.OpenConnectionAsync();
            await completer.CompleteAsync(connection, null, attempts, [.. attempts.Select(_ => ExecutionResult.Completed)], CancellationToken.None);
        }

        await using (var connection = await database.DataSource.OpenConnectionAsync())
        {
            var plans = (await connection.QueryAsync<(string Statement, long Generic, long Custom)>(
                """
                SELECT CASE WHEN statement LIKE '%FOR UPDATE SKIP LOCKED%' THEN 'claim' ELSE 'completion' END, generic_plans, custom_plans
                FROM pg_prepared_statements
                WHERE statement LIKE '%FOR UPDATE SKIP LOCKED%' OR statement LIKE '%unnest(%'
                """)).ToList();
            await TestContext.Out.WriteLineAsync(string.Join('\n', plans));

            // Left to itself, PostgreSQL plans a prepared statement afresh for its first five runs, and after that
            // whenever the generic plan looks dearer than those: in a drain, the claim was planned at every run.
            Assert.That(plans.Select(p => p.Statement), Is.EquivalentTo(new[] { "claim", "completion" }), "both prepared on this connection");
            Assert.That(plans, Has.All.Matches<(string Statement, long Generic, long Custom)>(p => p.Generic == runs && p.Custom == 0), "every run used the one generic plan");
        }

        Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE NOT processed"), Is.EqualTo(0), "the runs drained the table");
    }

    private async Task InsertPendingAsync(int count, int aggregates) => await _db.ExecuteAsync(
        """
        INSERT INTO events (id, event_type, aggregate_id, payload, created_at)
        SELECT gen_random_uuid(), 'test.recorded', a.ids[1 + g % @aggregates], '{"text": "x"}', now() - interval '1 hour' + g * interval '1 ms'
        FROM generate_series(1, @count) AS g,
             (SELECT array_agg(gen_random_uuid()) AS ids FROM generate_series(1, @aggregates)) AS a
        """,
        new { count, aggregates });

    private static void AddClaimParameters(NpgsqlCommand command, int limit)
    {
        command.Parameters.AddWithValue("limit", limit);
        command.Parameters.AddWithValue("owner", "test");
        command.Parameters.AddWithValue("lease", TimeSpan.FromSeconds(30));
        command.Parameters.Add(new NpgsqlParameter<Guid[]>("held", []));
    }

    private static async Task<string> CompletionPlanAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] ids)
    {
        await using var complete = new NpgsqlCommand($"EXPLAIN (COSTS OFF) {EventSql.CompleteBatch}", connection, transaction);
        complete.Parameters.AddWithValue("ids", ids);
        complete.Parameters.AddWithValue("attempts", new int[ids.Length]);
        complete.Parameters.AddWithValue("kinds", new int[ids.Length]);
        complete.Parameters.AddWithValue("errors", new string[ids.Length]);
        complete.Parameters.AddWithValue("delays", new TimeSpan[ids.Length]);
        complete.Parameters.AddWithValue("owner", "test");
        complete.Parameters.AddWithValue("new_ids", Array.Empty<Guid>());
        complete.Parameters.AddWithValue("new_causes", Array.Empty<Guid>());
        complete.Parameters.AddWithValue("new_aggregate_ids", Array.Empty<Guid>());
        foreach (var name in new[] { "new_types", "new_aggregate_types", "new_payloads", "new_metadata", "new_tenants" })
        {
            complete.Parameters.AddWithValue(name, Array.Empty<string>());
        }

        return await PlanAsync(complete);
    }

    private static async Task<string> PlanAsync(NpgsqlCommand explain)
    {
        var lines = new List<string>();
        await using var reader = await explain.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            lines.Add(reader.GetString(0));
        }

        return string.Join('\n', lines);
    }
}
