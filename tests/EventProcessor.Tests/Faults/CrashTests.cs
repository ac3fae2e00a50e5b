using System.Diagnostics;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// kill -9 of the real service, again and again, in the middle of a drain: what was committed stays committed,
/// what was in flight is rescued when its lease runs out, and the handlers' database writes happen exactly once.
/// </summary>
[Category("Faults")]
[NonParallelizable]
public sealed class CrashTests
{
    private const int Events = 20_000;
    private const int Aggregates = 1_000;
    private const int Kills = 12;
    private const int BatchSize = 20;
    private const int Workers = 4;

    // What one process can hold when it is killed: a batch per poll loop. Only these can be handled twice.
    private const int HeldAtAKill = BatchSize * Workers;

    [Test]
    public async Task NothingIsLostOrAppliedTwiceWhenTheServiceIsKilledAtRandomMoments()
    {
        await using var run = await FaultRun.CreateAsync();
        await run.InsertAsync(Events, Aggregates);
        var settings = run.Settings();
        settings["BATCH_SIZE"] = BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["WORKERS"] = Workers.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["LEASE_MS"] = "2000";

        var seed = Environment.TickCount;
        var random = new Random(seed);
        await FaultRun.WriteAsync($"seed {seed}: {Events} events over {Aggregates} aggregates, BATCH_SIZE {BatchSize}, WORKERS {Workers}, LEASE_MS 2000");

        var clock = Stopwatch.StartNew();
        var processedAtKill = 0L;
        var recoveries = new List<double>();
        var inFlightAtKills = new List<(DateTime KilledAt, Guid[] Held)>();
        for (var kill = 1; kill <= Kills; kill++)
        {
            var launchedAt = clock.Elapsed;
            var service = await run.StartAsync(settings);
            var healthyAt = clock.Elapsed;
            var before = processedAtKill;
            await run.WaitUntilAsync(
                async () => Events - await run.PendingAsync() > before,
                $"the service restarted after kill {kill - 1} makes progress",
                TimeSpan.FromSeconds(60));
            var progressAt = clock.Elapsed;
            if (kill > 1)
            {
                recoveries.Add((progressAt - launchedAt).TotalSeconds);
                await FaultRun.WriteAsync(
                    $"restart {kill - 1}: healthy {(healthyAt - launchedAt).TotalSeconds:0.00} s after launch, progress {(progressAt - launchedAt).TotalSeconds:0.00} s after launch");
            }

            // A random moment: after a random amount of progress, so that every kill lands in a drain.
            var target = before + random.Next(300, 1_200);
            await run.WaitUntilAsync(
                async () => Events - await run.PendingAsync() >= target,
                $"{target} events are processed before kill {kill}",
                TimeSpan.FromSeconds(120));
            await Task.Delay(random.Next(0, 50));
            service.Kill();
            await service.WaitForExitAsync(TimeSpan.FromSeconds(10));
            processedAtKill = Events - await run.PendingAsync();
            // The server may still be running statements the process sent before it died: with several poll loops,
            // claims wait their turn on the claim lock, and one that commits now leases its events to the dead
            // process. Its connections close once they are done.
            await run.WaitUntilAsync(
                async () => await run.CountAsync(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'event-processor%'") == 0,
                $"the server has finished what the process killed at kill {kill} sent",
                TimeSpan.FromSeconds(30));
            var held = await run.HeldAsync(service.ProcessId);
            inFlightAtKills.Add(held);
            await FaultRun.WriteAsync(
                $"kill {kill} at {clock.Elapsed.TotalSeconds:0.0} s: {processedAtKill} processed, {held.Held.Length} held by the killed process");
            Assert.That(processedAtKill, Is.LessThan(Events), "the drain was still going at the kill");
        }

        var lastLaunch = clock.Elapsed;
        var last = await run.StartAsync(settings);
        await run.WaitUntilAsync(
            async () => Events - await run.PendingAsync() > processedAtKill,
            "the last restart makes progress",
            TimeSpan.FromSeconds(60));
        recoveries.Add((clock.Elapsed - lastLaunch).TotalSeconds);
        await run.WaitUntilAsync(async () => await run.PendingAsync() == 0, "every event is processed", TimeSpan.FromSeconds(180));
        var drainedAt = clock.Elapsed;

        var state = await run.StateAsync();
        var calls = run.ExternalCalls();
        var repeated = calls.Count - calls.Select(c => c.EventId).Distinct().Count();
        var effects = await run.EffectsAsync();
        var outOfOrder = OutOfOrderAggregates(effects);
        var heldAtKills = inFlightAtKills.Select(k => k.Held.Length).ToList();
        var everHeldAtAKill = inFlightAtKills.SelectMany(k => k.Held).ToHashSet();
        var repeatedNotHeld = calls.GroupBy(c => c.EventId).Where(g => g.Count() > 1 && !everHeldAtAKill.Contains(g.Key)).Select(g => g.Key).ToList();
        var reattemptedNotHeld = (await run.ReattemptedAsync()).Where(id => !everHeldAtAKill.Contains(id)).ToList();
        var rescues = new List<double>();
        foreach (var (killedAt, held) in inFlightAtKills.Where(k => k.Held.Length > 0))
        {
            rescues.Add((await run.LastProcessedAtAsync(held) - killedAt).TotalSeconds);
        }

        await FaultRun.WriteAsync(
            $"{Events} events drained in {drainedAt.TotalSeconds:0.0} s with {Kills} kills; " +
            $"fault_effects rows {state.Effects}; external calls {calls.Count}, repeated {repeated} (bound {Kills * HeldAtAKill}); " +
            $"events attempted more than once {state.Reattempted}, max attempts {state.MaxAttempts}; held by the killed process at each kill: {string.Join(", ", heldAtKills)}");
        await FaultRun.WriteAsync(
            $"restart to progress (s): min {recoveries.Min():0.00}, median {Median(recoveries):0.00}, max {recoveries.Max():0.00}; " +
            $"all: {string.Join(", ", recoveries.Select(r => r.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture)))}");
        await FaultRun.WriteAsync(
            $"kill to the last event held by the killed process being processed (s): min {rescues.Min():0.00}, median {Median(rescues):0.00}, max {rescues.Max():0.00}");

        Assert.Multiple(() =>
        {
            Assert.That(last.HasExited, Is.False, "the last service is still running");
            Assert.That(state.Processed, Is.EqualTo(Events), "every event is processed");
            Assert.That(state.DeadLettered, Is.Zero, "nothing is dead-lettered");
            Assert.That(state.DeadLetterRows, Is.Zero, "event_dead_letters is empty");
            Assert.That(state.Locked, Is.Zero, "no event is left locked");
            Assert.That(state.Effects, Is.EqualTo(Events), "one fault_effects row per event");
            Assert.That(state.NotExactlyOneEffect, Is.Zero, "no event has zero or several fault_effects rows");
            Assert.That(calls.Select(c => c.EventId).Distinct().Count(), Is.EqualTo(Events), "every event made its external call");
            Assert.That(heldAtKills, Has.All.LessThanOrEqualTo(HeldAtAKill), "a process holds at most a batch per poll loop");
            Assert.That(repeated, Is.LessThanOrEqualTo(Kills * HeldAtAKill), "external calls are repeated only for what was in flight at a kill");
            Assert.That(state.Reattempted, Is.LessThanOrEqualTo(Kills * HeldAtAKill), "only what was in flight at a kill took a second attempt");
            Assert.That(repeatedNotHeld, Is.Empty, "every repeated external call is of an event a killed process held");
            Assert.That(reattemptedNotHeld, Is.Empty, "every event attempted twice was held by a killed process");
            Assert.That(outOfOrder, Is.Empty, "each aggregate's events were handled in created_at order");
        });
    }

    /// <summary>Aggregates whose committed effects, in the order the handlers began, are not in created_at order.</summary>
    internal static List<Guid> OutOfOrderAggregates(IEnumerable<EffectRow> effects) =>
        [.. effects
            .Where(e => e.AggregateId is not null)
            .GroupBy(e => e.AggregateId!.Value)
            .Where(g => !g.Select(e => e.CreatedAt).SequenceEqual(g.Select(e => e.CreatedAt).Order()))
            .Select(g => g.Key)];

    internal static double Median(IReadOnlyCollection<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
