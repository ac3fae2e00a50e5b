using System.Text.Json.Nodes;
using EventProcessor.Handlers.Build;
using EventProcessor.Handlers.Schemas;
using EventProcessor.Ingress.Schemas;

namespace EventProcessor.Tests.Schemas;

/// <summary>The shipped schemas loaded once for the run, the build's keyword rules, and ways to bend a sample.</summary>
internal static class TestSchemas
{
    private static readonly Lazy<EventSchemaCatalog> ShippedCatalog =
        new(() => EventSchemaCatalog.LoadAsync(ShippedSchemas.Schemas).GetAwaiter().GetResult());

    private static readonly Lazy<SchemaKeywordRules> KeywordRules = new(() => SchemaKeywordRules.Parse(
        File.ReadAllText(Path.Combine(TestContext.CurrentContext.TestDirectory, "Schemas", "schema-keywords.json"))));

    /// <summary>A catalog of every shipped schema.</summary>
    public static EventSchemaCatalog Shipped => ShippedCatalog.Value;

    /// <summary>Build/schema-keywords.json, as the build reads it.</summary>
    public static SchemaKeywordRules Rules => KeywordRules.Value;

    /// <summary>A catalog holding one schema, for the event type <c>test</c>.</summary>
    public static Task<EventSchemaCatalog> CatalogOfAsync(string schemaJson) =>
        EventSchemaCatalog.LoadAsync([new KeyValuePair<string, string>("test", schemaJson)]);

    /// <summary>The shipped sample of <paramref name="eventType"/> after <paramref name="change"/>, as JSON text.</summary>
    public static string Sample(string eventType, Action<JsonObject> change)
    {
        var sample = JsonNode.Parse(ShippedSchemas.Samples[eventType])!.AsObject();
        change(sample);
        return sample.ToJsonString();
    }
}
