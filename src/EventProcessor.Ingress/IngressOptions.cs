using EventProcessor.Ingress.Classification;
using EventProcessor.Ingress.Sqs;

namespace EventProcessor.Ingress;

/// <summary>Settings of the ingress doors.</summary>
public sealed class IngressOptions
{
    /// <summary>The Npgsql connection string of the database that holds <c>events</c>. Required.</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>Size and depth limits on what arrives.</summary>
    public IngressLimits Limits { get; } = new();

    /// <summary>The SQS queues to drain; none by default.</summary>
    public SqsIngressOptions Sqs { get; } = new();
}
