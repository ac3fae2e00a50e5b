namespace EventProcessor.Ingress.Writing;

/// <summary>What the ingress doors have accepted and refused since start-up; read by <c>/health</c>.</summary>
public sealed class IngressStats
{
    private long _written;
    private long _duplicates;
    private long _rejected;

    /// <summary>Rows written to <c>events</c>.</summary>
    public long Written => Interlocked.Read(ref _written);

    /// <summary>Deliveries of an event that was already in the table: redeliveries, retried publishes.</summary>
    public long Duplicates => Interlocked.Read(ref _duplicates);

    /// <summary>Deliveries refused (4xx on HTTP, a dead letter on SQS).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    internal void RecordWritten(int written, int duplicates)
    {
        Interlocked.Add(ref _written, written);
        Interlocked.Add(ref _duplicates, duplicates);
    }

    internal void RecordRejected(int count = 1) => Interlocked.Add(ref _rejected, count);
}
