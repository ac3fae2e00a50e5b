using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Dapper;
using EventProcessor.Host;
using EventProcessor.Host.Endpoints;
using EventProcessor.Tests.Host;
using EventProcessor.Tests.Processing;
using EventProcessor.Tests.Support;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace EventProcessor.Tests.Security;

/// <summary>
/// What a greedy or slow client gets: every POST endpoint has its own body limit (413, nothing written), a client
/// that sends its headers or body too slowly is cut off while others are served (a body at the latest at
/// REQUEST_TIMEOUT_MS, with 408), and connections beyond MAX_CONCURRENT_CONNECTIONS are refused.
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
            Assert.That(limits.MaxConcurrentConnections, Is.EqualTo(1000), "MAX_CONCURRENT_CONNECTIONS, not unlimited");
        });
    }

    [Test]
    public async Task A_client_that_sends_its_headers_byte_by_byte_is_cut_off_while_others_are_served()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db);
        var headers = "POST /process-event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
            "X-Slow: " + new string('s', 200) + "\r\n\r\n";

        var (cutOff, elapsed, served, _, _) = await TrickleAsync(service, Encoding.ASCII.GetBytes(headers), prefixSentAtOnce: 0);

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

        var (cutOff, elapsed, served, _, _) = await TrickleAsync(service, Encoding.UTF8.GetBytes(request), prefixSentAtOnce: headersLength);

        Assert.Multiple(async () =>
        {
            Assert.That(cutOff, Is.True, $"the server closed the connection (after {elapsed.TotalSeconds:0.0} s)");
            Assert.That(served, Is.GreaterThanOrEqualTo(3), "GET /health answered 200 meanwhile");
            Assert.That(await SecurityChecks.CountRowsAsync(_db), Is.EqualTo(before), "nothing was written");
        });
        await service.AssertStillServingAsync();
    }

    [Test]
    public async Task A_body_sent_above_the_data_rate_but_too_slowly_in_all_is_cut_off_at_the_deadline_with_408()
    {
        // 50 bytes every 100 ms is twice the 240 bytes/s floor, so only the deadline stops it: the 20,000-byte body
        // would take 40 s (a 1 MiB one, 35 minutes).
        const int DeadlineMs = 2000;
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("REQUEST_TIMEOUT_MS", DeadlineMs.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        var before = await SecurityChecks.CountRowsAsync(_db);
        var body = $$$"""{"event_type": "slow.client", "payload": {"text": "{{{new string('x', 20_000 - 53)}}}"}}""";
        var request = "POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
            $"Content-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n" + body;
        var headersLength = request.Length - body.Length;

        var trickle = await TrickleAsync(
            service, Encoding.UTF8.GetBytes(request), headersLength, bytesPerWrite: 50, intervalMs: 100, giveUpAfter: TimeSpan.FromMilliseconds(DeadlineMs + 8000));
        await TestContext.Out.WriteLineAsync($"answered after {trickle.AnsweredAt?.TotalSeconds:0.00} s, closed after {trickle.Elapsed.TotalSeconds:0.00} s:\n{trickle.Answer}");

        var answer = trickle.Answer;
        var problem = answer.Contains("\r\n\r\n", StringComparison.Ordinal) ? answer[(answer.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..] : "";
        Assert.Multiple(async () =>
        {
            // After its answer Kestrel reads on for up to 5 s, so that the client reads it rather than a reset.
            Assert.That(trickle.CutOff, Is.True, $"the server closed the connection within {DeadlineMs + 8000} ms");
            Assert.That(answer, Does.StartWith("HTTP/1.1 408"), "answered 408");
            Assert.That(answer, Does.Contain("Content-Type: application/problem+json"));
            Assert.That(answer, Does.Contain("Connection: close"));
            Assert.That(problem, Does.Contain("REQUEST_TIMEOUT_MS"), "the problem names the setting");
            Assert.That(trickle.AnsweredAt, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(DeadlineMs - 100)), "not before the deadline");
            Assert.That(trickle.AnsweredAt, Is.LessThan(TimeSpan.FromMilliseconds(DeadlineMs + 4000)), "at the deadline, not at the end of the body");
            Assert.That(trickle.Served, Is.GreaterThanOrEqualTo(2), "GET /health answered 200 meanwhile");
            Assert.That(await SecurityChecks.CountRowsAsync(_db), Is.EqualTo(before), "nothing was written");
        });
        await service.AssertStillServingAsync();
    }

    [Test]
    public async Task The_deadline_covers_receiving_a_request_not_the_run_that_follows()
    {
        // The body arrives at once; the handler then runs three times as long as the deadline, and its run is answered.
        const int DeadlineMs = 500;
        var gate = new Gate();
        var id = await _db.InsertEventAsync("security.holding");
        await using var service = await ServiceAppFixture.StartAsync(
            _db, settings: [new("REQUEST_TIMEOUT_MS", DeadlineMs.ToString(System.Globalization.CultureInfo.InvariantCulture))], services: SecurityHandlers.Register(gate));

        var clock = Stopwatch.StartNew();
        var run = service.ProcessEventAsync(id);
        await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await Task.Delay(TimeSpan.FromMilliseconds(3 * DeadlineMs) - clock.Elapsed); // the subject: time past the deadline
        gate.Release.TrySetResult();
        using var response = await run;
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(() =>
        {
            Assert.That(clock.Elapsed, Is.GreaterThan(TimeSpan.FromMilliseconds(3 * DeadlineMs)), "precondition: the run outlasted the deadline");
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            Assert.That(json.GetProperty("outcome").GetString(), Is.EqualTo("completed"), text);
        });
    }

    [Test]
    public async Task The_deadline_ends_once_the_body_is_in_so_a_write_that_waits_longer_is_answered()
    {
        // The body arrives at once; its insert then waits, three times the deadline, on a row another transaction
        // holds with the same id. The write goes on with the request's token, which the deadline no longer cancels.
        const int DeadlineMs = 500;
        var id = Guid.NewGuid();
        await using var service = await ServiceAppFixture.StartAsync(
            _db, settings: [new("REQUEST_TIMEOUT_MS", DeadlineMs.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        await using var blocker = await _db.DataSource.OpenConnectionAsync();
        await using var transaction = await blocker.BeginTransactionAsync();
        await blocker.ExecuteAsync("INSERT INTO events (id, event_type, payload) VALUES (@id, 'slow.write', '{}')", new { id }, transaction);

        var clock = Stopwatch.StartNew();
        var publish = service.PostAsync("/events", $$$"""{"id": "{{{id}}}", "event_type": "slow.write", "payload": {"n": 1}}""");
        await WaitUntilAsync(
            async () => await _db.ScalarAsync<long>(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") > 0,
            "the service's insert waits for the row held");
        await Task.Delay(TimeSpan.FromMilliseconds(3 * DeadlineMs) - clock.Elapsed); // the subject: time past the deadline
        await transaction.RollbackAsync();
        using var response = await publish;
        var (json, text) = await ResponseJson.ReadAsync(response);

        Assert.Multiple(async () =>
        {
            Assert.That(clock.Elapsed, Is.GreaterThan(TimeSpan.FromMilliseconds(3 * DeadlineMs)), "precondition: the write outlasted the deadline");
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
            Assert.That(json.GetProperty("written").GetInt32(), Is.EqualTo(1), text);
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events WHERE id = @id", new { id }), Is.EqualTo(1));
        });
    }

    [Test]
    public async Task Connections_beyond_MAX_CONCURRENT_CONNECTIONS_are_refused_while_those_held_are_served()
    {
        await using var service = await ServiceAppFixture.StartAsync(_db, settings: [new("MAX_CONCURRENT_CONNECTIONS", "3")]);
        await service.AssertStillServingAsync(); // the fixture's client holds the first connection, kept alive
        using var second = await HeldConnectionAsync(service);
        using var third = await HeldConnectionAsync(service);

        var refused = await AskOnANewConnectionAsync(service);
        var secondStillServed = await AskAsync(second.GetStream());
        await service.AssertStillServingAsync();
        third.Dispose();
        string? servedOnceOneIsFree = null;
        await WaitUntilAsync(async () => (servedOnceOneIsFree = await AskOnANewConnectionAsync(service)).StartsWith("HTTP/1.1 200", StringComparison.Ordinal), "a new connection is served once one is closed");

        Assert.Multiple(() =>
        {
            Assert.That(refused, Is.Empty, "the fourth connection is closed with no answer");
            Assert.That(secondStillServed, Does.StartWith("HTTP/1.1 200"), "a connection held is still served");
            Assert.That(servedOnceOneIsFree, Does.StartWith("HTTP/1.1 200"));
        });
    }

    /// <summary>A connection on which the service has answered one request, kept alive, so that it counts.</summary>
    private static async Task<TcpClient> HeldConnectionAsync(ServiceAppFixture service)
    {
        var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, service.BaseAddress.Port);
        Assert.That(await AskAsync(client.GetStream()), Does.StartWith("HTTP/1.1 200"), "precondition: a connection within the limit is served");
        return client;
    }

    private static async Task<string> AskOnANewConnectionAsync(ServiceAppFixture service)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, service.BaseAddress.Port);
        return await AskAsync(client.GetStream());
    }

    /// <summary>GET /health on <paramref name="stream"/>: the answer's head, or "" when the server closes (or resets) it first.</summary>
    private static async Task<string> AskAsync(NetworkStream stream)
    {
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var received = new StringBuilder();
        var buffer = new byte[4096];
        try
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), patience.Token);
            int read;
            while (!received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal) && (read = await stream.ReadAsync(buffer, patience.Token)) > 0)
            {
                received.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
        }
        catch (Exception exception) when (exception is IOException or SocketException)
        {
            // Reset: refused.
        }

        return received.ToString();
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!await condition())
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), $"timed out waiting until {what}");
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// Sends <paramref name="prefixSentAtOnce"/> bytes at once, then the rest <paramref name="bytesPerWrite"/> bytes
    /// every <paramref name="intervalMs"/> ms until the server hangs up or <paramref name="giveUpAfter"/> passes;
    /// meanwhile asks GET /health over and over on another connection.
    /// </summary>
    private static async Task<Trickle> TrickleAsync(
        ServiceAppFixture service,
        byte[] request,
        int prefixSentAtOnce,
        int bytesPerWrite = 1,
        int intervalMs = 250,
        TimeSpan? giveUpAfter = null)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, service.BaseAddress.Port);
        var stream = client.GetStream();
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource(giveUpAfter ?? TimeSpan.FromSeconds(60));
        var closed = ReadUntilClosedAsync(stream, clock, stop.Token);
        var health = KeepAskingForHealthAsync(service, closed);

        await stream.WriteAsync(request.AsMemory(0, prefixSentAtOnce), stop.Token);
        for (var i = prefixSentAtOnce; i < request.Length && !closed.IsCompleted && !stop.IsCancellationRequested; i += bytesPerWrite)
        {
            try
            {
                await stream.WriteAsync(request.AsMemory(i, Math.Min(bytesPerWrite, request.Length - i)), stop.Token);
                await Task.WhenAny(closed, Task.Delay(intervalMs, stop.Token));
            }
            catch (Exception exception) when (exception is IOException or SocketException or OperationCanceledException)
            {
                break;
            }
        }

        var (cutOff, answer, answeredAt) = await closed;
        var elapsed = clock.Elapsed;
        var served = await health;
        return new Trickle(cutOff, elapsed, served, answer, answeredAt);
    }

    /// <summary>What a trickling client saw.</summary>
    /// <param name="CutOff">The server ended the connection.</param>
    /// <param name="Elapsed">From connecting until then (or until the client gave up).</param>
    /// <param name="Served">GET /health answers of 200 on another connection meanwhile.</param>
    /// <param name="Answer">What the server sent back, if anything.</param>
    /// <param name="AnsweredAt">When its first byte arrived; null when it sent nothing.</param>
    private sealed record Trickle(bool CutOff, TimeSpan Elapsed, int Served, string Answer, TimeSpan? AnsweredAt);

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

    /// <summary>
    /// Whether the server ended the connection (end of stream or reset; false when <paramref name="stop"/> fires
    /// first), what it sent before, and when that began.
    /// </summary>
    private static async Task<(bool Closed, string Answer, TimeSpan? AnsweredAt)> ReadUntilClosedAsync(
        NetworkStream stream, Stopwatch clock, CancellationToken stop)
    {
        var received = new MemoryStream();
        TimeSpan? answeredAt = null;
        var buffer = new byte[4096];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, stop)) > 0)
            {
                // A 408 may come first; the end of the stream is what counts.
                answeredAt ??= clock.Elapsed;
                received.Write(buffer, 0, read);
            }

            return (true, Encoding.ASCII.GetString(received.ToArray()), answeredAt);
        }
        catch (Exception exception) when (exception is IOException or SocketException)
        {
            return (true, Encoding.ASCII.GetString(received.ToArray()), answeredAt);
        }
        catch (OperationCanceledException)
        {
            return (false, Encoding.ASCII.GetString(received.ToArray()), answeredAt);
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
