using System.Collections.Frozen;
using System.Globalization;
using System.Text.Json;
using EventProcessor.Validation;
using NJsonSchema;
using NJsonSchema.Validation;

namespace EventProcessor.Ingress.Schemas;

/// <summary>
/// The JSON Schema of each event type, parsed once when the service starts, and the check of a payload against it.
/// Safe for concurrent use: after loading, nothing is written, and NJsonSchema's validator keeps no state per call.
/// </summary>
/// <remarks>
/// NJsonSchema skips some draft-07 keywords (<c>const</c>, <c>if</c>/<c>then</c>/<c>else</c>, <c>dependencies</c>,
/// <c>contains</c>, <c>propertyNames</c>, ...) without a word. The shipped schemas are checked for them at build time
/// (handlers/EventProcessor.Handlers/Build/schema-keywords.json); schemas passed in from elsewhere are not.
/// </remarks>
public sealed class EventSchemaCatalog : IEventPayloadValidator
{
    /// <summary>At most this many violations are reported per payload; a dead-letter reason has to stay readable.</summary>
    public const int MaxViolations = 20;

    // Built from settings on purpose: the parameterless JsonSchemaValidator() binds to the params IFormatValidator[]
    // constructor and replaces the default format validators with none, so every "format" would pass unchecked.
    private static readonly JsonSchemaValidator Validator = new(new JsonSchemaValidatorSettings());

    private readonly FrozenDictionary<string, JsonSchema> _schemas;

    private EventSchemaCatalog(FrozenDictionary<string, JsonSchema> schemas) => _schemas = schemas;

    /// <summary>The event types that have a schema.</summary>
    public IReadOnlyCollection<string> EventTypes => _schemas.Keys;

    /// <summary>Parses every schema (JSON text, by event type) once.</summary>
    /// <exception cref="ArgumentException">An event type is empty or appears twice.</exception>
    /// <exception cref="InvalidOperationException">A schema cannot be loaded; the message names its event type.</exception>
    public static async Task<EventSchemaCatalog> LoadAsync(
        IEnumerable<KeyValuePair<string, string>> schemas,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(schemas);
        var parsed = new Dictionary<string, JsonSchema>(StringComparer.Ordinal);
        foreach (var (eventType, schemaJson) in schemas)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(eventType, nameof(schemas));
            if (parsed.ContainsKey(eventType))
            {
                throw new ArgumentException($"Event type '{eventType}' has two schemas.", nameof(schemas));
            }

            try
            {
                parsed[eventType] = await JsonSchema.FromJsonAsync(
                    schemaJson, documentPath: null, LocalReferenceResolver.Create, cancellationToken);
            }
            catch (Exception exception) when (exception is Newtonsoft.Json.JsonException or InvalidOperationException
                                                  or NotSupportedException)
            {
                // NJsonSchema wraps the cause (a refused reference, a bad token) in messages of its own.
                throw new InvalidOperationException(
                    $"The schema of event type '{eventType}' cannot be loaded: {exception.GetBaseException().Message}",
                    exception);
            }
        }

        return new EventSchemaCatalog(parsed.ToFrozenDictionary(StringComparer.Ordinal));
    }

    /// <summary>Whether <paramref name="eventType"/> has a schema.</summary>
    public bool HasSchema(string eventType) => _schemas.ContainsKey(eventType);

    /// <summary>
    /// The violations of <paramref name="payloadJson"/> against the schema of <paramref name="eventType"/>, each a
    /// sentence that starts with the JSON path it is about: <c>$.amount: is below the minimum 0</c>. Empty when the
    /// payload is valid or the type has no schema. A payload that is not JSON is a violation, never an exception.
    /// Values from the payload are never quoted: the sentences end up in logs and dead-letter rows.
    /// </summary>
    public IReadOnlyList<string> Validate(string eventType, string payloadJson)
    {
        ArgumentNullException.ThrowIfNull(eventType);
        ArgumentNullException.ThrowIfNull(payloadJson);
        if (!_schemas.TryGetValue(eventType, out var schema))
        {
            return [];
        }

        // System.Text.Json first: Newtonsoft, which NJsonSchema reads with, accepts comments, single quotes and
        // trailing text, none of which PostgreSQL or a handler would.
        try
        {
            using var document = JsonDocument.Parse(payloadJson);
        }
        catch (JsonException exception)
        {
            return [$"$: not valid JSON: {Describe(exception)}"];
        }

        try
        {
            var errors = Validator.Validate(payloadJson, schema);
            return errors.Count == 0 ? [] : SchemaViolations.Describe(errors, MaxViolations);
        }
        catch (Newtonsoft.Json.JsonException exception)
        {
            return [$"$: the payload cannot be read: {exception.Message}"];
        }
    }

    private static string Describe(JsonException exception)
    {
        // "'}' is an invalid start of a value. Path: $ | LineNumber: 0 | BytePositionInLine: 12." -> the first sentence
        // and a 1-based position.
        var message = exception.Message;
        var end = message.IndexOf(" Path:", StringComparison.Ordinal);
        if (end < 0)
        {
            end = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        }

        message = (end < 0 ? message : message[..end]).TrimEnd('.');
        return exception.LineNumber is { } line && exception.BytePositionInLine is { } position
            ? string.Create(CultureInfo.InvariantCulture, $"{message} (line {line + 1}, byte {position + 1})")
            : message;
    }
}
