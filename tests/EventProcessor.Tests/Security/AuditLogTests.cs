using System.Net;
using System.Text.Json;
using Dapper;
using EventProcessor.Tests.Host;
using EventProcessor.Tests.Support;
using Npgsql;

namespace EventProcessor.Tests.Security;

/// <summary>
/// <c>audit_log</c>: one row per accepted admin request that changed something, saying who (never the key), what, on
/// which events, and how it ended; none for a refused one or a batch that claimed nothing; a row's size follows the
/// events changed, not the ids asked; a replay and its row commit together; rows are never updated.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.All)]
public sealed class AuditLogTests
{
    private const string AdminKey = "audit-admin-key-7c1f";

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
    public async Task Every_accepted_admin_request_is_audited_with_who_what_which_and_how_never_the_key()
    {
        var single = await _db.InsertEventAsync("nobody.handles.this");
        var leaky = await _db.InsertEventAsync("security.leaky");
        await using var service = await ServiceAppFixture.StartAsync(
            _db, settings: [new("ADMIN_API_KEY", AdminKey), new("MAX_RETRIES", "1")], services: SecurityHandlers.Register());
        (string Name, string Value) key = ("X-API-Key", AdminKey);

        await ExpectAsync(service.ProcessEventAsync(single, key), HttpStatusCode.Accepted);
        await ExpectAsync(service.PostAsync("/process-batch", null, ("Authorization", $"Bearer {AdminKey}")), HttpStatusCode.Accepted);
        await ExpectAsync(service.PostAsync("/replay", JsonSerializer.Serialize(new { event_ids = new[] { single } }), key), HttpStatusCode.Accepted);
        var deadLetter = await _db.ScalarAsync<Guid>("SELECT id FROM event_dead_letters WHERE event_id = @leaky", new { leaky });
        await ExpectAsync(service.PostAsync($"/dead-letters/{deadLetter}/retry", null, key), HttpStatusCode.Accepted);

        var rows = await AuditRowsAsync();
        var all = await _db.ScalarAsync<string>("SELECT coalesce(string_agg(a::text, ' '), '') FROM audit_log a");

        Assert.Multiple(() =>
        {
            Assert.That(rows.Select(r => r.Action), Is.EqualTo(new[] { "process_event", "process_batch", "replay", "retry_dead_letter" }));
            Assert.That(rows.Select(r => r.Actor), Is.All.EqualTo("admin"));
            Assert.That(rows.Select(r => r.RequestId), Is.All.Not.Empty);
            Assert.That(rows[0].TargetIds, Is.EqualTo(new[] { single }));
            Assert.That(rows[0].Outcome, Is.EqualTo("skipped"));
            Assert.That(rows[1].TargetIds, Is.EqualTo(new[] { leaky }), "the batch claimed the one pending event");
            Assert.That(rows[1].Outcome, Is.EqualTo("claimed"));
            Assert.That(rows[1].Detail, Does.Contain("\"dead_lettered\": 1"));
            Assert.That(rows[2].TargetIds, Is.EqualTo(new[] { single }));
            Assert.That(rows[2].Outcome, Is.EqualTo("reset"));
            Assert.That(rows[3].TargetIds, Is.EqualTo(new[] { leaky }));
            Assert.That(rows[3].Detail, Does.Contain(deadLetter.ToString()));
            Assert.That(rows.Select(r => r.OccurredAt), Is.Ordered, "in the order they happened");
            Assert.That(all, Does.Not.Contain(AdminKey), "the key is never stored");
        });
    }

    [Test]
    public async Task With_the_endpoints_open_the_actor_is_anonymous()
    {
        await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db);

        await ExpectAsync(service.PostAsync("/process-batch", null), HttpStatusCode.Accepted);

        var rows = await AuditRowsAsync();
        Assert.That(rows.Select(r => (r.Actor, r.Action)), Is.EqualTo(new[] { ("anonymous", "process_batch") }));
    }

    [Test]
    public async Task Refused_requests_change_nothing_and_are_not_audited()
    {
        var processed = await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(
            _db, settings: [new("ADMIN_API_KEY", AdminKey), new("ADMIN_RATE_LIMIT_PER_MINUTE", "9"), new("BATCH_SIZE", "1")]);
        (string Name, string Value) key = ("X-API-Key", AdminKey);
        await ExpectAsync(service.ProcessEventAsync(processed, key), HttpStatusCode.Accepted);
        await _db.ExecuteAsync("DELETE FROM audit_log");

        // One event for each batch the budget lets through (BATCH_SIZE=1), so that each claims one and is audited.
        await _db.InsertEventAsync("nobody.handles.this");
        await _db.InsertEventAsync("nobody.handles.this");

        await ExpectAsync(service.ProcessEventAsync(processed), HttpStatusCode.Unauthorized);
        await ExpectAsync(service.ProcessEventAsync(processed, key), HttpStatusCode.Conflict);
        await ExpectAsync(service.ProcessEventAsync(Guid.NewGuid(), key), HttpStatusCode.NotFound);
        await ExpectAsync(service.PostAsync("/process-event", "{\"event_id\": 1}", key), HttpStatusCode.BadRequest);
        await ExpectAsync(service.PostAsync("/replay", JsonSerializer.Serialize(new { event_ids = new[] { Guid.NewGuid() } }), key), HttpStatusCode.NotFound);
        await ExpectAsync(service.PostAsync($"/dead-letters/{Guid.NewGuid()}/retry", null, key), HttpStatusCode.NotFound);
        await ExpectAsync(service.PostAsync("/process-batch", "[]", key), HttpStatusCode.BadRequest);
        for (var i = 0; i < 3; i++)
        {
            using var response = await service.PostAsync("/process-batch", null, key);
        }

        await ExpectAsync(service.PostAsync("/process-batch", null, key), HttpStatusCode.TooManyRequests);

        Assert.That(
            await _db.ScalarAsync<long>("SELECT count(*) FROM audit_log WHERE action <> 'process_batch'"),
            Is.Zero,
            "only the accepted batches are audited");
        Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM audit_log"), Is.EqualTo(2), "two batches were accepted before the budget of 9 ran out");
    }

    [Test]
    public async Task A_replay_with_999_unknown_ids_writes_a_row_of_counts_and_a_bounded_sample()
    {
        var processed = await _db.InsertEventAsync("nobody.handles.this");
        await _db.ExecuteAsync("UPDATE events SET processed = true, processed_at = now() WHERE id = @processed", new { processed });
        var unknown = Enumerable.Range(0, 999).Select(_ => Guid.NewGuid()).ToArray();
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.PostAsync("/replay", JsonSerializer.Serialize(new { event_ids = (Guid[])[.. unknown[..500], processed, .. unknown[500..]] }));
        var (json, text) = await ResponseJson.ReadAsync(response);

        var row = (await AuditRowsAsync()).Single();
        using var detail = JsonDocument.Parse(row.Detail);
        var size = await _db.ScalarAsync<int>("SELECT octet_length(detail::text) + 16 * cardinality(target_ids) FROM audit_log");
        await TestContext.Out.WriteLineAsync($"audit row of a replay of 1 + 999 unknown ids: {size} bytes of ids and detail");
        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            Assert.That(json.GetProperty("unknown_ids").GetArrayLength(), Is.EqualTo(999), "the caller still hears of every id");
            Assert.That(row.TargetIds, Is.EqualTo(new[] { processed }), "the row names the event it reset");
            Assert.That(detail.RootElement.GetProperty("reset").GetInt32(), Is.EqualTo(1));
            Assert.That(detail.RootElement.GetProperty("already_pending").GetInt32(), Is.Zero);
            Assert.That(detail.RootElement.GetProperty("unknown").GetInt32(), Is.EqualTo(999), "and counts the rest");
            Assert.That(
                detail.RootElement.GetProperty("unknown_sample").EnumerateArray().Select(e => e.GetGuid()),
                Is.EqualTo(unknown[..20]),
                "the first 20 unknown ids, in the order asked");
            Assert.That(size, Is.LessThan(2048), "a bounded row, not one id per id asked (about 40 KB)");
        });
    }

    [Test]
    public async Task A_process_batch_that_claims_nothing_is_not_audited()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ADMIN_API_KEY", AdminKey)]);
        (string Name, string Value) key = ("X-API-Key", AdminKey);
        for (var i = 0; i < 5; i++)
        {
            await ExpectAsync(service.PostAsync("/process-batch", null, key), HttpStatusCode.Accepted);
        }

        var afterEmptyBatches = await _db.ScalarAsync<long>("SELECT count(*) FROM audit_log");
        var id = await _db.InsertEventAsync("nobody.handles.this");
        await ExpectAsync(service.PostAsync("/process-batch", null, key), HttpStatusCode.Accepted);

        var rows = await AuditRowsAsync();
        Assert.Multiple(() =>
        {
            Assert.That(afterEmptyBatches, Is.Zero, "five batches that claimed nothing wrote nothing");
            Assert.That(rows.Select(r => (r.Action, r.Outcome)), Is.EqualTo(new[] { ("process_batch", "claimed") }), "the batch that ran an event is audited");
            Assert.That(rows.Single().TargetIds, Is.EqualTo(new[] { id }));
        });
    }

    [Test]
    public async Task A_replay_whose_audit_row_cannot_be_written_replays_nothing()
    {
        var id = await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db);
        await ExpectAsync(service.ProcessEventAsync(id), HttpStatusCode.Accepted);
        await _db.ExecuteAsync("ALTER TABLE audit_log ADD CONSTRAINT audit_log_refuses_everything CHECK (false) NOT VALID");

        using var response = await service.PostAsync("/replay", JsonSerializer.Serialize(new { event_ids = new[] { id } }));
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(async () =>
        {
            Assert.That((int)response.StatusCode, Is.EqualTo(503), text);
            Assert.That(json.GetProperty("detail").GetString(), Is.Not.Empty);
            SecurityChecks.AssertNothingLeaks(text, "POST /replay");
            Assert.That((await _db.GetEventAsync(id)).Processed, Is.True, "the replay rolled back with its audit row");
        });
    }

    [Test]
    public async Task Audit_rows_are_never_updated()
    {
        await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db);
        await ExpectAsync(service.PostAsync("/process-batch", null), HttpStatusCode.Accepted);

        var exception = Assert.ThrowsAsync<PostgresException>(() => _db.ExecuteAsync("UPDATE audit_log SET actor = 'someone else'"));

        Assert.That(exception!.MessageText, Does.Contain("never updated"));
    }

    private static async Task ExpectAsync(Task<HttpResponseMessage> request, HttpStatusCode expected)
    {
        using var response = await request;
        Assert.That(response.StatusCode, Is.EqualTo(expected), await response.Content.ReadAsStringAsync());
    }

    private async Task<List<AuditRow>> AuditRowsAsync()
    {
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        return [.. await connection.QueryAsync<AuditRow>(
            """
            SELECT actor AS Actor, action AS Action, target_ids AS TargetIds, outcome AS Outcome, detail::text AS Detail,
                   request_id AS RequestId, occurred_at AS OccurredAt
            FROM audit_log ORDER BY id
            """)];
    }

    private sealed class AuditRow
    {
        public string Actor { get; init; } = "";

        public string Action { get; init; } = "";

        public Guid[] TargetIds { get; init; } = [];

        public string Outcome { get; init; } = "";

        public string Detail { get; init; } = "";

        public string RequestId { get; init; } = "";

        public DateTime OccurredAt { get; init; }
    }
}
