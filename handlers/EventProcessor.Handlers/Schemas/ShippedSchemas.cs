using System.Collections.ObjectModel;
using System.Reflection;

namespace EventProcessor.Handlers.Schemas;

/// <summary>
/// The JSON Schemas (draft-07) of the event types this product knows, and one valid payload of each, embedded in this
/// assembly as <c>schemas/&lt;event type&gt;.json</c> and <c>schemas/samples/&lt;event type&gt;.json</c>. The build
/// checks that every schema uses only keywords the payload validator enforces (Build/ShippedSchemas.targets).
/// </summary>
public static class ShippedSchemas
{
    private const string SchemaPrefix = "schemas/";
    private const string SamplePrefix = "schemas/samples/";
    private const string Suffix = ".json";

    /// <summary>The assembly the schemas are embedded in.</summary>
    public static Assembly Assembly { get; } = typeof(ShippedSchemas).Assembly;

    /// <summary>Each event type's schema, as JSON text, by event type.</summary>
    public static IReadOnlyDictionary<string, string> Schemas { get; } = Load(SchemaPrefix);

    /// <summary>A valid payload of each event type, as JSON text, by event type.</summary>
    public static IReadOnlyDictionary<string, string> Samples { get; } = Load(SamplePrefix);

    private static ReadOnlyDictionary<string, string> Load(string prefix)
    {
        var found = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in Assembly.GetManifestResourceNames())
        {
            if (!name.StartsWith(prefix, StringComparison.Ordinal)
                || !name.EndsWith(Suffix, StringComparison.Ordinal)
                || name.IndexOf('/', prefix.Length) >= 0)
            {
                continue;
            }

            using var stream = Assembly.GetManifestResourceStream(name)!;
            using var reader = new StreamReader(stream);
            found.Add(name[prefix.Length..^Suffix.Length], reader.ReadToEnd());
        }

        return found.AsReadOnly();
    }
}
