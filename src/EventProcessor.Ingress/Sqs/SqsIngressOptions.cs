namespace EventProcessor.Ingress.Sqs;

/// <summary>
/// The queues the SQS worker drains, bound from the <c>Sqs</c> section (<c>Sqs__Queues__0__Url</c>,
/// <c>Sqs__Region</c>, <c>Sqs__ServiceUrl</c>). No queues, no worker. Credentials come from the AWS SDK's default chain.
/// </summary>
public sealed class SqsIngressOptions
{
    /// <summary>The queues, standard or FIFO.</summary>
    public IList<SqsQueueOptions> Queues { get; } = [];

    /// <summary>The AWS region, such as <c>us-east-1</c>; default: the SDK's own resolution (AWS_REGION).</summary>
    public string? Region { get; set; }

    /// <summary>An SQS-compatible endpoint to use instead of AWS's, such as <c>http://127.0.0.1:4566</c>.</summary>
    public string? ServiceUrl { get; set; }

    /// <summary>Long-poll wait per receive, in seconds, 0 to 20. Default 20 (fewest empty receives).</summary>
    public int WaitTimeSeconds { get; set; } = 20;
}

/// <summary>One queue.</summary>
public sealed class SqsQueueOptions
{
    /// <summary>The queue URL.</summary>
    public string Url { get; set; } = "";
}
