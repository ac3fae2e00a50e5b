using System.Diagnostics;
using Dapper;
using EventProcessor.Handling;
using EventProcessor.Storage;
using EventProcessor.Tests.Processing;
using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// The engine started and stopped again and again while events keep arriving: every stop is prompt, leaves no
/// connection, no claim and no handler behind, and every event is still handled exactly once.
/// </summary>
[Category("Faults")]
public sealed class StartStopStressTests
{
    // The engine's pool, and its listener's own connection.
    private static readonly string[] ApplicationNames = ["event-processor", "event-processor" + EventDatabase.ListenerApplicationNameSuffix];

    private TestDatabase _db = null!;

    [SetUp]
    public async Task SetUp()
    {
        _db = await TestDatabase.CreateAsync();
        await _db.ExecuteAsync(
            """
            CREATE TABLE stress_projection (event_id uuid NOT NULL);

            -- Every change of a lease, with the server's clock at the time: claims (attempts go up), renewals and
            -- completions or releases (the lease goes), each under the instance that held it.
            CREATE TABLE lease_log (event_id uuid NOT NULL, instance text NOT NULL, kind text NOT NULL, at timestamptz NOT NULL);
            CREATE FUNCTION log_lease() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              INSERT INTO lease_log VALUES (
                NEW.id, coalesce(NEW.locked_by, OLD.locked_by),
                CASE WHEN NEW.attempts > OLD.attempts THEN 'claim' WHEN NEW.locked_by IS NULL THEN 'end' ELSE 'renew' END,
                clock_timestamp());
              RETURN NEW;
            END;
            $$;
            CREATE TRIGGER log_lease AFTER UPDATE OF locked_by, locked_until ON events FOR EACH ROW
              WHEN (OLD.locked_by IS DISTINCT FROM NEW.locked_by OR OLD.locked_until IS DISTINCT FROM NEW.locked_until)
              EXECUTE FUNCTION log_lease();
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
    public async Task FiftyStartStopCyclesUnderLoadLeaveNothingBehindAndLoseNothing()
    {
        const int Cycles = 50;
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var threadsBefore = Process.GetCurrentProcess().Threads.Count;
        Assert.That(await EngineConnectionsAsync(), Is.Empty, "precondition: no engine connections");

        var recorder = new Recorder();
        using var stopProducing = new CancellationTokenSource();
        var produced = ProduceAsync(stopProducing.Token);

        var stops = new List<TimeSpan>();
        var closes = new List<TimeSpan>();
        var stoppedAt = new Dictionary<string, DateTime>();
        var idleAfterStop = new List<int>();
        var busyAfterStop = new List<string>();
        var heldAfterStop = new List<string>();
        var handlerCallsAfterStop = 0;
        var stoppedMidHandler = 0;
        long released = 0;
        long handled = 0;
        for (var cycle = 1; cycle <= Cycles; cycle++)
        {
            var instance = $"stress-{cycle}";
            var probe = new StopProbe();
            var host = await EngineHost.StartAsync(
                _db,
                p => p.AddHandler<StressHandler>(),
                o =>
                {
                    o.InstanceName = instance;
                    o.BatchSize = 10;
                },
                s => s.AddSingleton(probe).AddSingleton(recorder));
            await Task.Delay(random.Next(50, 400));

            stoppedMidHandler += probe.Running > 0 ? 1 : 0;
            var stopwatch = Stopwatch.StartNew();
            await host.StopAsync();
            stops.Add(stopwatch.Elapsed);
            probe.MarkStopped();
            stoppedAt[instance] = await _db.ScalarAsync<DateTime>("SELECT clock_timestamp()");
            released += host.Engine.Stats.ReleasedCount;
            handled += host.Engine.Stats.SuccessCount;

            // Stopped but not yet disposed: everything the engine opened is back in its pool, nothing is running.
            var connections = await EngineConnectionsAsync();
            idleAfterStop.Add(connections.Count(c => c.State == "idle"));
            busyAfterStop.AddRange(connections.Where(c => c.State != "idle").Select(c => $"cycle {cycle}: {c.State}: {c.Query}"));
            heldAfterStop.AddRange((await _db.ScalarAsync<Guid[]>(
                "SELECT coalesce(array_agg(id), '{}') FROM events WHERE locked_by = @instance", new { instance }))
                .Select(id => $"cycle {cycle}: {id}"));

            // Disposed: the engine's data source is gone with its host, and with it every connection it had. The
            // test clears no pool; the server takes a moment to see a closed socket.
            stopwatch.Restart();
            await host.DisposeAsync();
            await TestDatabase.WaitUntilAsync(
                async () => (await EngineConnectionsAsync()).Count == 0,
                $"the engine's connections of cycle {cycle} are closed",
                TimeSpan.FromSeconds(10));
            closes.Add(stopwatch.Elapsed);
            handlerCallsAfterStop += probe.CallsAfterStop;
        }

        await stopProducing.CancelAsync();
        var total = await produced;

        // A last engine drains what the cycles left.
        var drain = new StopProbe();
        await using (var last = await EngineHost.StartAsync(
            _db, p => p.AddHandler<StressHandler>(), o => o.InstanceName = "stress-drain", s => s.AddSingleton(drain).AddSingleton(recorder)))
        {
            await _db.WaitForProcessedAsync(total, TimeSpan.FromSeconds(90));
        }

        await using var connection = await _db.DataSource.OpenConnectionAsync();
        var lateLeaseWrites = (await connection.QueryAsync<(string Instance, string Kind, DateTime At)>(
            "SELECT instance, kind, at FROM lease_log WHERE instance LIKE 'stress-%' AND instance <> 'stress-drain'"))
            .Where(w => w.At > stoppedAt[w.Instance])
            .Select(w => $"{w.Instance} {w.Kind} at {w.At:O}, stopped at {stoppedAt[w.Instance]:O}")
            .ToList();
        var claimsPerCycle = (await connection.QueryAsync<(string Instance, long Claims)>(
            "SELECT instance, count(*) FROM lease_log WHERE kind = 'claim' GROUP BY instance")).ToDictionary(r => r.Instance, r => r.Claims);
        var projected = await connection.QuerySingleAsync<(long Rows, long Distinct)>(
            "SELECT count(*), count(DISTINCT event_id) FROM stress_projection");
        var events = await connection.QuerySingleAsync<(long Processed, long Dead, long Skipped, int MaxAttempts)>(
            """
            SELECT count(*) FILTER (WHERE processed), count(*) FILTER (WHERE (metadata->>'dead_lettered')::boolean),
                   count(*) FILTER (WHERE (metadata->>'skipped')::boolean), max(attempts)
            FROM events
            """);
        var threadsAfter = Process.GetCurrentProcess().Threads.Count;

        await TestContext.Out.WriteLineAsync(
            $"{Cycles} start/stop cycles (seed {seed}) while {total} events were inserted; cycles that claimed: " +
            $"{claimsPerCycle.Keys.Count(k => k != "stress-drain")}, events handled in them {handled}, by the drain {drain.Calls}");
        await TestContext.Out.WriteLineAsync(
            $"StopAsync: max {stops.Max().TotalMilliseconds:0} ms, mean {stops.Average(s => s.TotalMilliseconds):0} ms; " +
            $"stopped with a handler running: {stoppedMidHandler}; events released on stop: {released}");
        await TestContext.Out.WriteLineAsync(
            $"engine connections after StopAsync: idle in pool max {idleAfterStop.Max()}, busy {busyAfterStop.Count}; " +
            $"after dispose: 0 within max {closes.Max().TotalMilliseconds:0} ms (mean {closes.Average(c => c.TotalMilliseconds):0} ms)");
        await TestContext.Out.WriteLineAsync(
            $"lease writes after a StopAsync returned: {lateLeaseWrites.Count}; handler calls after stop: {handlerCallsAfterStop}; " +
            $"rows still held after stop: {heldAfterStop.Count}; test-process threads {threadsBefore} → {threadsAfter}");
        await TestContext.Out.WriteLineAsync(
            $"events: {total} inserted, {events.Processed} processed, max attempts {events.MaxAttempts}; handler calls {recorder.Ids.Count}; " +
            $"projection rows {projected.Rows} ({projected.Distinct} distinct)");

        Assert.Multiple(() =>
        {
            Assert.That(stops.Max(), Is.LessThan(TimeSpan.FromSeconds(5)), "every stop completes within 5 s");
            Assert.That(busyAfterStop, Is.Empty, "no engine connection is busy once StopAsync returned");
            Assert.That(heldAfterStop, Is.Empty, "a stopped engine holds no event");
            Assert.That(lateLeaseWrites, Is.Empty, "no claim, renewal or completion after StopAsync returned");
            Assert.That(handlerCallsAfterStop, Is.Zero, "no handler runs after StopAsync returned");
            Assert.That(events.Processed, Is.EqualTo(total), "every event processed");
            Assert.That(events.Dead + events.Skipped, Is.Zero);
            Assert.That(events.MaxAttempts, Is.EqualTo(1), "stopping spends no attempt");
            Assert.That(projected.Rows, Is.EqualTo(total), "each event's transactional write committed once");
            Assert.That(projected.Distinct, Is.EqualTo(total));
            Assert.That(recorder.Ids, Has.Count.EqualTo(total), "no handler ran twice: the one running at a stop finished within the grace");
            Assert.That(recorder.Ids, Is.Unique);
            Assert.That(claimsPerCycle.Keys.Count(k => k != "stress-drain"), Is.GreaterThan(Cycles / 2), "most cycles did work");
        });
    }

    private async Task<int> ProduceAsync(CancellationToken stop)
    {
        var count = 0;
        while (!stop.IsCancellationRequested)
        {
            await _db.InsertEventAsync(StressHandler.EventType, new { text = "stress" });
            count++;
            try
            {
                await Task.Delay(20, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return count;
    }

    private async Task<List<(string State, string Query)>> EngineConnectionsAsync()
    {
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        return (await connection.QueryAsync<(string State, string Query)>(
            "SELECT coalesce(state, ''), coalesce(query, '') FROM pg_stat_activity WHERE datname = @name AND application_name = ANY(@apps)",
            new { name = _db.Name, apps = ApplicationNames })).ToList();
    }
}

/// <summary>What one engine's handlers did around its stop.</summary>
public sealed class StopProbe
{
    private int _running;
    private int _calls;
    private int _callsAfterStop;
    private volatile bool _stopped;

    public int Running => Volatile.Read(ref _running);

    public int Calls => Volatile.Read(ref _calls);

    /// <summary>Handler calls that started after, or were still running when, StopAsync returned.</summary>
    public int CallsAfterStop => Volatile.Read(ref _callsAfterStop);

    public void MarkStopped()
    {
        _stopped = true;
        Interlocked.Add(ref _callsAfterStop, Running);
    }

    public IDisposable Enter()
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Increment(ref _running);
        if (_stopped)
        {
            Interlocked.Increment(ref _callsAfterStop);
        }

        return new Exit(this);
    }

    private sealed class Exit(StopProbe probe) : IDisposable
    {
        public void Dispose() => Interlocked.Decrement(ref probe._running);
    }
}

/// <summary>Writes a row in the event's transaction after a short pause (now and then a long one, for stops to land in).</summary>
[HandlesEvent(EventType)]
public sealed class StressHandler(StopProbe probe, Recorder recorder) : IEventHandler<Note>
{
    public const string EventType = "fault.stress";

    public async Task HandleAsync(EventContext<Note> context, CancellationToken cancellationToken)
    {
        using (probe.Enter())
        {
            recorder.Record(context.Event.Id, context.Event.Attempt);
            var pause = Random.Shared.Next(20) == 0 ? 300 : Random.Shared.Next(0, 5);
            await Task.Delay(pause, cancellationToken);
            var db = await context.GetTransactionAsync(cancellationToken);
            await db.Connection.ExecuteAsync(
                "INSERT INTO stress_projection (event_id) VALUES (@id)",
                new { id = context.Event.Id },
                db.Transaction);
        }
    }
}
