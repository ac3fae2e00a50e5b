using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace EventProcessor.Tests.Service;

/// <summary>One POST the receiver got, as it arrived, and what it was answered.</summary>
/// <param name="WebhookId">The <c>webhook-id</c> header, if sent.</param>
/// <param name="WebhookTimestamp">The <c>webhook-timestamp</c> header, if sent.</param>
/// <param name="WebhookSignature">The <c>webhook-signature</c> header, if sent.</param>
/// <param name="ContentType">The <c>Content-Type</c> header, if sent.</param>
/// <param name="Path">The request path.</param>
/// <param name="Body">The body bytes, exactly as sent.</param>
/// <param name="ArrivedAt">When the request arrived (the receiver's clock).</param>
/// <param name="DeliveryNumber">1 for the first POST with this <c>webhook-id</c>, 2 for the second, and so on.</param>
public sealed record ReceivedWebhook(
    string? WebhookId,
    string? WebhookTimestamp,
    string? WebhookSignature,
    string? ContentType,
    string Path,
    byte[] Body,
    DateTimeOffset ArrivedAt,
    int DeliveryNumber)
{
    /// <summary>The status the receiver chose for this request (set when the request is recorded).</summary>
    public int Status { get; init; }

    public Guid EventId => Guid.TryParse(WebhookId, out var id) ? id : Guid.Empty;
}

/// <summary>
/// A tiny Kestrel server on <c>http://127.0.0.1:&lt;free port&gt;</c> that plays a webhook endpoint: it records every
/// request (the service only POSTs) and answers it with the status, after the delay, that <see cref="Respond"/> picks.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly List<ReceivedWebhook> _received = [];
    private readonly Dictionary<string, int> _countsById = new(StringComparer.Ordinal);
    private readonly WebApplication _app;

    private WebhookReceiver(WebApplication app) => _app = app;

    /// <summary>Picks the answer to each request; called once per request, in arrival order. Default: 200 at once.</summary>
    public Func<ReceivedWebhook, (int Status, TimeSpan Delay)> Respond { get; set; } = _ => (200, TimeSpan.Zero);

    /// <summary>The <c>Location</c> header to answer each request with (a redirect); null, the default, sends none.</summary>
    public Func<ReceivedWebhook, Uri?> Location { get; set; } = _ => null;

    /// <summary>The base URL, such as <c>http://127.0.0.1:41234/</c>; valid once started.</summary>
    public Uri BaseUrl { get; private set; } = null!;

    /// <summary>Everything received so far, in arrival order.</summary>
    public IReadOnlyList<ReceivedWebhook> Received
    {
        get
        {
            lock (_gate)
            {
                return [.. _received];
            }
        }
    }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _received.Count;
            }
        }
    }

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.Run(receiver.HandleAsync);
        await app.StartAsync();
        receiver.BaseUrl = new Uri(app.Urls.Single().TrimEnd('/') + "/");
        return receiver;
    }

    /// <summary>The received POSTs for one event, in arrival order.</summary>
    public IReadOnlyList<ReceivedWebhook> For(Guid eventId) => [.. Received.Where(r => r.EventId == eventId)];

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body, context.RequestAborted);

        ReceivedWebhook received;
        TimeSpan delay;
        Uri? location;
        lock (_gate)
        {
            var id = request.Headers["webhook-id"].ToString();
            var number = _countsById.TryGetValue(id, out var seen) ? seen + 1 : 1;
            _countsById[id] = number;
            received = new ReceivedWebhook(
                Header(request, "webhook-id"),
                Header(request, "webhook-timestamp"),
                Header(request, "webhook-signature"),
                request.ContentType,
                request.Path.Value ?? "/",
                body.ToArray(),
                DateTimeOffset.UtcNow,
                number);
            (var status, delay) = Respond(received);
            location = Location(received);
            received = received with { Status = status };
            _received.Add(received);
        }

        try
        {
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, context.RequestAborted);
            }

            context.Response.StatusCode = received.Status;
            if (location is not null)
            {
                context.Response.Headers.Location = location.ToString();
            }

            await context.Response.WriteAsync($"answered {received.Status}", context.RequestAborted);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The sender gave up (timeout, shutdown, kill -9): nothing left to answer.
        }
    }

    private static string? Header(HttpRequest request, string name) =>
        request.Headers.TryGetValue(name, out var value) ? value.ToString() : null;

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(timeout.Token);
        await _app.DisposeAsync();
    }
}
