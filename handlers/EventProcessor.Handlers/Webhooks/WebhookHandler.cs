using System.Net.Http.Headers;
using System.Text.Json;
using EventProcessor.Handling;

namespace EventProcessor.Handlers.Webhooks;

/// <summary>
/// Delivers matching events to one webhook subscription as JSON (the event's columns, snake_case), signed with the
/// Standard Webhooks headers. A 2xx is success; any other status, a network error or a timeout fails the attempt,
/// which the engine retries with backoff and dead-letters after <c>MAX_RETRIES</c>. A redirect (3xx) is not followed
/// and fails the attempt, naming where it pointed: the signed body goes to the configured URL and nowhere else.
/// Delivery is at least once: the receiver deduplicates on <c>webhook-id</c>, which is the event id.
/// </summary>
public sealed class WebhookHandler : IEventHandler<JsonElement>
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    private readonly WebhookSubscription _subscription;
    private readonly string _pattern;
    private readonly HttpClient _client;
    private readonly TimeProvider _timeProvider;
    private readonly byte[] _key;
    private readonly Uri _url;

    /// <param name="subscription">The webhook.</param>
    /// <param name="pattern">Which of the subscription's event types this registration stands for.</param>
    /// <param name="client">
    /// The HTTP client to deliver with. It must not follow redirects (<see cref="WebhookRegistration.AddWebhooks"/>
    /// configures its own so): a followed one would have sent the body on before this handler sees the 3xx.
    /// </param>
    /// <param name="timeProvider">The clock for <c>webhook-timestamp</c>.</param>
    public WebhookHandler(WebhookSubscription subscription, string pattern, HttpClient client, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        _subscription = subscription;
        _pattern = pattern;
        _client = client;
        _timeProvider = timeProvider;
        _key = WebhookSignature.KeyFromSecret(subscription.Secret);
        _url = new Uri(subscription.Url, UriKind.Absolute);
    }

    /// <inheritdoc />
    public async Task HandleAsync(EventContext<JsonElement> context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);

        // A subscription registers once per pattern; when two of its patterns match one type, the first one delivers.
        if (!string.Equals(FirstMatchingPattern(context.Event.EventType), _pattern, StringComparison.Ordinal))
        {
            return;
        }

        var body = WebhookBody.Serialize(context.Event);
        var timestamp = _timeProvider.GetUtcNow().ToUnixTimeSeconds();
        var messageId = context.Event.Id.ToString();
        using var request = new HttpRequestMessage(HttpMethod.Post, _url)
        {
            Content = new ByteArrayContent(body) { Headers = { ContentType = Json } },
        };
        request.Headers.Add("webhook-id", messageId);
        request.Headers.Add("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.Add("webhook-signature", WebhookSignature.Sign(_key, messageId, timestamp, body));

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var limit = _subscription.TimeoutMs is { } ms ? TimeSpan.FromMilliseconds(ms) : DefaultTimeout;
        timeout.CancelAfter(limit);
        HttpResponseMessage response;
        try
        {
            response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new WebhookDeliveryException($"Webhook {Describe(_url)} did not answer within {limit.TotalMilliseconds:0} ms.");
        }
        catch (HttpRequestException exception)
        {
            throw new WebhookDeliveryException($"Webhook {Describe(_url)} could not be reached: {exception.Message}", exception);
        }

        using (response)
        {
            if ((int)response.StatusCode is >= 300 and < 400)
            {
                throw new WebhookDeliveryException(
                    $"Webhook {Describe(_url)} answered {(int)response.StatusCode} {response.ReasonPhrase}, a redirect to " +
                    $"{RedirectTarget(response)}; redirects are not followed.");
            }

            if (!response.IsSuccessStatusCode)
            {
                throw new WebhookDeliveryException(
                    $"Webhook {Describe(_url)} answered {(int)response.StatusCode} {response.ReasonPhrase}.");
            }
        }
    }

    private string? FirstMatchingPattern(string eventType) =>
        _subscription.EventTypes.FirstOrDefault(p => p.EndsWith('*')
            ? eventType.StartsWith(p[..^1], StringComparison.Ordinal)
            : string.Equals(p, eventType, StringComparison.Ordinal));

    // Scheme, host and path only: user info and query strings often carry credentials, and errors end up in logs
    // and dead letters.
    private static string Describe(Uri url) => url.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped);

    /// <summary>
    /// Where a 3xx pointed, as <see cref="Describe"/> shows a URL (a relative Location resolved against the webhook's),
    /// and cut to 200 characters: the receiver chooses it, and it ends up in logs and dead letters. On Unix a Location
    /// of "/path" parses as an absolute file URI, so that one is resolved as the relative path it is.
    /// </summary>
    private string RedirectTarget(HttpResponseMessage response)
    {
        if (response.Headers.Location is not { } location)
        {
            return "nowhere (no Location header)";
        }

        var target = Describe(location is { IsAbsoluteUri: true, IsFile: false } ? location : new Uri(_url, location.OriginalString));
        return target.Length <= 200 ? target : string.Concat(target.AsSpan(0, 199), "…");
    }
}

/// <summary>A delivery that did not get a 2xx.</summary>
public sealed class WebhookDeliveryException : Exception
{
    /// <summary>Creates the exception.</summary>
    public WebhookDeliveryException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public WebhookDeliveryException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception.</summary>
    public WebhookDeliveryException()
    {
    }
}
