using System.Text.Json;

namespace EventProcessor;

/// <summary>How the engine claims, runs, retries and rescues events. Every value is validated at start-up.</summary>
public sealed class EventProcessorOptions
{
    /// <summary>The PostgreSQL connection string (Npgsql keyword form). Required.</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>Whether the background poll loop runs. Default true; when false, only the HTTP triggers process events.</summary>
    public bool EnablePolling { get; set; } = true;

    /// <summary>
    /// How long a poll loop sleeps after a batch that was not full, unless a notification of a new or replayed event
    /// wakes it first: the fallback for an event whose notification was lost. Default 10 s.
    /// </summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The most events in one batch: one transaction for the handlers that write, one completion. Default 20.</summary>
    public int BatchSize { get; set; } = 20;

    /// <summary>
    /// How many batches one instance runs at once, one per poll loop; loops that want to claim at the same moment share
    /// one claim of up to <see cref="BatchSize"/> × loops (see <c>SharedClaim</c>). Events of one aggregate never run
    /// at the same time or out of order, whichever loop or instance claims them: a claim skips every aggregate another
    /// claim holds. Default 16.
    /// <para>
    /// <see cref="Workers"/> × <see cref="BatchSize"/> events run at once (320 by default), and at small batches
    /// throughput follows it: claims are serialised, so the more loops queue behind one, the more rows each claim
    /// statement carries. With large batches fewer loops do better (at a batch of 1,000, 4 or 8 beat 16); with events
    /// over few aggregates, keep the product well under the number of aggregates pending at once, since a held
    /// aggregate's later events wait.
    /// </para>
    /// </summary>
    public int Workers { get; set; } = 16;

    /// <summary>Failed attempts after which an event is dead-lettered. Default 5 (so at most 5 attempts).</summary>
    public int MaxRetries { get; set; } = 5;

    /// <summary>The delay before the first retry; retry n waits about Base × Factor^(n−1). Default 1 s.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The growth factor of the retry delay. Default 2.</summary>
    public double RetryBackoffFactor { get; set; } = 2.0;

    /// <summary>The longest delay between two attempts. Default 5 min.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long one event's handlers may run before the attempt fails. Default 30 s.</summary>
    public TimeSpan HandlerTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a claim holds an event without renewal. A live engine renews every third of it; a crashed or frozen
    /// one stops, and its events become claimable again this long after its last renewal. Default 30 s.
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long an on-demand run (<see cref="EventEngine.ProcessEventAsync"/>, <see cref="EventEngine.ProcessBatchAsync"/>)
    /// waits for a database connection for its claim before it gives up with a <see cref="TimeoutException"/>, so that
    /// an HTTP caller gets a quick answer when the pool is exhausted. The poll loop waits as long as it takes. Default 3 s.
    /// </summary>
    public TimeSpan OnDemandConnectionTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>On shutdown, how long a running handler may go on before it is cancelled and its event released. Default 5 s.</summary>
    public TimeSpan ShutdownGrace { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How payloads are deserialized for handlers and follow-ups serialized. Default: web defaults, strict about nulls and required members.</summary>
    public JsonSerializerOptions SerializerOptions { get; set; } = new(JsonSerializerDefaults.Web)
    {
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    /// <summary>The name this instance writes into <c>locked_by</c>. Default: host name, process id and a random suffix.</summary>
    public string InstanceName { get; set; } =
        $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}";
}
