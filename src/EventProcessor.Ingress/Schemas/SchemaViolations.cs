using System.Globalization;
using Newtonsoft.Json.Linq;
using NJsonSchema;
using NJsonSchema.Validation;

namespace EventProcessor.Ingress.Schemas;

/// <summary>
/// Turns NJsonSchema's validation errors into sentences a producer can act on: the JSON path of the value, then what
/// is wrong with it, stated with the schema's own limits (<c>$.amount: is below the minimum 0</c>). Errors that only
/// wrap others (an array item, an additional property, allOf) are replaced by what they wrap; a failed oneOf/anyOf
/// says so and shows why its closest alternatives failed.
/// </summary>
internal static class SchemaViolations
{
    private const int MaxEnumValuesShown = 10;

    private static readonly (JsonObjectType Type, string Name)[] TypeNames =
    [
        (JsonObjectType.Object, "an object"),
        (JsonObjectType.Array, "an array"),
        (JsonObjectType.String, "a string"),
        (JsonObjectType.Number, "a number"),
        (JsonObjectType.Integer, "an integer"),
        (JsonObjectType.Boolean, "a boolean"),
        (JsonObjectType.Null, "null"),
    ];

    public static List<string> Describe(IEnumerable<ValidationError> errors, int limit)
    {
        var sentences = new List<string>();
        AddAll(errors, "", sentences);

        var distinct = sentences.Distinct(StringComparer.Ordinal).ToList();
        if (distinct.Count > limit)
        {
            var hidden = distinct.Count - (limit - 1);
            distinct.RemoveRange(limit - 1, distinct.Count - (limit - 1));
            distinct.Add(string.Create(CultureInfo.InvariantCulture, $"… and {hidden} more violations"));
        }

        return distinct;
    }

    private static void AddAll(IEnumerable<ValidationError> errors, string context, List<string> into)
    {
        var list = errors as ICollection<ValidationError> ?? errors.ToList();
        foreach (var error in list)
        {
            // A value of the wrong type is not also reported as missing from an enum: its type is what to fix.
            if (error.Kind == ValidationErrorKind.NotInEnumeration
                && list.Any(other => IsTypeError(other.Kind) && ReferenceEquals(other.Token, error.Token)))
            {
                continue;
            }

            Add(error, context, into);
        }
    }

    private static bool IsTypeError(ValidationErrorKind kind) => kind is ValidationErrorKind.StringExpected
        or ValidationErrorKind.NumberExpected or ValidationErrorKind.IntegerExpected or ValidationErrorKind.BooleanExpected
        or ValidationErrorKind.ObjectExpected or ValidationErrorKind.ArrayExpected or ValidationErrorKind.NullExpected
        or ValidationErrorKind.NoTypeValidates;

    private static void Add(ValidationError error, string context, List<string> into)
    {
        switch (error)
        {
            case ChildSchemaValidationError alternatives when error.Kind is ValidationErrorKind.NotOneOf or ValidationErrorKind.NotAnyOf:
                AddAlternatives(alternatives, context, into);
                return;

            case ChildSchemaValidationError wrapper:
                // ArrayItemNotValid, AdditionalItemNotValid, AdditionalPropertiesNotValid, NotAllOf: the inner errors
                // carry their own paths and say more.
                foreach (var inner in wrapper.Errors.Values)
                {
                    AddAll(inner, context, into);
                }

                return;

            case MultiTypeValidationError multiType when ErrorsOfOwnType(multiType) is { } ownTypeErrors:
                // The value has one of the allowed types but breaks another rule (a format, a length): say that,
                // not that it has the wrong type.
                AddAll(ownTypeErrors, context, into);

                return;

            case { Kind: ValidationErrorKind.PropertyRequired, Token: not JObject }:
                // NJsonSchema also lists the required properties of a value that is not an object at all; its type
                // error is the one to fix.
                return;

            default:
                into.Add(PathOf(error) + ": " + Explain(error) + context);
                return;
        }
    }

    private static void AddAlternatives(ChildSchemaValidationError error, string context, List<string> into)
    {
        var keyword = error.Kind == ValidationErrorKind.NotOneOf ? "oneOf" : "anyOf";
        var branches = error.Errors.Select((branch, index) => (Label: Label(branch.Key, index), branch.Value)).ToList();
        var matching = branches.Where(b => b.Value.Count == 0).Select(b => b.Label).ToList();
        if (matching.Count > 0)
        {
            into.Add(PathOf(error) + ": matches " + JoinWithAnd(matching) +
                     $"; exactly one alternative may match ({keyword})" + context);
            return;
        }

        into.Add(string.Create(CultureInfo.InvariantCulture,
            $"{PathOf(error)}: matches none of the {branches.Count} alternatives ({keyword}){context}"));

        // Every alternative fails, most of them on what tells them apart (a type, a kind field). The ones that fail
        // on fewest points are the ones the producer meant; show only their reasons.
        var reasons = branches
            .Select(b =>
            {
                var sentences = new List<string>();
                AddAll(b.Value, $" ({b.Label}){context}", sentences);
                return sentences;
            })
            .ToList();
        var fewest = reasons.Min(r => r.Count);
        foreach (var sentences in reasons.Where(r => r.Count == fewest))
        {
            into.AddRange(sentences);
        }
    }

    private static string Label(JsonSchema branch, int index)
    {
        var title = branch.Title ?? branch.ActualSchema.Title;
        return string.IsNullOrEmpty(title)
            ? string.Create(CultureInfo.InvariantCulture, $"alternative {index + 1}")
            : string.Create(CultureInfo.InvariantCulture, $"alternative {index + 1}: {title}");
    }

    private static ICollection<ValidationError>? ErrorsOfOwnType(MultiTypeValidationError error)
    {
        var ownTypes = error.Token?.Type switch
        {
            JTokenType.Integer => JsonObjectType.Integer | JsonObjectType.Number,
            JTokenType.Float => JsonObjectType.Number,
            JTokenType.String => JsonObjectType.String,
            JTokenType.Boolean => JsonObjectType.Boolean,
            JTokenType.Null => JsonObjectType.Null,
            JTokenType.Object => JsonObjectType.Object,
            JTokenType.Array => JsonObjectType.Array,
            _ => JsonObjectType.None,
        };
        return error.Errors.FirstOrDefault(e => (e.Key & ownTypes) != 0).Value;
    }

    private static string Explain(ValidationError error)
    {
        var schema = error.Schema;
        return error.Kind switch
        {
            ValidationErrorKind.PropertyRequired => "required property is missing",
            ValidationErrorKind.NoAdditionalPropertiesAllowed => "is not an allowed property",
            ValidationErrorKind.NoTypeValidates => $"expected {TypesOf(schema.Type)}, got {Actual(error.Token)}",
            _ when IsTypeError(error.Kind) => $"expected {Expected(error.Kind)}, got {Actual(error.Token)}",
            ValidationErrorKind.NotInEnumeration => "must be one of " + EnumValues(schema),
            ValidationErrorKind.PatternMismatch => $"does not match the pattern {schema.Pattern}",
            ValidationErrorKind.StringTooShort => Invariant($"is shorter than the minimum length {schema.MinLength}"),
            ValidationErrorKind.StringTooLong => Invariant($"is longer than the maximum length {schema.MaxLength}"),
            ValidationErrorKind.NumberTooSmall => TooSmall(schema, error.Token),
            ValidationErrorKind.NumberTooBig => TooBig(schema, error.Token),
            ValidationErrorKind.NumberNotMultipleOf or ValidationErrorKind.IntegerNotMultipleOf
                => Invariant($"is not a multiple of {schema.MultipleOf}"),
            ValidationErrorKind.TooFewItems => Invariant($"has fewer items than the minimum {schema.MinItems}"),
            ValidationErrorKind.TooManyItems => Invariant($"has more items than the maximum {schema.MaxItems}"),
            ValidationErrorKind.ItemsNotUnique => "has duplicate items; they must be unique",
            ValidationErrorKind.TooManyItemsInTuple => "is an item beyond the ones the array allows",
            ValidationErrorKind.TooFewProperties => Invariant($"has fewer properties than the minimum {schema.MinProperties}"),
            ValidationErrorKind.TooManyProperties => Invariant($"has more properties than the maximum {schema.MaxProperties}"),
            ValidationErrorKind.ExcludedSchemaValidates => "matches a schema it must not match (not)",
            ValidationErrorKind.DateTimeExpected => "is not a valid date-time (RFC 3339, such as 2025-03-14T09:26:53Z)",
            ValidationErrorKind.DateExpected => "is not a valid date (yyyy-MM-dd)",
            ValidationErrorKind.TimeExpected => "is not a valid time (HH:mm:ss)",
            ValidationErrorKind.TimeSpanExpected => "is not a valid time span",
            ValidationErrorKind.EmailExpected => "is not a valid email address",
            ValidationErrorKind.UuidExpected or ValidationErrorKind.GuidExpected => "is not a valid UUID",
            ValidationErrorKind.UriExpected => "is not a valid absolute URI",
            ValidationErrorKind.HostnameExpected => "is not a valid host name",
            ValidationErrorKind.IpV4Expected => "is not a valid IPv4 address",
            ValidationErrorKind.IpV6Expected => "is not a valid IPv6 address",
            ValidationErrorKind.Base64Expected => "is not valid base64",
            _ => $"breaks the schema ({error.Kind})",
        };
    }

    private static string TooSmall(JsonSchema schema, JToken? token)
    {
        if (schema.Minimum is { } minimum && Below(token, minimum, schema.IsExclusiveMinimum))
        {
            return schema.IsExclusiveMinimum
                ? Invariant($"must be greater than {minimum}")
                : Invariant($"is below the minimum {minimum}");
        }

        return Invariant($"must be greater than {schema.ExclusiveMinimum}");
    }

    private static string TooBig(JsonSchema schema, JToken? token)
    {
        if (schema.Maximum is { } maximum && Above(token, maximum, schema.IsExclusiveMaximum))
        {
            return schema.IsExclusiveMaximum
                ? Invariant($"must be less than {maximum}")
                : Invariant($"is above the maximum {maximum}");
        }

        return Invariant($"must be less than {schema.ExclusiveMaximum}");
    }

    private static bool Below(JToken? token, decimal limit, bool exclusive)
    {
        var value = token?.Value<double>() ?? double.NaN;
        return exclusive ? value <= (double)limit : value < (double)limit;
    }

    private static bool Above(JToken? token, decimal limit, bool exclusive)
    {
        var value = token?.Value<double>() ?? double.NaN;
        return exclusive ? value >= (double)limit : value > (double)limit;
    }

    private static string EnumValues(JsonSchema schema)
    {
        var values = schema.Enumeration.Select(v => v switch
        {
            null => "null",
            string text => "\"" + text + "\"",
            bool flag => flag ? "true" : "false",
            JToken token => token.ToString(Newtonsoft.Json.Formatting.None),
            IFormattable number => number.ToString(null, CultureInfo.InvariantCulture),
            _ => v.ToString() ?? "",
        }).ToList();
        return values.Count <= MaxEnumValuesShown
            ? string.Join(", ", values)
            : string.Join(", ", values.Take(MaxEnumValuesShown)) + Invariant($", … ({values.Count} values)");
    }

    private static string Expected(ValidationErrorKind kind) => kind switch
    {
        ValidationErrorKind.StringExpected => "a string",
        ValidationErrorKind.NumberExpected => "a number",
        ValidationErrorKind.IntegerExpected => "an integer",
        ValidationErrorKind.BooleanExpected => "a boolean",
        ValidationErrorKind.ObjectExpected => "an object",
        ValidationErrorKind.ArrayExpected => "an array",
        _ => "null",
    };

    private static string TypesOf(JsonObjectType types)
    {
        var names = TypeNames.Where(t => types.HasFlag(t.Type)).Select(t => t.Name).ToList();
        return names.Count switch
        {
            0 => "another type",
            1 => names[0],
            _ => string.Join(", ", names.Take(names.Count - 1)) + " or " + names[^1],
        };
    }

    private static string JoinWithAnd(List<string> items) =>
        items.Count == 1 ? items[0] : string.Join(", ", items.Take(items.Count - 1)) + " and " + items[^1];

    private static string Actual(JToken? token) => token?.Type switch
    {
        JTokenType.Object => "an object",
        JTokenType.Array => "an array",
        JTokenType.Integer => "an integer",
        JTokenType.Float => "a number",
        JTokenType.String or JTokenType.Date or JTokenType.Guid or JTokenType.Uri or JTokenType.TimeSpan => "a string",
        JTokenType.Boolean => "a boolean",
        JTokenType.Null => "null",
        _ => "nothing",
    };

    // JSONPath of the value, from the token NJsonSchema reports: its own path is exact even for odd property names,
    // where the error's Path ("#/a.b") is ambiguous.
    private static string PathOf(ValidationError error)
    {
        var tokenPath = error.Token?.Path ?? error.Path?.TrimStart('#', '/') ?? "";
        var path = tokenPath.Length == 0 ? "$" : tokenPath[0] == '[' ? "$" + tokenPath : "$." + tokenPath;
        return error.Kind == ValidationErrorKind.PropertyRequired && error.Property is { } property
            ? path + Segment(property)
            : path;
    }

    private static string Segment(string name)
    {
        var plain = name.Length > 0 && !char.IsAsciiDigit(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
        return plain ? "." + name : "['" + name.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "']";
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
