using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using EventProcessor.Handlers.Schemas;
using EventProcessor.Tests.Service;
using EventProcessor.Tests.Support;
using Npgsql;
using NUnit.Framework.Interfaces;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// Rows that other programs write straight into <c>events</c>, past both doors, with data no handler can use: the
/// real service (<c>dotnet EventProcessor.Host.dll</c>, shipped handlers and schemas) gives each one a final fate
/// with a reason, within <c>MAX_RETRIES</c> attempts, and goes on with the good events inserted after them.
/// </summary>
[Category("Faults")]
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed class BadRowTests
{
    private const int MaxRetries = 3;
    private const int FiveMegabytes = 5_000_000;
    private const int Depth = 10_000;

    private TestDatabase _db = null!;
    private WebhookReceiver _receiver = null!;
    private ServiceProcess? _service;

    private enum Fate
    {
        Completed,
        DeadLettered,
        Skipped,
    }

    [SetUp]
    public async Task SetUp()
    {
        _db = await TestDatabase.CreateAsync();
        _receiver = await WebhookReceiver.StartAsync();
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_service is not null)
        {
            if (TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed)
            {
                await TestContext.Out.WriteLineAsync(_service.Tail(100));
            }

            await _service.DisposeAsync();
        }

        if (_receiver is not null)
        {
            await _receiver.DisposeAsync();
        }

        if (_db is not null)
        {
            await _db.DisposeAsync();
        }
    }

    [Test]
    public async Task EachBadRowEndsWithAReasonWithinMaxRetriesAndTheServiceGoesOnWithGoodEvents()
    {
        var unknownType = "unknown." + new string('x', 92);
        Assert.That(unknownType, Has.Length.EqualTo(100), "the longest event_type the column takes");
        var userCreated = JsonNode.Parse(ShippedSchemas.Samples["user.created"])!.AsObject();
        var badEmail = userCreated.DeepClone().AsObject();
        badEmail["email"] = "not an e-mail address";
        var deepUser = userCreated.DeepClone().AsObject();
        deepUser.Remove("marketing_opt_in");
        var deepUserJson = deepUser.ToJsonString()[..^1] + $",\"marketing_opt_in\": {Nested(Depth)}}}";

        BadRow[] bad =
        [
            new("ECS detail is a string", "aws.ecs.ecs_task_state_change", """{"source": "aws.ecs", "detail": "a string"}""",
                Fate.DeadLettered, 1, "Payload cannot be read as EcsTaskStateChange"),
            new("CloudWatch logEvents is 5", "aws.logs.batch",
                """{"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s", "logEvents": 5}""",
                Fate.DeadLettered, 1, "Payload cannot be read as CloudWatchLogsBatch"),
            new("WebSocket requestContext is a number", "websocket.connect", """{"requestContext": 5}""",
                Fate.DeadLettered, 1, "Payload cannot be read as"),
            new("payload is JSON null", "aws.logs.batch", "null", Fate.DeadLettered, 1, "Payload is null"),
            new("ECS detail.version is 1e300", "aws.ecs.ecs_task_state_change",
                """{"detail": {"taskArn": "arn:aws:ecs:us-east-1:1:task/c/huge-version", "version": 1e300}}""",
                Fate.DeadLettered, 1, "Payload cannot be read as EcsTaskStateChange"),
            new($"ECS event nested {Depth} deep", "aws.ecs.ecs_task_state_change",
                """{"detail": {"taskArn": "arn:aws:ecs:us-east-1:1:task/c/deep", "overrides": """ + Nested(Depth) + "}}",
                Fate.DeadLettered, 1, "depth"),
            new("ECS event without detail.taskArn", "aws.ecs.ecs_task_state_change", """{"detail": {"lastStatus": "STOPPED"}}""",
                Fate.DeadLettered, MaxRetries, "no detail.taskArn"),
            new("ECS taskArn of 5 MB (random, past the primary key's limit)", "aws.ecs.ecs_task_state_change",
                JsonSerializer.Serialize(new { detail = new { taskArn = RandomText(FiveMegabytes) } }),
                Fate.DeadLettered, MaxRetries, "EcsTaskStateChangeHandler failed: PostgresException"),
            new("ECS stoppedReason of 5 MB", "aws.ecs.ecs_task_state_change",
                JsonSerializer.Serialize(new { detail = new { taskArn = "arn:aws:ecs:us-east-1:1:task/c/long-reason", stoppedReason = RandomText(FiveMegabytes) } }),
                Fate.Completed, 1, null),
            new("event_type of 100 characters no handler knows", unknownType, "{}",
                Fate.Skipped, 1, $"No handler is registered for event type '{unknownType}'"),
            new("user.created with a bad email", "user.created", badEmail.ToJsonString(), Fate.DeadLettered, 1, "$.email"),
            new($"user.created nested {Depth} deep", "user.created", deepUserJson, Fate.DeadLettered, 1, "depth"),
        ];

        var badIds = new List<Guid>();
        foreach (var row in bad)
        {
            badIds.Add(await InsertAsync(row.EventType, row.Payload));
        }

        _service = await ServiceProcess.StartAsync(Settings());

        // Good events, inserted after the bad ones, while those are still failing and retrying.
        var goodEcs = await InsertAsync("aws.ecs.ecs_task_state_change", """
            {"time": "2024-11-07T17:27:00Z",
             "detail": {"taskArn": "arn:aws:ecs:us-east-1:1:task/c/good", "lastStatus": "STOPPED", "containers": [{"exitCode": 0}]}}
            """);
        var goodLogs = await InsertAsync("aws.logs.batch", """
            {"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s",
             "logEvents": [{"id": "good-1", "timestamp": 1440442987000, "message": "fine"}]}
            """);
        var goodUser = await InsertAsync("user.created", userCreated.ToJsonString());
        var good = new[] { goodEcs, goodLogs, goodUser };

        await _service.WaitUntilAsync(
            async () => await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE processed") == bad.Length + good.Length,
            "every row has its fate",
            TimeSpan.FromSeconds(90));

        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var outcomes = new List<(BadRow Row, EventOutcome Outcome)>();
        for (var i = 0; i < bad.Length; i++)
        {
            outcomes.Add((bad[i], await ReadOutcomeAsync(connection, badIds[i])));
        }

        var goodOutcomes = new List<EventOutcome>();
        foreach (var id in good)
        {
            goodOutcomes.Add(await ReadOutcomeAsync(connection, id));
        }

        using var health = await _service.Http.GetAsync(new Uri("health", UriKind.Relative));
        using var healthBody = JsonDocument.Parse(await health.Content.ReadAsStringAsync());
        var stats = healthBody.RootElement.GetProperty("stats");
        var execution = await connection.QuerySingleOrDefaultAsync<string>(
            "SELECT last_status FROM executions WHERE task_arn = 'arn:aws:ecs:us-east-1:1:task/c/good'");
        var longReason = await connection.QuerySingleOrDefaultAsync<int?>(
            "SELECT length(stopped_reason) FROM executions WHERE task_arn = 'arn:aws:ecs:us-east-1:1:task/c/long-reason'");
        var logEntry = await connection.QuerySingleOrDefaultAsync<string>(
            "SELECT message FROM log_entries WHERE event_id = 'good-1'");

        foreach (var (row, outcome) in outcomes)
        {
            await TestContext.Out.WriteLineAsync(
                $"{row.Name}: {outcome.Fate}, attempts {outcome.Attempts}, reason: {Shorten(outcome.Reason)}");
        }

        await TestContext.Out.WriteLineAsync(
            $"good events after them: {string.Join(", ", goodOutcomes.Select(o => $"{o.Fate}/{o.Attempts}"))}; /health {(int)health.StatusCode}, " +
            $"stats {stats.GetRawText()}");

        Assert.Multiple(() =>
        {
            foreach (var (row, outcome) in outcomes)
            {
                Assert.That(outcome.Fate, Is.EqualTo(row.Fate), row.Name);
                Assert.That(outcome.Attempts, Is.EqualTo(row.Attempts), $"{row.Name}: attempts");
                Assert.That(outcome.Attempts, Is.LessThanOrEqualTo(MaxRetries), $"{row.Name}: never retried past MAX_RETRIES");
                if (row.Reason is not null)
                {
                    Assert.That(outcome.Reason, Does.Contain(row.Reason), $"{row.Name}: reason");
                }

                if (row.Fate == Fate.DeadLettered)
                {
                    Assert.That(outcome.DeadLetters, Is.EqualTo(1), $"{row.Name}: one row in event_dead_letters");
                    Assert.That(outcome.DeadLetterReason, Is.EqualTo(outcome.Reason), $"{row.Name}: the same reason there");
                }
            }

            Assert.That(goodOutcomes.Select(o => (o.Fate, o.Attempts)), Has.All.EqualTo((Fate.Completed, 1)), "good events handled at once");
            Assert.That(execution, Is.EqualTo("STOPPED"));
            Assert.That(logEntry, Is.EqualTo("fine"));
            Assert.That(longReason, Is.EqualTo(FiveMegabytes), "a 5 MB value the handler can store is stored");
            Assert.That(_receiver.For(goodUser), Has.Count.EqualTo(1), "the valid user.created reached its webhook");
            Assert.That(badIds.SelectMany(_receiver.For), Is.Empty, "no bad row reached a webhook");
            Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(stats.GetProperty("deadLetterCount").GetInt64(), Is.EqualTo(bad.Count(r => r.Fate == Fate.DeadLettered)));
            Assert.That(stats.GetProperty("skippedCount").GetInt64(), Is.EqualTo(1));
            Assert.That(_service.HasExited, Is.False, "the service is still running");
            Assert.That(_service.Output, Does.Not.Contain("Poll cycle failed"), "the poll loop never failed");
        });
    }

    [Test]
    public async Task TheTableRefusesANullEventTypeANulCharacterAndAnOverlongEventType()
    {
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var nullType = await RefusalAsync(connection, null, "{}");
        var escapedNul = await RefusalAsync(connection, "test.nul", """{"text": "a\u0000b"}""");
        var rawNul = await RefusalAsync(connection, "test.nul", "{\"text\": \"a\0b\"}");
        var tooLong = await RefusalAsync(connection, new string('x', 101), "{}");

        await TestContext.Out.WriteLineAsync($"null event_type: {nullType?.SqlState} {nullType?.MessageText}");
        await TestContext.Out.WriteLineAsync($"\\u0000 in jsonb: {escapedNul?.SqlState} {escapedNul?.MessageText}");
        await TestContext.Out.WriteLineAsync($"raw NUL byte in the text: {rawNul?.SqlState} {rawNul?.MessageText}");
        await TestContext.Out.WriteLineAsync($"event_type of 101 characters: {tooLong?.SqlState} {tooLong?.MessageText}");
        Assert.Multiple(async () =>
        {
            Assert.That(nullType?.SqlState, Is.EqualTo(PostgresErrorCodes.NotNullViolation));
            Assert.That(nullType?.ColumnName, Is.EqualTo("event_type"));
            Assert.That(escapedNul?.SqlState, Is.EqualTo(PostgresErrorCodes.UntranslatableCharacter));
            Assert.That(rawNul?.SqlState, Is.EqualTo(PostgresErrorCodes.CharacterNotInRepertoire));
            Assert.That(tooLong?.SqlState, Is.EqualTo(PostgresErrorCodes.StringDataRightTruncation));
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events"), Is.Zero, "nothing was written");
        });
    }

    private Dictionary<string, string?> Settings() => new(StringComparer.Ordinal)
    {
        ["DATABASE_URL"] = _db.Url,
        ["POLL_INTERVAL_MS"] = "50",
        ["MAX_RETRIES"] = MaxRetries.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RETRY_BASE_DELAY_MS"] = "50",
        ["RETRY_MAX_DELAY_MS"] = "200",
        ["LEASE_MS"] = "10000",
        ["HANDLER_TIMEOUT_MS"] = "20000",
        ["LOG_LEVEL"] = "warn",
        ["Webhooks__0__Url"] = new Uri(_receiver.BaseUrl, "hooks/users").ToString(),
        ["Webhooks__0__EventTypes__0"] = "user.*",
        ["Webhooks__0__Secret"] = "whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
    };

    private async Task<Guid> InsertAsync(string eventType, string payload)
    {
        var id = Guid.NewGuid();
        await _db.ExecuteAsync(
            "INSERT INTO events (id, event_type, payload) VALUES (@id, @eventType, @payload::jsonb)",
            new { id, eventType, payload });
        return id;
    }

    private static async Task<PostgresException?> RefusalAsync(NpgsqlConnection connection, string? eventType, string payload)
    {
        try
        {
            await connection.ExecuteAsync(
                "INSERT INTO events (id, event_type, payload) VALUES (@id, @eventType, @payload::jsonb)",
                new { id = Guid.NewGuid(), eventType, payload });
            return null;
        }
        catch (PostgresException exception)
        {
            return exception;
        }
    }

    private static async Task<EventOutcome> ReadOutcomeAsync(NpgsqlConnection connection, Guid id)
    {
        var row = await connection.QuerySingleAsync<(bool Dead, bool Skipped, int Attempts, string? LastError, string? SkipReason)>(
            """
            SELECT coalesce((metadata->>'dead_lettered')::boolean, false), coalesce((metadata->>'skipped')::boolean, false),
                   attempts, metadata->>'last_error', metadata->>'skip_reason'
            FROM events WHERE id = @id AND processed
            """,
            new { id });
        var dead = (await connection.QueryAsync<string>(
            "SELECT error_message FROM event_dead_letters WHERE event_id = @id", new { id })).ToList();
        var fate = row.Dead ? Fate.DeadLettered : row.Skipped ? Fate.Skipped : Fate.Completed;
        return new EventOutcome(fate, row.Attempts, row.LastError ?? row.SkipReason, dead.Count, dead.FirstOrDefault());
    }

    private static string Nested(int depth) => new StringBuilder(depth * 2).Append('[', depth).Append(']', depth).ToString();

    // Random letters and digits: nothing for TOAST to compress, so the value keeps its size all the way to an index.
    private static string RandomText(int length) =>
        new(Random.Shared.GetItems("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".AsSpan(), length));

    private static string Shorten(string? text) => text is null ? "—" : text.Length <= 160 ? text : text[..160] + "…";

    private sealed record BadRow(string Name, string EventType, string Payload, Fate Fate, int Attempts, string? Reason);

    private sealed record EventOutcome(Fate Fate, int Attempts, string? Reason, int DeadLetters, string? DeadLetterReason);
}
