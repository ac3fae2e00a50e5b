using System.Diagnostics;
using System.Net;
using Dapper;
using EventProcessor.Ingress;
using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Host;

/// <summary>
/// From the door to the shipped handlers' tables: the service with polling on, fed through <c>POST /process</c>.
/// </summary>
[Parallelizable(ParallelScope.All)]
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed class IngressEndToEndTests
{
    private const string SeedEcsCompletion = """
        {
          "version": "0",
          "id": "12345678-1234-1234-1234-123456789012",
          "detail-type": "ECS Task State Change",
          "source": "aws.ecs",
          "account": "123456789012",
          "time": "2024-11-07T17:27:00Z",
          "region": "us-east-1",
          "resources": [],
          "detail": {
            "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/cluster/test-exec-123",
            "lastStatus": "STOPPED",
            "containers": [
              {
                "name": "runner",
                "exitCode": 0
              }
            ],
            "startedAt": "2024-11-07T17:26:00Z",
            "stoppedAt": "2024-11-07T17:27:00Z",
            "stopCode": "EssentialContainerExited"
          }
        }
        """;

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
    public async Task A_door_that_cannot_get_a_connection_answers_503_within_seconds_and_serves_again_after()
    {
        // The door's pool holds one connection, and the test holds it: the next write waits for the pool.
        await using var service = await ServiceAppFixture.StartAsync($"{_db.Url}?maxpoolsize=1");
        var ingress = service.Services.GetRequiredService<IngressDatabase>();
        const string Body = """{"event_type": "door.waited", "payload": {}}""";
        TimeSpan took;
        await using (await ingress.DataSource.OpenConnectionAsync())
        {
            var started = Stopwatch.GetTimestamp();
            using var refused = await service.PostAsync("/events", Body);
            took = Stopwatch.GetElapsedTime(started);
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), await refused.Content.ReadAsStringAsync());
            Assert.That(refused.Headers.RetryAfter, Is.Not.Null);
        }

        using var accepted = await service.PostAsync("/events", Body);
        Assert.Multiple(() =>
        {
            // The pool's own wait is 15 s (Npgsql's Timeout); a caller hears of the trouble after the door's 5 s.
            Assert.That(took, Is.LessThan(TimeSpan.FromSeconds(10)), "the door does not wait out the pool's 15 s");
            Assert.That(accepted.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), "the door serves again once a connection is free");
        });
    }

    [Test]
    public async Task Every_fixture_posted_twice_brings_the_handler_tables_to_their_state_once()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, enablePolling: true, settings: [new("POLL_INTERVAL_MS", "100")]);
        foreach (var fixture in AwsFixtures.All)
        {
            for (var delivery = 0; delivery < 2; delivery++)
            {
                using var response = await service.PostAsync("/process", await File.ReadAllTextAsync(fixture));
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await response.Content.ReadAsStringAsync());
            }
        }

        await WaitUntilDrainedAsync();
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var execution = await connection.QuerySingleAsync<(string LastStatus, string DesiredStatus, long Version, string ClusterArn, int ExitCode)>(
            "SELECT last_status, desired_status, version, cluster_arn, exit_code FROM executions");
        var logs = (await connection.QueryAsync<(string EventId, string Message)>(
            "SELECT event_id, message FROM log_entries WHERE log_group = 'testLogGroup' AND log_stream = 'testLogStream' ORDER BY timestamp")).ToArray();
        var socket = await connection.QuerySingleAsync<(string SourceIp, string ApiId, string Stage, DateTime ConnectedAt, DateTime? DisconnectedAt)>(
            "SELECT source_ip, api_id, stage, connected_at, disconnected_at FROM websocket_connections WHERE connection_id = 'QyUg1czHCYcCHXw='");
        var fates = (await connection.QueryAsync<string>(
            "SELECT event_type || ':' || CASE WHEN metadata ? 'skipped' THEN 'skipped' WHEN metadata ? 'dead_lettered' THEN 'dead' ELSE 'handled' END FROM events ORDER BY 1")).ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(fates, Is.EqualTo(new[]
            {
                "aws.ecs.ecs_task_state_change:handled", "aws.logs.batch:handled", "aws.sqs.message:skipped", "websocket.connect:handled",
            }), "four rows for eight deliveries");
            Assert.That(execution, Is.EqualTo(("RUNNING", "RUNNING", 4L, "arn:aws:ecs:us-east-1:111122223333:cluster/default", 0)));
            Assert.That(logs, Is.EqualTo(new[] { ("eventId1", "[ERROR] First test message"), ("eventId2", "[ERROR] Second test message") }));
            Assert.That(socket.SourceIp, Is.EqualTo("52.95.4.0"));
            Assert.That(socket.ApiId, Is.EqualTo("lg10ltpf4f"));
            Assert.That(socket.Stage, Is.EqualTo("production"));
            Assert.That(new DateTimeOffset(socket.ConnectedAt, TimeSpan.Zero).ToUnixTimeMilliseconds(), Is.EqualTo(1650301649973));
            Assert.That(socket.DisconnectedAt, Is.Null);
        });
    }

    [Test]
    public async Task The_seeds_curl_example_produces_the_expected_executions_row()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, enablePolling: true, settings: [new("POLL_INTERVAL_MS", "100")]);

        using var response = await service.PostAsync("/process", SeedEcsCompletion);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        await WaitUntilDrainedAsync();
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var row = await connection.QuerySingleAsync<(string TaskArn, string LastStatus, int ExitCode, string StopCode, DateTime StartedAt, DateTime StoppedAt)>(
            "SELECT task_arn, last_status, exit_code, stop_code, started_at, stopped_at FROM executions");

        Assert.That(row, Is.EqualTo((
            "arn:aws:ecs:us-east-1:123456789012:task/cluster/test-exec-123",
            "STOPPED",
            0,
            "EssentialContainerExited",
            new DateTime(2024, 11, 7, 17, 26, 0, DateTimeKind.Utc),
            new DateTime(2024, 11, 7, 17, 27, 0, DateTimeKind.Utc))));
    }

    [Test]
    public async Task An_older_ecs_event_delivered_late_never_overwrites_the_newer_state()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, enablePolling: true, settings: [new("POLL_INTERVAL_MS", "100")]);
        var stopped = EcsEvent(Guid.NewGuid(), version: 5, lastStatus: "STOPPED", exitCode: 3, updatedAt: "2024-11-07T17:27:00Z");
        var running = EcsEvent(Guid.NewGuid(), version: 4, lastStatus: "RUNNING", exitCode: null, updatedAt: "2024-11-07T17:26:00Z");

        foreach (var body in new[] { stopped, running })
        {
            using var response = await service.PostAsync("/process", body);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        }

        await WaitUntilDrainedAsync();
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var row = await connection.QuerySingleAsync<(string LastStatus, long Version, int ExitCode)>("SELECT last_status, version, exit_code FROM executions");
        var handled = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM events WHERE processed AND NOT metadata ? 'dead_lettered'");

        Assert.Multiple(() =>
        {
            Assert.That(handled, Is.EqualTo(2), "both events were handled");
            Assert.That(row, Is.EqualTo(("STOPPED", 5L, 3)), "version 4, handled after version 5, changed nothing");
        });
    }

    private static string EcsEvent(Guid id, int version, string lastStatus, int? exitCode, string updatedAt) =>
        System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["version"] = "0",
            ["id"] = id,
            ["detail-type"] = "ECS Task State Change",
            ["source"] = "aws.ecs",
            ["time"] = updatedAt,
            ["detail"] = new Dictionary<string, object?>
            {
                ["taskArn"] = "arn:aws:ecs:us-east-1:123456789012:task/cluster/late-1",
                ["lastStatus"] = lastStatus,
                ["desiredStatus"] = "STOPPED",
                ["containers"] = new[] { new { name = "runner", exitCode } },
                ["updatedAt"] = updatedAt,
                ["version"] = version,
            },
        });

    private async Task WaitUntilDrainedAsync()
    {
        var stopwatch = Stopwatch.StartNew();
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        while (await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM events WHERE processed = false") > 0)
        {
            if (stopwatch.Elapsed > TimeSpan.FromSeconds(30))
            {
                Assert.Fail("The backlog did not drain within 30 s.");
            }

            await Task.Delay(50);
        }
    }
}
