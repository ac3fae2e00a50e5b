namespace EventProcessor.Handlers.Webhooks;

/// <summary>
/// One webhook: where matching events are POSTed and how they are signed. Bound from configuration
/// (<c>Webhooks__0__Url</c>, <c>Webhooks__0__EventTypes__0</c>, <c>Webhooks__0__Secret</c>, <c>Webhooks__0__TimeoutMs</c>).
/// </summary>
public sealed class WebhookSubscription
{
    /// <summary>The http(s) URL that receives the POST.</summary>
    public string Url { get; set; } = "";

    /// <summary>Exact event types, or prefixes ending in <c>*</c> (<c>user.*</c>; <c>*</c> alone takes everything).</summary>
    public List<string> EventTypes { get; set; } = [];

    /// <summary>The signing secret: <c>whsec_</c> + base64 (Standard Webhooks), or any other string used as UTF-8 bytes.</summary>
    public string Secret { get; set; } = "";

    /// <summary>How long one delivery may take. Default 10 000 ms; the handler timeout still applies on top.</summary>
    public int? TimeoutMs { get; set; }
}
