using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using EventProcessor.Events;
using EventProcessor.Handlers.Webhooks;
using EventProcessor.Handling;
using EventProcessor.Processing;
using EventProcessor.Tests.Service;
using Npgsql;

namespace EventProcessor.Tests.Handlers;

/// <summary><see cref="WebhookHandler"/> in-process against a real HTTP receiver: what counts as delivered, and what fails.</summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.All)]
public sealed class WebhookHandlerTests
{
    private const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    private static readonly DateTimeOffset Now = new(2026, 3, 14, 15, 9, 26, TimeSpan.Zero);

    // Handlers get the batch's session; these deliveries never ask for a transaction, so it never connects.
    private readonly NpgsqlDataSource _neverOpened = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=unused");
    private readonly HttpClient _client = new();
    private WebhookReceiver _receiver = null!;

    [SetUp]
    public async Task SetUp() => _receiver = await WebhookReceiver.StartAsync();

    [TearDown]
    public async Task TearDown()
    {
        if (_receiver is not null)
        {
            await _receiver.DisposeAsync();
        }

        _client.Dispose();
        await _neverOpened.DisposeAsync();
    }

    [Test]
    public async Task Posts_the_event_as_snake_case_JSON_with_Standard_Webhooks_headers()
    {
        var storedEvent = Event("order.placed", """{"order_id": 42, "note": "café"}""") with
        {
            AggregateType = "order",
            CreatedBy = "checkout",
            TenantId = "tenant-7",
            Metadata = """{"correlation_id": "c-1"}""",
            Version = 3,
        };

        await HandlerFor("order.placed").HandleAsync(Context(storedEvent), CancellationToken.None);

        Assert.That(_receiver.Received, Has.Count.EqualTo(1));
        var hook = _receiver.Received[0];
        var expectedSignature = "v1," + Convert.ToBase64String(HMACSHA256.HashData(
            Convert.FromBase64String(Secret["whsec_".Length..]),
            (byte[])[.. System.Text.Encoding.UTF8.GetBytes($"{storedEvent.Id}.{Now.ToUnixTimeSeconds()}."), .. hook.Body]));
        using var document = JsonDocument.Parse(hook.Body);
        var body = document.RootElement;
        Assert.Multiple(() =>
        {
            Assert.That(hook.Path, Is.EqualTo("/hooks/orders"));
            Assert.That(hook.ContentType, Does.StartWith("application/json"));
            Assert.That(hook.WebhookId, Is.EqualTo(storedEvent.Id.ToString()));
            Assert.That(hook.WebhookTimestamp, Is.EqualTo(Now.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(hook.WebhookSignature, Is.EqualTo(expectedSignature));
            Assert.That(body.GetProperty("id").GetString(), Is.EqualTo(storedEvent.Id.ToString()));
            Assert.That(body.GetProperty("event_type").GetString(), Is.EqualTo("order.placed"));
            Assert.That(body.GetProperty("aggregate_id").GetString(), Is.EqualTo(storedEvent.AggregateId.ToString()));
            Assert.That(body.GetProperty("aggregate_type").GetString(), Is.EqualTo("order"));
            Assert.That(body.GetProperty("payload").GetRawText(), Is.EqualTo("""{"order_id": 42, "note": "café"}"""), "the payload is passed through as stored");
            Assert.That(body.GetProperty("metadata").GetProperty("correlation_id").GetString(), Is.EqualTo("c-1"));
            Assert.That(body.GetProperty("version").GetInt32(), Is.EqualTo(3));
            Assert.That(body.GetProperty("created_at").GetDateTimeOffset(), Is.EqualTo(storedEvent.CreatedAt));
            Assert.That(body.GetProperty("created_by").GetString(), Is.EqualTo("checkout"));
            Assert.That(body.GetProperty("tenant_id").GetString(), Is.EqualTo("tenant-7"));
        });
    }

    [TestCase(200)]
    [TestCase(201)]
    [TestCase(202)]
    [TestCase(204)]
    public async Task Any_2xx_is_a_delivery(int status)
    {
        _receiver.Respond = _ => (status, TimeSpan.Zero);

        await HandlerFor("order.placed").HandleAsync(Context(Event("order.placed")), CancellationToken.None);

        Assert.That(_receiver.Count, Is.EqualTo(1));
    }

    [TestCase(400)]
    [TestCase(404)]
    [TestCase(410)]
    [TestCase(429)]
    [TestCase(500)]
    [TestCase(503)]
    public void Any_other_status_fails_the_attempt_naming_it(int status)
    {
        _receiver.Respond = _ => (status, TimeSpan.Zero);
        var context = Context(Event("order.placed"));

        var exception = Assert.ThrowsAsync<WebhookDeliveryException>(
            () => HandlerFor("order.placed").HandleAsync(context, CancellationToken.None));

        Assert.That(exception!.Message, Does.Contain($"answered {status}"));
    }

    [Test]
    public void A_receiver_slower_than_TimeoutMs_fails_the_attempt()
    {
        _receiver.Respond = _ => (200, TimeSpan.FromSeconds(10));
        var context = Context(Event("order.placed"));
        var clock = Stopwatch.StartNew();

        var exception = Assert.ThrowsAsync<WebhookDeliveryException>(
            () => HandlerFor("order.placed", timeoutMs: 300).HandleAsync(context, CancellationToken.None));

        Assert.Multiple(() =>
        {
            Assert.That(exception!.Message, Does.Contain("did not answer within 300 ms"));
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "the timeout cut the wait short");
        });
    }

    [Test]
    public void An_unreachable_receiver_fails_the_attempt()
    {
        var closedPort = ClosedPort();
        var handler = HandlerFor("order.placed", url: new Uri($"http://127.0.0.1:{closedPort}/hooks"));
        var context = Context(Event("order.placed"));

        var exception = Assert.ThrowsAsync<WebhookDeliveryException>(() => handler.HandleAsync(context, CancellationToken.None));

        Assert.That(exception!.Message, Does.Contain("could not be reached"));
    }

    [Test]
    public void Errors_name_the_webhook_without_its_query_string()
    {
        _receiver.Respond = _ => (500, TimeSpan.Zero);
        var handler = HandlerFor("order.placed", url: new Uri(_receiver.BaseUrl, "hooks/orders?token=s3cr3t-t0ken"));
        var context = Context(Event("order.placed"));

        var exception = Assert.ThrowsAsync<WebhookDeliveryException>(() => handler.HandleAsync(context, CancellationToken.None));

        Assert.That(exception!.Message, Does.Contain("/hooks/orders").And.Not.Contain("s3cr3t-t0ken"));
    }

    [Test]
    public void Errors_name_the_webhook_without_credentials_in_its_user_info()
    {
        // Errors go to logs, events.metadata.last_error and event_dead_letters.error_message.
        _receiver.Respond = _ => (500, TimeSpan.Zero);
        var url = new UriBuilder(new Uri(_receiver.BaseUrl, "hooks/orders")) { UserName = "hookuser", Password = "Pa55w0rd-in-url" }.Uri;
        var handler = HandlerFor("order.placed", url: url);
        var context = Context(Event("order.placed"));

        var exception = Assert.ThrowsAsync<WebhookDeliveryException>(() => handler.HandleAsync(context, CancellationToken.None));

        Assert.That(exception!.Message, Does.Contain("/hooks/orders").And.Not.Contain("Pa55w0rd-in-url"));
    }

    [Test]
    public void Shutdown_cancels_the_delivery_as_a_cancellation_not_a_failure()
    {
        _receiver.Respond = _ => (200, TimeSpan.FromSeconds(10));
        var context = Context(Event("order.placed"));
        using var stopping = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        Assert.CatchAsync<OperationCanceledException>(() => HandlerFor("order.placed").HandleAsync(context, stopping.Token));
    }

    [Test]
    public async Task A_subscription_whose_patterns_overlap_delivers_once()
    {
        var subscription = Subscription(new Uri(_receiver.BaseUrl, "hooks/orders"), null, "order.*", "order.placed");
        var wildcard = new WebhookHandler(subscription, "order.*", _client, new FixedClock());
        var exact = new WebhookHandler(subscription, "order.placed", _client, new FixedClock());
        var context = Context(Event("order.placed"));

        // The engine invokes every matching registration; only the first matching pattern may deliver.
        await wildcard.HandleAsync(context, CancellationToken.None);
        await exact.HandleAsync(context, CancellationToken.None);

        Assert.That(_receiver.Count, Is.EqualTo(1));
    }

    private WebhookHandler HandlerFor(string pattern, Uri? url = null, int? timeoutMs = null) =>
        new(Subscription(url ?? new Uri(_receiver.BaseUrl, "hooks/orders"), timeoutMs, pattern), pattern, _client, new FixedClock());

    private static WebhookSubscription Subscription(Uri url, int? timeoutMs, params string[] eventTypes) =>
        new() { Url = url.ToString(), EventTypes = [.. eventTypes], Secret = Secret, TimeoutMs = timeoutMs };

    private static StoredEvent Event(string eventType, string payload = """{"order_id": 1}""") => new(
        Id: Guid.NewGuid(),
        EventType: eventType,
        AggregateId: Guid.NewGuid(),
        AggregateType: null,
        Payload: payload,
        Metadata: "{}",
        Version: 1,
        CreatedAt: new DateTimeOffset(2026, 3, 14, 15, 0, 0, TimeSpan.Zero).AddTicks(1234560),
        CreatedBy: null,
        TenantId: null,
        Attempt: 1,
        CorrelationId: "");

    private EventContext<JsonElement> Context(StoredEvent storedEvent)
    {
        var attempt = new EventAttempt(storedEvent, new BatchSession(_neverOpened), new JsonSerializerOptions(JsonSerializerDefaults.Web));
        using var payload = JsonDocument.Parse(storedEvent.Payload);
        return new EventContext<JsonElement>(attempt, payload.RootElement.Clone());
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private sealed class FixedClock : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => Now;
    }
}
