namespace EventProcessor.Processing;

/// <summary>Counters since this process started, as <c>/health</c> reports them. Thread-safe.</summary>
public sealed class ProcessingStats
{
    private long _totalProcessed;
    private long _successCount;
    private long _errorCount;
    private long _deadLetterCount;
    private long _skippedCount;
    private long _releasedCount;
    private long _lastProcessedTicks;
    private int _inFlight;

    /// <summary>Attempts that reached a fate: completed, failed (retry or dead letter) or skipped.</summary>
    public long TotalProcessed => Interlocked.Read(ref _totalProcessed);

    /// <summary>Events whose handlers all succeeded.</summary>
    public long SuccessCount => Interlocked.Read(ref _successCount);

    /// <summary>Failed attempts, whether retried or dead-lettered.</summary>
    public long ErrorCount => Interlocked.Read(ref _errorCount);

    /// <summary>Events moved to <c>event_dead_letters</c>.</summary>
    public long DeadLetterCount => Interlocked.Read(ref _deadLetterCount);

    /// <summary>Events marked processed because no handler takes their type.</summary>
    public long SkippedCount => Interlocked.Read(ref _skippedCount);

    /// <summary>Claims given back without spending the attempt (shutdown, database lost).</summary>
    public long ReleasedCount => Interlocked.Read(ref _releasedCount);

    /// <summary>When the last fate was written; null before the first.</summary>
    public DateTimeOffset? LastProcessedAt =>
        Interlocked.Read(ref _lastProcessedTicks) is var ticks and > 0 ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    /// <summary>Events claimed by this process and not yet completed.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    internal void Claimed(int count) => Interlocked.Add(ref _inFlight, count);

    internal void Finished(int count) => Interlocked.Add(ref _inFlight, -count);

    internal void Record(OutcomeKind kind, DateTimeOffset at)
    {
        switch (kind)
        {
            case OutcomeKind.Completed:
                Interlocked.Increment(ref _successCount);
                break;
            case OutcomeKind.RetryLater:
                Interlocked.Increment(ref _errorCount);
                break;
            case OutcomeKind.DeadLettered:
                Interlocked.Increment(ref _errorCount);
                Interlocked.Increment(ref _deadLetterCount);
                break;
            case OutcomeKind.Skipped:
                Interlocked.Increment(ref _skippedCount);
                break;
            case OutcomeKind.Released:
                Interlocked.Increment(ref _releasedCount);
                return;
        }

        Interlocked.Increment(ref _totalProcessed);
        Interlocked.Exchange(ref _lastProcessedTicks, at.UtcTicks);
    }
}
