using System.Diagnostics;
using System.Globalization;
using EventProcessor.FaultHost;
using EventProcessor.Tests.Service;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// Poison events that take the process down with them, under a supervisor that restarts it (as Cloud Run or
/// systemd would): the claim counts each attempt before the handler runs, so the poison runs out of attempts and is
/// dead-lettered, and the events around it are handled once.
/// </summary>
[Category("Faults")]
[NonParallelizable]
public sealed class ProcessKillingPoisonTests
{
    private const int GoodEvents = 200;
    private const int MaxRetries = 3;

    [Test]
    public async Task AnEventWhoseHandlerCallsFailFastIsDeadLetteredAfterMaxRetriesCrashesAndTheRestGoOn()
    {
        var (crashes, poison) = await SuperviseAsync(FaultTypes.FailFast, []);

        Assert.Multiple(() =>
        {
            Assert.That(crashes, Is.EqualTo(MaxRetries), "each attempt of the poison took the process down, no more");
            Assert.That(poison.Reason, Does.StartWith($"Gave up after {MaxRetries} attempts"));
        });
    }

    [Test]
    public async Task AnEventWhoseHandlerAllocatesWithoutBoundFailsItsOwnAttemptsOnly()
    {
        // Under a 256 MB heap limit the runtime throws OutOfMemoryException into the handler; the executor fails the
        // attempt like any other exception, and the hoard is garbage once it has.
        var (crashes, poison) = await SuperviseAsync(FaultTypes.Allocate, new() { ["DOTNET_GCHeapHardLimit"] = "0x10000000" });

        Assert.Multiple(() =>
        {
            Assert.That(crashes, Is.Zero, "the process survived every attempt");
            Assert.That(poison.Reason, Does.Contain("OutOfMemoryException"));
            Assert.That(poison.RetryCount, Is.EqualTo(MaxRetries));
        });
    }

    [Test]
    public async Task AnEventWhoseHandlerThrowsFailsItsOwnAttemptsOnlyInTheRealService()
    {
        var (crashes, poison) = await SuperviseAsync(FaultTypes.Fail, []);

        Assert.Multiple(() =>
        {
            Assert.That(crashes, Is.Zero);
            Assert.That(poison.Reason, Does.Contain("injected failure on attempt 3"));
            Assert.That(poison.RetryCount, Is.EqualTo(MaxRetries));
        });
    }

    [Test]
    public async Task AnEventWhoseHandlerHangsPastItsTimeoutFailsItsOwnAttemptsOnlyInTheRealService()
    {
        var (crashes, poison) = await SuperviseAsync(FaultTypes.Hang, new() { ["HANDLER_TIMEOUT_MS"] = "1000" }, """{"delay_ms": 3000}""");

        Assert.Multiple(() =>
        {
            Assert.That(crashes, Is.Zero);
            Assert.That(poison.Reason, Does.Contain("timed out after 1000 ms"));
            Assert.That(poison.RetryCount, Is.EqualTo(MaxRetries));
        });
    }

    /// <summary>
    /// A process-killing poison batched behind three slow events: its first crash cuts them off, so they are suspects
    /// too, and each is claimed alone next time. The guarantee is that they lose that one attempt and no more. With
    /// one poll loop they run, one after another, before the poison comes round again. With several, each suspect runs
    /// alone in the process (the other loops wait), so a later crash of the poison cuts nothing else off.
    /// </summary>
    [TestCase(1)]
    [TestCase(4)]
    public async Task EventsCutOffByAProcessKillingPoisonAreNotDeadLetteredWithIt(int workers)
    {
        await using var run = await FaultRun.CreateAsync();
        await run.InsertAsync(3, payload: """{"delay_ms": 2000}""");
        await run.InsertAsync(1, eventType: FaultTypes.FailFast, first: 4);
        await run.InsertAsync(10, first: 5);
        var settings = run.Settings();
        settings["MAX_RETRIES"] = MaxRetries.ToString(CultureInfo.InvariantCulture);
        settings["LEASE_MS"] = "2000";
        settings["WORKERS"] = workers.ToString(CultureInfo.InvariantCulture);

        var clock = Stopwatch.StartNew();
        var (crashes, _) = await SuperviseUntilDrainedAsync(run, settings, $"WORKERS {workers}");

        var state = await run.StateAsync();
        await using var connection = await run.DataSource.OpenConnectionAsync();
        var dead = (await Dapper.SqlMapper.QueryAsync<(string EventType, string Reason)>(
            connection,
            "SELECT e.event_type, d.error_message FROM event_dead_letters d JOIN events e ON e.id = d.event_id ORDER BY e.created_at")).ToList();
        var attempts = await Dapper.SqlMapper.QueryAsync<int>(connection, "SELECT attempts FROM events ORDER BY created_at LIMIT 4");
        await FaultRun.WriteAsync(
            $"WORKERS {workers}: drained in {clock.Elapsed.TotalSeconds:0.0} s with {crashes} crashes; attempts of the three slow events and the poison: " +
            $"{string.Join(", ", attempts)}; dead letters: {string.Join("; ", dead.Select(d => $"{d.EventType}: {d.Reason}"))}");

        Assert.Multiple(() =>
        {
            Assert.That(dead.Select(d => d.EventType), Is.EqualTo(new[] { FaultTypes.FailFast }), "only the poison is dead-lettered");
            Assert.That(state.Effects, Is.EqualTo(13), "each good event's write applied once");
            Assert.That(crashes, Is.EqualTo(MaxRetries), "each attempt of the poison took the process down, no more");
        });
    }

    private static async Task<(int Crashes, (string Reason, int RetryCount) Poison)> SuperviseAsync(
        string poisonType, Dictionary<string, string?> extra, string payload = "{}")
    {
        await using var run = await FaultRun.CreateAsync();
        await run.InsertAsync(GoodEvents / 2);
        await run.InsertAsync(1, eventType: poisonType, payload: payload, first: (GoodEvents / 2) + 1);
        await run.InsertAsync(GoodEvents / 2, first: (GoodEvents / 2) + 2);
        var settings = run.Settings();
        settings["MAX_RETRIES"] = MaxRetries.ToString(CultureInfo.InvariantCulture);
        settings["LEASE_MS"] = "2000";
        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }

        var clock = Stopwatch.StartNew();
        var (crashes, service) = await SuperviseUntilDrainedAsync(run, settings, poisonType);

        var state = await run.StateAsync();
        await using var connection = await run.DataSource.OpenConnectionAsync();
        var poison = await Dapper.SqlMapper.QuerySingleAsync<(string Reason, int RetryCount)>(
            connection,
            "SELECT d.error_message, d.retry_count FROM event_dead_letters d JOIN events e ON e.id = d.event_id WHERE e.event_type = @poisonType",
            new { poisonType });
        await FaultRun.WriteAsync(
            $"{poisonType}: drained in {clock.Elapsed.TotalSeconds:0.0} s with {crashes} crashes; dead letter after retry_count {poison.RetryCount}: {poison.Reason}");

        Assert.Multiple(() =>
        {
            Assert.That(service.HasExited, Is.False, "the service is running at the end");
            Assert.That(state.Processed, Is.EqualTo(GoodEvents + 1), "every event reached an end");
            Assert.That(state.DeadLettered, Is.EqualTo(1), "only the poison is dead-lettered");
            Assert.That(state.Effects, Is.EqualTo(GoodEvents), "each good event's write applied once, the poison's never");
            Assert.That(state.Locked, Is.Zero, "nothing left locked");
        });
        return (crashes, poison);
    }

    /// <summary>
    /// The supervisor, as Cloud Run or systemd would be: starts the service, and starts it again whenever it dies,
    /// until the table is drained. Returns the crashes it saw and the service running at the end.
    /// </summary>
    private static async Task<(int Crashes, ServiceProcess Service)> SuperviseUntilDrainedAsync(
        FaultRun run, Dictionary<string, string?> settings, string label)
    {
        var crashes = 0;
        var clock = Stopwatch.StartNew();
        var service = run.Launch(settings);
        while (await run.PendingAsync() > 0)
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromMinutes(3)), "the table drains under supervision");
            if (service.HasExited)
            {
                // A port another process took between finding it free and binding it is not a crash.
                crashes += service.Output.Contains("address already in use", StringComparison.OrdinalIgnoreCase) ? 0 : 1;
                await FaultRun.WriteAsync($"{label}: crash {crashes} at {clock.Elapsed.TotalSeconds:0.0} s; restarting");
                service = run.Launch(settings);
            }

            await Task.Delay(100);
        }

        return (crashes, service);
    }
}
