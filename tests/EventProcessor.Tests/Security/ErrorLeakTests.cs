using System.Net;
using EventProcessor.Tests.Host;
using EventProcessor.Tests.Support;
using EventProcessor.Validation;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Security;

/// <summary>
/// Failures answer with problem+json that says what to do, never with what went wrong inside: no stack frames, no
/// driver messages, no connection strings, no passwords, no handler's exception text.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.All)]
public sealed class ErrorLeakTests
{
    private const string AdminKey = "leak-test-admin-key";
    private const string Password = "Db-Pa55w0rd-never-shown";

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
    public async Task With_the_database_unreachable_every_endpoint_answers_503_with_Retry_After_and_shows_nothing_of_the_connection()
    {
        var port = ServiceAppFixture.ClosedPort();
        var url = $"postgres://leak_user:{Password}@127.0.0.1:{port}/leak_db";
        await using var service = await ServiceAppFixture.StartAsync(url, settings: [new("ADMIN_API_KEY", AdminKey)]);
        var secrets = new[] { Password, "leak_user", "leak_db", $":{port}", url };
        (string Path, string? Body, string Key)[] requests =
        [
            ("/process-event", $$"""{"event_id": "{{Guid.NewGuid()}}"}""", AdminKey),
            ("/process-batch", null, AdminKey),
            ("/replay", $$"""{"event_ids": ["{{Guid.NewGuid()}}"]}""", AdminKey),
            ($"/dead-letters/{Guid.NewGuid()}/retry", null, AdminKey),
            ("/process", AwsFixtures.Read("ecs-task-state-change-event.json"), AdminKey),
            ("/events", """{"event_type": "leak.test", "payload": {}}""", AdminKey),
            ("/events", """{"event_type": "leak.test", "payload": {}}""", "epk_a_client_key_that_must_be_looked_up"),
        ];

        foreach (var (path, body, key) in requests)
        {
            using var response = await service.PostAsync(path, body, ("X-API-Key", key));
            var (json, text) = await ResponseJson.ReadAsync(response);
            Assert.Multiple(() =>
            {
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), $"{path}: {text}");
                Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"), path);
                Assert.That(response.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(5)), $"{path}: Retry-After");
                Assert.That(json.GetProperty("detail").GetString(), Is.Not.Empty, path);
                SecurityChecks.AssertNothingLeaks(text, path, secrets);
            });
        }

        using var health = await service.GetHealthAsync();
        var healthText = await health.Content.ReadAsStringAsync();
        Assert.Multiple(() =>
        {
            Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            Assert.That(health.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(5)), "GET /health: Retry-After");
            SecurityChecks.AssertNothingLeaks(healthText, "GET /health", secrets);
        });
    }

    [TestCase("1", "dead_lettered")]
    [TestCase("5", "retry_scheduled")]
    public async Task A_handlers_exception_message_stays_in_the_database_and_out_of_the_response(string maxRetries, string outcome)
    {
        var id = await _db.InsertEventAsync("security.leaky");
        await using var service = await ServiceAppFixture.StartAsync(
            _db, settings: [new("MAX_RETRIES", maxRetries)], services: SecurityHandlers.Register());

        using var response = await service.ProcessEventAsync(id);
        var (json, text) = await ResponseJson.ReadAsync(response);
        var row = await _db.GetEventAsync(id);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            Assert.That(json.GetProperty("outcome").GetString(), Is.EqualTo(outcome));
            Assert.That(json.GetProperty("error").GetString(), Does.Contain("reason is in"), "the error says where the reason is kept");
            SecurityChecks.AssertNothingLeaks(text, "POST /process-event", SecurityHandlers.Secret, "billing.internal");
            Assert.That(row.LastError, Does.Contain(SecurityHandlers.Secret), "the reason is kept for the admin, in the database");
        });
    }

    [Test]
    public async Task An_unexpected_exception_answers_500_problem_json_without_its_message_or_stack()
    {
        await using var service = await ServiceAppFixture.StartAsync(
            _db, services: services => services.AddSingleton<IEventPayloadValidator, BrokenValidator>());

        using var response = await service.PostAsync("/events", """{"event_type": "security.buggy", "payload": {}}""");
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
            Assert.That(json.GetProperty("detail").GetString(), Is.Not.Empty);
            SecurityChecks.AssertNothingLeaks(text, "POST /events", BrokenValidator.Secret, "schemas.internal");
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events"), Is.Zero, "nothing was written");
        });
        await service.AssertStillServingAsync();
    }

    /// <summary>A validator with a bug: for one event type it throws, with a connection string in the message.</summary>
    private sealed class BrokenValidator : IEventPayloadValidator
    {
        public const string Secret = "validator-Secret-Token-42";

        public IReadOnlyList<string> Validate(string eventType, string payloadJson) =>
            eventType == "security.buggy"
                ? throw new InvalidOperationException($"Host=schemas.internal;Password={Secret}")
                : [];
    }
}
