using Amazon.SQS;
using Amazon.SQS.Model;
using EventProcessor.Ingress.Classification;
using EventProcessor.Ingress.Writing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EventProcessor.Ingress.Sqs;

/// <summary>
/// Door 2: long-polls each configured queue, writes what it receives as rows, and deletes a message only after its
/// rows (or its dead letter) are committed. A crash between commit and delete means a redelivery, which the row's
/// derived id turns into a counted duplicate: at least once in, exactly once in the table.
/// </summary>
internal sealed class SqsIngressWorker(
    IAmazonSQS sqs,
    SqsIngressOptions options,
    EventClassifier classifier,
    EventIngress ingress,
    IngressWriter writer,
    Action? wake,
    TimeProvider timeProvider,
    ILogger<SqsIngressWorker> logger) : BackgroundService
{
    private const int MaxMessagesPerReceive = 10;
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(30);

    // Once received, a batch is written and deleted even while the service stops: giving up half way is safe
    // (the messages come back), but finishing is kinder to the queue. Bounded so that shutdown still ends.
    private static readonly TimeSpan FinishGrace = TimeSpan.FromSeconds(5);

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(options.Queues.Select(queue => DrainAsync(queue.Url, stoppingToken)));

    private async Task DrainAsync(string queueUrl, CancellationToken stoppingToken)
    {
        // Off the host's start-up path: the first receive may wait 20 s.
        await Task.Yield();
        Log.QueueStarted(logger, queueUrl);
        string? queueArn = null;
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                queueArn ??= await QueueArnAsync(queueUrl, stoppingToken);
                var response = await sqs.ReceiveMessageAsync(
                    new ReceiveMessageRequest
                    {
                        QueueUrl = queueUrl,
                        MaxNumberOfMessages = MaxMessagesPerReceive,
                        WaitTimeSeconds = options.WaitTimeSeconds,
                        MessageAttributeNames = ["All"],
                        MessageSystemAttributeNames = ["All"],
                    },
                    stoppingToken);
                failures = 0;
                if (response.Messages is { Count: > 0 } messages)
                {
                    using var finish = new CancellationTokenSource();
                    using var registration = stoppingToken.Register(() => finish.CancelAfter(FinishGrace));
                    await AcceptAsync(queueUrl, queueArn, messages, finish.Token);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                // Whatever was received and not deleted becomes visible again after the queue's visibility timeout.
                return;
            }
            catch (Exception exception)
            {
                failures++;
                var delay = TimeSpan.FromTicks(Math.Min(MaxRetryDelay.Ticks, FirstRetryDelay.Ticks << Math.Min(failures - 1, 10)));
                Log.QueueFailed(logger, queueUrl, failures, delay, exception);
                try
                {
                    await Task.Delay(delay, timeProvider, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task AcceptAsync(string queueUrl, string queueArn, List<Message> messages, CancellationToken cancellationToken)
    {
        var accepted = new List<(Message Message, IReadOnlyList<IncomingEvent> Events)>(messages.Count);
        var refused = new List<IngressDeadLetter>();
        foreach (var message in messages)
        {
            var record = SqsRecord.ToJson(message, queueArn);
            IReadOnlyList<IncomingEvent> events = [];
            try
            {
                events = classifier.ClassifySqsMessage(record);
                await ingress.CheckAsync(events, cancellationToken);
                accepted.Add((message, events));
            }
            catch (IngressRejectedException rejected)
            {
                var reason = rejected.Describe();
                Log.MessageRefused(logger, message.MessageId, queueUrl, reason);
                refused.Add(DeadLetter(message, queueArn, record, events, reason));
            }
        }

        IngressReceipt receipt;
        try
        {
            receipt = await writer.WriteAsync([.. accepted.SelectMany(a => a.Events)], refused, "ingress:sqs", cancellationToken);
        }
        catch (Exception exception) when (IsUnwritable(exception))
        {
            // One message's row is something PostgreSQL refuses (a number jsonb cannot hold, say), or has an id taken by
            // another tenant. Find it by writing one message at a time, so that it alone is dead-lettered and the rest
            // go through.
            receipt = await WriteOneByOneAsync(queueUrl, queueArn, accepted, refused, cancellationToken);
        }

        Log.BatchAccepted(logger, queueUrl, receipt.Written, receipt.Duplicates, refused.Count);
        if (receipt.Written > 0)
        {
            wake?.Invoke();
        }

        await DeleteAsync(queueUrl, messages, cancellationToken);
    }

    private async Task<IngressReceipt> WriteOneByOneAsync(
        string queueUrl,
        string queueArn,
        List<(Message Message, IReadOnlyList<IncomingEvent> Events)> accepted,
        List<IngressDeadLetter> refused,
        CancellationToken cancellationToken)
    {
        int written = 0, duplicates = 0;
        foreach (var (message, events) in accepted)
        {
            try
            {
                var receipt = await writer.WriteAsync(events, [], "ingress:sqs", cancellationToken);
                written += receipt.Written;
                duplicates += receipt.Duplicates;
            }
            catch (Exception exception) when (IsUnwritable(exception))
            {
                var reason = exception is IngressRejectedException rejected
                    ? rejected.Describe()
                    : $"PostgreSQL refused the row: {((PostgresException)exception).MessageText}";
                Log.MessageUnstorable(logger, message.MessageId, queueUrl, reason);
                await writer.WriteAsync([], [DeadLetter(message, queueArn, SqsRecord.ToJson(message, queueArn), events, reason)], "ingress:sqs", cancellationToken);
            }
        }

        await writer.WriteAsync([], refused, "ingress:sqs", cancellationToken);
        return new IngressReceipt([], written, duplicates);
    }

    private async Task DeleteAsync(string queueUrl, List<Message> messages, CancellationToken cancellationToken)
    {
        var entries = messages.Select((m, i) => new DeleteMessageBatchRequestEntry($"m{i}", m.ReceiptHandle)).ToList();
        var response = await sqs.DeleteMessageBatchAsync(queueUrl, entries, cancellationToken);
        if (response.Failed is { Count: > 0 } failed)
        {
            Log.DeleteFailed(logger, queueUrl, failed.Count, string.Join("; ", failed.Select(f => $"{f.Code}: {f.Message}")));
        }
    }

    private async Task<string> QueueArnAsync(string queueUrl, CancellationToken cancellationToken)
    {
        // The ARN, not the URL, names the queue in derived ids and in payloads, as it does in Lambda's records.
        var attributes = await sqs.GetQueueAttributesAsync(
            new GetQueueAttributesRequest { QueueUrl = queueUrl, AttributeNames = ["QueueArn"] },
            cancellationToken);
        return attributes.QueueARN ?? queueUrl;
    }

    private IngressDeadLetter DeadLetter(
        Message message, string queueArn, byte[] record, IReadOnlyList<IncomingEvent> events, string reason)
    {
        var eventId = events.Count > 0 ? events[0].Id : DeterministicGuid.Create($"aws.sqs/{queueArn}/{message.MessageId}");
        return new IngressDeadLetter(
            DeterministicGuid.Create($"ingress-dead-letter/aws.sqs/{queueArn}/{message.MessageId}"),
            eventId,
            events.Count > 0 ? events[0].EventType : "aws.sqs.message",
            System.Text.Encoding.UTF8.GetString(record),
            reason,
            SqsRecord.ReceiveCount(message),
            SqsRecord.SentAt(message) ?? timeProvider.GetUtcNow());
    }

    // Class 22 is "data exception": the row itself is the problem, so writing it again cannot succeed; nor can writing
    // an event whose id another tenant's event has.
    private static bool IsUnwritable(Exception exception) =>
        exception is PostgresException { SqlState: var state } && state.StartsWith("22", StringComparison.Ordinal)
        || exception is IngressRejectedException { Rejection: IngressRejection.Conflict };
}
