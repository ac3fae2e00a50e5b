using System.Text.Json.Nodes;
using Dapper;
using static EventProcessor.Tests.Handlers.Aws.AwsHandlersHost;

namespace EventProcessor.Tests.Handlers.Aws;

/// <summary><c>aws.ecs.ecs_task_state_change</c> into <c>executions</c>: what is stored, and which state wins when events arrive out of order.</summary>
public sealed class EcsTaskStateChangeHandlerTests
{
    private const string EventType = "aws.ecs.ecs_task_state_change";
    private const string TaskArn = "arn:aws:ecs:eu-west-1:123456789012:task/jobs/5f0c4c6e2b9a4d1c8e7f";

    private AwsHandlersHost _aws = null!;

    [SetUp]
    public async Task SetUp() => _aws = await StartAsync(o => o.MaxRetries = 1);

    [TearDown]
    public async Task TearDown()
    {
        if (_aws is not null)
        {
            await _aws.DisposeAsync();
        }
    }

    [Test]
    public async Task AwssSampleEventBecomesARowWithEveryFieldItCarries()
    {
        var id = await _aws.HandleAsync(EventType, AwsSamples.EcsTaskStateChange);

        var row = await ExecutionAsync("arn:aws:ecs:us-east-1:111122223333:task/b99d40b3-5176-4f71-9a52-9dbd6f1cebef");
        Assert.That(row, Is.EqualTo(new Execution(
            "arn:aws:ecs:us-east-1:111122223333:task/b99d40b3-5176-4f71-9a52-9dbd6f1cebef",
            "arn:aws:ecs:us-east-1:111122223333:cluster/default",
            "arn:aws:ecs:us-east-1:111122223333:task-definition/xray:2",
            "RUNNING",
            "RUNNING",
            0,
            null,
            null,
            Utc("2016-12-06T16:41:06.8Z"),
            null,
            Utc("2016-12-06T16:41:06.975Z"),
            4,
            id)));
    }

    [Test]
    public async Task TheSeedsMinimalStoppedEventIsStoredWithNullsForWhatItLacksAndItsTimeAsUpdatedAt()
    {
        var id = await _aws.HandleAsync(EventType, AwsSamples.SeedEcsTaskStopped);

        var row = await ExecutionAsync("arn:aws:ecs:us-east-1:123456789012:task/cluster/test-exec-123");
        Assert.That(row, Is.EqualTo(new Execution(
            "arn:aws:ecs:us-east-1:123456789012:task/cluster/test-exec-123",
            null,
            null,
            "STOPPED",
            null,
            0,
            "EssentialContainerExited",
            null,
            Utc("2024-11-07T17:26:00Z"),
            Utc("2024-11-07T17:27:00Z"),
            Utc("2024-11-07T17:27:00Z"),
            null,
            id)));
    }

    [Test]
    public async Task TheEssentialContainersExitCodeIsTheTasksWhereverItIsListed()
    {
        await _aws.HandleAsync(EventType, Stopped(
            version: 3,
            containers: [
                new JsonObject { ["name"] = "log-router", ["exitCode"] = 137, ["essential"] = false },
                new JsonObject { ["name"] = "app", ["exitCode"] = 3, ["essential"] = true },
                new JsonObject { ["name"] = "metrics", ["exitCode"] = 0 },
            ]));

        Assert.That((await ExecutionAsync(TaskArn)).ExitCode, Is.EqualTo(3));
    }

    [Test]
    public async Task WithoutAnEssentialContainerTheFirstContainersExitCodeIsTheTasks()
    {
        await _aws.HandleAsync(EventType, Stopped(
            version: 3,
            containers: [
                new JsonObject { ["name"] = "app", ["exitCode"] = 2 },
                new JsonObject { ["name"] = "sidecar", ["exitCode"] = 0, ["essential"] = false },
            ]));

        Assert.That((await ExecutionAsync(TaskArn)).ExitCode, Is.EqualTo(2));
    }

    [Test]
    public async Task AnOlderVersionHandledAfterANewerOneChangesNothing()
    {
        var newer = await _aws.HandleAsync(EventType, Stopped(version: 5, updatedAt: "2025-03-01T10:05:00Z", exitCode: 1));
        await _aws.HandleAsync(EventType, Running(version: 4, updatedAt: "2025-03-01T10:01:00Z"));

        var row = await ExecutionAsync(TaskArn);
        Assert.Multiple(() =>
        {
            Assert.That(row.LastStatus, Is.EqualTo("STOPPED"));
            Assert.That(row.ExitCode, Is.EqualTo(1));
            Assert.That(row.Version, Is.EqualTo(5));
            Assert.That(row.UpdatedAt, Is.EqualTo(Utc("2025-03-01T10:05:00Z")));
            Assert.That(row.LastEventId, Is.EqualTo(newer));
        });
    }

    [Test]
    public async Task ANewerVersionReplacesTheStoredState()
    {
        await _aws.HandleAsync(EventType, Running(version: 4, updatedAt: "2025-03-01T10:01:00Z"));
        var newer = await _aws.HandleAsync(EventType, Stopped(version: 5, updatedAt: "2025-03-01T10:05:00Z", exitCode: 1));

        var row = await ExecutionAsync(TaskArn);
        Assert.Multiple(() =>
        {
            Assert.That(row.LastStatus, Is.EqualTo("STOPPED"));
            Assert.That(row.DesiredStatus, Is.EqualTo("STOPPED"));
            Assert.That(row.ExitCode, Is.EqualTo(1));
            Assert.That(row.StopCode, Is.EqualTo("EssentialContainerExited"));
            Assert.That(row.StoppedReason, Is.EqualTo("Essential container in task exited"));
            Assert.That(row.StoppedAt, Is.EqualTo(Utc("2025-03-01T10:05:00Z")));
            Assert.That(row.Version, Is.EqualTo(5));
            Assert.That(row.LastEventId, Is.EqualTo(newer));
        });
    }

    [Test]
    public async Task WhenBothCarryAVersionTheVersionDecidesEvenWhereTheTimesDisagree()
    {
        // Times that contradict the versions, so that only the versions can give these results.
        var v5 = await _aws.HandleAsync(EventType, Running(version: 5, updatedAt: "2025-03-01T10:05:00Z"));
        await _aws.HandleAsync(EventType, Stopped(version: 4, updatedAt: "2025-03-01T10:09:00Z", exitCode: 4));
        Assert.That((await ExecutionAsync(TaskArn)).LastEventId, Is.EqualTo(v5), "version 4 loses to 5 despite its later time");

        var v6 = await _aws.HandleAsync(EventType, Stopped(version: 6, updatedAt: "2025-03-01T10:02:00Z", exitCode: 6));
        var row = await ExecutionAsync(TaskArn);
        Assert.Multiple(() =>
        {
            Assert.That(row.LastEventId, Is.EqualTo(v6), "version 6 beats 5 despite its earlier time");
            Assert.That(row.ExitCode, Is.EqualTo(6));
            Assert.That(row.UpdatedAt, Is.EqualTo(Utc("2025-03-01T10:02:00Z")));
        });
    }

    [Test]
    public async Task WithoutVersionsAnEarlierUpdatedAtChangesNothing()
    {
        var later = await _aws.HandleAsync(EventType, Stopped(version: null, updatedAt: "2025-03-01T10:05:00Z", exitCode: 1));
        await _aws.HandleAsync(EventType, Running(version: null, updatedAt: "2025-03-01T10:01:00Z"));

        var row = await ExecutionAsync(TaskArn);
        Assert.Multiple(() =>
        {
            Assert.That(row.LastStatus, Is.EqualTo("STOPPED"));
            Assert.That(row.UpdatedAt, Is.EqualTo(Utc("2025-03-01T10:05:00Z")));
            Assert.That(row.LastEventId, Is.EqualTo(later));
        });
    }

    [Test]
    public async Task WithoutVersionsAnUpdatedAtAsLateAsTheStoredOneWins()
    {
        await _aws.HandleAsync(EventType, Running(version: null, updatedAt: "2025-03-01T10:01:00Z"));
        var later = await _aws.HandleAsync(EventType, Stopped(version: null, updatedAt: "2025-03-01T10:05:00Z", exitCode: 1));
        Assert.That((await ExecutionAsync(TaskArn)).LastEventId, Is.EqualTo(later), "a later updatedAt wins");

        var sameTime = await _aws.HandleAsync(EventType, Stopped(version: null, updatedAt: "2025-03-01T10:05:00Z", exitCode: 9));
        var row = await ExecutionAsync(TaskArn);
        Assert.Multiple(() =>
        {
            Assert.That(row.LastEventId, Is.EqualTo(sameTime), "an equal updatedAt wins too");
            Assert.That(row.ExitCode, Is.EqualTo(9));
        });
    }

    [Test]
    public async Task WithoutUpdatedAtTheEventBridgeTimeOrdersTheStates()
    {
        var later = await _aws.HandleAsync(EventType, Stopped(version: null, updatedAt: null, time: "2025-03-01T10:05:00Z", exitCode: 1));
        await _aws.HandleAsync(EventType, Running(version: null, updatedAt: null, time: "2025-03-01T10:01:00Z"));

        var row = await ExecutionAsync(TaskArn);
        Assert.Multiple(() =>
        {
            Assert.That(row.LastEventId, Is.EqualTo(later));
            Assert.That(row.UpdatedAt, Is.EqualTo(Utc("2025-03-01T10:05:00Z")));
        });
    }

    [Test]
    public async Task WhenOnlyOneSideCarriesAVersionUpdatedAtDecides()
    {
        var versioned = await _aws.HandleAsync(EventType, Stopped(version: 5, updatedAt: "2025-03-01T10:05:00Z", exitCode: 1));
        await _aws.HandleAsync(EventType, Running(version: null, updatedAt: "2025-03-01T10:01:00Z"));
        Assert.That((await ExecutionAsync(TaskArn)).LastEventId, Is.EqualTo(versioned), "the unversioned event is older");

        var unversioned = await _aws.HandleAsync(EventType, Stopped(version: null, updatedAt: "2025-03-01T10:07:00Z", exitCode: 2));
        Assert.That((await ExecutionAsync(TaskArn)).LastEventId, Is.EqualTo(unversioned), "the unversioned event is newer");
    }

    [Test]
    public async Task AFieldTheNewerEventLacksKeepsItsStoredValue()
    {
        await _aws.HandleAsync(EventType, Running(version: 4, updatedAt: "2025-03-01T10:01:00Z"));
        var withoutCluster = Stopped(version: 5, updatedAt: "2025-03-01T10:05:00Z", exitCode: 0, cluster: null);
        await _aws.HandleAsync(EventType, withoutCluster);

        var row = await ExecutionAsync(TaskArn);
        Assert.Multiple(() =>
        {
            Assert.That(row.LastStatus, Is.EqualTo("STOPPED"));
            Assert.That(row.ClusterArn, Is.EqualTo("arn:aws:ecs:eu-west-1:123456789012:cluster/jobs"));
            Assert.That(row.StartedAt, Is.EqualTo(Utc("2025-03-01T10:00:30Z")));
        });
    }

    [Test]
    public async Task AnEventWithoutATaskArnIsDeadLetteredWithTheReasonAndWritesNothing()
    {
        var id = await _aws.InsertAndWaitAsync(
            EventType, """{"version":"0","time":"2025-03-01T10:00:00Z","detail":{"lastStatus":"STOPPED"}}""");

        var row = await _aws.Db.GetEventAsync(id);
        Assert.Multiple(async () =>
        {
            Assert.That(row.DeadLettered, Is.True);
            Assert.That(row.LastError, Does.Contain("MalformedPayloadException").And.Contain("no detail.taskArn"));
            Assert.That(await _aws.Db.ScalarAsync<long>("SELECT count(*) FROM executions"), Is.Zero);
        });
    }

    private static string Running(long? version, string? updatedAt, string time = "2025-03-01T10:01:00Z") =>
        TaskStateChange("RUNNING", "RUNNING", version, updatedAt, time, [new JsonObject { ["name"] = "app" }]);

    private static string Stopped(
        long? version,
        string? updatedAt = "2025-03-01T10:05:00Z",
        string time = "2025-03-01T10:05:00Z",
        int exitCode = 0,
        string? cluster = "arn:aws:ecs:eu-west-1:123456789012:cluster/jobs",
        JsonObject[]? containers = null)
    {
        var json = JsonNode.Parse(TaskStateChange(
            "STOPPED",
            "STOPPED",
            version,
            updatedAt,
            time,
            containers ?? [new JsonObject { ["name"] = "app", ["exitCode"] = exitCode }]))!;
        var detail = json["detail"]!.AsObject();
        detail["stopCode"] = "EssentialContainerExited";
        detail["stoppedReason"] = "Essential container in task exited";
        detail["stoppedAt"] = updatedAt ?? time;
        if (cluster is null)
        {
            detail.Remove("clusterArn");
        }

        return json.ToJsonString();
    }

    // An EventBridge envelope around a task of TaskArn; members given as null are left out, as AWS leaves them out.
    private static string TaskStateChange(
        string lastStatus, string desiredStatus, long? version, string? updatedAt, string time, JsonObject[] containers)
    {
        var detail = new JsonObject
        {
            ["taskArn"] = TaskArn,
            ["clusterArn"] = "arn:aws:ecs:eu-west-1:123456789012:cluster/jobs",
            ["taskDefinitionArn"] = "arn:aws:ecs:eu-west-1:123456789012:task-definition/job:7",
            ["lastStatus"] = lastStatus,
            ["desiredStatus"] = desiredStatus,
            ["startedAt"] = "2025-03-01T10:00:30Z",
            ["containers"] = new JsonArray([.. containers]),
        };
        if (version is not null)
        {
            detail["version"] = version;
        }

        if (updatedAt is not null)
        {
            detail["updatedAt"] = updatedAt;
        }

        return new JsonObject
        {
            ["version"] = "0",
            ["id"] = Guid.NewGuid().ToString(),
            ["detail-type"] = "ECS Task State Change",
            ["source"] = "aws.ecs",
            ["time"] = time,
            ["resources"] = new JsonArray(TaskArn),
            ["detail"] = detail,
        }.ToJsonString();
    }

    private async Task<Execution> ExecutionAsync(string taskArn)
    {
        await using var connection = await _aws.Db.DataSource.OpenConnectionAsync();
        return await connection.QuerySingleAsync<Execution>(
            """
            SELECT task_arn AS TaskArn, cluster_arn AS ClusterArn, task_definition_arn AS TaskDefinitionArn,
                   last_status AS LastStatus, desired_status AS DesiredStatus, exit_code AS ExitCode,
                   stop_code AS StopCode, stopped_reason AS StoppedReason, started_at AS StartedAt,
                   stopped_at AS StoppedAt, updated_at AS UpdatedAt, version AS Version, last_event_id AS LastEventId
            FROM executions WHERE task_arn = @taskArn
            """,
            new { taskArn });
    }

    private sealed record Execution(
        string TaskArn,
        string? ClusterArn,
        string? TaskDefinitionArn,
        string? LastStatus,
        string? DesiredStatus,
        int? ExitCode,
        string? StopCode,
        string? StoppedReason,
        DateTime? StartedAt,
        DateTime? StoppedAt,
        DateTime? UpdatedAt,
        long? Version,
        Guid LastEventId);
}
