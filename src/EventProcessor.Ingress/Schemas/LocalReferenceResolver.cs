using NJsonSchema;
using NJsonSchema.References;

namespace EventProcessor.Ingress.Schemas;

/// <summary>
/// Resolves <c>$ref</c> inside the schema being loaded and refuses any other: NJsonSchema would otherwise read a
/// referenced file or download a URL while the service starts, making start-up depend on the network.
/// </summary>
internal sealed class LocalReferenceResolver(JsonSchema schema)
    : JsonReferenceResolver(new JsonSchemaAppender(schema, new DefaultTypeNameGenerator()))
{
    public static JsonReferenceResolver Create(JsonSchema schema) => new LocalReferenceResolver(schema);

    public override Task<IJsonReference> ResolveFileReferenceAsync(string filePath, CancellationToken cancellationToken = default) =>
        throw Refuse(filePath);

    public override Task<IJsonReference> ResolveUrlReferenceAsync(string url, CancellationToken cancellationToken = default) =>
        throw Refuse(url);

    private static NotSupportedException Refuse(string reference) =>
        new($"'{reference}' is outside the schema: only references such as '#/definitions/name' are supported.");
}
