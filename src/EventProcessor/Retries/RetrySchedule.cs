namespace EventProcessor.Retries;

/// <summary>
/// The durable retry schedule: how long a failed event waits before its next attempt.
/// Retry n waits Base × Factor^(n−1), capped at Max, then spread by ±20 % jitter so that a burst of failures
/// does not come back as a burst.
/// </summary>
/// <remarks>
/// This is the slow layer of the two: it lives in the row (<c>next_attempt_at</c>) and survives restarts. Polly is
/// the fast layer (a dropped connection inside one attempt). Polly v8 keeps its own delay computation internal
/// and its jittered exponential backoff carries state from one attempt to the next, which a schedule stored in a
/// row cannot carry; so the durable delay is this pure function of the attempt number.
/// </remarks>
internal sealed class RetrySchedule(EventProcessorOptions options, Random random)
{
    private const double Jitter = 0.2;

    /// <summary>The delay after the <paramref name="failedAttempts"/>-th failure (1 for the first).</summary>
    public TimeSpan DelayAfter(int failedAttempts)
    {
        var exponent = Math.Max(0, failedAttempts - 1);
        var maxMs = options.RetryMaxDelay.TotalMilliseconds;
        var envelopeMs = Math.Min(maxMs, options.RetryBaseDelay.TotalMilliseconds * Math.Pow(options.RetryBackoffFactor, exponent));
        var jittered = envelopeMs * (1 - Jitter + (2 * Jitter * random.NextDouble()));
        return TimeSpan.FromMilliseconds(Math.Min(maxMs, jittered));
    }
}
