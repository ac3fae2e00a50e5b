using EventProcessor.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Processing;

public sealed class ClaimOrderTests
{
    private TestDatabase _db = null!;

    [SetUp]
    public async Task SetUp() => _db = await TestDatabase.CreateAsync();

    [TearDown]
    public async Task TearDown()
    {
        if (_db is not null)
        {
            await _db.DisposeAsync();
        }
    }

    [Test]
    public async Task OneWorkerHandlesEventsInCreatedAtThenIdOrder()
    {
        var start = DateTimeOffset.UtcNow.AddMinutes(-10);
        var expected = new List<Guid>();
        for (var i = 0; i < 30; i++)
        {
            // Inserted in reverse time order; three share one created_at, so id breaks the tie.
            var createdAt = start.AddSeconds(30 - (i / 3));
            expected.Add(await _db.InsertEventAsync("test.recorded", new { text = "x" }, createdAt: createdAt));
        }

        var ordered = await _db.ScalarAsync<Guid[]>("SELECT array_agg(id ORDER BY created_at, id) FROM events");
        var recorder = new Recorder();
        await using var host = await EngineHost.StartAsync(
            _db,
            p => p.AddHandler<RecordingHandler>(),
            o =>
            {
                // Claims are always FIFO; with several workers their batches overlap, so only events of one aggregate
                // keep their order between batches. One worker handles everything in FIFO order.
                o.BatchSize = 7;
                o.Workers = 1;
            },
            s => s.AddSingleton(recorder).AddSingleton(new Failures()));
        await _db.WaitForProcessedAsync(30);

        Assert.That(recorder.Ids, Is.EqualTo(ordered));
    }

    [Test]
    public async Task TwoEnginesNeverHandleTheSameEvent()
    {
        for (var i = 0; i < 300; i++)
        {
            await _db.InsertEventAsync("test.recorded", new { text = "x" });
        }

        var recorder = new Recorder();
        void Services(IServiceCollection s) => s.AddSingleton(recorder).AddSingleton(new Failures());
        await using var first = await EngineHost.StartAsync(_db, p => p.AddHandler<RecordingHandler>(), o => o.BatchSize = 5, Services);
        await using var second = await EngineHost.StartAsync(_db, p => p.AddHandler<RecordingHandler>(), o => o.BatchSize = 5, Services);
        await _db.WaitForProcessedAsync(300);

        Assert.Multiple(() =>
        {
            Assert.That(recorder.Ids, Has.Count.EqualTo(300));
            Assert.That(recorder.Ids, Is.Unique);
            Assert.That(first.Engine.Stats.SuccessCount, Is.GreaterThan(0), "the first engine took part");
            Assert.That(second.Engine.Stats.SuccessCount, Is.GreaterThan(0), "the second engine took part");
        });
    }

    [Test]
    public async Task LaterEventOfAnAggregateWaitsWhileAnEarlierOneIsPendingRetry()
    {
        var aggregate = Guid.NewGuid();
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        var first = await _db.InsertEventAsync("test.recorded", new { text = "1" }, aggregate, createdAt: start);
        var second = await _db.InsertEventAsync("test.recorded", new { text = "2" }, aggregate, createdAt: start.AddSeconds(1));
        var third = await _db.InsertEventAsync("test.recorded", new { text = "3" }, aggregate, createdAt: start.AddSeconds(2));
        var other = await _db.InsertEventAsync("test.recorded", new { text = "other" }, Guid.NewGuid(), createdAt: start.AddSeconds(3));

        var failures = new Failures();
        failures.FailFirst(first, 2);
        var recorder = new Recorder();
        await using var host = await EngineHost.StartAsync(
            _db,
            p => p.AddHandler<RecordingHandler>(),
            o =>
            {
                o.RetryBaseDelay = TimeSpan.FromMilliseconds(300);
                o.RetryMaxDelay = TimeSpan.FromSeconds(1);
            },
            s => s.AddSingleton(recorder).AddSingleton(failures));
        await _db.WaitForProcessedAsync(4);

        var calls = recorder.Calls;
        Assert.Multiple(() =>
        {
            // The other aggregate is not held up by the retries.
            Assert.That(calls.Select(c => c.Id).ToList().IndexOf(other), Is.LessThan(calls.Select(c => c.Id).ToList().IndexOf(second)));
            // The aggregate's events run in order, and only after its first event finally succeeded.
            Assert.That(
                calls.Where(c => c.Id != other).ToList(),
                Is.EqualTo(new[] { (first, 1), (first, 2), (first, 3), (second, 1), (third, 1) }));
        });
    }
}
