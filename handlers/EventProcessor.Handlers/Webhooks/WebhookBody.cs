using System.Text.Json;
using EventProcessor.Events;

namespace EventProcessor.Handlers.Webhooks;

/// <summary>The JSON a webhook receives: the event's columns, snake_case, with payload and metadata as stored.</summary>
internal static class WebhookBody
{
    public static byte[] Serialize(StoredEvent storedEvent)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", storedEvent.Id);
            json.WriteString("event_type", storedEvent.EventType);
            WriteNullable(json, "aggregate_id", storedEvent.AggregateId?.ToString());
            WriteNullable(json, "aggregate_type", storedEvent.AggregateType);
            json.WritePropertyName("payload");
            json.WriteRawValue(storedEvent.Payload);
            json.WritePropertyName("metadata");
            json.WriteRawValue(storedEvent.Metadata);
            json.WriteNumber("version", storedEvent.Version);
            json.WriteString("created_at", storedEvent.CreatedAt);
            WriteNullable(json, "created_by", storedEvent.CreatedBy);
            WriteNullable(json, "tenant_id", storedEvent.TenantId);
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private static void WriteNullable(Utf8JsonWriter json, string name, string? value)
    {
        if (value is null)
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteString(name, value);
        }
    }
}
