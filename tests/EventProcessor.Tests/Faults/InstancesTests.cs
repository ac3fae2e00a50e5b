using System.Diagnostics;
using EventProcessor.FaultHost;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// One, two and three instances on one table: no event is handled by two of them, each aggregate's events are
/// handled one at a time and in order across all of them, and the throughput of each set-up is reported.
/// </summary>
[Category("Faults")]
[NonParallelizable]
public sealed class InstancesTests
{
    private const int Events = 3_000;
    private const int Aggregates = 100;
    private const int HandlerDelayMs = 2;

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public async Task InstancesShareATableWithoutHandlingAnEventTwiceOrBreakingAggregateOrder(int instances)
    {
        await using var run = await FaultRun.CreateAsync();
        var settings = run.Settings();
        settings["FAULT_HANDLER_DELAY_MS"] = HandlerDelayMs.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["LEASE_MS"] = "5000";
        settings["WORKERS"] = "4"; // the figures in docs/testing.md were measured with four loops each
        var services = await Task.WhenAll(Enumerable.Range(0, instances).Select(_ => run.StartAsync(settings)));

        // Every instance is polling before the events appear, all at once, so each set-up drains the same backlog.
        var clock = Stopwatch.StartNew();
        await run.InsertAsync(Events, Aggregates);
        var insertedAt = clock.Elapsed;
        await run.WaitUntilAsync(async () => await run.PendingAsync() == 0, $"{instances} instance(s) drain {Events} events", TimeSpan.FromSeconds(180));
        var drain = clock.Elapsed - insertedAt;

        var state = await run.StateAsync();
        var effects = await run.EffectsAsync();
        var calls = run.ExternalCalls();
        var handledTwice = calls.GroupBy(c => c.EventId).Count(g => g.Count() > 1);
        var outOfOrder = CrashTests.OutOfOrderAggregates(effects);
        var overlapping = OverlappingAggregates(calls);
        var perInstance = services.Select(s => calls.Count(c => c.Pid == s.ProcessId)).ToList();
        await FaultRun.WriteAsync(
            $"{instances} instance(s), {Events} events over {Aggregates} aggregates, handler {HandlerDelayMs} ms, BATCH_SIZE 20: " +
            $"drained in {drain.TotalSeconds:0.00} s = {Events / drain.TotalSeconds:0} events/s; handled per instance: {string.Join(", ", perInstance)}");

        Assert.Multiple(() =>
        {
            Assert.That(state.Processed, Is.EqualTo(Events));
            Assert.That(state.Effects, Is.EqualTo(Events), "one fault_effects row per event");
            Assert.That(state.NotExactlyOneEffect, Is.Zero);
            Assert.That(handledTwice, Is.Zero, "no event was handled twice, by one instance or two");
            Assert.That(calls, Has.Count.EqualTo(Events));
            Assert.That(state.MaxAttempts, Is.EqualTo(1));
            Assert.That(state.DeadLettered, Is.Zero);
            Assert.That(state.Locked, Is.Zero);
            Assert.That(outOfOrder, Is.Empty, "each aggregate's events were handled in created_at order");
            Assert.That(overlapping, Is.Empty, "each aggregate's events were handled one at a time, across instances");
            Assert.That(services.Select(s => s.HasExited), Has.All.False);
            if (instances > 1)
            {
                Assert.That(perInstance, Has.All.GreaterThan(0), "every instance took part");
            }
        });
    }

    /// <summary>Aggregates with two handlings that overlap in time (one began before the previous one ended).</summary>
    internal static List<Guid> OverlappingAggregates(IEnumerable<FaultCall> calls) =>
        [.. calls
            .Where(c => c.AggregateId is not null)
            .GroupBy(c => c.AggregateId!.Value)
            .Where(g =>
            {
                var ordered = g.OrderBy(c => c.StartedAt).ToList();
                return ordered.Zip(ordered.Skip(1)).Any(pair => pair.Second.StartedAt < pair.First.FinishedAt);
            })
            .Select(g => g.Key)];
}
