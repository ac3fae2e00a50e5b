using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polly;
using Polly.Retry;

namespace EventProcessor.Storage;

/// <summary>
/// The fast retry layer: waits out a database that is restarting or unreachable, with exponential backoff and
/// jitter, for as long as it takes (or until shutdown). Used around the claim and the completion only; a handler
/// is never re-run by it.
/// </summary>
internal static class DatabaseResilience
{
    public static bool IsTransient(Exception exception) => exception switch
    {
        NpgsqlException npgsql => npgsql.IsTransient || npgsql.InnerException is SocketException or TimeoutException,
        SocketException or TimeoutException => true,
        _ => false,
    };

    public static ResiliencePipeline Create(ILogger logger, TimeProvider timeProvider) =>
        Create(
            timeProvider,
            IsTransient,
            (attempt, delay, exception) => Processing.Log.DatabaseUnavailable(logger, attempt, delay, exception));

    /// <summary>
    /// The same backoff (200 ms doubling to 15 s, with jitter, until it works or shutdown) for what
    /// <paramref name="shouldRetry"/> accepts; <paramref name="onRetry"/> gets the number of the try that failed, the
    /// delay before the next one, and why.
    /// </summary>
    public static ResiliencePipeline Create(
        TimeProvider timeProvider,
        Func<Exception, bool> shouldRetry,
        Action<int, TimeSpan, Exception?> onRetry) =>
        new ResiliencePipelineBuilder { TimeProvider = timeProvider }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(shouldRetry),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(200),
                MaxDelay = TimeSpan.FromSeconds(15),
                OnRetry = args =>
                {
                    onRetry(args.AttemptNumber + 1, args.RetryDelay, args.Outcome.Exception);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
}
