using System.Text.Json.Serialization;

namespace EventProcessor.Handlers.Aws;

/// <summary>
/// The payload of <c>aws.logs.batch</c>: a CloudWatch Logs subscription document, already decoded (the
/// <c>awslogs.data</c> that AWS delivers is base64 of gzip of this JSON). Names are pinned to AWS's spelling.
/// </summary>
public sealed record CloudWatchLogsBatch
{
    /// <summary><c>DATA_MESSAGE</c> for log events; <c>CONTROL_MESSAGE</c> when CloudWatch checks that the destination is reachable.</summary>
    [JsonPropertyName("messageType")]
    public string? MessageType { get; init; }

    /// <summary>The log group the events come from (<c>logGroup</c>).</summary>
    [JsonPropertyName("logGroup")]
    public string? LogGroup { get; init; }

    /// <summary>The log stream the events come from (<c>logStream</c>).</summary>
    [JsonPropertyName("logStream")]
    public string? LogStream { get; init; }

    /// <summary>The log events, in CloudWatch's order (<c>logEvents</c>).</summary>
    [JsonPropertyName("logEvents")]
    public IReadOnlyList<CloudWatchLogEvent?>? LogEvents { get; init; }
}

/// <summary>One log event of a CloudWatch Logs batch.</summary>
public sealed record CloudWatchLogEvent
{
    /// <summary>CloudWatch's id of the log event, which makes a redelivered one recognisable (<c>logEvents[].id</c>).</summary>
    [JsonPropertyName("id")]
    public string? Id { get; init; }

    /// <summary>When the event happened, in milliseconds since the Unix epoch (<c>logEvents[].timestamp</c>).</summary>
    [JsonPropertyName("timestamp")]
    public long? Timestamp { get; init; }

    /// <summary>The log line (<c>logEvents[].message</c>).</summary>
    [JsonPropertyName("message")]
    public string? Message { get; init; }
}
