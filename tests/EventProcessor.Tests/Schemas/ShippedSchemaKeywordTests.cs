using System.Text.Json.Nodes;
using EventProcessor.Handlers.Build;
using EventProcessor.Handlers.Schemas;

namespace EventProcessor.Tests.Schemas;

/// <summary>
/// Every keyword the shipped schemas use, broken on purpose in a shipped sample: the payload fails for that keyword
/// alone, with the sentence a producer would read. A keyword (or format) new to the shipped schemas fails
/// <see cref="Every_keyword_the_shipped_schemas_use_has_a_case_here"/> until it gets a case.
/// </summary>
public sealed class ShippedSchemaKeywordTests
{
    private static readonly KeywordCase[] Cases =
    [
        new("type", "monitoring", "[]",
            "$: expected an object, got an array"),
        new("type", "integrations", p => p["integrations"]![1]!["last_synced_at"] = 5,
            "$.integrations[1].last_synced_at: expected a string or null, got an integer"),
        new("properties", "monitoring", p => p["value"] = "high",
            "$.value: expected a number, got a string"),
        new("required", "user.created", p => p.Remove("email"),
            "$.email: required property is missing"),
        new("additionalProperties", "user.created", p => p["password"] = "hunter2",
            "$.password: is not an allowed property"),
        new("additionalProperties", "monitoring", p => p["tags"]!["region"] = 5,
            "$.tags.region: expected a string, got an integer"),
        new("enum", "transaction", p => p["status"] = "settled",
            """$.status: must be one of "pending", "authorized", "captured", "declined", "refunded", "failed" """.TrimEnd()),
        new("format:uuid", "user.created", p => p["user_id"] = "12345",
            "$.user_id: is not a valid UUID"),
        new("format:email", "user.created", p => p["email"] = "ada.example.com",
            "$.email: is not a valid email address"),
        new("format:date-time", "user.created", p => p["created_at"] = "yesterday",
            "$.created_at: is not a valid date-time (RFC 3339, such as 2025-03-14T09:26:53Z)"),
        new("format:date-time", "integrations", p => p["integrations"]![0]!["last_synced_at"] = "yesterday",
            "$.integrations[0].last_synced_at: is not a valid date-time (RFC 3339, such as 2025-03-14T09:26:53Z)"),
        new("format:hostname", "monitoring", p => p["host"] = "bad host!",
            "$.host: is not a valid host name"),
        new("format:uri", "integration", p => p["webhook_url"] = "hooks/salesforce",
            "$.webhook_url: is not a valid absolute URI"),
        new("pattern", "transaction", p => p["currency"] = "usd",
            "$.currency: does not match the pattern ^[A-Z]{3}$"),
        new("minLength", "user.created", p => p["name"] = "",
            "$.name: is shorter than the minimum length 1"),
        new("maxLength", "monitoring", p => p["service"] = new string('s', 101),
            "$.service: is longer than the maximum length 100"),
        new("minimum", "transaction", p => p["amount"] = -5,
            "$.amount: is below the minimum 0"),
        new("maximum", "transaction.authorizers", p => p["risk_score"] = 100.5,
            "$.risk_score: is above the maximum 100"),
        new("minItems", "user.applications", p => p["applications"]![0]!["scopes"] = new JsonArray(),
            "$.applications[0].scopes: has fewer items than the minimum 1"),
        new("maxItems", "integrations", p => p["integrations"] = new JsonArray(
                Enumerable.Range(0, 51).Select(_ => p["integrations"]![0]!.DeepClone()).ToArray()),
            "$.integrations: has more items than the maximum 50"),
        new("uniqueItems", "user.applications", p => p["applications"]![1]!["scopes"] = new JsonArray("email:read", "email:read"),
            "$.applications[1].scopes: has duplicate items; they must be unique"),
        new("maxProperties", "monitoring", p => p["tags"] = new JsonObject(
                Enumerable.Range(0, 21).Select(i => KeyValuePair.Create($"tag{i}", (JsonNode?)"x"))),
            "$.tags: has more properties than the maximum 20"),
        new("items", "user.applications", p => p["applications"]![0]!["scopes"] = new JsonArray("profile:read", 42),
            "$.applications[0].scopes[1]: expected a string, got an integer"),
        new("$ref", "user.applications", p => p["applications"]![1]!.AsObject().Remove("status"),
            "$.applications[1].status: required property is missing"),
        new("oneOf", "transaction", p => p["payment_method"]!.AsObject().Remove("last4"),
            "$.payment_method: matches none of the 3 alternatives (oneOf)",
            "$.payment_method.last4: required property is missing (alternative 1: card)"),
        new("oneOf", "transaction.authorizers", p =>
            {
                p["decision"] = "declined";
                p.Remove("reason");
            },
            "$: matches none of the 2 alternatives (oneOf)",
            """$.decision: must be one of "approved" (alternative 1: approved)""",
            "$.reason: required property is missing (alternative 2: declined or sent to review, with a reason)"),
    ];

    [TestCaseSource(nameof(Cases))]
    public void A_payload_breaking_one_keyword_gets_exactly_its_violation(KeywordCase testCase)
    {
        var violations = TestSchemas.Shipped.Validate(testCase.EventType, testCase.Payload());

        Assert.That(violations, Is.EqualTo(testCase.Expected));
    }

    [Test]
    public void Every_keyword_the_shipped_schemas_use_has_a_case_here()
    {
        var used = ShippedSchemas.Schemas.Values
            .SelectMany(schema => SchemaKeywordRules.Keywords(LocatedJson.Parse(schema)))
            .Where(keyword => !TestSchemas.Rules.Annotations.Contains(keyword.Name))
            .Select(keyword => keyword.Name == "format" ? "format:" + keyword.Value.Text : keyword.Name)
            .ToHashSet(StringComparer.Ordinal);

        Assert.That(used.Except(Cases.Select(c => c.Keyword)), Is.Empty,
            "a shipped schema uses these keywords (or formats) without a case in ShippedSchemaKeywordTests");
    }

    /// <summary>A shipped sample with one keyword broken, and the violations expected.</summary>
    public sealed class KeywordCase
    {
        public KeywordCase(string keyword, string eventType, Action<JsonObject> change, params string[] expected)
            : this(keyword, eventType, () => TestSchemas.Sample(eventType, change), expected)
        {
        }

        public KeywordCase(string keyword, string eventType, string payload, params string[] expected)
            : this(keyword, eventType, () => payload, expected)
        {
        }

        private KeywordCase(string keyword, string eventType, Func<string> payload, string[] expected)
        {
            Keyword = keyword;
            EventType = eventType;
            Payload = payload;
            Expected = expected;
        }

        /// <summary>The keyword broken, or <c>format:</c> and the format.</summary>
        public string Keyword { get; }

        public string EventType { get; }

        public Func<string> Payload { get; }

        public IReadOnlyList<string> Expected { get; }

        public override string ToString() => $"{Keyword} in {EventType}: {Expected[^1]}";
    }
}
