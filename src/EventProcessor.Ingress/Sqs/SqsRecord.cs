using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Amazon.SQS.Model;

namespace EventProcessor.Ingress.Sqs;

/// <summary>
/// A received SQS message written as the record Lambda would have delivered, so that both doors classify exactly
/// the same document.
/// </summary>
internal static class SqsRecord
{
    public static byte[] ToJson(Message message, string queueArn)
    {
        var buffer = new ArrayBufferWriter<byte>((message.Body?.Length ?? 0) + 512);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("messageId", message.MessageId);
            writer.WriteString("body", Storable(message.Body ?? ""));
            writer.WriteString("md5OfBody", message.MD5OfBody);
            writer.WriteStartObject("attributes");
            foreach (var (name, value) in message.Attributes ?? [])
            {
                writer.WriteString(name, value);
            }

            writer.WriteEndObject();
            writer.WriteStartObject("messageAttributes");
            foreach (var (name, value) in message.MessageAttributes ?? [])
            {
                writer.WriteStartObject(name);
                if (value.StringValue is not null)
                {
                    writer.WriteString("stringValue", Storable(value.StringValue));
                }

                if (value.BinaryValue is not null)
                {
                    writer.WriteBase64String("binaryValue", value.BinaryValue.ToArray());
                }

                writer.WriteString("dataType", value.DataType);
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
            writer.WriteString("eventSource", "aws:sqs");
            writer.WriteString("eventSourceARN", queueArn);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    public static int ReceiveCount(Message message) =>
        message.Attributes?.TryGetValue("ApproximateReceiveCount", out var raw) == true
        && int.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out var count)
            ? count
            : 1;

    public static DateTimeOffset? SentAt(Message message) =>
        message.Attributes?.TryGetValue("SentTimestamp", out var raw) == true
        && long.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out var milliseconds)
            ? DateTimeOffset.FromUnixTimeMilliseconds(milliseconds)
            : null;

    /// <summary>
    /// SQS bodies cannot hold NUL or unpaired surrogates, but an emulator or a future SQS might; either would make
    /// the record unstorable, and a message that cannot even be dead-lettered would loop forever.
    /// </summary>
    private static string Storable(string text)
    {
        if (!text.Contains('\0', StringComparison.Ordinal) && text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            return text;
        }

        var builder = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            builder.Append(rune.Value == 0 ? Rune.ReplacementChar : rune);
        }

        return builder.ToString();
    }
}
