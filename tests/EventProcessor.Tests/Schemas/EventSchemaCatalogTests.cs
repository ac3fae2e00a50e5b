using EventProcessor.Handlers.Schemas;
using EventProcessor.Ingress.Schemas;

namespace EventProcessor.Tests.Schemas;

public sealed class EventSchemaCatalogTests
{
    [Test]
    public void Knows_which_event_types_have_a_schema()
    {
        var catalog = TestSchemas.Shipped;

        Assert.Multiple(() =>
        {
            Assert.That(catalog.HasSchema("transaction"), Is.True);
            Assert.That(catalog.HasSchema("Transaction"), Is.False, "event types are matched exactly");
            Assert.That(catalog.HasSchema("aws.ecs.ecs_task_state_change"), Is.False);
            Assert.That(catalog.EventTypes, Has.Count.EqualTo(ShippedSchemas.Schemas.Count));
        });
    }

    [Test]
    public void An_event_type_without_a_schema_has_no_violations_whatever_its_payload()
    {
        Assert.Multiple(() =>
        {
            Assert.That(TestSchemas.Shipped.Validate("unknown.type", """{"anything": [1, 2]}"""), Is.Empty);
            Assert.That(TestSchemas.Shipped.Validate("unknown.type", "not json"), Is.Empty);
        });
    }

    [Test]
    public void A_payload_that_is_not_JSON_is_a_violation_not_an_exception()
    {
        Assert.That(TestSchemas.Shipped.Validate("transaction", """{"amount": }"""),
            Is.EqualTo(new[] { "$: not valid JSON: '}' is an invalid start of a value (line 1, byte 12)" }));
    }

    [TestCase("{\n  \"amount\": 1,\n}", "(line 3, byte 1)", TestName = "A trailing comma")]
    [TestCase("""{'amount': 1}""", "(line 1, byte 2)", TestName = "Single quotes")]
    [TestCase("""{"amount": 1} // comment""", "(line 1, byte 15)", TestName = "A comment")]
    [TestCase("""{"amount": 1} trailing""", "(line 1, byte 15)", TestName = "Trailing text")]
    [TestCase("", "(line 1, byte 1)", TestName = "Nothing")]
    public void JSON_is_read_strictly_though_NJsonSchema_alone_would_accept_more(string payload, string position)
    {
        var violations = TestSchemas.Shipped.Validate("transaction", payload);

        Assert.That(violations, Has.Count.EqualTo(1));
        Assert.That(violations[0], Does.StartWith("$: not valid JSON: ").And.EndWith(position));
    }

    [Test]
    public void A_value_of_the_wrong_type_is_not_also_reported_for_its_missing_properties()
    {
        var violations = TestSchemas.Shipped.Validate("transaction", """{"transaction_id": "txn_12345678", "payment_method": "card"}""");

        Assert.That(violations, Does.Contain("$.payment_method: matches none of the 3 alternatives (oneOf)"));
        Assert.That(violations.Where(v => v.StartsWith("$.payment_method.", StringComparison.Ordinal)), Is.Empty);
        Assert.That(violations, Does.Contain("$.payment_method: expected an object, got a string (alternative 1: card)"));
    }

    [Test]
    public async Task Says_which_alternatives_match_when_more_than_one_does()
    {
        var catalog = await TestSchemas.CatalogOfAsync("""{"oneOf": [{"type": "integer"}, {"minimum": 3}, {"title": "small", "maximum": 9}]}""");

        Assert.That(catalog.Validate("test", "5"), Is.EqualTo(new[]
        {
            "$: matches alternative 1, alternative 2 and alternative 3: small; exactly one alternative may match (oneOf)",
        }));
    }

    [Test]
    public async Task Reports_each_failing_allOf_entry()
    {
        var catalog = await TestSchemas.CatalogOfAsync("""{"allOf": [{"minimum": 3}, {"maximum": 1}, {"type": "integer"}]}""");

        Assert.That(catalog.Validate("test", "2"), Is.EqualTo(new[] { "$: is below the minimum 3", "$: is above the maximum 1" }));
    }

    [Test]
    public async Task Reports_a_value_of_the_wrong_type_once_not_also_as_outside_its_enum()
    {
        var catalog = await TestSchemas.CatalogOfAsync("""{"type": "string", "enum": ["a", "b"]}""");

        Assert.That(catalog.Validate("test", "1"), Is.EqualTo(new[] { "$: expected a string, got an integer" }));
    }

    [Test]
    public async Task Explains_anyOf_like_oneOf()
    {
        var catalog = await TestSchemas.CatalogOfAsync("""{"anyOf": [{"type": "string", "maxLength": 2}, {"type": "integer"}]}""");

        Assert.That(catalog.Validate("test", "\"abc\""), Is.EqualTo(new[]
        {
            "$: matches none of the 2 alternatives (anyOf)",
            "$: is longer than the maximum length 2 (alternative 1)",
            "$: expected an integer, got a string (alternative 2)",
        }));
    }

    [TestCase("""{"exclusiveMinimum": 0}""", "0", "$: must be greater than 0")]
    [TestCase("""{"exclusiveMaximum": 1.5}""", "1.5", "$: must be less than 1.5")]
    [TestCase("""{"multipleOf": 0.5}""", "0.25", "$: is not a multiple of 0.5")]
    [TestCase("""{"minProperties": 1}""", "{}", "$: has fewer properties than the minimum 1")]
    [TestCase("""{"not": {"type": "string"}}""", "\"x\"", "$: matches a schema it must not match (not)")]
    [TestCase("""{"items": [{"type": "integer"}], "additionalItems": false}""", "[1, 2]", "$[1]: is an item beyond the ones the array allows")]
    [TestCase("""{"properties": {"a b": {"type": "integer"}}}""", """{"a b": "x"}""", "$['a b']: expected an integer, got a string")]
    [TestCase("""{"required": ["a.b"]}""", "{}", "$['a.b']: required property is missing")]
    [TestCase("""{"type": "integer"}""", "1.0", "$: expected an integer, got a number")]
    [TestCase("""{"enum": [1, "one", true, null]}""", "2", """$: must be one of 1, "one", true, null""")]
    public async Task Describes_other_keywords_it_enforces(string schema, string payload, string expected)
    {
        var catalog = await TestSchemas.CatalogOfAsync(schema);

        Assert.That(catalog.Validate("test", payload), Is.EqualTo(new[] { expected }));
    }

    [Test]
    public void Never_quotes_a_value_from_the_payload()
    {
        var payload = TestSchemas.Sample("user.created", p =>
        {
            p["email"] = "private-person@@example.com";
            p["name"] = new string('N', 201);
            p["locale"] = "Private-Locale";
            p["signup_source"] = "private-source";
        });

        var violations = TestSchemas.Shipped.Validate("user.created", payload);

        Assert.That(violations, Has.Count.EqualTo(4));
        Assert.That(violations.Where(v => v.Contains("rivate", StringComparison.Ordinal) || v.Contains("NNN", StringComparison.Ordinal)), Is.Empty);
    }

    [Test]
    public void Reports_at_most_MaxViolations_and_counts_the_rest()
    {
        var payload = TestSchemas.Sample("user.created", p =>
        {
            for (var i = 0; i < 30; i++)
            {
                p[$"extra_{i}"] = i;
            }
        });

        var violations = TestSchemas.Shipped.Validate("user.created", payload);

        Assert.That(violations, Has.Count.EqualTo(EventSchemaCatalog.MaxViolations));
        Assert.That(violations[^1], Is.EqualTo("… and 11 more violations"));
    }

    [Test]
    public async Task Validates_from_many_threads_at_once()
    {
        var payloads = ShippedSchemas.Samples
            .SelectMany(s => new[]
            {
                (s.Key, s.Value),
                (s.Key, TestSchemas.Sample(s.Key, p => p["unexpected"] = true)),
                (s.Key, "[]"),
            })
            .ToArray();
        var catalog = await EventSchemaCatalog.LoadAsync(ShippedSchemas.Schemas);
        var expected = payloads.Select(p => string.Join("|", catalog.Validate(p.Key, p.Item2))).ToArray();

        var mismatches = 0;
        await Parallel.ForAsync(0, 4_000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, (i, _) =>
        {
            var (eventType, payload) = payloads[i % payloads.Length];
            if (string.Join("|", catalog.Validate(eventType, payload)) != expected[i % payloads.Length])
            {
                Interlocked.Increment(ref mismatches);
            }

            return ValueTask.CompletedTask;
        });

        Assert.That(mismatches, Is.Zero);
    }

    [Test]
    public void Loading_refuses_two_schemas_for_one_event_type()
    {
        var schemas = new[] { KeyValuePair.Create("a", "{}"), KeyValuePair.Create("a", "{}") };

        Assert.That(() => EventSchemaCatalog.LoadAsync(schemas),
            Throws.ArgumentException.With.Message.StartsWith("Event type 'a' has two schemas."));
    }

    [TestCase("""{"type": """, TestName = "Not JSON")]
    [TestCase("""{"properties": {"a": {"$ref": "#/definitions/missing"}}}""", TestName = "A reference to nothing")]
    public void Loading_fails_on_a_schema_it_cannot_read_and_names_its_event_type(string schema)
    {
        Assert.That(() => EventSchemaCatalog.LoadAsync([KeyValuePair.Create("broken.type", schema)]),
            Throws.InvalidOperationException.With.Message.StartsWith("The schema of event type 'broken.type' cannot be loaded: "));
    }

    [TestCase("http://127.0.0.1:9/money.json",
        "'http://127.0.0.1:9/money.json' is outside the schema: only references such as '#/definitions/name' are supported.")]
    [TestCase("money.json#/definitions/amount",
        "Could not resolve the JSON path 'money.json#/definitions/amount' because no document path is available.")]
    public void Loading_refuses_references_outside_the_schema_without_fetching_them(string reference, string reason)
    {
        var schema = """{"properties": {"amount": {"$ref": "REF"}}}""".Replace("REF", reference, StringComparison.Ordinal);

        Assert.That(() => EventSchemaCatalog.LoadAsync([KeyValuePair.Create("remote", schema)]),
            Throws.InvalidOperationException.With.Message.EqualTo($"The schema of event type 'remote' cannot be loaded: {reason}"));
    }

    [Test]
    public async Task Patterns_are_dotNET_regular_expressions_not_ECMA_262_ones()
    {
        // Why the shipped schemas write [0-9], not \d, and why an end anchor does not stop a final line feed.
        var digits = await TestSchemas.CatalogOfAsync("""{"pattern": "^\\d+$"}""");
        var code = await TestSchemas.CatalogOfAsync("""{"pattern": "^[A-Z]{3}$"}""");

        Assert.Multiple(() =>
        {
            Assert.That(digits.Validate("test", "\"\u0661\u0662\u0663\""), Is.Empty, "\\d matches Arabic-Indic digits");
            Assert.That(code.Validate("test", "\"USD\\n\""), Is.Empty, "$ matches before a final line feed");
        });
    }
}
