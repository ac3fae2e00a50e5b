namespace EventProcessor.Processing;

/// <summary>The fate of one attempt. The numeric values are the codes the completion statement reads.</summary>
public enum OutcomeKind
{
    /// <summary>Every handler succeeded: processed.</summary>
    Completed = 0,

    /// <summary>A handler failed and attempts remain: scheduled again after a backoff.</summary>
    RetryLater = 1,

    /// <summary>A permanent failure, or the last attempt failed: copied to <c>event_dead_letters</c> and marked processed.</summary>
    DeadLettered = 2,

    /// <summary>No handler for the type: marked processed with <c>metadata.skipped</c>.</summary>
    Skipped = 3,

    /// <summary>Not run, or run but not kept (shutdown, lost database): claimable again and the attempt is given back.</summary>
    Released = 4,
}

/// <summary>What the executor decided for one event; a value, never an exception.</summary>
/// <param name="Kind">The fate.</param>
/// <param name="Error">Why it failed or was skipped; null on success.</param>
/// <param name="RetryDelay">For <see cref="OutcomeKind.RetryLater"/>, how long until the next attempt.</param>
internal readonly record struct ExecutionResult(OutcomeKind Kind, string? Error = null, TimeSpan RetryDelay = default)
{
    public static readonly ExecutionResult Completed = new(OutcomeKind.Completed);

    public static ExecutionResult Released(string reason) => new(OutcomeKind.Released, reason);

    public static ExecutionResult Skipped(string reason) => new(OutcomeKind.Skipped, reason);

    public static ExecutionResult DeadLettered(string error) => new(OutcomeKind.DeadLettered, error);

    public static ExecutionResult RetryLater(string error, TimeSpan delay) => new(OutcomeKind.RetryLater, error, delay);
}
