using System.Globalization;
using EventProcessor.Handlers.Aws;
using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Handlers.Aws;

/// <summary>
/// A test database of its own with the engine running <c>AddAwsHandlers()</c>: a test inserts an event the way the
/// ingress does, waits for its fate, then reads the handlers' tables.
/// </summary>
public sealed class AwsHandlersHost : IAsyncDisposable
{
    private readonly EngineHost _engine;

    private AwsHandlersHost(TestDatabase db, EngineHost engine)
    {
        Db = db;
        _engine = engine;
    }

    public TestDatabase Db { get; }

    public static async Task<AwsHandlersHost> StartAsync(Action<EventProcessorOptions>? configure = null)
    {
        var db = await TestDatabase.CreateAsync();
        try
        {
            return new AwsHandlersHost(db, await EngineHost.StartAsync(db, p => p.AddAwsHandlers(), configure));
        }
        catch
        {
            await db.DisposeAsync();
            throw;
        }
    }

    /// <summary>Inserts an event and waits until the engine has decided its fate, whatever it is.</summary>
    public async Task<Guid> InsertAndWaitAsync(string eventType, string payload)
    {
        var id = await Db.InsertEventAsync(eventType, payload);
        await WaitProcessedAsync(id);
        return id;
    }

    /// <summary>Inserts an event, waits until it is processed, and fails the test unless its handler succeeded.</summary>
    public async Task<Guid> HandleAsync(string eventType, string payload)
    {
        var id = await InsertAndWaitAsync(eventType, payload);
        await AssertCompletedAsync(id);
        return id;
    }

    /// <summary>Replays an event with the seed's SQL and waits until it has been handled again, successfully.</summary>
    public async Task ReplayAsync(Guid id)
    {
        await Db.ExecuteAsync("UPDATE events SET processed = false WHERE id = @id", new { id });
        await WaitProcessedAsync(id);
        await AssertCompletedAsync(id);
    }

    public async Task AssertCompletedAsync(Guid id)
    {
        var row = await Db.GetEventAsync(id);
        Assert.That(
            row is { Processed: true, DeadLettered: false, Skipped: false, RetryCount: null },
            $"event {row.EventType} {id} should be handled at the first attempt; metadata: {row.Metadata}");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _engine.DisposeAsync();
        }
        finally
        {
            await Db.DisposeAsync();
        }
    }

    /// <summary>An ISO 8601 time as the UTC <see cref="DateTime"/> Npgsql reads from a timestamptz.</summary>
    public static DateTime Utc(string iso8601) =>
        DateTimeOffset.Parse(iso8601, CultureInfo.InvariantCulture).UtcDateTime;

    /// <summary>Milliseconds since the Unix epoch as the UTC <see cref="DateTime"/> Npgsql reads from a timestamptz.</summary>
    public static DateTime Utc(long epochMilliseconds) =>
        DateTimeOffset.FromUnixTimeMilliseconds(epochMilliseconds).UtcDateTime;

    private Task WaitProcessedAsync(Guid id) =>
        TestDatabase.WaitUntilAsync(async () => (await Db.GetEventAsync(id)).Processed, $"event {id} is processed");
}
