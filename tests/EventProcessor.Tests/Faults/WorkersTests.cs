using System.Diagnostics;
using System.Globalization;
using Dapper;
using EventProcessor.FaultHost;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// Three instances of the real service, each running four poll loops (<c>WORKERS=4</c>), drain one table: twelve
/// batches in flight at once, from three processes, and still every event is handled once, and each aggregate's
/// events one at a time and in order, whichever loop of whichever instance claims them.
/// </summary>
[Category("Faults")]
[NonParallelizable]
public sealed class WorkersTests
{
    private const int Events = 50_000;
    private const int Aggregates = 500;
    private const int Instances = 3;
    private const int Workers = 4;
    private const int BatchSize = 20;
    private const int Waves = 5;

    [Test]
    public async Task ThreeInstancesOfFourWorkersHandleEveryEventOnceAndEachAggregateInOrderOneAtATime()
    {
        await using var run = await FaultRun.CreateAsync();
        var settings = run.Settings();
        settings["WORKERS"] = Workers.ToString(CultureInfo.InvariantCulture);
        settings["BATCH_SIZE"] = BatchSize.ToString(CultureInfo.InvariantCulture);
        settings["FAULT_HANDLER_DELAY_MS"] = "0";
        // Long enough that a process starved of CPU on a busy machine keeps its leases: a second attempt here would
        // be a lease running out, not a claim splitting an aggregate.
        settings["LEASE_MS"] = "10000";

        // Each event goes to one of the aggregates at random, so that the head of the FIFO, where twelve loops claim
        // side by side, keeps holding several events of one aggregate (round-robin would put each aggregate's next
        // event 500 places later, out of reach of concurrent claims, and test nothing). The first wave is there before
        // any instance starts; the others arrive while the instances come up, adding to aggregates whose earlier
        // events are being handled right then; then all twelve loops drain what is left.
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var aggregateIds = Enumerable.Range(0, Aggregates).Select(_ => Guid.NewGuid()).ToArray();
        var aggregateOfEach = Enumerable.Range(0, Events).Select(_ => aggregateIds[random.Next(Aggregates)]).ToArray();
        var nearOwnAggregate = Enumerable.Range(0, Events)
            .Count(n => aggregateOfEach.AsSpan(Math.Max(0, n - BatchSize), Math.Min(n, BatchSize)).Contains(aggregateOfEach[n]));
        const int PerWave = Events / Waves;
        var clock = Stopwatch.StartNew();
        await run.InsertAsync(PerWave, aggregateOfEach[..PerWave]);
        var holding = new HeldSampler(run);
        var sampling = holding.RunAsync();
        var inserting = Task.Run(async () =>
        {
            for (var wave = 1; wave < Waves; wave++)
            {
                await Task.Delay(500);
                await run.InsertAsync(PerWave, aggregateOfEach[(wave * PerWave)..((wave + 1) * PerWave)], first: (wave * PerWave) + 1);
            }
        });
        var services = await Task.WhenAll(Enumerable.Range(0, Instances).Select(_ => run.StartAsync(settings)));
        var allUpAt = clock.Elapsed;
        await inserting;
        var processedAllUp = await run.CountAsync("SELECT count(*) FROM events WHERE processed");
        await run.WaitUntilAsync(async () => await run.PendingAsync() == 0, $"{Instances} × {Workers} workers drain {Events} events", TimeSpan.FromSeconds(300));
        var drainedAt = clock.Elapsed;
        var heldAtOnce = await holding.StopAsync(sampling);

        var state = await run.StateAsync();
        var effects = await run.EffectsAsync();
        var calls = run.ExternalCalls();
        var handledTwice = calls.GroupBy(c => c.EventId).Count(g => g.Count() > 1);
        var outOfOrder = CrashTests.OutOfOrderAggregates(effects);
        var overlapping = InstancesTests.OverlappingAggregates(calls);
        var (overlapsWithin, overlapsAcross) = OverlappingPairs(calls);
        var perInstance = services.Select(s => calls.Count(c => c.Pid == s.ProcessId)).ToList();
        var mostHeld = services.Select(s => heldAtOnce.GetValueOrDefault(s.ProcessId)).ToList();
        var handledBesideAnother = services.Select(s => HandledBesideAnother(calls.Where(c => c.Pid == s.ProcessId))).ToList();
        var allUpRate = (Events - processedAllUp) / (drainedAt - allUpAt).TotalSeconds;
        await FaultRun.WriteAsync(
            $"seed {seed}: {Instances} instances × WORKERS {Workers}, BATCH_SIZE {BatchSize}, handler without delay: {Events} events over {Aggregates} aggregates " +
            $"at random ({nearOwnAggregate} within {BatchSize} places of an earlier event of their aggregate), in {Waves} waves, the first before the " +
            "instances start, then one every 0.5 s while they come up");
        await FaultRun.WriteAsync(
            $"wall time first insert → drained {drainedAt.TotalSeconds:0.0} s = {Events / drainedAt.TotalSeconds:0} events/s; all {Instances} up at " +
            $"{allUpAt.TotalSeconds:0.0} s ({processedAllUp} processed by then), then {allUpRate:0} events/s for {(drainedAt - allUpAt).TotalSeconds:0.0} s");
        await FaultRun.WriteAsync(
            $"handled per instance: {string.Join(", ", perInstance)}; most events held at once per instance: {string.Join(", ", mostHeld)} " +
            $"(a batch is {BatchSize}); handlings that overlapped another of the same instance: {string.Join(", ", handledBesideAnother)}");
        await FaultRun.WriteAsync(
            $"handled twice {handledTwice}, aggregates out of order {outOfOrder.Count}, aggregates with overlapping handlings {overlapping.Count} " +
            $"({overlapsWithin} overlapping pairs within one instance, {overlapsAcross} across instances), max attempts {state.MaxAttempts}");

        Assert.Multiple(() =>
        {
            Assert.That(state.Processed, Is.EqualTo(Events), "every event is processed");
            Assert.That(state.Effects, Is.EqualTo(Events), "one fault_effects row per event");
            Assert.That(state.NotExactlyOneEffect, Is.Zero, "no event has zero or several fault_effects rows");
            Assert.That(calls, Has.Count.EqualTo(Events), "one external call per event");
            Assert.That(handledTwice, Is.Zero, "no event was handled twice, by two loops of one instance or by two instances");
            Assert.That(state.MaxAttempts, Is.EqualTo(1), "no event needed a second attempt");
            Assert.That(state.DeadLettered, Is.Zero, "nothing is dead-lettered");
            Assert.That(state.DeadLetterRows, Is.Zero, "event_dead_letters is empty");
            Assert.That(state.Locked, Is.Zero, "no event is left locked");
            Assert.That(outOfOrder, Is.Empty, "each aggregate's events were handled in created_at order");
            Assert.That(overlapping, Is.Empty, "each aggregate's events were handled one at a time, across loops and instances");
            Assert.That(services.Select(s => s.HasExited), Has.All.False);
            Assert.That(perInstance, Has.All.GreaterThan(0), "every instance took part");
            Assert.That(mostHeld, Has.Some.GreaterThan(BatchSize), "an instance held more than one batch at once: its loops ran side by side");
        });
    }

    /// <summary>
    /// Consecutive handlings of one aggregate that overlap in time, split by whether one instance (two of its loops)
    /// or two instances ran them.
    /// </summary>
    private static (int Within, int Across) OverlappingPairs(IEnumerable<FaultCall> calls)
    {
        var pairs = calls
            .Where(c => c.AggregateId is not null)
            .GroupBy(c => c.AggregateId!.Value)
            .SelectMany(g =>
            {
                var ordered = g.OrderBy(c => c.StartedAt).ToList();
                return ordered.Zip(ordered.Skip(1)).Where(pair => pair.Second.StartedAt < pair.First.FinishedAt);
            })
            .ToList();
        return (pairs.Count(p => p.First.Pid == p.Second.Pid), pairs.Count(p => p.First.Pid != p.Second.Pid));
    }

    /// <summary>
    /// How many of one instance's handlings began before another of its handlings had ended. One loop runs its batch
    /// one event after another, so each of these is two of the instance's loops handling at the same moment.
    /// </summary>
    private static int HandledBesideAnother(IEnumerable<FaultCall> calls)
    {
        var overlapped = 0;
        var latestEnd = DateTimeOffset.MinValue;
        foreach (var call in calls.OrderBy(c => c.StartedAt))
        {
            overlapped += call.StartedAt < latestEnd ? 1 : 0;
            latestEnd = call.FinishedAt > latestEnd ? call.FinishedAt : latestEnd;
        }

        return overlapped;
    }

    /// <summary>
    /// Samples, every 25 ms, how many events each instance holds: more than one batch's worth means more than one
    /// of its loops had a batch in flight at that moment.
    /// </summary>
    private sealed class HeldSampler(FaultRun run)
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Dictionary<int, long> _most = [];

        public async Task RunAsync()
        {
            await using var connection = await run.DataSource.OpenConnectionAsync();
            while (!_stop.IsCancellationRequested)
            {
                // locked_by is "<host>:<pid>:<suffix>" (EventProcessorOptions.InstanceName).
                var rows = await connection.QueryAsync<(string Owner, long Held)>(
                    "SELECT locked_by, count(*) FROM events WHERE locked_by IS NOT NULL GROUP BY locked_by");
                foreach (var (owner, held) in rows)
                {
                    var pid = int.Parse(owner.Split(':')[^2], CultureInfo.InvariantCulture);
                    _most[pid] = Math.Max(_most.GetValueOrDefault(pid), held);
                }

                try
                {
                    await Task.Delay(25, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        /// <summary>Stops sampling; returns the most events each process (by pid) held at once.</summary>
        public async Task<Dictionary<int, long>> StopAsync(Task sampling)
        {
            await _stop.CancelAsync();
            await sampling;
            _stop.Dispose();
            return _most;
        }
    }
}
