using EventProcessor.Handlers.Build;
using EventProcessor.Handlers.Schemas;

namespace EventProcessor.Tests.Schemas;

public sealed class ShippedSchemasTests
{
    private static readonly string[] SeededEventTypes =
        ["integration", "integrations", "monitoring", "transaction", "transaction.authorizers", "user.applications", "user.created"];

    private static IEnumerable<string> ShippedEventTypes => ShippedSchemas.Schemas.Keys;

    [Test]
    public void Ships_a_schema_for_every_seeded_event_type_and_a_sample_for_every_schema()
    {
        Assert.Multiple(() =>
        {
            Assert.That(ShippedSchemas.Schemas.Keys, Is.SupersetOf(SeededEventTypes));
            Assert.That(ShippedSchemas.Samples.Keys, Is.EqualTo(ShippedSchemas.Schemas.Keys));
            Assert.That(TestSchemas.Shipped.EventTypes, Is.EquivalentTo(ShippedSchemas.Schemas.Keys));
        });
    }

    [Test]
    public void Embeds_them_under_stable_logical_names()
    {
        var names = ShippedSchemas.Assembly.GetManifestResourceNames();

        Assert.That(names, Is.SupersetOf(SeededEventTypes.SelectMany(t => new[] { $"schemas/{t}.json", $"schemas/samples/{t}.json" })));
    }

    [TestCaseSource(nameof(ShippedEventTypes))]
    public void The_sample_is_valid(string eventType)
    {
        Assert.That(TestSchemas.Shipped.Validate(eventType, ShippedSchemas.Samples[eventType]), Is.Empty);
    }

    [TestCaseSource(nameof(ShippedEventTypes))]
    public void The_schema_passes_the_build_time_keyword_check(string eventType)
    {
        var problems = TestSchemas.Rules.Check(LocatedJson.Parse(ShippedSchemas.Schemas[eventType]));

        Assert.That(problems.Select(p => p.ToString()), Is.Empty);
    }
}
