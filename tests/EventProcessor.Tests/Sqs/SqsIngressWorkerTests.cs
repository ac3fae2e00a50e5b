using System.Diagnostics;
using System.Text.Json;
using Amazon.SQS;
using Amazon.SQS.Model;
using Dapper;
using EventProcessor.Ingress.Clients;
using EventProcessor.Tests.Host;
using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Sqs;

/// <summary>
/// Door 2 end to end: the service drains a queue on the local SQS server into the table, deletes only what it has
/// committed, and dead-letters what it can never accept.
/// </summary>
[Parallelizable(ParallelScope.All)]
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed class SqsIngressWorkerTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private TestDatabase _db = null!;

    [SetUp]
    public async Task SetUp()
    {
        await SqsServer.StartAsync();
        _db = await TestDatabase.CreateAsync();
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_db is not null)
        {
            await _db.DisposeAsync();
        }
    }

    [Test]
    public async Task A_message_becomes_a_handled_event_and_leaves_the_queue()
    {
        var queue = await SqsServer.CreateQueueAsync("ingress-handled");
        await SqsServer.Client.SendMessageAsync(queue, AwsFixtures.Read("websocket-connect-event.json"));

        await using var service = await StartServiceAsync(queue, enablePolling: true);
        await WaitUntilAsync(() => ScalarAsync<bool>("SELECT coalesce(bool_and(processed), false) FROM events"), "the event is written and processed");
        await WaitUntilQueueIsEmptyAsync(queue);

        Assert.Multiple(async () =>
        {
            Assert.That(await ScalarAsync<string>("SELECT event_type FROM events"), Is.EqualTo("websocket.connect"));
            Assert.That(await ScalarAsync<string>("SELECT metadata->>'ingress' FROM events"), Is.EqualTo("sqs"));
            Assert.That(await ScalarAsync<string>("SELECT metadata->>'sqs_queue' FROM events"), Does.StartWith("arn:aws:sqs:"));
            Assert.That(await ScalarAsync<string>("SELECT created_by FROM events"), Is.EqualTo("ingress:sqs"));
            Assert.That(await ScalarAsync<string>("SELECT source_ip FROM websocket_connections WHERE connection_id = 'QyUg1czHCYcCHXw='"), Is.EqualTo("52.95.4.0"), "the shipped handler ran");
        });
    }

    [Test]
    public async Task Bad_messages_are_dead_lettered_with_their_reason_and_leave_the_queue()
    {
        var queue = await SqsServer.CreateQueueAsync("ingress-bad");
        await using (var setup = await StartServiceAsync(queue: null))
        {
            await setup.Services.GetRequiredService<ClientStore>().AddAsync("client-001", null, ["integration"]);
        }

        await SqsServer.Client.SendMessageAsync(queue, "this is not JSON");
        await SqsServer.Client.SendMessageAsync(queue, """{"event_type": "user.created", "payload": {"email": 42}}""");
        await SqsServer.Client.SendMessageAsync(new SendMessageRequest
        {
            QueueUrl = queue,
            MessageBody = """{"event_type": "transaction", "payload": {"amount": 1}}""",
            MessageAttributes = new() { ["client_id"] = new MessageAttributeValue { DataType = "String", StringValue = "client-001" } },
        });
        await SqsServer.Client.SendMessageAsync(new SendMessageRequest
        {
            QueueUrl = queue,
            MessageBody = """{"event_type": "integration", "payload": {}}""",
            MessageAttributes = new() { ["client_id"] = new MessageAttributeValue { DataType = "String", StringValue = "nobody" } },
        });
        await SqsServer.Client.SendMessageAsync(queue, """{"event_type": "fine.event", "payload": {"ok": true}}""");

        await using var service = await StartServiceAsync(queue);
        await WaitUntilAsync(async () => await ScalarAsync<long>("SELECT count(*) FROM event_dead_letters") == 4, "four dead letters");
        await WaitUntilQueueIsEmptyAsync(queue);
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var reasons = (await connection.QueryAsync<string>("SELECT error_message FROM event_dead_letters")).ToArray();
        var body = await connection.QuerySingleAsync<string>(
            "SELECT payload->>'body' FROM event_dead_letters WHERE error_message LIKE '%not JSON%'");

        Assert.Multiple(async () =>
        {
            Assert.That(reasons, Has.Some.StartsWith("The message body is not JSON"));
            Assert.That(reasons, Has.Some.StartsWith("The payload does not match its event type's schema: user.created: "));
            Assert.That(reasons, Has.Some.EqualTo("Client 'client-001' may not send events of type 'transaction'; it may send: integration."));
            Assert.That(reasons, Has.Some.EqualTo("Client 'nobody' is not registered."));
            Assert.That(body, Is.EqualTo("this is not JSON"), "the dead letter keeps what arrived");
            Assert.That(await ScalarAsync<string>("SELECT string_agg(event_type, ',') FROM events"), Is.EqualTo("fine.event"), "the good message in the same receive still goes through");
        });
    }

    [Test]
    public async Task A_redelivered_or_resent_event_is_written_once_and_counted_as_a_duplicate()
    {
        var queue = await SqsServer.CreateQueueAsync("ingress-dup");
        const string Envelope = """{"id": "invoice-77", "event_type": "invoice.issued", "payload": {"n": 77}}""";
        await SqsServer.Client.SendMessageAsync(queue, Envelope);
        await SqsServer.Client.SendMessageAsync(queue, Envelope);

        await using var service = await StartServiceAsync(queue);
        await WaitUntilQueueIsEmptyAsync(queue);
        var stats = service.Services.GetRequiredService<EventProcessor.Ingress.Writing.IngressStats>();
        await WaitUntilAsync(() => Task.FromResult(stats.Written + stats.Duplicates == 2), "both deliveries counted");

        Assert.Multiple(async () =>
        {
            Assert.That(await ScalarAsync<long>("SELECT count(*) FROM events"), Is.EqualTo(1));
            Assert.That(stats.Duplicates, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task A_fifo_queue_keeps_the_order_of_a_message_group_and_a_clients_tenant()
    {
        var queue = await SqsServer.CreateQueueAsync("ingress-fifo", fifo: true);
        await using (var setup = await StartServiceAsync(queue: null))
        {
            await setup.Services.GetRequiredService<ClientStore>().AddAsync("client-002", null, ["account.*"]);
        }

        for (var i = 0; i < 15; i++)
        {
            await SqsServer.Client.SendMessageAsync(new SendMessageRequest
            {
                QueueUrl = queue,
                MessageBody = JsonSerializer.Serialize(new { event_type = "account.changed", payload = new { seq = i }, aggregate_id = "account-1" }),
                MessageGroupId = "account-1",
                MessageDeduplicationId = $"seq-{i}",
                MessageAttributes = new() { ["client_id"] = new MessageAttributeValue { DataType = "String", StringValue = "client-002" } },
            });
        }

        await using var service = await StartServiceAsync(queue);
        await WaitUntilAsync(async () => await ScalarAsync<long>("SELECT count(*) FROM events") == 15, "fifteen rows");
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var sequence = (await connection.QueryAsync<int>("SELECT (payload->>'seq')::int FROM events ORDER BY created_at, id")).ToArray();

        Assert.Multiple(async () =>
        {
            Assert.That(sequence, Is.EqualTo(Enumerable.Range(0, 15).ToArray()), "FIFO order is the claim order");
            Assert.That(await ScalarAsync<string>("SELECT string_agg(DISTINCT tenant_id, ',') FROM events"), Is.EqualTo("client-002"));
        });
    }

    [Test]
    public async Task Nothing_is_lost_when_the_service_stops_mid_receive()
    {
        const int Count = 60;
        var queue = await SqsServer.CreateQueueAsync("ingress-stop", visibilityTimeoutSeconds: 2);
        for (var i = 0; i < Count; i += 10)
        {
            await SqsServer.Client.SendMessageBatchAsync(queue, Enumerable.Range(i, 10)
                .Select(n => new SendMessageBatchRequestEntry($"m{n}", JsonSerializer.Serialize(new { id = $"msg-{n}", event_type = "stop.test", payload = new { n } })))
                .ToList());
        }

        // Stop while the first receives are in flight, more than once, then let a last instance finish.
        for (var round = 0; round < 3; round++)
        {
            await using var interrupted = await StartServiceAsync(queue);
            await Task.Delay(TimeSpan.FromMilliseconds(150 + (100 * round)));
        }

        await using var service = await StartServiceAsync(queue);
        await WaitUntilAsync(async () => await ScalarAsync<long>("SELECT count(*) FROM events") == Count, $"{Count} rows");
        await WaitUntilQueueIsEmptyAsync(queue);
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var numbers = (await connection.QueryAsync<int>("SELECT (payload->>'n')::int FROM events ORDER BY 1")).ToArray();

        Assert.Multiple(async () =>
        {
            Assert.That(numbers, Is.EqualTo(Enumerable.Range(0, Count).ToArray()), "every message exactly once in the table");
            Assert.That(await ScalarAsync<long>("SELECT count(*) FROM event_dead_letters"), Is.Zero);
        });
    }

    private Task<ServiceAppFixture> StartServiceAsync(string? queue, bool enablePolling = false) =>
        ServiceAppFixture.StartAsync(
            _db,
            enablePolling,
            settings: queue is null
                ? []
                : [new("Sqs:Queues:0:Url", queue), new("Sqs:WaitTimeSeconds", "1")],
            services: services => services.AddSingleton<IAmazonSQS>(SqsServer.CreateClient()));

    private async Task<T> ScalarAsync<T>(string sql)
    {
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        return (await connection.ExecuteScalarAsync<T>(sql))!;
    }

    private static async Task WaitUntilQueueIsEmptyAsync(string queue) =>
        await WaitUntilAsync(
            async () => await SqsServer.CountMessagesAsync(queue) is { Visible: 0, NotVisible: 0, Delayed: 0 },
            "the queue is empty");

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var stopwatch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (stopwatch.Elapsed > Patience)
            {
                Assert.Fail($"Timed out after {Patience.TotalSeconds} s waiting until {what}.");
            }

            await Task.Delay(50);
        }
    }
}
