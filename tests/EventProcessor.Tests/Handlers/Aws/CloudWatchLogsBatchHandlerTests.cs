using System.Text.Json;
using Dapper;
using static EventProcessor.Tests.Handlers.Aws.AwsHandlersHost;

namespace EventProcessor.Tests.Handlers.Aws;

/// <summary><c>aws.logs.batch</c> into <c>log_entries</c>: every log event once, however often its batch is handled.</summary>
public sealed class CloudWatchLogsBatchHandlerTests
{
    private const string EventType = "aws.logs.batch";
    private const string LogGroup = "/aws/ecs/jobs";
    private const string LogStream = "ecs/app/5f0c4c6e2b9a4d1c8e7f";

    private static readonly LogLine First = new("37270560868512452183286530658219183736612435458440790016", 1432826855000, "starting job 17");
    private static readonly LogLine Second = new("37270560868512452183286530658219183736612435458440790017", 1432826855123, "fetched 3 rows");
    private static readonly LogLine Third = new("37270560868512452183286530658219183736612435458440790018", 1432826856999, "{\"level\":\"info\",\"msg\":\"done\"}");

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
    public async Task EachLogEventOfTheBatchBecomesOneEntryWithItsTimeAndMessage()
    {
        await _aws.HandleAsync(EventType, Batch(LogStream, First, Second, Third));

        Assert.That(await EntriesAsync(), Is.EqualTo(new[]
        {
            new Entry(LogGroup, LogStream, First.Id, Utc(First.Timestamp), First.Message),
            new Entry(LogGroup, LogStream, Second.Id, Utc(Second.Timestamp), Second.Message),
            new Entry(LogGroup, LogStream, Third.Id, Utc(Third.Timestamp), Third.Message),
        }));
    }

    [Test]
    public async Task HandlingTheSameBatchAgainAddsNothing()
    {
        var id = await _aws.HandleAsync(EventType, Batch(LogStream, First, Second, Third));
        var before = await EntriesAsync();
        Assert.That(before, Has.Count.EqualTo(3));

        await _aws.ReplayAsync(id);

        Assert.Multiple(async () =>
        {
            Assert.That((await _aws.Db.GetEventAsync(id)).Metadata, Does.Contain("\"replay_count\": 1"), "the batch was handled a second time");
            Assert.That(await EntriesAsync(), Is.EqualTo(before));
        });
    }

    [Test]
    public async Task ABatchOverlappingAnEarlierOneAddsOnlyItsNewLogEvents()
    {
        await _aws.HandleAsync(EventType, Batch(LogStream, First, Second));
        await _aws.HandleAsync(EventType, Batch(LogStream, Second, Third));

        Assert.That((await EntriesAsync()).Select(e => e.EventId), Is.EqualTo(new[] { First.Id, Second.Id, Third.Id }));
    }

    [Test]
    public async Task TheSameLogEventIdInAnotherStreamIsAnotherEntry()
    {
        await _aws.HandleAsync(EventType, Batch(LogStream, First));
        await _aws.HandleAsync(EventType, Batch("ecs/app/other-task", First));

        Assert.That((await EntriesAsync()).Select(e => e.LogStream), Is.EquivalentTo(new[] { LogStream, "ecs/app/other-task" }));
    }

    [Test]
    public async Task AControlMessageStoresNothing()
    {
        // What CloudWatch sends when a subscription filter is created (shape from AWS's documentation).
        await _aws.HandleAsync(EventType, JsonSerializer.Serialize(new
        {
            messageType = "CONTROL_MESSAGE",
            owner = "CloudwatchLogs",
            logGroup = "",
            logStream = "",
            subscriptionFilters = Array.Empty<string>(),
            logEvents = new[]
            {
                new { id = "", timestamp = 1432826855000, message = "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream." },
            },
        }));

        Assert.That(await EntriesAsync(), Is.Empty);
    }

    [Test]
    public async Task ALogEventWithoutAnIdIsDeadLetteredAndNoneOfItsBatchIsStored()
    {
        var batch = JsonSerializer.Serialize(new
        {
            messageType = "DATA_MESSAGE",
            logGroup = LogGroup,
            logStream = LogStream,
            logEvents = new object[]
            {
                new { id = First.Id, timestamp = First.Timestamp, message = First.Message },
                new { timestamp = Second.Timestamp, message = Second.Message },
            },
        });
        var id = await _aws.InsertAndWaitAsync(EventType, batch);

        Assert.Multiple(async () =>
        {
            Assert.That((await _aws.Db.GetEventAsync(id)).LastError, Does.Contain("logEvents[1] has no id"));
            Assert.That(await EntriesAsync(), Is.Empty);
        });
    }

    private static string Batch(string logStream, params LogLine[] lines) => JsonSerializer.Serialize(new
    {
        messageType = "DATA_MESSAGE",
        owner = "123456789012",
        logGroup = LogGroup,
        logStream,
        subscriptionFilters = new[] { "to-event-processor" },
        logEvents = lines.Select(l => new { id = l.Id, timestamp = l.Timestamp, message = l.Message }),
    });

    private async Task<List<Entry>> EntriesAsync()
    {
        await using var connection = await _aws.Db.DataSource.OpenConnectionAsync();
        return [.. await connection.QueryAsync<Entry>(
            """
            SELECT log_group AS LogGroup, log_stream AS LogStream, event_id AS EventId, timestamp AS Timestamp, message AS Message
            FROM log_entries ORDER BY log_group, log_stream, timestamp, event_id
            """)];
    }

    private sealed record LogLine(string Id, long Timestamp, string Message);

    private sealed record Entry(string LogGroup, string LogStream, string EventId, DateTime? Timestamp, string? Message);
}
