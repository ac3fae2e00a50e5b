using Dapper;
using EventProcessor.Handling;

namespace EventProcessor.Handlers.Aws;

/// <summary>
/// Appends a CloudWatch Logs batch to <c>log_entries</c>, each log event once however often the batch is handled
/// (redelivery, replay), in one statement for the whole batch (<see cref="AwsSql.AppendLogEntries"/>).
/// </summary>
[HandlesEvent("aws.logs.batch", Description = "Appends the batch's log events to log_entries, each once")]
public sealed class CloudWatchLogsBatchHandler : IEventHandler<CloudWatchLogsBatch>
{
    // Sent once when a subscription filter is created, to check the destination; its "log events" are CloudWatch's
    // own note about that, not lines of the group.
    private const string ControlMessage = "CONTROL_MESSAGE";

    /// <inheritdoc />
    /// <exception cref="MalformedPayloadException">The batch names no log group or stream, or a log event has no id.</exception>
    public async Task HandleAsync(EventContext<CloudWatchLogsBatch> context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var batch = context.Payload;
        if (string.Equals(batch.MessageType, ControlMessage, StringComparison.Ordinal)
            || batch.LogEvents is not { Count: > 0 } logEvents)
        {
            return;
        }

        if (string.IsNullOrEmpty(batch.LogGroup) || string.IsNullOrEmpty(batch.LogStream))
        {
            throw new MalformedPayloadException("CloudWatch Logs batch has no logGroup or no logStream.");
        }

        var entries = new LogEntryRows(
            batch.LogGroup,
            batch.LogStream,
            new string[logEvents.Count],
            new DateTime?[logEvents.Count],
            new string?[logEvents.Count]);
        for (var i = 0; i < logEvents.Count; i++)
        {
            var logEvent = logEvents[i];
            if (logEvent is null || string.IsNullOrEmpty(logEvent.Id))
            {
                throw new MalformedPayloadException(
                    $"CloudWatch Logs batch of {batch.LogGroup} / {batch.LogStream}: logEvents[{i}] has no id, so it could not be stored exactly once.");
            }

            entries.EventIds[i] = logEvent.Id;
            entries.Timestamps[i] = logEvent.Timestamp is { } milliseconds
                ? DateTimeOffset.FromUnixTimeMilliseconds(milliseconds).UtcDateTime
                : null;
            entries.Messages[i] = logEvent.Message;
        }

        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(new CommandDefinition(
            AwsSql.AppendLogEntries, entries, db.Transaction, cancellationToken: cancellationToken));
    }

    // Parameters of AwsSql.AppendLogEntries: parallel arrays, one element per log event, sent as PostgreSQL arrays.
    private sealed record LogEntryRows(
        string LogGroup,
        string LogStream,
        string[] EventIds,
        DateTime?[] Timestamps,
        string?[] Messages);
}
