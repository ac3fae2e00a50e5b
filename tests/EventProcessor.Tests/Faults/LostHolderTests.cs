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
        await run.InsertAsync(Events);
        var settings = run.Settings();
        settings["LEASE_MS"] = LeaseMs.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["HANDLER_TIMEOUT_MS"] = HandlerTimeoutMs.ToString(System.Globalization.CultureInfo.InvariantCulture);

        // A claims all four and takes 2.5 s over each; its batch transaction holds every write until the end.
        var slow = new Dictionary<string, string?>(settings) { ["FAULT_HANDLER_DELAY_MS"] = "2500" };
        var a = await run.StartAsync(slow);
        await run.WaitUntilAsync(
            () => Task.FromResult(run.ExternalCalls().Any(c => c.Pid == a.ProcessId)),
            "A has handled its first event",
            TimeSpan.FromSeconds(30));
        var b = await run.StartAsync(settings);
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

        await run.WaitUntilAsync(
            () => Task.FromResult(run.ExternalCalls().Any(c => c.Pid == b.ProcessId)),
            "B handles one of A's events",
            TimeSpan.FromSeconds(60));
        var takenOverAfter = clock.Elapsed;
        await run.WaitUntilAsync(
            async () => await run.PendingAsync() == 0,
            "B has processed all of A's events",
            TimeSpan.FromSeconds(60));
        var drainedAfter = clock.Elapsed;

        // The server ends the frozen transaction once it has been idle for handler timeout + lease.
        await using (var connection = await run.DataSource.OpenConnectionAsync())
        {
            await run.WaitUntilAsync(
                async () => await connection.ExecuteScalarAsync<long>(
                    """
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND xact_start < @frozenAt
                    """,
                    new { frozenAt }) == 0,
                "the server ends A's frozen transaction",
                TimeSpan.FromSeconds(60));
        }

        var endedAfter = clock.Elapsed;
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
            $"after SIGSTOP of A: B took over at {takenOverAfter.TotalSeconds:0.00} s, B had processed all {Events} at {drainedAfter.TotalSeconds:0.00} s, " +
            $"the server ended A's transaction by {endedAfter.TotalSeconds:0.00} s");
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
