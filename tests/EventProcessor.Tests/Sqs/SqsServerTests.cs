using System.Diagnostics;
using Amazon.SQS;
using Amazon.SQS.Model;
using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Sqs;

/// <summary>
/// What the product relies on from SQS, checked through AWSSDK.SQS 4 against the endpoint the tests use (fauxqs on
/// 127.0.0.1 unless EVENTPROC_TEST_SQS names another): if one of these fails, tests built on that endpoint prove nothing.
/// </summary>
public sealed class SqsServerTests
{
    private AmazonSQSClient _sqs = null!;

    [OneTimeSetUp]
    public async Task ConnectAsync() => _sqs = await SqsServer.GetClientAsync();

    [Test]
    public async Task SendsReceivesAndDeletesOnAStandardQueue()
    {
        var queue = await SqsServer.CreateQueueAsync("standard");

        var sent = await _sqs.SendMessageAsync(queue, """{"event_type":"order.created"}""");
        var received = (await ReceiveAsync(queue, waitSeconds: 5)).Single();

        Assert.That(received.MessageId, Is.EqualTo(sent.MessageId));
        Assert.That(received.Body, Is.EqualTo("""{"event_type":"order.created"}"""));
        Assert.That(await SqsServer.CountMessagesAsync(queue), Is.EqualTo(new QueueCounts(Visible: 0, NotVisible: 1, Delayed: 0)));

        await _sqs.DeleteMessageAsync(queue, received.ReceiptHandle);

        Assert.That(await SqsServer.CountMessagesAsync(queue), Is.EqualTo(new QueueCounts(0, 0, 0)));
        Assert.That(await ReceiveAsync(queue, waitSeconds: 0), Is.Empty);
    }

    [Test]
    public async Task LongPollOnAnEmptyQueueReturnsNothingAfterTheWait()
    {
        var queue = await SqsServer.CreateQueueAsync("long-poll-empty");

        var clock = Stopwatch.StartNew();
        var messages = await ReceiveAsync(queue, waitSeconds: 2);
        clock.Stop();

        Assert.That(messages, Is.Empty);
        Assert.That(clock.Elapsed, Is.InRange(TimeSpan.FromSeconds(1.9), TimeSpan.FromSeconds(10)));
    }

    [Test]
    public async Task LongPollReturnsAsSoonAsAMessageArrives()
    {
        var queue = await SqsServer.CreateQueueAsync("long-poll-early");

        var clock = Stopwatch.StartNew();
        var poll = ReceiveAsync(queue, waitSeconds: 10);
        // The subject is a poll already waiting when the message arrives, so give the request time to reach the server.
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        Assert.That(poll.IsCompleted, Is.False, "the long poll returned before any message was sent");
        await _sqs.SendMessageAsync(queue, "late");
        var messages = await poll;
        clock.Stop();

        Assert.That(messages.Select(m => m.Body), Is.EqualTo(new[] { "late" }));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "the poll waited out its 10 s instead of returning with the message");
    }

    [Test]
    public async Task StringMessageAttributesRoundTrip()
    {
        var queue = await SqsServer.CreateQueueAsync("attributes");

        var sent = await _sqs.SendMessageAsync(new SendMessageRequest
        {
            QueueUrl = queue,
            MessageBody = "{}",
            MessageAttributes = new Dictionary<string, MessageAttributeValue>
            {
                ["client_id"] = new() { DataType = "String", StringValue = "client-42" },
            },
        });
        // The SDK checks MD5OfMessageAttributes against what it received and throws on a mismatch.
        var received = (await ReceiveAsync(queue, waitSeconds: 5, messageAttributeNames: ["client_id"])).Single();

        Assert.That(received.MessageAttributes, Is.Not.Null.And.ContainKey("client_id"));
        var clientId = received.MessageAttributes["client_id"];
        Assert.That(clientId.DataType, Is.EqualTo("String"));
        Assert.That(clientId.StringValue, Is.EqualTo("client-42"));
        Assert.That(received.MD5OfMessageAttributes, Is.EqualTo(sent.MD5OfMessageAttributes));
    }

    [Test]
    public async Task FifoQueueDeliversOneMessageForTwoSendsWithTheSameDeduplicationId()
    {
        var queue = await SqsServer.CreateQueueAsync("dedup", fifo: true);

        var first = await SendFifoAsync(queue, "first", group: "tenant-1", deduplicationId: "event-1");
        // Accepted, not delivered: deduplication goes by the id alone, whatever the body.
        await SendFifoAsync(queue, "second", group: "tenant-1", deduplicationId: "event-1");
        var messages = await SqsServer.ReceiveAllAsync(queue);

        Assert.That(messages.Select(m => m.Body), Is.EqualTo(new[] { "first" }));
        Assert.That(messages[0].MessageId, Is.EqualTo(first.MessageId));
    }

    [Test]
    public async Task FifoQueueKeepsTheOrderWithinEachGroup()
    {
        var queue = await SqsServer.CreateQueueAsync("order", fifo: true);

        for (var i = 0; i < 5; i++)
        {
            await SendFifoAsync(queue, $"a{i}", group: "a", deduplicationId: $"a-{i}");
            await SendFifoAsync(queue, $"b{i}", group: "b", deduplicationId: $"b-{i}");
        }

        var messages = await SqsServer.ReceiveAllAsync(queue);

        Assert.That(messages, Has.Count.EqualTo(10));
        string[] BodiesOf(string group) =>
            [.. messages.Where(m => m.Attributes[MessageSystemAttributeName.MessageGroupId] == group).Select(m => m.Body)];
        Assert.That(BodiesOf("a"), Is.EqualTo(new[] { "a0", "a1", "a2", "a3", "a4" }));
        Assert.That(BodiesOf("b"), Is.EqualTo(new[] { "b0", "b1", "b2", "b3", "b4" }));
        var sequence = messages.Where(m => m.Attributes[MessageSystemAttributeName.MessageGroupId] == "a")
            .Select(m => decimal.Parse(m.Attributes[MessageSystemAttributeName.SequenceNumber], System.Globalization.CultureInfo.InvariantCulture));
        Assert.That(sequence, Is.Ordered.Ascending);
    }

    [Test]
    public async Task FifoQueueHoldsBackAGroupWhileOneOfItsMessagesIsInFlight()
    {
        var queue = await SqsServer.CreateQueueAsync("group-lock", fifo: true);
        await SendFifoAsync(queue, "a0", group: "a", deduplicationId: "a-0");
        await SendFifoAsync(queue, "a1", group: "a", deduplicationId: "a-1");

        var first = (await ReceiveAsync(queue, waitSeconds: 0, maxMessages: 1)).Single();
        var whileInFlight = await ReceiveAsync(queue, waitSeconds: 0);
        await _sqs.DeleteMessageAsync(queue, first.ReceiptHandle);
        var afterDelete = await ReceiveAsync(queue, waitSeconds: 0);

        Assert.That(first.Body, Is.EqualTo("a0"));
        Assert.That(whileInFlight, Is.Empty);
        Assert.That(afterDelete.Select(m => m.Body), Is.EqualTo(new[] { "a1" }));
    }

    [Test]
    public async Task AMessageReceivedAndNotDeletedComesBackAfterTheVisibilityTimeout()
    {
        var queue = await SqsServer.CreateQueueAsync("visibility", visibilityTimeoutSeconds: 1);
        await _sqs.SendMessageAsync(queue, "again");

        var first = (await ReceiveAsync(queue, waitSeconds: 5)).Single();
        var clock = Stopwatch.StartNew();
        var whileInvisible = await ReceiveAsync(queue, waitSeconds: 0);
        var second = (await ReceiveAsync(queue, waitSeconds: 10)).Single();
        clock.Stop();

        Assert.That(first.Attributes[MessageSystemAttributeName.ApproximateReceiveCount], Is.EqualTo("1"));
        Assert.That(whileInvisible, Is.Empty);
        Assert.That(second.MessageId, Is.EqualTo(first.MessageId));
        Assert.That(second.ReceiptHandle, Is.Not.EqualTo(first.ReceiptHandle));
        Assert.That(second.Attributes[MessageSystemAttributeName.ApproximateReceiveCount], Is.EqualTo("2"));
        Assert.That(clock.Elapsed, Is.InRange(TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(8)));
    }

    [Test]
    public async Task AMessageReceivedMoreThanMaxReceiveCountTimesMovesToTheDeadLetterQueue()
    {
        var deadLetters = await SqsServer.CreateQueueAsync("dlq");
        var queue = await SqsServer.CreateQueueAsync(
            "redrive",
            deadLetterQueueArn: await SqsServer.GetQueueArnAsync(deadLetters),
            maxReceiveCount: 2,
            visibilityTimeoutSeconds: 1);
        var sent = await _sqs.SendMessageAsync(new SendMessageRequest
        {
            QueueUrl = queue,
            MessageBody = "poison",
            MessageAttributes = new Dictionary<string, MessageAttributeValue>
            {
                ["client_id"] = new() { DataType = "String", StringValue = "client-7" },
            },
        });

        // Received twice and never deleted (a consumer that keeps failing); the third receive finds it gone.
        for (var receive = 1; receive <= 2; receive++)
        {
            var message = (await ReceiveAsync(queue, waitSeconds: 10)).Single();
            Assert.That(message.Attributes[MessageSystemAttributeName.ApproximateReceiveCount], Is.EqualTo($"{receive}"));
        }

        var third = await ReceiveAsync(queue, waitSeconds: 3);
        var deadLettered = (await ReceiveAsync(deadLetters, waitSeconds: 5, messageAttributeNames: ["All"])).Single();

        Assert.That(third, Is.Empty);
        Assert.That(deadLettered.MessageId, Is.EqualTo(sent.MessageId));
        Assert.That(deadLettered.Body, Is.EqualTo("poison"));
        Assert.That(deadLettered.MessageAttributes["client_id"].StringValue, Is.EqualTo("client-7"));
        Assert.That(await SqsServer.CountMessagesAsync(queue), Is.EqualTo(new QueueCounts(0, 0, 0)));
        TestContext.Out.WriteLine(
            $"ApproximateReceiveCount in the dead-letter queue: {deadLettered.Attributes[MessageSystemAttributeName.ApproximateReceiveCount]}");
    }

    [Test]
    public async Task DeleteMessageBatchDeletesEveryEntry()
    {
        var queue = await SqsServer.CreateQueueAsync("delete-batch");
        var sent = await _sqs.SendMessageBatchAsync(new SendMessageBatchRequest
        {
            QueueUrl = queue,
            Entries = [.. Enumerable.Range(0, 5).Select(i => new SendMessageBatchRequestEntry($"m{i}", $"body {i}"))],
        });
        Assert.That(sent.Failed, Is.Null.Or.Empty);
        var received = await SqsServer.ReceiveAllAsync(queue, delete: false);
        Assert.That(received, Has.Count.EqualTo(5));

        var deleted = await _sqs.DeleteMessageBatchAsync(new DeleteMessageBatchRequest
        {
            QueueUrl = queue,
            Entries = [.. received.Select((m, i) => new DeleteMessageBatchRequestEntry($"d{i}", m.ReceiptHandle))],
        });

        Assert.That(deleted.Successful.Select(e => e.Id), Is.EquivalentTo(new[] { "d0", "d1", "d2", "d3", "d4" }));
        Assert.That(deleted.Failed, Is.Null.Or.Empty);
        Assert.That(await SqsServer.CountMessagesAsync(queue), Is.EqualTo(new QueueCounts(0, 0, 0)));
    }

    private async Task<List<Message>> ReceiveAsync(
        string queue,
        int waitSeconds,
        int maxMessages = 10,
        List<string>? messageAttributeNames = null)
    {
        var response = await _sqs.ReceiveMessageAsync(new ReceiveMessageRequest
        {
            QueueUrl = queue,
            WaitTimeSeconds = waitSeconds,
            MaxNumberOfMessages = maxMessages,
            MessageSystemAttributeNames = ["All"],
            MessageAttributeNames = messageAttributeNames,
        });
        // AWSSDK 4 leaves an absent list null.
        return response.Messages ?? [];
    }

    private Task<SendMessageResponse> SendFifoAsync(string queue, string body, string group, string deduplicationId) =>
        _sqs.SendMessageAsync(new SendMessageRequest
        {
            QueueUrl = queue,
            MessageBody = body,
            MessageGroupId = group,
            MessageDeduplicationId = deduplicationId,
        });
}
