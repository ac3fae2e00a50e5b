using Amazon;
using Amazon.SQS;

namespace EventProcessor.Ingress.Sqs;

/// <summary>An SQS client from <see cref="SqsIngressOptions"/>; credentials come from the AWS SDK's default chain.</summary>
public static class SqsClientFactory
{
    /// <summary>A client for AWS in <see cref="SqsIngressOptions.Region"/>, or for the endpoint in <see cref="SqsIngressOptions.ServiceUrl"/>.</summary>
    public static IAmazonSQS Create(SqsIngressOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var config = new AmazonSQSConfig();
        if (!string.IsNullOrWhiteSpace(options.ServiceUrl))
        {
            config.ServiceURL = options.ServiceUrl;
            config.AuthenticationRegion = options.Region ?? "us-east-1";
        }
        else if (!string.IsNullOrWhiteSpace(options.Region))
        {
            config.RegionEndpoint = RegionEndpoint.GetBySystemName(options.Region);
        }

        return new AmazonSQSClient(config);
    }
}
