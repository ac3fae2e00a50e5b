using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using EventProcessor.Host;
using EventProcessor.Host.Endpoints;
using EventProcessor.Tests.Host;
using EventProcessor.Tests.Support;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace EventProcessor.Tests.Security;

/// <summary>
/// What a greedy or slow client gets: every POST endpoint has its own body limit (413, nothing written), and a client
/// that sends its headers or body too slowly is cut off while others are served.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.All)]
public sealed class RequestLimitTests
{
    private const int MaxBodyBytes = 2048;

    private TestDatabase _db = null!;

    [SetUp]
    public async Task SetUp() => _db = await TestDatabase.CreateAsync();

    [TearDown]
    public async Task TearDown()
    {
        if (_db is not null)
        {
            await _db.DisposeAsync();
        }
    }

    /// <summary>Each POST endpoint with the most bytes it takes (the ingress doors run with MAX_BODY_BYTES = 2048 here).</summary>
    public static IEnumerable<TestCaseData> PostEndpoints()
    {
        (string Path, int Limit)[] endpoints =
        [
            ("/process-event", AdminEndpoints.MaxBodyBytes),
            ("/process-batch", AdminEndpoints.MaxBodyBytes),
            ("/replay", AdminEndpoints.MaxReplayBodyBytes),
            ($"/dead-letters/{Guid.Empty}/retry", AdminEndpoints.MaxBodyBytes),
            ("/process", MaxBodyBytes),
            ("/events", MaxBodyBytes),
        ];
        foreach (var (path, limit) in endpoints)
        {
            foreach (var chunked in new[] { false, true })
            {
                yield return new TestCaseData(path, limit, chunked)
                    .SetName($"{path.TrimStart('/')} refuses a body one byte over {limit} ({(chunked ? "chunked" : "Content-Length")}) with 413");
            }
        }
    }

    [TestCaseSource(nameof(PostEndpoints))]
    public async Task A_body_over_the_endpoints_limit_gets_413_and_writes_nothing(string path, int limit, bool chunked)
    {
        await _db.InsertEventAsync("nobody.handles.this");
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("MAX_BODY_BYTES", MaxBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        var before = await SecurityChecks.CountRowsAsync(_db);

        // Valid JSON, so that only its size is wrong: {"event_id": "…", "padding": "xxx…"}.
        var prefix = "{\"padding\": \"";
        var body = prefix + new string('x', limit + 1 - prefix.Length - 2) + "\"}";
        Assert.That(Encoding.UTF8.GetByteCount(body), Is.EqualTo(limit + 1), "precondition: one byte over");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative))
        {
            Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(body)))
            {
                Headers = { ContentType = new MediaTypeHeaderValue("application/json") },
            },
        };
        if (chunked)
        {
            request.Headers.TransferEncodingChunked = true;
        }
        else
        {
            request.Content.Headers.ContentLength = limit + 1;
        }

        using var response = await service.Client.SendAsync(request);
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge), text);
            Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
            Assert.That(json.GetProperty("detail").GetString(), Does.Contain(limit.ToString(System.Globalization.CultureInfo.InvariantCulture)), "the detail names the limit");
            Assert.That(await SecurityChecks.CountRowsAsync(_db), Is.EqualTo(before), "nothing was written");
        });
        await service.AssertStillServingAsync();
    }

    [Test]
    public async Task A_client_that_pushes_8_MB_without_asking_is_answered_413_or_cut_off_and_nothing_is_written()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);
        var before = await SecurityChecks.CountRowsAsync(_db);
        const int Size = 8 * 1024 * 1024;
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, service.BaseAddress.Port);
        var stream = client.GetStream();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var answer = ReadAnswerAsync(stream, stop.Token);

        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {Size}\r\n\r\n{{\"a\": \""), stop.Token);
        var chunk = Encoding.ASCII.GetBytes(new string('x', 64 * 1024));
        try
        {
            for (var sent = 0; sent < Size && !answer.IsCompleted; sent += chunk.Length)
            {
                await stream.WriteAsync(chunk, stop.Token);
            }
        }
        catch (Exception exception) when (exception is IOException or SocketException)
        {
            // Cut off: the service will not take what it did not ask for.
        }

        var text = await answer;
        Assert.Multiple(async () =>
        {
            Assert.That(text, Is.Empty.Or.StartsWith("HTTP/1.1 413"), "a 413, or the connection cut before any answer");
            Assert.That(await SecurityChecks.CountRowsAsync(_db), Is.EqualTo(before), "nothing was written");
        });
        await service.AssertStillServingAsync();
    }

    [Test]
    public async Task Kestrel_limits_are_the_services_own_not_the_servers_defaults()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);

        var limits = service.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;

        Assert.Multiple(() =>
        {
            Assert.That(limits.MaxRequestBodySize, Is.EqualTo(1024 * 1024), "MAX_BODY_BYTES, not Kestrel's 28.6 MB");
            Assert.That(limits.RequestHeadersTimeout, Is.EqualTo(TimeSpan.FromSeconds(10)));
            Assert.That(limits.MinRequestBodyDataRate?.BytesPerSecond, Is.EqualTo(240));
            Assert.That(limits.MinRequestBodyDataRate?.GracePeriod, Is.EqualTo(TimeSpan.FromSeconds(5)));
            Assert.That(limits.MinResponseDataRate?.BytesPerSecond, Is.EqualTo(240));
        });
    }

    [Test]
    public async Task A_client_that_sends_its_headers_byte_by_byte_is_cut_off_while_others_are_served()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);
        var headers = "POST /process-event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
            "X-Slow: " + new string('s', 200) + "\r\n\r\n";

        var (cutOff, elapsed, served) = await TrickleAsync(service, Encoding.ASCII.GetBytes(headers), prefixSentAtOnce: 0);

        Assert.Multiple(() =>
        {
            Assert.That(cutOff, Is.True, $"the server closed the connection (after {elapsed.TotalSeconds:0.0} s)");
            Assert.That(elapsed, Is.GreaterThanOrEqualTo(HttpLimits.RequestHeadersTimeout - TimeSpan.FromSeconds(1)), "not before the headers timeout");
            Assert.That(served, Is.GreaterThanOrEqualTo(3), "GET /health answered 200 meanwhile");
        });
        await service.AssertStillServingAsync();
    }

    [Test]
    public async Task A_client_that_sends_its_body_too_slowly_is_cut_off_while_others_are_served()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);
        var before = await SecurityChecks.CountRowsAsync(_db);
        var body = """{"event_type": "slow.client", "payload": {"text": "__________________________________________________________"}}""";
        var request = "POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
            $"Content-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n" + body;
        var headersLength = request.Length - body.Length;

        var (cutOff, elapsed, served) = await TrickleAsync(service, Encoding.UTF8.GetBytes(request), prefixSentAtOnce: headersLength);

        Assert.Multiple(async () =>
        {
            Assert.That(cutOff, Is.True, $"the server closed the connection (after {elapsed.TotalSeconds:0.0} s)");
            Assert.That(served, Is.GreaterThanOrEqualTo(3), "GET /health answered 200 meanwhile");
            Assert.That(await SecurityChecks.CountRowsAsync(_db), Is.EqualTo(before), "nothing was written");
        });
        await service.AssertStillServingAsync();
    }

    /// <summary>
    /// Sends <paramref name="prefixSentAtOnce"/> bytes at once, then the rest one byte every 250 ms (4 bytes/s) until
    /// the server hangs up or 60 s pass; meanwhile asks GET /health over and over on another connection.
    /// </summary>
    private static async Task<(bool CutOff, TimeSpan Elapsed, int Served)> TrickleAsync(
        ServiceAppFixture service, byte[] request, int prefixSentAtOnce)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, service.BaseAddress.Port);
        var stream = client.GetStream();
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var closed = ReadUntilClosedAsync(stream, stop.Token);
        var health = KeepAskingForHealthAsync(service, closed);

        await stream.WriteAsync(request.AsMemory(0, prefixSentAtOnce), stop.Token);
        for (var i = prefixSentAtOnce; i < request.Length && !closed.IsCompleted && !stop.IsCancellationRequested; i++)
        {
            try
            {
                await stream.WriteAsync(request.AsMemory(i, 1), stop.Token);
                await Task.WhenAny(closed, Task.Delay(250, stop.Token));
            }
            catch (Exception exception) when (exception is IOException or SocketException or OperationCanceledException)
            {
                break;
            }
        }

        var cutOff = await closed;
        var elapsed = clock.Elapsed;
        var served = await health;
        return (cutOff, elapsed, served);
    }

    /// <summary>What the server answers until it ends the connection (or resets it).</summary>
    private static async Task<string> ReadAnswerAsync(NetworkStream stream, CancellationToken stop)
    {
        var received = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, stop)) > 0)
            {
                received.Write(buffer, 0, read);
            }
        }
        catch (Exception exception) when (exception is IOException or SocketException or OperationCanceledException)
        {
            // Reset or given up: what arrived before is the answer.
        }

        return Encoding.ASCII.GetString(received.ToArray());
    }

    /// <summary>True once the server ends the connection (end of stream or reset); false when <paramref name="stop"/> fires first.</summary>
    private static async Task<bool> ReadUntilClosedAsync(NetworkStream stream, CancellationToken stop)
    {
        var buffer = new byte[4096];
        try
        {
            while (await stream.ReadAsync(buffer, stop) > 0)
            {
                // A 408 may come first; the end of the stream is what counts.
            }

            return true;
        }
        catch (Exception exception) when (exception is IOException or SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Counts GET /health answers of 200 until <paramref name="until"/> completes; fails on anything else.</summary>
    private static async Task<int> KeepAskingForHealthAsync(ServiceAppFixture service, Task until)
    {
        var served = 0;
        while (!until.IsCompleted)
        {
            using var response = await service.GetHealthAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), "GET /health while a slow client holds a connection");
            served++;
            await Task.WhenAny(until, Task.Delay(500));
        }

        return served;
    }
}
