using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using EventProcessor.Tests.Service;
using EventProcessor.Tests.Support;
using NUnit.Framework.Interfaces;

namespace EventProcessor.Tests.Security;

/// <summary>
/// The slow-body deadline and the bounded audit rows, against the service as it ships (a child process, configured
/// by environment variables) and its own PostgreSQL; <see cref="RequestLimitTests"/> and <see cref="AuditLogTests"/>
/// take each apart in the in-process service.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.All)]
public sealed class ServiceProcessHardeningTests
{
    private const string AdminKey = "hardening-admin-key-81d2";

    private TestDatabase _db = null!;
    private ServiceProcess? _service;

    [SetUp]
    public async Task SetUp() => _db = await TestDatabase.CreateAsync();

    [TearDown]
    public async Task TearDown()
    {
        if (_service is not null)
        {
            if (TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed)
            {
                await TestContext.Out.WriteLineAsync(_service.Tail(60));
            }

            await _service.DisposeAsync();
        }

        await _db.DisposeAsync();
    }

    [Test]
    public async Task A_body_sent_faster_than_the_floor_but_too_slowly_in_all_is_answered_408_at_REQUEST_TIMEOUT_MS()
    {
        _service = await ServiceProcess.StartAsync(new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = _db.Url,
            ["ADMIN_API_KEY"] = AdminKey,
            ["RUN_MIGRATIONS"] = "false",
            ["REQUEST_TIMEOUT_MS"] = "2000",
        });

        // 50 bytes every 100 ms, twice Kestrel's 240 bytes/s floor: the 20,000-byte body would take 40 s.
        var body = $$$"""{"event_type": "slow.client", "payload": {"text": "{{{new string('x', 20_000)}}}"}}""";
        var head = $"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {AdminKey}\r\nContent-Type: application/json\r\n" +
            $"Content-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n";
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, _service.Port);
        var stream = client.GetStream();
        var clock = Stopwatch.StartNew();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        var answer = ReadAnswerAsync(stream);
        var bytes = Encoding.UTF8.GetBytes(body);
        for (var i = 0; i < bytes.Length && !answer.IsCompleted && clock.Elapsed < TimeSpan.FromSeconds(15); i += 50)
        {
            try
            {
                await stream.WriteAsync(bytes.AsMemory(i, Math.Min(50, bytes.Length - i)));
            }
            catch (IOException)
            {
                break;
            }

            await Task.WhenAny(answer, Task.Delay(100));
        }

        var (text, at) = await answer.WaitAsync(TimeSpan.FromSeconds(15));
        using var health = await _service.Http.GetAsync("/health");

        Assert.Multiple(async () =>
        {
            Assert.That(text, Does.StartWith("HTTP/1.1 408"), text);
            Assert.That(text, Does.Contain("REQUEST_TIMEOUT_MS"), "the problem names the setting");
            Assert.That(at, Is.InRange(TimeSpan.FromMilliseconds(1900), TimeSpan.FromSeconds(6)), "at the deadline, not at the end of the body");
            Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK), "still serving");
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM events"), Is.Zero, "nothing was written");
        });

        async Task<(string Text, TimeSpan At)> ReadAnswerAsync(NetworkStream network)
        {
            var buffer = new byte[4096];
            var read = await network.ReadAsync(buffer);
            return (Encoding.UTF8.GetString(buffer, 0, read), clock.Elapsed);
        }
    }

    [Test]
    public async Task Audit_rows_stay_small_whatever_a_replay_asks_and_an_empty_batch_run_writes_none()
    {
        var processed = await _db.InsertEventAsync("nobody.handles.this");
        await _db.ExecuteAsync("UPDATE events SET processed = true, processed_at = now() WHERE id = @processed", new { processed });
        _service = await ServiceProcess.StartAsync(new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = _db.Url,
            ["ADMIN_API_KEY"] = AdminKey,
            ["RUN_MIGRATIONS"] = "false",
            ["ENABLE_POLLING"] = "false",
        });
        Guid[] ids = [processed, .. Enumerable.Range(0, 999).Select(_ => Guid.NewGuid())];

        using var replay = await PostAsync("/replay", JsonSerializer.Serialize(new { event_ids = ids }));
        var replaySize = await _db.ScalarAsync<int>("SELECT octet_length(detail::text) + 16 * cardinality(target_ids) FROM audit_log");

        // The first batch run takes the replayed event, and is audited; the next ones claim nothing.
        using (var first = await PostAsync("/process-batch", "{}"))
        {
            Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        }

        var afterFirstBatch = await _db.ScalarAsync<long>("SELECT count(*) FROM audit_log");
        for (var i = 0; i < 3; i++)
        {
            using var batch = await PostAsync("/process-batch", "{}");
            Assert.That(batch.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        }

        Assert.Multiple(async () =>
        {
            Assert.That(replay.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await replay.Content.ReadAsStringAsync());
            Assert.That(replaySize, Is.LessThan(2048), "a row of counts and a bounded sample, not 40 KB of ids");
            Assert.That(afterFirstBatch, Is.EqualTo(2), "the batch run that claimed the replayed event is audited");
            Assert.That(await _db.ScalarAsync<long>("SELECT count(*) FROM audit_log"), Is.EqualTo(2), "batch runs that claimed nothing wrote no row");
        });
    }

    private async Task<HttpResponseMessage> PostAsync(string path, string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-API-Key", AdminKey);
        return await _service!.Http.SendAsync(request);
    }
}
