using System.Diagnostics;
using System.Text.Json;
using Dapper;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// An instance frozen (SIGSTOP) while it holds events, with its batch transaction open: another instance takes the
/// events over once the lease runs out, the server ends the frozen transaction, and when the frozen instance wakes
/// up its late writes change nothing.
/// </summary>
[Category("Faults")]
[NonParallelizable]
public sealed class LostHolderTests
{
    private const int Events = 4;
    private const int LeaseMs = 2_000;
    private const int HandlerTimeoutMs = 4_000;

    [Test]
    public async Task AFrozenHoldersEventsAreTakenOverAndItsLateWritesChangeNothing()
    {
        await using var run = await FaultRun.CreateAsync();
        var settings = run.Settings();
        settings["LEASE_MS"] = LeaseMs.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["HANDLER_TIMEOUT_MS"] = HandlerTimeoutMs.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["BATCH_SIZE"] = "10";
        settings["WORKERS"] = "4";

        // Two instances of four poll loops each, all up before the events appear. The four events appear in one
        // insert and a batch takes ten, so the first claim, by whichever loop of whichever instance, takes all four
        // and spends 2.5 s on each; its batch transaction holds every write until the end, and the other seven loops
        // find nothing. That instance is A, the other B.
        settings["FAULT_HANDLER_DELAY_MS"] = "2500";
        var started = await Task.WhenAll(run.StartAsync(settings), run.StartAsync(settings));
        await run.InsertAsync(Events);
        await run.WaitUntilAsync(
            async () => await run.CountAsync("SELECT count(DISTINCT locked_by) FROM events WHERE locked_by IS NOT NULL") == 1
                && run.ExternalCalls().Count > 0,
            "one instance has claimed the events and handled the first",
            TimeSpan.FromSeconds(30));
        var holder = await run.CountAsync("SELECT min(split_part(locked_by, ':', 2))::bigint FROM events");
        var a = started.Single(s => s.ProcessId == holder);
        var b = started.Single(s => s.ProcessId != holder);
        Assert.That(
            await run.CountAsync("SELECT count(*) FROM events WHERE processed"),
            Is.Zero,
            "precondition: A still holds the batch, nothing is committed");
        Assert.That(
            await run.CountAsync("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'"),
            Is.EqualTo(1),
            "precondition: A's batch transaction is open, with the first event's write in it");

        var clock = Stopwatch.StartNew();
        a.Freeze();
        var frozenAt = DateTime.UtcNow;
        var callsBeforeFreeze = run.ExternalCalls().Count(c => c.Pid == a.ProcessId);

        // Three things happen while A is frozen, watched together: B claims A's events once the lease runs out, the
        // server ends A's transaction once it has been idle for handler timeout + lease, and B finishes the events.
        TimeSpan? takenOverAfter = null, endedAfter = null, drainedAfter = null;
        await using (var connection = await run.DataSource.OpenConnectionAsync())
        {
            await run.WaitUntilAsync(
                async () =>
                {
                    var now = clock.Elapsed;
                    var row = await connection.QuerySingleAsync<(long Claimed, long FrozenTransactions, long Pending)>(
                        """
                        SELECT (SELECT count(*) FROM events WHERE attempts = 2),
                               (SELECT count(*) FROM pg_stat_activity
                                WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND xact_start < @frozenAt),
                               (SELECT count(*) FROM events WHERE NOT processed)
                        """,
                        new { frozenAt });
                    takenOverAfter ??= row.Claimed > 0 ? now : null;
                    endedAfter ??= row.FrozenTransactions == 0 ? now : null;
                    drainedAfter ??= row.Pending == 0 ? now : null;
                    return takenOverAfter is not null && endedAfter is not null && drainedAfter is not null;
                },
                "B claims and processes A's events and the server ends A's frozen transaction",
                TimeSpan.FromSeconds(60));
        }

        var stateBeforeThaw = await run.StateAsync();

        a.Thaw();
        var thawedAt = clock.Elapsed;
        using var settled = await WaitForIdleAsync(a, run);
        var aWoke = clock.Elapsed - thawedAt;

        var state = await run.StateAsync();
        var effects = await run.EffectsAsync();
        var calls = run.ExternalCalls();
        var lateCalls = calls.Count(c => c.Pid == a.ProcessId) - callsBeforeFreeze;
        await FaultRun.WriteAsync(
            $"LEASE_MS {LeaseMs}, HANDLER_TIMEOUT_MS {HandlerTimeoutMs} (idle_in_transaction_session_timeout {HandlerTimeoutMs + LeaseMs} ms)");
        await FaultRun.WriteAsync(
            $"after SIGSTOP of A: B claimed A's events at {takenOverAfter!.Value.TotalSeconds:0.00} s, B had processed all {Events} (2.5 s each) at {drainedAfter!.Value.TotalSeconds:0.00} s, " +
            $"the server ended A's transaction at {endedAfter!.Value.TotalSeconds:0.00} s");
        await FaultRun.WriteAsync(
            $"after SIGCONT A finished its batch in {aWoke.TotalSeconds:0.00} s; A's external calls: {callsBeforeFreeze} before the freeze, {lateCalls} late; " +
            $"fault_effects rows {state.Effects}, all by B: {effects.All(e => e.Pid == b.ProcessId)}");

        Assert.Multiple(() =>
        {
            Assert.That(stateBeforeThaw.Processed, Is.EqualTo(Events), "B processed A's events while A was frozen");
            Assert.That(state.Processed, Is.EqualTo(Events));
            Assert.That(state.Effects, Is.EqualTo(Events), "one fault_effects row per event: A's uncommitted write was rolled back");
            Assert.That(state.NotExactlyOneEffect, Is.Zero);
            Assert.That(effects.Select(e => e.Pid), Has.All.EqualTo(b.ProcessId), "every committed effect is B's");
            Assert.That(effects.Select(e => e.Attempt), Has.All.EqualTo(2), "B's attempt is the second, A's claim counted the first");
            Assert.That(state.Locked, Is.Zero, "A's late completion did not lock anything again");
            Assert.That(state.DeadLettered, Is.Zero);
            Assert.That(state.WithRetryCount, Is.Zero, "A's late outcome was not written");
            Assert.That(a.HasExited, Is.False, "A carries on after it wakes");
            Assert.That(b.HasExited, Is.False);
        });
    }

    /// <summary>Waits until <paramref name="service"/> answers /health with nothing in flight, and returns that body.</summary>
    private static async Task<JsonDocument> WaitForIdleAsync(Service.ServiceProcess service, FaultRun run)
    {
        JsonDocument? body = null;
        await run.WaitUntilAsync(
            async () =>
            {
                try
                {
                    using var response = await service.Http.GetAsync(new Uri("health", UriKind.Relative));
                    body?.Dispose();
                    body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                    return response.IsSuccessStatusCode && body.RootElement.GetProperty("stats").GetProperty("inFlight").GetInt32() == 0;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            },
            "the thawed instance has finished its batch",
            TimeSpan.FromSeconds(60));
        return body!;
    }
}
