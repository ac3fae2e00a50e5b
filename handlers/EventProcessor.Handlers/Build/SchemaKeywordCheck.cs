// The build-time check of the shipped JSON Schemas: a schema that states a rule the payload validator (NJsonSchema)
// would silently skip fails the build, instead of letting bad payloads through in production.
//
// MSBuild compiles this file on the fly (RoslynCodeTaskFactory, see ShippedSchemas.targets) against netstandard 2.0,
// where System.Text.Json cannot be referenced; hence the small JSON reader at the end, which also gives every error a
// line and column. The test project compiles the same file with SCHEMA_KEYWORD_RULES_ONLY defined, which leaves out
// the MSBuild task and the using directives its implicit usings already provide, so the rules are tested without a build.
#nullable enable
#if !SCHEMA_KEYWORD_RULES_ONLY
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
#endif
using System.Globalization;
using System.Text;

namespace EventProcessor.Handlers.Build;

#if !SCHEMA_KEYWORD_RULES_ONLY
/// <summary>Fails the build on every problem <see cref="SchemaKeywordRules"/> finds in the given schema files.</summary>
public sealed class CheckSchemaKeywords : Task
{
    /// <summary>The schema files to check.</summary>
    [Required]
    public ITaskItem[] Schemas { get; set; } = Array.Empty<ITaskItem>();

    /// <summary>The rules file, schema-keywords.json.</summary>
    [Required]
    public string RulesFile { get; set; } = "";

    /// <inheritdoc />
    public override bool Execute()
    {
        SchemaKeywordRules rules;
        try
        {
            rules = SchemaKeywordRules.Parse(File.ReadAllText(RulesFile));
        }
        catch (LocatedJsonException exception)
        {
            Log.LogError(null, "EPSCHEMA000", null, RulesFile, exception.Line, exception.Column, 0, 0, exception.Message);
            return false;
        }

        foreach (var schema in Schemas)
        {
            var path = schema.GetMetadata("FullPath");
            try
            {
                foreach (var problem in rules.Check(LocatedJson.Parse(File.ReadAllText(path))))
                {
                    Log.LogError(null, problem.Code, null, path, problem.Line, problem.Column, 0, 0, "{0}: {1}", problem.Path, problem.Message);
                }
            }
            catch (LocatedJsonException exception)
            {
                Log.LogError(null, "EPSCHEMA000", null, path, exception.Line, exception.Column, 0, 0, exception.Message);
            }
        }

        return !Log.HasLoggedErrors;
    }
}
#endif

/// <summary>
/// What NJsonSchema does with each keyword (read from schema-keywords.json), and the check of a schema against it.
/// Only schema positions are walked: a property named <c>const</c> under <c>properties</c> is a name, not a keyword.
/// </summary>
internal sealed class SchemaKeywordRules
{
    /// <summary>The one <c>$schema</c> a shipped schema may declare.</summary>
    public const string Draft07 = "http://json-schema.org/draft-07/schema#";

    // Keywords whose value is one schema, an array of schemas, or an object of named schemas. Ignored keywords are
    // listed too, so that the schemas under them are checked as well.
    private static readonly HashSet<string> SingleSchemaKeywords = new(StringComparer.Ordinal)
    {
        "additionalItems", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
        "unevaluatedItems", "unevaluatedProperties", "contentSchema",
    };

    private static readonly HashSet<string> SchemaArrayKeywords = new(StringComparer.Ordinal)
    {
        "allOf", "anyOf", "oneOf", "prefixItems",
    };

    private static readonly HashSet<string> SchemaMapKeywords = new(StringComparer.Ordinal)
    {
        "properties", "patternProperties", "definitions", "$defs", "dependentSchemas", "dependencies",
    };

    // NJsonSchema reads a boolean in these two places only; anywhere else it fails to load the schema.
    private static readonly HashSet<string> BooleanAllowedKeywords = new(StringComparer.Ordinal)
    {
        "additionalItems", "additionalProperties",
    };

    // The keywords that stop NJsonSchema from reading a schema with a single allOf/anyOf/oneOf entry as a plain
    // reference (JsonSchema.HasAllOfSchemaReference and its two siblings).
    private static readonly string[] NotAReferenceKeywords =
        { "type", "properties", "patternProperties", "enum", "multipleOf", "$ref" };

    private static readonly string[] Combinators = { "allOf", "anyOf", "oneOf" };

    private SchemaKeywordRules(
        List<string> annotations,
        List<KeywordExample> enforced,
        List<KeywordExample> ignored,
        List<KeywordExample> formats)
    {
        Annotations = new HashSet<string>(annotations, StringComparer.Ordinal);
        EnforcedExamples = enforced;
        IgnoredExamples = ignored;
        FormatExamples = formats;
        Enforced = new HashSet<string>(enforced.Select(e => e.Name), StringComparer.Ordinal);
        Ignored = new HashSet<string>(ignored.Select(e => e.Name), StringComparer.Ordinal);
        Formats = new HashSet<string>(formats.Select(e => e.Name), StringComparer.Ordinal);
    }

    /// <summary>Keywords without a validation meaning that a shipped schema may use.</summary>
    public HashSet<string> Annotations { get; }

    /// <summary>Keywords NJsonSchema validates.</summary>
    public HashSet<string> Enforced { get; }

    /// <summary>Keywords NJsonSchema reads past without validating anything.</summary>
    public HashSet<string> Ignored { get; }

    /// <summary>The <c>format</c> values NJsonSchema checks; it skips any other.</summary>
    public HashSet<string> Formats { get; }

    /// <summary>Per enforced keyword, a schema and an instance that NJsonSchema rejects.</summary>
    public IReadOnlyList<KeywordExample> EnforcedExamples { get; }

    /// <summary>Per ignored keyword, a schema and an instance that NJsonSchema accepts, though the keyword forbids it.</summary>
    public IReadOnlyList<KeywordExample> IgnoredExamples { get; }

    /// <summary>Per checked format, a schema using it and a string NJsonSchema rejects.</summary>
    public IReadOnlyList<KeywordExample> FormatExamples { get; }

    /// <summary>Reads schema-keywords.json.</summary>
    public static SchemaKeywordRules Parse(string rulesJson)
    {
        var root = LocatedJson.Parse(rulesJson);
        var annotations = new List<string>();
        foreach (var item in Required(root, "annotations", JsonKind.Array).Items)
        {
            annotations.Add(Expect(item, JsonKind.String).Text);
        }

        return new SchemaKeywordRules(
            annotations,
            Examples(root, "enforced", "keyword", "rejects"),
            Examples(root, "ignored", "keyword", "accepts"),
            Examples(root, "formats", "format", "rejects"));
    }

    /// <summary>Every problem of <paramref name="schema"/>, in document order.</summary>
    public List<SchemaProblem> Check(LocatedJson schema)
    {
        var problems = new List<SchemaProblem>();
        if (schema.Kind == JsonKind.Object && schema.Member("$schema") is null)
        {
            problems.Add(new SchemaProblem("EPSCHEMA003", "$", schema.Line, schema.Column,
                $"declare the draft: \"$schema\": \"{Draft07}\""));
        }

        foreach (var position in SchemaPositions(schema, problems))
        {
            CheckKeywords(position, problems);
        }

        return problems.OrderBy(p => p.Line).ThenBy(p => p.Column).ToList();
    }

    /// <summary>Every keyword at a schema position of <paramref name="schema"/>, with the path of its schema.</summary>
    public static List<SchemaKeyword> Keywords(LocatedJson schema)
    {
        var keywords = new List<SchemaKeyword>();
        foreach (var position in SchemaPositions(schema, new List<SchemaProblem>()))
        {
            foreach (var member in position.Node.Members)
            {
                keywords.Add(new SchemaKeyword(position.Path, member));
            }
        }

        return keywords;
    }

    private void CheckKeywords(SchemaPosition position, List<SchemaProblem> problems)
    {
        var node = position.Node;
        foreach (var member in node.Members)
        {
            var keyword = member.Name;
            if (Ignored.Contains(keyword))
            {
                problems.Add(Problem("EPSCHEMA001", position, member,
                    $"NJsonSchema ignores '{keyword}': payloads breaking the rule would pass. State it with enforced " +
                    "keywords (listed in Build/schema-keywords.json) or leave it out"));
            }
            else if (!Enforced.Contains(keyword) && !Annotations.Contains(keyword))
            {
                problems.Add(Problem("EPSCHEMA002", position, member,
                    $"'{keyword}' is not a keyword NJsonSchema enforces (a typo, or a later draft's keyword?): it " +
                    "would be silently ignored"));
            }

            switch (keyword)
            {
                case "$schema" when !position.IsRoot || member.Value.Kind != JsonKind.String || member.Value.Text != Draft07:
                    problems.Add(Problem("EPSCHEMA003", position, member,
                        $"only the root declares the draft, and it is draft-07: \"$schema\": \"{Draft07}\""));
                    break;
                case "format" when member.Value.Kind == JsonKind.String && !Formats.Contains(member.Value.Text):
                    problems.Add(Problem("EPSCHEMA004", position, member,
                        $"NJsonSchema does not check the format '{member.Value.Text}'; it checks " +
                        string.Join(", ", Formats.OrderBy(f => f, StringComparer.Ordinal))));
                    break;
                case "$ref" when member.Value.Kind != JsonKind.String || !member.Value.Text.StartsWith("#/", StringComparison.Ordinal):
                    problems.Add(Problem("EPSCHEMA005", position, member,
                        "only references inside the same schema ('#/definitions/...') are allowed: each schema is " +
                        "loaded on its own, without file or network access"));
                    break;
            }
        }

        CheckSiblingsOfReference(position, problems);
    }

    // Keywords beside a reference are not applied: beside "$ref" by draft-07 itself, and beside a lone allOf/anyOf/oneOf
    // entry that is a "$ref" by NJsonSchema, which then takes the whole schema for that reference.
    private void CheckSiblingsOfReference(SchemaPosition position, List<SchemaProblem> problems)
    {
        var node = position.Node;
        string? because = null;
        string? reference = null;
        if (node.Member("$ref") is not null)
        {
            reference = "$ref";
            because = "is ignored next to '$ref' (draft-07): move it into the referenced definition";
        }
        else
        {
            var combinators = Combinators.Where(c => node.Member(c) is not null).ToList();
            var additionalProperties = node.Member("additionalProperties");
            if (combinators.Count == 1
                && NotAReferenceKeywords.All(k => node.Member(k) is null)
                && additionalProperties?.Value.Kind != JsonKind.Object)
            {
                var entries = node.Member(combinators[0])!.Value;
                if (entries.Kind == JsonKind.Array && entries.Items.Count == 1
                    && entries.Items[0].Kind == JsonKind.Object && entries.Items[0].Member("$ref") is not null)
                {
                    reference = combinators[0];
                    because = $"is ignored: NJsonSchema reads a schema whose only '{reference}' entry is a '$ref' as " +
                        "that reference alone. Add \"type\" to this schema or move the keyword into the definition";
                }
            }
        }

        if (reference is null)
        {
            return;
        }

        foreach (var member in node.Members)
        {
            if (member.Name != reference && !Annotations.Contains(member.Name))
            {
                problems.Add(Problem("EPSCHEMA006", position, member, $"'{member.Name}' {because}"));
            }
        }
    }

    private static List<SchemaPosition> SchemaPositions(LocatedJson root, List<SchemaProblem> problems)
    {
        var positions = new List<SchemaPosition>();
        Collect(root, "$", isRoot: true, keyword: null, positions, problems);
        return positions;
    }

    private static void Collect(
        LocatedJson node, string path, bool isRoot, string? keyword, List<SchemaPosition> positions, List<SchemaProblem> problems)
    {
        if (node.Kind != JsonKind.Object)
        {
            var allowedBoolean = node.Kind is JsonKind.True or JsonKind.False
                && keyword is not null && BooleanAllowedKeywords.Contains(keyword);
            if (!allowedBoolean)
            {
                problems.Add(new SchemaProblem("EPSCHEMA007", path, node.Line, node.Column,
                    "a schema must be an object here (NJsonSchema cannot read a boolean schema in this place): use {} " +
                    "for anything, {\"not\": {}} for nothing"));
            }

            return;
        }

        positions.Add(new SchemaPosition(path, node, isRoot));
        foreach (var member in node.Members)
        {
            var name = member.Name;
            var value = member.Value;
            var memberPath = path + PathSegment(name);
            if (SingleSchemaKeywords.Contains(name) || (name == "items" && value.Kind != JsonKind.Array))
            {
                Collect(value, memberPath, isRoot: false, name, positions, problems);
            }
            else if ((SchemaArrayKeywords.Contains(name) || name == "items") && value.Kind == JsonKind.Array)
            {
                for (var i = 0; i < value.Items.Count; i++)
                {
                    Collect(value.Items[i], memberPath + "[" + i.ToString(CultureInfo.InvariantCulture) + "]",
                        isRoot: false, name, positions, problems);
                }
            }
            else if (SchemaMapKeywords.Contains(name) && value.Kind == JsonKind.Object)
            {
                foreach (var entry in value.Members)
                {
                    // "dependencies" maps a property either to a schema or to the names it requires.
                    if (name != "dependencies" || entry.Value.Kind == JsonKind.Object)
                    {
                        Collect(entry.Value, memberPath + PathSegment(entry.Name), isRoot: false, name, positions, problems);
                    }
                }
            }
        }
    }

    /// <summary>A JSONPath step to <paramref name="name"/>: <c>.name</c>, or <c>['odd name']</c>.</summary>
    public static string PathSegment(string name)
    {
        var plain = name.Length > 0 && !(name[0] >= '0' && name[0] <= '9');
        foreach (var c in name)
        {
            plain &= c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_' or '$';
        }

        return plain ? "." + name : "['" + name.Replace("\\", "\\\\").Replace("'", "\\'") + "']";
    }

    private static SchemaProblem Problem(string code, SchemaPosition position, LocatedJsonMember member, string message) =>
        new(code, position.Path + PathSegment(member.Name), member.Line, member.Column, message);

    private static List<KeywordExample> Examples(LocatedJson root, string section, string nameField, string instanceField)
    {
        var examples = new List<KeywordExample>();
        foreach (var item in Required(root, section, JsonKind.Array).Items)
        {
            var name = Required(item, nameField, JsonKind.String).Text;
            var schema = item.Member("schema")?.Value.Raw ?? "{\"format\": \"" + name + "\"}";
            var instance = item.Member(instanceField)?.Value
                ?? throw new LocatedJsonException($"'{instanceField}' is missing", item.Line, item.Column);
            examples.Add(new KeywordExample(name, schema, instance.Raw));
        }

        return examples;
    }

    private static LocatedJson Required(LocatedJson node, string name, JsonKind kind) =>
        Expect(node.Member(name)?.Value ?? throw new LocatedJsonException($"'{name}' is missing", node.Line, node.Column), kind);

    private static LocatedJson Expect(LocatedJson node, JsonKind kind) =>
        node.Kind == kind ? node : throw new LocatedJsonException($"expected {kind}, found {node.Kind}", node.Line, node.Column);

    private sealed class SchemaPosition(string path, LocatedJson node, bool isRoot)
    {
        public string Path { get; } = path;

        public LocatedJson Node { get; } = node;

        public bool IsRoot { get; } = isRoot;
    }
}

/// <summary>A keyword in a schema and the path of the schema it belongs to.</summary>
internal sealed class SchemaKeyword(string schemaPath, LocatedJsonMember member)
{
    public string SchemaPath { get; } = schemaPath;

    public string Name { get; } = member.Name;

    public LocatedJson Value { get; } = member.Value;
}

/// <summary>One thing wrong in a schema file, where it is, and what to do about it.</summary>
internal sealed class SchemaProblem(string code, string path, int line, int column, string message)
{
    public string Code { get; } = code;

    public string Path { get; } = path;

    public int Line { get; } = line;

    public int Column { get; } = column;

    public string Message { get; } = message;

    public override string ToString() => $"{Path}: {Message}";
}

/// <summary>A keyword (or format), a schema using it and an instance, each as JSON text.</summary>
internal sealed class KeywordExample(string name, string schemaJson, string instanceJson)
{
    public string Name { get; } = name;

    public string SchemaJson { get; } = schemaJson;

    public string InstanceJson { get; } = instanceJson;

    public override string ToString() => Name;
}

internal enum JsonKind
{
    Object,
    Array,
    String,
    Number,
    True,
    False,
    Null,
}

/// <summary>A JSON value with the line and column where it starts, and its exact text.</summary>
internal sealed class LocatedJson
{
    private static readonly List<LocatedJson> NoItems = new();
    private static readonly List<LocatedJsonMember> NoMembers = new();

    private LocatedJson(JsonKind kind, int line, int column)
    {
        Kind = kind;
        Line = line;
        Column = column;
    }

    public JsonKind Kind { get; }

    /// <summary>1-based.</summary>
    public int Line { get; }

    /// <summary>1-based.</summary>
    public int Column { get; }

    /// <summary>A string's value, or a number's text.</summary>
    public string Text { get; private set; } = "";

    /// <summary>The value exactly as written, to hand to another JSON reader.</summary>
    public string Raw { get; private set; } = "";

    public List<LocatedJson> Items { get; private set; } = NoItems;

    /// <summary>An object's members in document order.</summary>
    public List<LocatedJsonMember> Members { get; private set; } = NoMembers;

    public LocatedJsonMember? Member(string name) => Members.Find(m => m.Name == name);

    /// <summary>Reads one JSON document (RFC 8259: no comments, no trailing commas, no duplicate keys).</summary>
    public static LocatedJson Parse(string text) => Reader.Parse(text);

    private sealed class Reader(string text)
    {
        private const int MaxDepth = 64;

        private int _position;
        private int _line = 1;
        private int _lineStart;

        public static LocatedJson Parse(string text)
        {
            var reader = new Reader(text);
            reader.SkipWhitespace();
            var value = reader.ReadValue(0);
            reader.SkipWhitespace();
            if (reader._position < text.Length)
            {
                throw reader.Error("unexpected text after the JSON value");
            }

            return value;
        }

        private LocatedJson ReadValue(int depth)
        {
            if (depth > MaxDepth)
            {
                throw Error("nested too deeply");
            }

            if (_position >= text.Length)
            {
                throw Error("unexpected end of the text");
            }

            var start = _position;
            var value = text[_position] switch
            {
                '{' => ReadObject(depth),
                '[' => ReadArray(depth),
                '"' => ReadStringValue(),
                't' => ReadLiteral("true", JsonKind.True),
                'f' => ReadLiteral("false", JsonKind.False),
                'n' => ReadLiteral("null", JsonKind.Null),
                _ => ReadNumber(),
            };
            value.Raw = text.Substring(start, _position - start);
            return value;
        }

        private LocatedJson ReadObject(int depth)
        {
            var value = New(JsonKind.Object);
            value.Members = new List<LocatedJsonMember>();
            _position++;
            SkipWhitespace();
            if (TryConsume('}'))
            {
                return value;
            }

            do
            {
                SkipWhitespace();
                var line = _line;
                var column = Column;
                if (_position >= text.Length || text[_position] != '"')
                {
                    throw Error("expected a property name in double quotes");
                }

                var name = ReadString();
                if (value.Member(name) is not null)
                {
                    throw new LocatedJsonException($"duplicate key '{name}'", line, column);
                }

                SkipWhitespace();
                Consume(':');
                SkipWhitespace();
                value.Members.Add(new LocatedJsonMember(name, line, column, ReadValue(depth + 1)));
                SkipWhitespace();
            }
            while (TryConsume(','));

            Consume('}');
            return value;
        }

        private LocatedJson ReadArray(int depth)
        {
            var value = New(JsonKind.Array);
            value.Items = new List<LocatedJson>();
            _position++;
            SkipWhitespace();
            if (TryConsume(']'))
            {
                return value;
            }

            do
            {
                SkipWhitespace();
                value.Items.Add(ReadValue(depth + 1));
                SkipWhitespace();
            }
            while (TryConsume(','));

            Consume(']');
            return value;
        }

        private LocatedJson ReadStringValue()
        {
            var value = New(JsonKind.String);
            value.Text = ReadString();
            return value;
        }

        private string ReadString()
        {
            _position++;
            var builder = new StringBuilder();
            while (true)
            {
                if (_position >= text.Length)
                {
                    throw Error("unterminated string");
                }

                var c = text[_position++];
                if (c == '"')
                {
                    return builder.ToString();
                }

                if (c < ' ')
                {
                    throw Error("control character in a string");
                }

                if (c != '\\')
                {
                    builder.Append(c);
                    continue;
                }

                if (_position >= text.Length)
                {
                    throw Error("unterminated string");
                }

                var escaped = text[_position++];
                switch (escaped)
                {
                    case '"' or '\\' or '/':
                        builder.Append(escaped);
                        break;
                    case 'b':
                        builder.Append('\b');
                        break;
                    case 'f':
                        builder.Append('\f');
                        break;
                    case 'n':
                        builder.Append('\n');
                        break;
                    case 'r':
                        builder.Append('\r');
                        break;
                    case 't':
                        builder.Append('\t');
                        break;
                    case 'u':
                        builder.Append(ReadHexCodeUnit());
                        break;
                    default:
                        throw Error("invalid escape in a string");
                }
            }
        }

        private char ReadHexCodeUnit()
        {
            var code = 0;
            for (var i = 0; i < 4; i++, _position++)
            {
                var c = _position < text.Length ? text[_position] : '\0';
                var digit = c switch
                {
                    >= '0' and <= '9' => c - '0',
                    >= 'a' and <= 'f' => c - 'a' + 10,
                    >= 'A' and <= 'F' => c - 'A' + 10,
                    _ => throw Error("invalid \\u escape in a string"),
                };
                code = (code * 16) + digit;
            }

            return (char)code;
        }

        private LocatedJson ReadLiteral(string literal, JsonKind kind)
        {
            if (string.CompareOrdinal(text, _position, literal, 0, literal.Length) != 0)
            {
                throw Error("unexpected character");
            }

            var value = New(kind);
            _position += literal.Length;
            return value;
        }

        // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
        private LocatedJson ReadNumber()
        {
            var value = New(JsonKind.Number);
            var start = _position;
            TryConsume('-');
            if (!TryConsume('0'))
            {
                ReadDigits();
            }

            if (TryConsume('.'))
            {
                ReadDigits();
            }

            if (TryConsume('e') || TryConsume('E'))
            {
                if (!TryConsume('+'))
                {
                    TryConsume('-');
                }

                ReadDigits();
            }

            value.Text = text.Substring(start, _position - start);
            return value;
        }

        private void ReadDigits()
        {
            var start = _position;
            while (_position < text.Length && text[_position] >= '0' && text[_position] <= '9')
            {
                _position++;
            }

            if (_position == start)
            {
                throw Error("unexpected character");
            }
        }

        private void SkipWhitespace()
        {
            while (_position < text.Length)
            {
                var c = text[_position];
                if (c == '\n')
                {
                    _line++;
                    _lineStart = _position + 1;
                }
                else if (c != ' ' && c != '\t' && c != '\r')
                {
                    return;
                }

                _position++;
            }
        }

        private bool TryConsume(char c)
        {
            if (_position < text.Length && text[_position] == c)
            {
                _position++;
                return true;
            }

            return false;
        }

        private void Consume(char c)
        {
            if (!TryConsume(c))
            {
                throw Error($"expected '{c}'");
            }
        }

        private int Column => _position - _lineStart + 1;

        private LocatedJson New(JsonKind kind) => new(kind, _line, Column);

        private LocatedJsonException Error(string message) => new(message, _line, Column);
    }
}

/// <summary>An object member, with the line and column of its name.</summary>
internal sealed class LocatedJsonMember(string name, int line, int column, LocatedJson value)
{
    public string Name { get; } = name;

    public int Line { get; } = line;

    public int Column { get; } = column;

    public LocatedJson Value { get; } = value;
}

/// <summary>JSON that cannot be read, or does not have the expected shape; with the line and column.</summary>
internal sealed class LocatedJsonException(string message, int line, int column)
    : Exception($"{message} (line {line.ToString(CultureInfo.InvariantCulture)}, column {column.ToString(CultureInfo.InvariantCulture)})")
{
    public int Line { get; } = line;

    public int Column { get; } = column;
}
