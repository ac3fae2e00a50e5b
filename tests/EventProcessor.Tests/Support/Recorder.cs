using System.Collections.Concurrent;

namespace EventProcessor.Tests.Support;

/// <summary>What test handlers saw, in order, shared between a test and its handlers through DI.</summary>
public sealed class Recorder
{
    private readonly ConcurrentQueue<(Guid Id, int Attempt)> _calls = new();
    private int _running;
    private int _maxRunning;

    public IReadOnlyList<(Guid Id, int Attempt)> Calls => [.. _calls];

    public IReadOnlyList<Guid> Ids => [.. _calls.Select(c => c.Id)];

    public int MaxConcurrent => Volatile.Read(ref _maxRunning);

    public void Record(Guid id, int attempt) => _calls.Enqueue((id, attempt));

    public IDisposable Running()
    {
        var now = Interlocked.Increment(ref _running);
        int seen;
        while (now > (seen = Volatile.Read(ref _maxRunning)) && Interlocked.CompareExchange(ref _maxRunning, now, seen) != seen)
        {
        }

        return new Exit(this);
    }

    private sealed class Exit(Recorder recorder) : IDisposable
    {
        public void Dispose() => Interlocked.Decrement(ref recorder._running);
    }
}
