using Microsoft.Extensions.Logging;

namespace EventProcessor.Ingress.Sqs;

/// <summary>The SQS worker's log messages. Nothing per message at Information.</summary>
internal static partial class Log
{
    [LoggerMessage(101, LogLevel.Information, "Receiving from SQS queue {QueueUrl}")]
    public static partial void QueueStarted(ILogger logger, string queueUrl);

    [LoggerMessage(102, LogLevel.Warning, "SQS queue {QueueUrl}: receive or write failed (try {Try}); retrying in {RetryDelay}")]
    public static partial void QueueFailed(ILogger logger, string queueUrl, int @try, TimeSpan retryDelay, Exception exception);

    [LoggerMessage(103, LogLevel.Warning, "SQS message {MessageId} from {QueueUrl} refused and dead-lettered: {Reason}")]
    public static partial void MessageRefused(ILogger logger, string messageId, string queueUrl, string reason);

    [LoggerMessage(104, LogLevel.Warning, "SQS queue {QueueUrl}: {Count} messages were written but not deleted ({Reason}); they will be redelivered and counted as duplicates")]
    public static partial void DeleteFailed(ILogger logger, string queueUrl, int count, string reason);

    [LoggerMessage(105, LogLevel.Debug, "SQS queue {QueueUrl}: {Written} written, {Duplicates} duplicates, {Refused} refused")]
    public static partial void BatchAccepted(ILogger logger, string queueUrl, int written, int duplicates, int refused);

    [LoggerMessage(106, LogLevel.Warning, "SQS message {MessageId} from {QueueUrl}: PostgreSQL refused its row, so it is dead-lettered: {Reason}")]
    public static partial void MessageUnstorable(ILogger logger, string messageId, string queueUrl, string reason);
}
