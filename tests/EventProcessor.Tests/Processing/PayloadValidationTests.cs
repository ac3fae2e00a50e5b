using EventProcessor.Handlers.Schemas;
using EventProcessor.Ingress.Schemas;
using EventProcessor.Tests.Support;
using EventProcessor.Validation;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Processing;

/// <summary>A payload is checked against its schema once more just before dispatch.</summary>
public sealed class PayloadValidationTests
{
    private TestDatabase _db = null!;
    private Recorder _recorder = null!;

    [SetUp]
    public async Task SetUp()
    {
        _db = await TestDatabase.CreateAsync();
        _recorder = new Recorder();
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
    public async Task ARowThatViolatesItsSchemaIsDeadLetteredAtTheFirstAttemptWithoutReachingItsHandler()
    {
        // Inserted by hand, past the doors: only the check before dispatch can catch it.
        var invalid = await _db.InsertEventAsync("test.recorded", new { text = 42 });
        var valid = await _db.InsertEventAsync("test.recorded", new { text = "fine" });
        var catalog = await EventSchemaCatalog.LoadAsync([new("test.recorded", """
            {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "required": ["text"],
             "properties": {"text": {"type": "string"}}}
            """)]);

        await using var host = await EngineHost.StartAsync(
            _db,
            p => p.AddHandler<RecordingHandler>(),
            o => o.MaxRetries = 5,
            s => s.AddSingleton(_recorder).AddSingleton(new Failures()).AddSingleton<IEventPayloadValidator>(catalog));
        await _db.WaitForProcessedAsync(2);
        var row = await _db.GetEventAsync(invalid);
        var reason = await _db.ScalarAsync<string>("SELECT error_message FROM event_dead_letters WHERE event_id = @invalid", new { invalid });

        Assert.Multiple(() =>
        {
            Assert.That(row.DeadLettered, Is.True);
            Assert.That(row.Attempts, Is.EqualTo(1), "a violation is permanent: never retried");
            Assert.That(reason, Does.StartWith("Payload violates the schema of 'test.recorded': $.text: "));
            Assert.That(_recorder.Ids, Is.EqualTo(new[] { valid }), "the handler saw only the valid event");
        });
    }

    [Test]
    public async Task EveryShippedSampleIsValidBeforeDispatch()
    {
        var catalog = await EventSchemaCatalog.LoadAsync(ShippedSchemas.Schemas);

        Assert.Multiple(() =>
        {
            foreach (var (eventType, sample) in ShippedSchemas.Samples)
            {
                Assert.That(catalog.Validate(eventType, sample), Is.Empty, eventType);
            }
        });
    }
}
