using System.Text.Json;
using EventProcessor.Events;
using EventProcessor.Handling;
using EventProcessor.Retries;
using EventProcessor.Validation;
using Microsoft.Extensions.Logging;

namespace EventProcessor.Processing;

/// <summary>
/// Runs one claimed event through its handlers and decides its fate. Never throws: every exception stops here
/// and becomes an <see cref="ExecutionResult"/>.
/// </summary>
internal sealed class EventExecutor(
    HandlerRegistry registry,
    RetrySchedule retrySchedule,
    IEnumerable<IEventPayloadValidator> validators,
    EventProcessorOptions options,
    TimeProvider timeProvider,
    ILogger<EventExecutor> logger)
{
    // After a timeout, how long a handler gets to notice its cancelled token before it is deemed a runaway.
    private static readonly TimeSpan CancellationGrace = TimeSpan.FromSeconds(1);

    private const int MaxErrorLength = 4_000;

    private readonly HashSet<string> _skippedTypesLogged = new(StringComparer.Ordinal);
    private readonly IEventPayloadValidator[] _validators = [.. validators];

    /// <param name="attempt">The claimed event.</param>
    /// <param name="session">The batch's database session.</param>
    /// <param name="services">The batch's service scope, where handlers are resolved.</param>
    /// <param name="abort">Fires when shutdown can wait no longer: the attempt is released, not failed.</param>
    public async Task<ExecutionResult> ExecuteAsync(
        EventAttempt attempt,
        BatchSession session,
        IServiceProvider services,
        CancellationToken abort)
    {
        var storedEvent = attempt.Event;
        if (storedEvent.Attempt > options.MaxRetries)
        {
            // Earlier attempts were counted by their claims but never reported back: the process holding the event
            // died or froze each time. Running it again would likely do the same.
            return ExecutionResult.DeadLettered(
                $"Gave up after {storedEvent.Attempt - 1} attempts; the last ones never finished (the process handling " +
                "the event crashed, was killed or froze while holding it).");
        }

        if (!EventTypes.IsValid(storedEvent.EventType))
        {
            // Only a row inserted by SQL can get here: every door refuses such a type.
            return ExecutionResult.DeadLettered(Truncate(
                $"Its event_type {JsonSerializer.Serialize(storedEvent.EventType)} is not valid: {EventTypes.Rule}"));
        }

        var handlers = registry.For(storedEvent.EventType);
        if (handlers.Count == 0)
        {
            LogSkipped(storedEvent.EventType);
            return ExecutionResult.Skipped($"No handler is registered for event type '{storedEvent.EventType}'.");
        }

        foreach (var validator in _validators)
        {
            var violations = validator.Validate(storedEvent.EventType, storedEvent.Payload);
            if (violations.Count > 0)
            {
                return ExecutionResult.DeadLettered(Truncate(
                    $"Payload violates the schema of '{storedEvent.EventType}': {string.Join("; ", violations)}"));
            }
        }

        var payloads = new object?[handlers.Count];
        for (var i = 0; i < handlers.Count; i++)
        {
            var payloadType = handlers[i].PayloadType;
            var earlier = 0;
            while (earlier < i && handlers[earlier].PayloadType != payloadType)
            {
                earlier++;
            }

            if (earlier < i)
            {
                payloads[i] = payloads[earlier];
                continue;
            }

            if (!TryDeserialize(storedEvent.Payload, payloadType, out payloads[i], out var error))
            {
                // A payload that does not fit the handler's type will not fit it on the next attempt either.
                return ExecutionResult.DeadLettered(error);
            }
        }

        using var timeout = new CancellationTokenSource(options.HandlerTimeout, timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, abort);
        HandlerRegistration? running = null;
        Task? handlerTask = null;
        try
        {
            for (var i = 0; i < handlers.Count; i++)
            {
                running = handlers[i];
                handlerTask = running.Invoke(services, attempt, payloads[i], linked.Token);
                await handlerTask.WaitAsync(linked.Token);
            }

            await session.EndAttemptAsync(attempt, keepWrites: true, handlerStillRunning: false);
            return ExecutionResult.Completed;
        }
        catch (Exception exception)
        {
            var stillRunning = handlerTask is { IsCompleted: false }
                && !await FinishesWithinGraceAsync(handlerTask);
            await session.EndAttemptAsync(attempt, keepWrites: false, stillRunning);
            attempt.DiscardFollowUps();

            if (abort.IsCancellationRequested)
            {
                return ExecutionResult.Released("Released on shutdown before the handler finished.");
            }

            if (attempt.UsedTransaction && session.LostDatabase)
            {
                // The database went away under the handler: not the handler's fault, so no attempt is spent.
                return ExecutionResult.Released("Released: the database connection was lost during the attempt.");
            }

            var error = timeout.IsCancellationRequested
                ? $"{running?.HandlerType.Name} timed out after {options.HandlerTimeout.TotalMilliseconds:0} ms."
                : $"{running?.HandlerType.Name} failed: {Describe(exception)}";
            return Fail(storedEvent.Attempt, Truncate(error));
        }
    }

    private ExecutionResult Fail(int attemptNumber, string error) =>
        attemptNumber >= options.MaxRetries
            ? ExecutionResult.DeadLettered(error)
            : ExecutionResult.RetryLater(error, retrySchedule.DelayAfter(attemptNumber));

    private bool TryDeserialize(string json, Type payloadType, out object? payload, out string error)
    {
        try
        {
            payload = JsonSerializer.Deserialize(json, payloadType, options.SerializerOptions);
            if (payload is null && payloadType.IsValueType is false && payloadType != typeof(object))
            {
                error = $"Payload is null, which {payloadType.Name} does not accept.";
                return false;
            }

            error = "";
            return true;
        }
        catch (Exception exception) when (exception is JsonException or NotSupportedException or InvalidOperationException)
        {
            payload = null;
            error = Truncate($"Payload cannot be read as {payloadType.Name}: {exception.Message}");
            return false;
        }
    }

    private async Task<bool> FinishesWithinGraceAsync(Task handlerTask)
    {
        try
        {
            await handlerTask.WaitAsync(CancellationGrace, timeProvider);
        }
        catch (TimeoutException)
        {
            return false;
        }
        catch (Exception)
        {
            // The handler finished by throwing, which is what a cancelled handler does.
        }

        return true;
    }

    private void LogSkipped(string eventType)
    {
        bool first;
        lock (_skippedTypesLogged)
        {
            first = _skippedTypesLogged.Count < 1_000 && _skippedTypesLogged.Add(eventType);
        }

        if (first)
        {
            Log.SkippedUnknownTypeFirstTime(logger, eventType);
        }
        else
        {
            Log.SkippedUnknownType(logger, eventType);
        }
    }

    private static string Describe(Exception exception) =>
        exception is AggregateException { InnerExceptions.Count: 1 } aggregate
            ? Describe(aggregate.InnerExceptions[0])
            : $"{exception.GetType().Name}: {exception.Message}";

    private static string Truncate(string error) =>
        error.Length <= MaxErrorLength ? error : string.Concat(error.AsSpan(0, MaxErrorLength - 1), "…");
}
