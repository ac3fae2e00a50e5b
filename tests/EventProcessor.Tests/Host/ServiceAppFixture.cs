using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using EventProcessor.Host;
using EventProcessor.Tests.Support;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Host;

/// <summary>
/// The real service, built by <see cref="ServiceApp.Create"/> and started in-process on a free loopback port, with
/// an <see cref="HttpClient"/> pointed at it. One per test, like the database it serves.
/// </summary>
internal sealed class ServiceAppFixture : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ServiceAppFixture(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
        Client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public Uri BaseAddress { get; }

    public HttpClient Client { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>
    /// Starts the service against <paramref name="database"/>; polling is off unless asked for, and the admin
    /// endpoints are open (<c>ALLOW_UNAUTHENTICATED=true</c>) unless <paramref name="settings"/> set <c>ADMIN_API_KEY</c>.
    /// </summary>
    public static Task<ServiceAppFixture> StartAsync(
        TestDatabase database,
        bool enablePolling = false,
        IEnumerable<KeyValuePair<string, string?>>? settings = null,
        Action<IServiceCollection>? services = null) =>
        StartAsync(database.Url, enablePolling, settings, services);

    /// <summary>Starts the service against any <c>DATABASE_URL</c>; later <paramref name="settings"/> win.</summary>
    public static async Task<ServiceAppFixture> StartAsync(
        string databaseUrl,
        bool enablePolling = false,
        IEnumerable<KeyValuePair<string, string?>>? settings = null,
        Action<IServiceCollection>? services = null)
    {
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["DATABASE_URL"] = databaseUrl,
            ["PORT"] = "0",
            ["BIND_ADDRESS"] = "127.0.0.1",
            ["RUN_MIGRATIONS"] = "false",
            ["ENABLE_POLLING"] = enablePolling ? "true" : "false",
            ["LOG_LEVEL"] = "warn",
        };
        foreach (var (key, value) in settings ?? [])
        {
            overrides[key] = value;
        }

        // Outside Development the service will not start open by accident; tests that are not about keys say it is
        // on purpose. A test that sets ADMIN_API_KEY (or ALLOW_UNAUTHENTICATED itself) gets exactly what it set.
        if (!overrides.ContainsKey("ADMIN_API_KEY"))
        {
            overrides.TryAdd("ALLOW_UNAUTHENTICATED", "true");
        }

        var app = ServiceApp.Create([], overrides, services);
        try
        {
            await app.StartAsync();
            var address = app.Urls.Single();
            return new ServiceAppFixture(app, new Uri(address));
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    /// <summary>A loopback port nothing listens on (bound once, then released), for an unreachable database.</summary>
    public static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public Task<HttpResponseMessage> GetHealthAsync() => Client.GetAsync(new Uri("/health", UriKind.Relative));

    /// <summary>POSTs <paramref name="body"/> as it is (null: no body at all) with optional extra headers.</summary>
    public async Task<HttpResponseMessage> PostAsync(string path, string? body, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative));
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return await Client.SendAsync(request);
    }

    public Task<HttpResponseMessage> ProcessEventAsync(Guid eventId, params (string Name, string Value)[] headers) =>
        PostAsync("/process-event", JsonSerializer.Serialize(new { event_id = eventId }), headers);

    /// <summary>The service must still answer after whatever the test sent it.</summary>
    public async Task AssertStillServingAsync()
    {
        using var health = await GetHealthAsync();
        Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK), "GET /health after the previous request");
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        try
        {
            await _app.StopAsync();
        }
        finally
        {
            await _app.DisposeAsync();
        }
    }
}

/// <summary>Reads a response body as JSON, keeping the raw text for messages and leak checks.</summary>
internal static class ResponseJson
{
    public static async Task<(JsonElement Json, string Text)> ReadAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        using var document = JsonDocument.Parse(text);
        return (document.RootElement.Clone(), text);
    }
}
