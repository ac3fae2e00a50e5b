using EventProcessor.Handlers.Build;

namespace EventProcessor.Tests.Schemas;

/// <summary>
/// Build/schema-keywords.json, the list the build checks shipped schemas against, held to what the validator really
/// does; and the rules of that check (SchemaKeywordCheck.cs), run without a build.
/// </summary>
public sealed class SchemaKeywordRulesTests
{
    private static IEnumerable<TestCaseData> Enforced => Cases(TestSchemas.Rules.EnforcedExamples);

    private static IEnumerable<TestCaseData> Ignored => Cases(TestSchemas.Rules.IgnoredExamples);

    private static IEnumerable<TestCaseData> Formats => Cases(TestSchemas.Rules.FormatExamples);

    [TestCaseSource(nameof(Enforced))]
    public async Task An_enforced_keyword_rejects_its_example(string keyword, string schema, string instance)
    {
        var catalog = await TestSchemas.CatalogOfAsync(schema);

        Assert.That(catalog.Validate("test", instance), Is.Not.Empty,
            $"NJsonSchema no longer enforces '{keyword}': move it to 'ignored' in Build/schema-keywords.json");
    }

    [TestCaseSource(nameof(Ignored))]
    public async Task An_ignored_keyword_still_lets_its_example_through(string keyword, string schema, string instance)
    {
        var catalog = await TestSchemas.CatalogOfAsync(schema);

        Assert.That(catalog.Validate("test", instance), Is.Empty,
            $"NJsonSchema now enforces '{keyword}': move it from 'ignored' to 'enforced' in Build/schema-keywords.json");
    }

    [TestCaseSource(nameof(Formats))]
    public async Task A_checked_format_rejects_its_example(string keyword, string schema, string instance)
    {
        var catalog = await TestSchemas.CatalogOfAsync(schema);

        Assert.That(catalog.Validate("test", instance), Is.Not.Empty,
            $"NJsonSchema no longer checks the format '{keyword}': remove it from 'formats' in Build/schema-keywords.json");
    }

    [TestCase("uri-reference")]
    [TestCase("duration")]
    [TestCase("json-pointer")]
    [TestCase("idn-email")]
    [TestCase("regex")]
    public async Task A_format_outside_the_list_is_not_checked_at_all(string format)
    {
        var catalog = await TestSchemas.CatalogOfAsync($$"""{"format": "{{format}}"}""");

        Assert.Multiple(() =>
        {
            Assert.That(catalog.Validate("test", "\"%% not a {format} %%\""), Is.Empty);
            Assert.That(TestSchemas.Rules.Formats, Does.Not.Contain(format));
        });
    }

    [TestCase("date-time", "2025", TestName = "date-time: a year")]
    [TestCase("date-time", "2025-03-14", TestName = "date-time: a date")]
    [TestCase("date-time", "2025-03-14T09:26:53", TestName = "date-time: no offset")]
    [TestCase("date-time", "2025-13-45T99:99:99Z", TestName = "date-time: month 13")]
    [TestCase("uuid", "{3f6c2a9e-8b1d-4c7a-9e2f-5d4b3a2c1e0f}", TestName = "uuid: braces")]
    [TestCase("uuid", "3f6c2a9e8b1d4c7a9e2f5d4b3a2c1e0f", TestName = "uuid: no hyphens")]
    public async Task Some_checked_formats_are_looser_than_their_RFC(string format, string accepted)
    {
        // What "format" buys: a shape check, not RFC 3339 or RFC 9562. A handler still parses what it reads.
        var catalog = await TestSchemas.CatalogOfAsync($$"""{"format": "{{format}}"}""");

        Assert.That(catalog.Validate("test", $"\"{accepted}\""), Is.Empty);
    }

    [Test]
    public void Every_keyword_is_listed_once()
    {
        var rules = TestSchemas.Rules;
        string[] all = [.. rules.Annotations, .. rules.EnforcedExamples.Select(e => e.Name), .. rules.IgnoredExamples.Select(e => e.Name)];

        Assert.That(all, Is.Unique);
    }

    [Test]
    public async Task Keywords_beside_a_reference_are_not_applied_so_the_check_rejects_them()
    {
        const string Schema = """
            {
              "$schema": "http://json-schema.org/draft-07/schema#",
              "definitions": { "amount": { "type": "number" } },
              "properties": {
                "beside_ref": { "$ref": "#/definitions/amount", "minimum": 5 },
                "beside_lone_allOf": { "allOf": [{ "$ref": "#/definitions/amount" }], "minimum": 5 },
                "with_type": { "type": "number", "allOf": [{ "$ref": "#/definitions/amount" }], "minimum": 5 }
              }
            }
            """;
        var catalog = await TestSchemas.CatalogOfAsync(Schema);

        Assert.Multiple(() =>
        {
            Assert.That(catalog.Validate("test", """{"beside_ref": 1, "beside_lone_allOf": 1}"""), Is.Empty);
            Assert.That(catalog.Validate("test", """{"with_type": 1}"""), Is.EqualTo(new[] { "$.with_type: is below the minimum 5" }));
            Assert.That(Problems(Schema), Is.EqualTo(new[]
            {
                "EPSCHEMA006 $.properties.beside_ref.minimum (5,53)",
                "EPSCHEMA006 $.properties.beside_lone_allOf.minimum (6,75)",
            }));
        });
    }

    [Test]
    public void Walks_schema_positions_only_so_a_property_named_like_a_keyword_is_fine()
    {
        const string Schema = """
            {
              "$schema": "http://json-schema.org/draft-07/schema#",
              "type": "object",
              "properties": {
                "const": { "type": "integer", "default": { "const": 1, "if": true } },
                "if": { "type": "string", "examples": [{ "then": 2 }] }
              },
              "required": ["const", "if"]
            }
            """;

        Assert.That(Problems(Schema), Is.Empty);
    }

    [Test]
    public void Names_the_path_line_and_column_of_an_ignored_keyword()
    {
        const string Schema = """
            {
              "$schema": "http://json-schema.org/draft-07/schema#",
              "properties": {
                "level": { "type": "string", "const": "error" },
                "items": { "type": "array", "items": [{ "type": "string" }, { "if": {} }] }
              },
              "dependencies": { "a": ["b"], "c": { "then": {} } }
            }
            """;

        var problems = TestSchemas.Rules.Check(LocatedJson.Parse(Schema));

        Assert.Multiple(() =>
        {
            Assert.That(problems.Select(Describe), Is.EqualTo(new[]
            {
                "EPSCHEMA001 $.properties.level.const (4,34)",
                "EPSCHEMA001 $.properties.items.items[1].if (5,67)",
                "EPSCHEMA001 $.dependencies (7,3)",
                "EPSCHEMA001 $.dependencies.c.then (7,40)",
            }));
            Assert.That(problems[0].Message, Does.StartWith("NJsonSchema ignores 'const'"));
        });
    }

    [TestCase("""{"minimun": 0}""", "EPSCHEMA002 $.minimun (2,2)", TestName = "A typo")]
    [TestCase("""{"$defs": {}}""", "EPSCHEMA002 $.$defs (2,2)", TestName = "A later draft's keyword")]
    [TestCase("""{"format": "uri-reference"}""", "EPSCHEMA004 $.format (2,2)", TestName = "An unchecked format")]
    [TestCase("""{"$ref": "other.json#/definitions/a"}""", "EPSCHEMA005 $.$ref (2,2)", TestName = "A reference to another file")]
    [TestCase("""{"properties": {"a": true}}""", "EPSCHEMA007 $.properties.a (2,22)", TestName = "A boolean schema")]
    public void Rejects(string keywords, string expected)
    {
        var schema = "{\"$schema\": \"http://json-schema.org/draft-07/schema#\",\n " + keywords[1..];

        Assert.That(Problems(schema), Is.EqualTo(new[] { expected }));
    }

    [Test]
    public void Allows_booleans_for_additionalProperties_and_additionalItems()
    {
        const string Schema = """
            {"$schema": "http://json-schema.org/draft-07/schema#", "additionalProperties": false, "additionalItems": true}
            """;

        Assert.That(Problems(Schema), Is.Empty);
    }

    [TestCase("""{"type": "object"}""", "EPSCHEMA003 $ (1,1)", TestName = "No $schema")]
    [TestCase("""{"$schema": "https://json-schema.org/draft/2020-12/schema"}""", "EPSCHEMA003 $.$schema (1,2)", TestName = "Another draft")]
    public void Requires_draft_07(string schema, string expected)
    {
        Assert.That(Problems(schema), Is.EqualTo(new[] { expected }));
    }

    [TestCase("{\"a\": 1,}", "expected a property name in double quotes (line 1, column 9)")]
    [TestCase("{\"a\": 1 // note\n}", "expected '}' (line 1, column 9)")]
    [TestCase("{\n  \"a\": 1,\n  \"a\": 2\n}", "duplicate key 'a' (line 3, column 3)")]
    [TestCase("{} {}", "unexpected text after the JSON value (line 1, column 4)")]
    public void Reads_strict_JSON_and_says_where_it_is_not(string json, string expected)
    {
        Assert.That(() => LocatedJson.Parse(json), Throws.InstanceOf<LocatedJsonException>().With.Message.EqualTo(expected));
    }

    [Test]
    public void Reads_escapes_numbers_and_literals()
    {
        var json = LocatedJson.Parse("""{"s": "a\"\\\/\b\f\n\r\t\u00e9", "n": [-0, 1.5e+3, 2E-2], "l": [true, false, null]}""");

        Assert.Multiple(() =>
        {
            Assert.That(json.Member("s")!.Value.Text, Is.EqualTo("a\"\\/\b\f\n\r\té"));
            Assert.That(json.Member("n")!.Value.Items.Select(i => i.Text), Is.EqualTo(new[] { "-0", "1.5e+3", "2E-2" }));
            Assert.That(json.Member("l")!.Value.Items.Select(i => i.Kind), Is.EqualTo(new[] { JsonKind.True, JsonKind.False, JsonKind.Null }));
            Assert.That(json.Member("n")!.Value.Raw, Is.EqualTo("[-0, 1.5e+3, 2E-2]"));
        });
    }

    private static IEnumerable<TestCaseData> Cases(IEnumerable<KeywordExample> examples) =>
        examples.Select(e => new TestCaseData(e.Name, e.SchemaJson, e.InstanceJson).SetArgDisplayNames(e.Name));

    private static List<string> Problems(string schema) =>
        TestSchemas.Rules.Check(LocatedJson.Parse(schema)).Select(Describe).ToList();

    private static string Describe(SchemaProblem problem) => $"{problem.Code} {problem.Path} ({problem.Line},{problem.Column})";
}
