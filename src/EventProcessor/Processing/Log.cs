using Microsoft.Extensions.Logging;

namespace EventProcessor.Processing;

/// <summary>The engine's log messages. Per-event lines are Debug or above-normal severity only.</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Debug, "Claimed {Count} events")]
    public static partial void Claimed(ILogger logger, int count);

    [LoggerMessage(2, LogLevel.Debug, "Event handled")]
    public static partial void Completed(ILogger logger);

    [LoggerMessage(3, LogLevel.Warning, "Attempt {Attempt} failed; retrying in {RetryDelay}: {Error}")]
    public static partial void WillRetry(ILogger logger, int attempt, TimeSpan retryDelay, string? error);

    [LoggerMessage(4, LogLevel.Error, "Event dead-lettered after attempt {Attempt}: {Error}")]
    public static partial void DeadLettered(ILogger logger, int attempt, string? error);

    [LoggerMessage(5, LogLevel.Warning, "No handler for event type {EventType}; events of this type are marked processed and skipped (logged once per type, then at Debug)")]
    public static partial void SkippedUnknownTypeFirstTime(ILogger logger, string eventType);

    [LoggerMessage(6, LogLevel.Debug, "No handler for event type {EventType}; skipped")]
    public static partial void SkippedUnknownType(ILogger logger, string eventType);

    [LoggerMessage(7, LogLevel.Information, "Released event: {Reason}")]
    public static partial void Released(ILogger logger, string? reason);

    [LoggerMessage(8, LogLevel.Warning, "Lost the lease on {Count} events before completing them; another instance owns them now and nothing was written for them")]
    public static partial void LeaseLost(ILogger logger, int count);

    [LoggerMessage(9, LogLevel.Warning, "Database unavailable (try {Try}); retrying in {RetryDelay}")]
    public static partial void DatabaseUnavailable(ILogger logger, int @try, TimeSpan retryDelay, Exception? exception);

    [LoggerMessage(10, LogLevel.Error, "Poll cycle failed; next try in {PollInterval}")]
    public static partial void PollFailed(ILogger logger, TimeSpan pollInterval, Exception exception);

    [LoggerMessage(11, LogLevel.Information, "Polling every {PollInterval} in batches of {BatchSize} with {Workers} workers as {InstanceName}")]
    public static partial void PollingStarted(ILogger logger, TimeSpan pollInterval, int batchSize, int workers, string instanceName);

    [LoggerMessage(12, LogLevel.Information, "Polling is disabled (ENABLE_POLLING=false); events are processed only on demand")]
    public static partial void PollingDisabled(ILogger logger);

    [LoggerMessage(13, LogLevel.Information, "Polling stopped")]
    public static partial void PollingStopped(ILogger logger);

    [LoggerMessage(14, LogLevel.Warning, "The batch's transaction was lost ({Reason}); {Count} events whose handlers wrote to it are released to run again")]
    public static partial void TransactionLost(ILogger logger, string reason, int count);

    [LoggerMessage(15, LogLevel.Warning, "Renewing leases failed")]
    public static partial void LeaseRenewalFailed(ILogger logger, Exception exception);

    [LoggerMessage(16, LogLevel.Debug, "Listening on {Channel}: a new or replayed event wakes a poll loop at once")]
    public static partial void Listening(ILogger logger, string channel);

    [LoggerMessage(17, LogLevel.Warning, "Lost the connection that listens for new events; reconnecting, and new events wait for the next poll (every {PollInterval}) until it is back")]
    public static partial void ListenerLost(ILogger logger, TimeSpan pollInterval, Exception exception);

    [LoggerMessage(18, LogLevel.Warning, "Cannot listen for new events (try {Try}); retrying in {RetryDelay}, and new events wait for the next poll (every {PollInterval}) until then")]
    public static partial void ListenerUnavailable(ILogger logger, int @try, TimeSpan retryDelay, TimeSpan pollInterval, Exception? exception);

    [LoggerMessage(19, LogLevel.Debug, "Still cannot listen for new events (try {Try}); retrying in {RetryDelay}")]
    public static partial void ListenerStillUnavailable(ILogger logger, int @try, TimeSpan retryDelay, Exception? exception);

    [LoggerMessage(20, LogLevel.Information, "Listening for new events again after {Downtime}")]
    public static partial void ListenerReconnected(ILogger logger, TimeSpan downtime);

    [LoggerMessage(21, LogLevel.Warning, "The engine's connection pool (Maximum Pool Size {PoolSize}) is smaller than the {Needed} connections it may need at once with {Workers} poll loops (WORKERS + 3; the wake-up listener has its own): loops will queue for connections, and a batch whose handler waits longer than the pool's timeout fails its attempt. Raise the pool or lower WORKERS")]
    public static partial void PoolSmallerThanWorkers(ILogger logger, int poolSize, int needed, int workers);
}
