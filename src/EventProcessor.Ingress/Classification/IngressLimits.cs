namespace EventProcessor.Ingress.Classification;

/// <summary>How much an ingress adapter accepts before it refuses a delivery. Defaults suit AWS's own limits.</summary>
public sealed class IngressLimits
{
    /// <summary>The largest request body or SQS message, in bytes. Default 1 MiB (SQS's own maximum).</summary>
    public int MaxBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>The largest decompressed CloudWatch Logs delivery, in bytes. Default 8 MiB; a gzip bomb stops here.</summary>
    public int MaxDecompressedBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>The deepest JSON nesting accepted. Default 64.</summary>
    public int MaxJsonDepth { get; set; } = 64;

    /// <summary>
    /// The most events one delivery may carry: envelopes in a <c>POST /events</c> array, or records in a Lambda SQS
    /// delivery. Default 1,000. A larger burst in one request would take one tenant's share of the table in one go.
    /// </summary>
    public int MaxEventsPerRequest { get; set; } = 1_000;
}
