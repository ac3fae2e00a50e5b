using System.Diagnostics;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// SIGTERM while slow handlers are half-way through, one in each poll loop's batch, their writes already in their
/// batch transactions. The webhook view of
/// the same stop (an external call that got its answer is recorded) is
/// <c>ServiceProcessTests.ExitsZeroWithinTenSecondsOnSigtermWhileAHandlerIsSlow</c>; this one is about the handler's
/// database writes.
/// </summary>
[Category("Faults")]
[NonParallelizable]
public sealed class ShutdownTests
{
    private const int BatchSize = 5;
    private const int Workers = 4;

    // A full batch for every poll loop: each loop claims one, so at the SIGTERM every loop is in its first handler.
    private const int Events = BatchSize * Workers;

    /// <summary>
    /// A 3 s handler finishes within the 5 s grace and commits with its event; an 8 s one is cancelled, and its
    /// event is released with its write rolled back; in each loop's batch at once. Either way: exit 0 within 10 s, no
    /// effect without its event processed, nothing left locked, and the events not finished run again, once, after
    /// a restart.
    /// </summary>
    [TestCase(3_000, 1)]
    [TestCase(8_000, 0)]
    public async Task SigtermCommitsOrReleasesWhatIsInFlightAndExitsZeroWithinTenSeconds(int handlerMs, int committedPerBatch)
    {
        await using var run = await FaultRun.CreateAsync();
        await run.InsertAsync(Events);
        var settings = run.Settings();
        settings["BATCH_SIZE"] = BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["WORKERS"] = Workers.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["HANDLER_TIMEOUT_MS"] = "30000";
        settings["FAULT_HANDLER_DELAY_MS"] = handlerMs.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var service = await run.StartAsync(settings);
        var committed = committedPerBatch * Workers;

        // In every loop's batch, the first handler has written its row (the batch transaction is open) and sleeps.
        await run.WaitUntilAsync(
            async () => await run.CountAsync(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'") == Workers,
            $"the first handler of each of the {Workers} batches has written and sleeps",
            TimeSpan.FromSeconds(30));
        await Task.Delay(500);

        var clock = Stopwatch.StartNew();
        service.SignalTerm();
        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var exitedAfter = clock.Elapsed;
        var afterStop = await run.StateAsync();
        var attemptsLeft = await run.CountAsync("SELECT count(*) FROM events WHERE NOT processed AND attempts <> 0");
        await FaultRun.WriteAsync(
            $"handler {handlerMs} ms, {Workers} batches of {BatchSize} in flight: exit {exitCode} {exitedAfter.TotalSeconds:0.00} s after SIGTERM; " +
            $"{afterStop.Processed} of {Events} committed, " +
            $"fault_effects rows {afterStop.Effects}, locked {afterStop.Locked}");

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero, service.Tail());
            Assert.That(exitedAfter, Is.LessThan(TimeSpan.FromSeconds(10)), "exits within Cloud Run's 10 s");
            Assert.That(afterStop.Processed, Is.EqualTo(committed), "each loop's running handler commits only if it finishes within the grace");
            Assert.That(afterStop.Effects, Is.EqualTo(committed), "no write outlives its event's release");
            Assert.That(afterStop.EffectButNotProcessed, Is.Zero, "nothing half-done: every effect belongs to a processed event");
            Assert.That(afterStop.Locked, Is.Zero, "nothing is left locked: what was not finished is claimable at once");
            Assert.That(attemptsLeft, Is.Zero, "released events got their attempt back");
        });

        settings["FAULT_HANDLER_DELAY_MS"] = "0";
        await run.StartAsync(settings);
        await run.WaitUntilAsync(async () => await run.PendingAsync() == 0, "a new instance processes the rest", TimeSpan.FromSeconds(60));
        var state = await run.StateAsync();
        var calls = run.ExternalCalls();
        Assert.Multiple(() =>
        {
            Assert.That(state.Effects, Is.EqualTo(Events));
            Assert.That(state.NotExactlyOneEffect, Is.Zero, "each event's write happened exactly once");
            Assert.That(state.MaxAttempts, Is.EqualTo(1), "the stop cost no event an attempt");
            Assert.That(calls, Has.Count.EqualTo(Events), "a cancelled handler made no external call, so none is repeated");
        });
    }
}
