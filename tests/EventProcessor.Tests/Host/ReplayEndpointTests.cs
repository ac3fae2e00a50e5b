using System.Net;
using System.Text.Json;
using EventProcessor.Tests.Security;
using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Host;

/// <summary>POST /replay and POST /dead-letters/{id}/retry: the seed's replay over HTTP, with its fresh start.</summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.All)]
public sealed class ReplayEndpointTests
{
    private const string ProblemJson = "application/problem+json";

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
    public async Task Replay_resets_processed_events_and_lists_the_pending_and_unknown_ones()
    {
        var first = await _db.InsertEventAsync("nobody.handles.this");
        var second = await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db);
        await ProcessAsync(service, first, second);
        var pending = await _db.InsertEventAsync("nobody.handles.this");
        var unknown = Guid.NewGuid();

        using var response = await service.PostAsync("/replay", Ids(first, pending, second, unknown));
        var (json, text) = await ResponseJson.ReadAsync(response);
        var rows = new[] { await _db.GetEventAsync(first), await _db.GetEventAsync(second) };

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            Assert.That(json.GetProperty("success").GetBoolean(), Is.True);
            Assert.That(json.GetProperty("reset").GetInt32(), Is.EqualTo(2));
            Assert.That(GuidsOf(json, "reset_ids"), Is.EquivalentTo(new[] { first, second }));
            Assert.That(GuidsOf(json, "already_pending_ids"), Is.EqualTo(new[] { pending }));
            Assert.That(GuidsOf(json, "unknown_ids"), Is.EqualTo(new[] { unknown }));
            foreach (var row in rows)
            {
                Assert.That(row.Processed, Is.False, "pending again");
                Assert.That(row.Attempts, Is.Zero, "a fresh start: no attempts spent");
                Assert.That(row.Skipped, Is.False, "the previous outcome's marker is gone");
                Assert.That(row.ProcessedAt, Is.Null);
                Assert.That(row.Metadata, Does.Contain("\"replayed\": true").And.Contain("\"replay_count\": 1"));
            }

            Assert.That((await _db.GetEventAsync(pending)).Metadata, Does.Not.Contain("replayed"), "a pending event is left alone");
        });

        // And it runs again.
        await ProcessAsync(service, first);
        Assert.That((await _db.GetEventAsync(first)).Processed, Is.True);
    }

    [Test]
    public async Task Replay_wakes_the_poll_loop()
    {
        var id = await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db, enablePolling: true, settings: [new("POLL_INTERVAL_MS", "600000")]);
        await _db.WaitForProcessedAsync(1);

        using var response = await service.PostAsync("/replay", Ids(id));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        await TestDatabase.WaitUntilAsync(
            async () => (await _db.GetEventAsync(id)) is { Processed: true, Attempts: 1 } row && row.Metadata.Contains("replay_count", StringComparison.Ordinal),
            "the replayed event runs again long before the ten-minute poll interval");
    }

    [Test]
    public async Task Replay_of_ids_none_of_which_exists_answers_404_and_writes_nothing()
    {
        await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db);
        var unknown = new[] { Guid.NewGuid(), Guid.NewGuid() };

        using var response = await service.PostAsync("/replay", Ids(unknown));
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo(ProblemJson));
            Assert.That(GuidsOf(json, "unknown_ids"), Is.EqualTo(unknown));
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM audit_log"), Is.Zero, "a refused request is not audited");
        });
    }

    [Test]
    public async Task Replay_refuses_a_repeated_id_naming_both_places()
    {
        var id = await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db);
        await ProcessAsync(service, id);

        using var response = await service.PostAsync("/replay", Ids(id, Guid.NewGuid(), id));
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), text);
            Assert.That(json.GetProperty("detail").GetString(), Does.Contain("event_ids[2] repeats event_ids[0]"));
            Assert.That((await _db.GetEventAsync(id)).Processed, Is.True, "nothing was replayed");
        });
    }

    [Test]
    public async Task Replay_takes_a_thousand_ids_and_no_more()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var thousand = await service.PostAsync("/replay", Ids([.. Enumerable.Range(0, 1000).Select(_ => Guid.NewGuid())]));
        using var more = await service.PostAsync("/replay", Ids([.. Enumerable.Range(0, 1001).Select(_ => Guid.NewGuid())]));

        Assert.Multiple(() =>
        {
            Assert.That(thousand.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "read, and none found");
            Assert.That(more.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        });
    }

    [Test]
    public async Task Retrying_a_dead_letter_replays_its_event_once()
    {
        var id = await _db.InsertEventAsync("security.leaky");
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("MAX_RETRIES", "1")], services: SecurityHandlers.Register());
        await ProcessAsync(service, id);
        var deadLetter = await _db.ScalarAsync<Guid>("SELECT id FROM event_dead_letters WHERE event_id = @id", new { id });

        using var retried = await service.PostAsync($"/dead-letters/{deadLetter}/retry", null);
        var (json, text) = await ResponseJson.ReadAsync(retried);
        var row = await _db.GetEventAsync(id);
        using var again = await service.PostAsync($"/dead-letters/{deadLetter}/retry", null);
        var (againJson, againText) = await ResponseJson.ReadAsync(again);

        Assert.Multiple(async () =>
        {
            Assert.That(retried.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            Assert.That(json.GetProperty("dead_letter_id").GetGuid(), Is.EqualTo(deadLetter));
            Assert.That(json.GetProperty("event_id").GetGuid(), Is.EqualTo(id));
            Assert.That(row.Processed, Is.False);
            Assert.That(row.DeadLettered, Is.False, "dead_lettered is cleared");
            Assert.That(row.Attempts, Is.Zero);
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM event_dead_letters"), Is.EqualTo(1), "the dead letter stays as history");
            Assert.That(again.StatusCode, Is.EqualTo(HttpStatusCode.Conflict), againText);
            Assert.That(againJson.GetProperty("detail").GetString(), Does.Contain("not dead-lettered any more"));
        });
    }

    [Test]
    public async Task Retrying_a_dead_letter_that_is_a_refused_delivery_answers_409()
    {
        var deadLetter = Guid.NewGuid();
        await _db.ExecuteAsync(
            """
            INSERT INTO event_dead_letters (id, event_id, event_type, payload, error_message, retry_count, original_created_at)
            VALUES (@deadLetter, gen_random_uuid(), 'sqs.refused', '{}', 'not JSON', 1, now())
            """,
            new { deadLetter });
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.PostAsync($"/dead-letters/{deadLetter}/retry", null);
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Conflict), text);
            Assert.That(json.GetProperty("detail").GetString(), Does.Contain("refused at the door"));
        });
    }

    [TestCase("not-a-uuid", HttpStatusCode.BadRequest)]
    [TestCase("3f2504e0-4f89-11d3-9a0c-0305e82c3301", HttpStatusCode.NotFound)]
    public async Task Retrying_a_malformed_or_unknown_dead_letter_is_refused(string id, HttpStatusCode expected)
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.PostAsync($"/dead-letters/{id}/retry", null);
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(expected), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo(ProblemJson));
            Assert.That(json.GetProperty("detail").GetString(), Is.Not.Empty);
        });
    }

    [TestCase("/replay")]
    [TestCase("/dead-letters/3f2504e0-4f89-11d3-9a0c-0305e82c3301/retry")]
    public async Task With_an_admin_key_both_need_it(string path)
    {
        var id = await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ADMIN_API_KEY", "k")]);

        using var response = await service.PostAsync(path, Ids(id), ("X-API-Key", "not-k"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    private static string Ids(params Guid[] ids) => JsonSerializer.Serialize(new { event_ids = ids });

    private static Guid[] GuidsOf(JsonElement json, string property) =>
        [.. json.GetProperty(property).EnumerateArray().Select(e => e.GetGuid())];

    private static async Task ProcessAsync(ServiceAppFixture service, params Guid[] ids)
    {
        foreach (var id in ids)
        {
            using var response = await service.ProcessEventAsync(id);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await response.Content.ReadAsStringAsync());
        }
    }
}
