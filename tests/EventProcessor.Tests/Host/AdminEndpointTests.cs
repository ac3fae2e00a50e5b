using System.Net;
using System.Text.Json;
using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Host;

/// <summary>POST /process-event and /process-batch with polling off, so only the endpoints process.</summary>
public sealed class AdminEndpointTests
{
    private const string ProblemJson = "application/problem+json";
    private const string ApiKey = "secret-key";

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
    public async Task Process_event_answers_202_and_skips_an_event_no_handler_takes()
    {
        var id = await _db.InsertEventAsync("nobody.handles.this", new { user = "u1" });
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.ProcessEventAsync(id);
        var (json, text) = await ResponseJson.ReadAsync(response);
        var row = await _db.GetEventAsync(id);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"));
            Assert.That(json.GetProperty("success").GetBoolean(), Is.True);
            Assert.That(json.GetProperty("message").GetString(), Is.EqualTo("Event processing started"));
            Assert.That(json.GetProperty("event_id").GetString(), Is.EqualTo(id.ToString()));
            Assert.That(json.GetProperty("outcome").GetString(), Is.EqualTo("skipped"));
            Assert.That(row.Processed, Is.True, "the row is processed");
            Assert.That(row.Skipped, Is.True, "metadata.skipped");
            Assert.That(row.ProcessedAt, Is.Not.Null);
            Assert.That(row.LockedBy, Is.Null, "the lease is given up");
        });
    }

    [Test]
    public async Task Process_event_for_an_unknown_id_answers_404_problem()
    {
        await _db.InsertEventAsync("nobody.handles.this");
        var unknown = Guid.NewGuid();
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.ProcessEventAsync(unknown);
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo(ProblemJson));
            Assert.That(json.GetProperty("status").GetInt32(), Is.EqualTo(404));
            Assert.That(json.GetProperty("detail").GetString(), Does.Contain(unknown.ToString()));
            Assert.That(json.GetProperty("event_id").GetString(), Is.EqualTo(unknown.ToString()));
        });
        await service.AssertStillServingAsync();
    }

    [TestCase(null, "JSON", TestName = "Process_event_without_a_body_answers_400")]
    [TestCase("", "JSON", TestName = "Process_event_with_an_empty_body_answers_400")]
    [TestCase("{\"event_id\": ", "JSON", TestName = "Process_event_with_malformed_JSON_answers_400")]
    [TestCase("{}", "required", TestName = "Process_event_without_event_id_answers_400")]
    [TestCase("{\"id\": \"3f2504e0-4f89-11d3-9a0c-0305e82c3301\"}", "required", TestName = "Process_event_with_a_misnamed_id_answers_400")]
    [TestCase("[\"3f2504e0-4f89-11d3-9a0c-0305e82c3301\"]", "required", TestName = "Process_event_with_an_array_body_answers_400")]
    [TestCase("{\"event_id\": \"not-a-uuid\"}", "UUID", TestName = "Process_event_with_a_non_UUID_event_id_answers_400")]
    [TestCase("{\"event_id\": 42}", "UUID", TestName = "Process_event_with_a_numeric_event_id_answers_400")]
    [TestCase("{\"event_id\": null}", "UUID", TestName = "Process_event_with_a_null_event_id_answers_400")]
    public async Task Process_event_rejects_a_bad_request_with_a_clear_detail(string? body, string detailMentions)
    {
        var id = await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.PostAsync("/process-event", body);
        var (json, text) = await ResponseJson.ReadAsync(response);
        var detail = json.GetProperty("detail").GetString();

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo(ProblemJson));
            Assert.That(json.GetProperty("status").GetInt32(), Is.EqualTo(400));
            Assert.That(detail, Does.Contain(detailMentions), "the detail says what is wrong");
            Assert.That(detail, Does.Contain("event_id"), "the detail says what to send");
        });
        Assert.That((await _db.GetEventAsync(id)).Attempts, Is.Zero, "nothing was claimed");
        await service.AssertStillServingAsync();
    }

    [Test]
    public async Task Process_event_for_an_already_processed_event_answers_409_that_mentions_replay()
    {
        var id = await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db);
        using (var first = await service.ProcessEventAsync(id))
        {
            Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        }

        var before = await _db.GetEventAsync(id);

        using var response = await service.ProcessEventAsync(id);
        var (json, text) = await ResponseJson.ReadAsync(response);
        var after = await _db.GetEventAsync(id);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Conflict), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo(ProblemJson));
            Assert.That(json.GetProperty("detail").GetString(), Does.Contain("replay").IgnoreCase);
            Assert.That(json.GetProperty("event_id").GetString(), Is.EqualTo(id.ToString()));
            Assert.That(after, Is.EqualTo(before), "the processed row is left alone");
        });
        await service.AssertStillServingAsync();
    }

    [Test]
    public async Task Process_event_waiting_for_an_earlier_event_of_its_aggregate_answers_409_naming_it()
    {
        var aggregate = Guid.NewGuid();
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        var earlier = await _db.InsertEventAsync("nobody.handles.this", aggregateId: aggregate, createdAt: start);
        var later = await _db.InsertEventAsync("nobody.handles.this", aggregateId: aggregate, createdAt: start.AddSeconds(1));
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.ProcessEventAsync(later);
        var (json, text) = await ResponseJson.ReadAsync(response);
        var row = await _db.GetEventAsync(later);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Conflict), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo(ProblemJson));
            Assert.That(json.GetProperty("detail").GetString(), Does.Contain(earlier.ToString()));
            Assert.That(json.GetProperty("event_id").GetString(), Is.EqualTo(later.ToString()));
            Assert.That(row.Processed, Is.False);
            Assert.That(row.Attempts, Is.Zero, "the waiting event spent no attempt");
        });

        // Once the earlier event is done, the later one goes through.
        using (var first = await service.ProcessEventAsync(earlier))
        {
            Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        }

        using var second = await service.ProcessEventAsync(later);
        Assert.Multiple(async () =>
        {
            Assert.That(second.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
            Assert.That((await _db.GetEventAsync(later)).Processed, Is.True);
        });
    }

    [Test]
    public async Task Process_batch_answers_202_with_the_number_claimed_and_processes_them()
    {
        var ids = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add(await _db.InsertEventAsync($"nobody.handles.type{i}"));
        }

        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var response = await service.PostAsync("/process-batch", null);
        var (json, text) = await ResponseJson.ReadAsync(response);
        var rows = new List<EventRow>();
        foreach (var id in ids)
        {
            rows.Add(await _db.GetEventAsync(id));
        }

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            Assert.That(json.GetProperty("success").GetBoolean(), Is.True);
            Assert.That(json.GetProperty("message").GetString(), Is.EqualTo("Batch processing started"));
            Assert.That(json.GetProperty("claimed").GetInt32(), Is.EqualTo(3));
            Assert.That(rows.Select(r => r.Processed), Is.All.True);
            Assert.That(rows.Select(r => r.Skipped), Is.All.True);
        });
    }

    [Test]
    public async Task Process_batch_claims_at_most_BATCH_SIZE_events_per_call()
    {
        for (var i = 0; i < 5; i++)
        {
            await _db.InsertEventAsync("nobody.handles.this");
        }

        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("BATCH_SIZE", "2")]);

        var claimed = new List<int>();
        for (var call = 0; call < 4; call++)
        {
            using var response = await service.PostAsync("/process-batch", null);
            var (json, text) = await ResponseJson.ReadAsync(response);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            claimed.Add(json.GetProperty("claimed").GetInt32());
        }

        Assert.Multiple(async () =>
        {
            Assert.That(claimed, Is.EqualTo(new List<int> { 2, 2, 1, 0 }));
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed"), Is.EqualTo(5));
        });
    }

    [Test]
    public async Task Process_batch_takes_an_empty_object_and_refuses_any_other_body()
    {
        await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var refused = await service.PostAsync("/process-batch", "{\"whatever\": true}");
        var (problem, problemText) = await ResponseJson.ReadAsync(refused);
        var claimedBefore = await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE attempts > 0");
        using var accepted = await service.PostAsync("/process-batch", "{}");
        var (json, text) = await ResponseJson.ReadAsync(accepted);

        Assert.Multiple(() =>
        {
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problemText);
            Assert.That(refused.Content.Headers.ContentType?.MediaType, Is.EqualTo(ProblemJson));
            Assert.That(problem.GetProperty("detail").GetString(), Does.Contain("takes no body"));
            Assert.That(claimedBefore, Is.Zero, "the refused request claimed nothing");
            Assert.That(accepted.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            Assert.That(json.GetProperty("claimed").GetInt32(), Is.EqualTo(1));
        });
    }

    [TestCase("/process-batch")]
    [TestCase("/process-event")]
    public async Task With_an_admin_key_requests_without_the_right_key_answer_401(string path)
    {
        var id = await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ADMIN_API_KEY", ApiKey)]);
        var body = JsonSerializer.Serialize(new { event_id = id });

        (string Name, string Value)[][] refused =
        [
            [],
            [("X-API-Key", "wrong-key")],
            [("X-API-Key", "")],
            [("Authorization", "Bearer wrong-key")],
            [("Authorization", "Basic " + Convert.ToBase64String("admin:secret-key"u8.ToArray()))],
            [("Authorization", ApiKey)],
            [("X-API-Key", ApiKey + "x")],
            [("X-API-Key", "SECRET-KEY")],
        ];
        foreach (var headers in refused)
        {
            var described = headers.Length == 0 ? "no key" : string.Join(", ", headers.Select(h => $"{h.Name}: '{h.Value}'"));
            using var response = await service.PostAsync(path, body, headers);
            var (json, text) = await ResponseJson.ReadAsync(response);
            Assert.Multiple(() =>
            {
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), $"{described}: {text}");
                Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo(ProblemJson), described);
                Assert.That(json.GetProperty("status").GetInt32(), Is.EqualTo(401), described);
                Assert.That(text, Does.Not.Contain(ApiKey).IgnoreCase, $"{described}: the key is not echoed");
                Assert.That(text, Does.Not.Contain("wrong-key"), $"{described}: the presented key is not echoed");
            });
            await service.AssertStillServingAsync();
        }

        var row = await _db.GetEventAsync(id);
        Assert.Multiple(() =>
        {
            Assert.That(row.Processed, Is.False, "nothing ran without the key");
            Assert.That(row.Attempts, Is.Zero);
        });
    }

    [Test]
    public async Task With_an_admin_key_a_bad_body_without_the_key_answers_401_not_400()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ADMIN_API_KEY", ApiKey)]);

        using var response = await service.PostAsync("/process-event", "{not json");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        await service.AssertStillServingAsync();
    }

    [TestCase("X-API-Key", ApiKey)]
    [TestCase("Authorization", "Bearer " + ApiKey)]
    [TestCase("Authorization", "bearer " + ApiKey)]
    public async Task With_an_admin_key_the_right_key_is_admitted(string header, string value)
    {
        var first = await _db.InsertEventAsync("nobody.handles.this");
        await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ADMIN_API_KEY", ApiKey)]);

        using var single = await service.ProcessEventAsync(first, (header, value));
        using var batch = await service.PostAsync("/process-batch", null, (header, value));
        var (json, text) = await ResponseJson.ReadAsync(batch);

        Assert.Multiple(async () =>
        {
            Assert.That(single.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await single.Content.ReadAsStringAsync());
            Assert.That(batch.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            Assert.That(json.GetProperty("claimed").GetInt32(), Is.EqualTo(1));
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed"), Is.EqualTo(2));
        });
    }

    [Test]
    public async Task With_an_admin_key_health_stays_open()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ADMIN_API_KEY", ApiKey)]);

        using var response = await service.GetHealthAsync();
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
            Assert.That(json.GetProperty("status").GetString(), Is.EqualTo("healthy"));
            Assert.That(text, Does.Not.Contain(ApiKey), "the key is not shown");
        });
    }

    [Test]
    public async Task With_ALLOW_UNAUTHENTICATED_and_no_admin_key_the_endpoints_are_open()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("ALLOW_UNAUTHENTICATED", "true")]);

        using var response = await service.PostAsync("/process-batch", null, ("X-API-Key", "anything"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
    }

    [TestCase("GET", "/process-event")]
    [TestCase("GET", "/process-batch")]
    [TestCase("POST", "/health")]
    [TestCase("POST", "/no-such-endpoint")]
    public async Task Wrong_method_or_path_is_refused_and_the_service_keeps_serving(string method, string path)
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);

        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative));
        using var response = await service.Client.SendAsync(request);

        Assert.That((int)response.StatusCode, Is.AnyOf(404, 405));
        await service.AssertStillServingAsync();
    }
}
