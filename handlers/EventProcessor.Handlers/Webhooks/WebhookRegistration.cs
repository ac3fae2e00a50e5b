using EventProcessor.Handling;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Handlers.Webhooks;

/// <summary>Registers one <see cref="WebhookHandler"/> per configured subscription and event type.</summary>
public static class WebhookRegistration
{
    /// <summary>The configuration section: <c>Webhooks__0__Url</c> and so on.</summary>
    public const string SectionName = "Webhooks";

    /// <summary>Reads the <c>Webhooks</c> section and subscribes each webhook to its event types.</summary>
    /// <exception cref="WebhookConfigurationException">A subscription is incomplete; the message names the setting.</exception>
    public static EventProcessorBuilder AddWebhooks(this EventProcessorBuilder builder, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configuration);
        var subscriptions = configuration.GetSection(SectionName).Get<List<WebhookSubscription>>() ?? [];
        if (subscriptions.Count == 0)
        {
            return builder;
        }

        // A followed redirect re-sends the signed body wherever the receiver points (307/308 keep the POST and its
        // body), and a 2xx there would count as delivered. The body goes to the configured URL only: a 3xx fails the
        // attempt (WebhookHandler).
        builder.Services.AddHttpClient(SectionName)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false });
        for (var i = 0; i < subscriptions.Count; i++)
        {
            var subscription = subscriptions[i];
            Validate(subscription, $"{SectionName}__{i}");
            foreach (var pattern in subscription.EventTypes)
            {
                builder.AddHandler(
                    pattern,
                    $"POST to webhook {new Uri(subscription.Url).GetComponents(UriComponents.SchemeAndServer, UriFormat.UriEscaped)}",
                    services => new WebhookHandler(
                        subscription,
                        pattern,
                        services.GetRequiredService<IHttpClientFactory>().CreateClient(SectionName),
                        services.GetRequiredService<TimeProvider>()));
            }
        }

        return builder;
    }

    private static void Validate(WebhookSubscription subscription, string prefix)
    {
        if (!Uri.TryCreate(subscription.Url, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            throw new WebhookConfigurationException($"{prefix}__Url must be an absolute http or https URL.");
        }

        if (subscription.EventTypes.Count == 0 || subscription.EventTypes.Any(string.IsNullOrWhiteSpace))
        {
            throw new WebhookConfigurationException($"{prefix}__EventTypes__0 must name at least one event type (or prefix ending in *).");
        }

        if (subscription.EventTypes.Any(t => t.IndexOf('*', StringComparison.Ordinal) is >= 0 and var star && star != t.Length - 1))
        {
            throw new WebhookConfigurationException($"{prefix}__EventTypes may use '*' only at the end of a type.");
        }

        if (string.IsNullOrEmpty(subscription.Secret))
        {
            throw new WebhookConfigurationException($"{prefix}__Secret is required: deliveries are always signed.");
        }

        try
        {
            WebhookSignature.KeyFromSecret(subscription.Secret);
        }
        catch (FormatException)
        {
            throw new WebhookConfigurationException($"{prefix}__Secret starts with 'whsec_' but the rest is not non-empty base64.");
        }

        if (subscription.TimeoutMs is < 1 or > 3_600_000)
        {
            throw new WebhookConfigurationException($"{prefix}__TimeoutMs must be from 1 to 3600000.");
        }
    }
}

/// <summary>A webhook subscription that cannot be used.</summary>
public sealed class WebhookConfigurationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public WebhookConfigurationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public WebhookConfigurationException()
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public WebhookConfigurationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
