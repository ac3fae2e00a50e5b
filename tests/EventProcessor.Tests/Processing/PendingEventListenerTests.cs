using System.Diagnostics;
using Dapper;
using EventProcessor.Processing;
using EventProcessor.Storage;
using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;

namespace EventProcessor.Tests.Processing;

/// <summary>
/// A new or replayed event is claimed at once, through the listener's notification, not at the next poll: every engine
/// here polls once a minute, and each test waits five seconds at most.
/// </summary>
public sealed class PendingEventListenerTests
{
    private const int Workers = 2;
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Promptly = TimeSpan.FromSeconds(5);

    private TestDatabase _db = null!;
    private Recorder _recorder = null!;

    private string ListenerApplicationName => "event-processor" + EventDatabase.ListenerApplicationNameSuffix;

    [SetUp]
    public async Task SetUp()
    {
        _db = await TestDatabase.CreateAsync();
        _recorder = new Recorder();

        // Counts UPDATE statements on events, those that change no row included. Until the first event is handled,
        // each one is a claim: this is how a test sees that the engine has gone to sleep.
        await _db.ExecuteAsync(
            """
            CREATE SEQUENCE update_statements;
            CREATE FUNCTION count_update_statement() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM nextval('update_statements');
              RETURN NULL;
            END;
            $$;
            CREATE TRIGGER count_update_statements AFTER UPDATE ON events FOR EACH STATEMENT
              EXECUTE FUNCTION count_update_statement();
            """);
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_db is not null)
        {
            await _db.DisposeAsync();
        }
    }

    [Test]
    public async Task ANewEventIsClaimedAtOnceRatherThanAtTheNextPoll()
    {
        await using var host = await StartAsleepAsync();

        var id = await _db.InsertEventAsync("test.recorded", new { text = "new" });

        await WaitUntilProcessedPromptlyAsync(id, "a new event");
        Assert.That(_recorder.Calls, Is.EqualTo(new[] { (id, 1) }));
    }

    [Test]
    public async Task AnEventInsertedWhileTheListenerWasCutOffIsClaimedOnceItListensAgain()
    {
        await using var host = await StartAsleepAsync();
        var before = await ListenerPidAsync();

        // Keep the listener out while the event goes in: its notification then reaches no session of ours, and only
        // the wake-up that follows the listener's next LISTEN can find the event.
        await using var held = await _db.DataSource.OpenConnectionAsync();
        Guid missed;
        await SetConnectionsAllowedAsync(false);
        try
        {
            var terminated = await held.ExecuteScalarAsync<bool>("SELECT pg_terminate_backend(@before, 5000)", new { before });
            Assert.That(terminated, Is.True, "the listener's backend is gone");
            missed = await InsertEventAsync(held, "missed");
        }
        finally
        {
            await SetConnectionsAllowedAsync(true);
        }

        await WaitUntilProcessedPromptlyAsync(missed, "the event inserted while the listener was away, once it is back");

        // The connection it came back with listens too.
        var after = await ListenerPidAsync();
        var next = await InsertEventAsync(held, "next");
        await WaitUntilProcessedPromptlyAsync(next, "an event inserted after the listener came back");
        Assert.Multiple(() =>
        {
            Assert.That(after, Is.Not.EqualTo(before), "a new session listens");
            Assert.That(_recorder.Calls, Is.EqualTo(new[] { (missed, 1), (next, 1) }));
        });
    }

    [Test]
    public async Task AReplayedEventIsClaimedAtOnceRatherThanAtTheNextPoll()
    {
        // Processed before the engine starts, so it has nothing to claim until the replay.
        var id = Guid.NewGuid();
        await _db.ExecuteAsync(
            "INSERT INTO events (id, event_type, payload, processed, processed_at) VALUES (@id, 'test.recorded', '{\"text\": \"old\"}', true, now())",
            new { id });
        await using var host = await StartAsleepAsync();

        // The seed's replay, unchanged.
        await _db.ExecuteAsync(
            """UPDATE events SET processed = false, metadata = metadata || '{"replayed": true}'::jsonb WHERE id IN (@id)""",
            new { id });

        await WaitUntilProcessedPromptlyAsync(id, "a replayed event");
        Assert.That(_recorder.Calls, Is.EqualTo(new[] { (id, 1) }));
    }

    [Test]
    public async Task NoListenerRunsWhenPollingIsDisabled()
    {
        await using var host = await EngineHost.StartAsync(_db, p => p.AddHandler<RecordingHandler>(), o => o.EnablePolling = false);

        // It returns at once; a listener that ran instead would not end before the host stops.
        var listener = host.Services.GetServices<IHostedService>().OfType<PendingEventListener>().Single();
        Assert.That(listener.ExecuteTask, Is.Not.Null);
        await listener.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(await ListenerPidsAsync(), Is.Empty, "no listener connection");
    }

    /// <summary>
    /// Starts an engine and waits until it sleeps: each loop has made its first claim (loops that wait to claim at
    /// the same moment share one, so one or two claims), and the listener, once listening, has woken one loop for one
    /// more; then no claim for half a second. From then on only a notification, or the poll a minute later, makes it
    /// claim.
    /// </summary>
    private async Task<EngineHost> StartAsleepAsync()
    {
        var host = await EngineHost.StartAsync(
            _db,
            p => p.AddHandler<RecordingHandler>(),
            o =>
            {
                o.PollInterval = PollInterval;
                o.Workers = Workers;
            },
            s => s.AddSingleton(_recorder).AddSingleton(new Failures()));
        var claims = -1L;
        var since = Stopwatch.StartNew();
        await TestDatabase.WaitUntilAsync(
            async () =>
            {
                var now = await _db.ScalarAsync<long>("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM update_statements");
                if (now != claims)
                {
                    (claims, since) = (now, Stopwatch.StartNew());
                    return false;
                }

                return claims >= 2 && since.Elapsed >= TimeSpan.FromMilliseconds(500) && (await ListenerPidsAsync()).Count == 1;
            },
            "the engine has made its first claims, and one more when its listener woke it, and then none");
        return host;
    }

    private async Task WaitUntilProcessedPromptlyAsync(Guid id, string what)
    {
        var stopwatch = Stopwatch.StartNew();
        await TestDatabase.WaitUntilAsync(async () => (await _db.GetEventAsync(id)).Processed, $"{what} is processed", Promptly);
        await TestContext.Out.WriteLineAsync($"{what}: processed after {stopwatch.ElapsedMilliseconds} ms (poll interval {PollInterval.TotalSeconds} s)");
    }

    private static async Task<Guid> InsertEventAsync(NpgsqlConnection connection, string text)
    {
        var id = Guid.NewGuid();
        await connection.ExecuteAsync(
            "INSERT INTO events (id, event_type, payload) VALUES (@id, 'test.recorded', jsonb_build_object('text', @text))",
            new { id, text });
        return id;
    }

    private async Task<int> ListenerPidAsync()
    {
        var pids = await ListenerPidsAsync();
        Assert.That(pids, Has.Count.EqualTo(1), "one listener connection");
        return pids[0];
    }

    private async Task<List<int>> ListenerPidsAsync()
    {
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        return (await connection.QueryAsync<int>(
            "SELECT pid FROM pg_stat_activity WHERE datname = @name AND application_name = @app",
            new { name = _db.Name, app = ListenerApplicationName })).ToList();
    }

    private async Task SetConnectionsAllowedAsync(bool allowed)
    {
        await using var admin = new NpgsqlConnection(PostgresServer.AdminConnectionString);
        await admin.OpenAsync();
        await admin.ExecuteAsync($"ALTER DATABASE {_db.Name} ALLOW_CONNECTIONS {(allowed ? "true" : "false")}");
    }
}
