using EventProcessor.Events;
using System.Buffers;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace EventProcessor.Ingress.Classification;

/// <summary>What a delivery turned into: the rows to write, or an acknowledgement that it needs none.</summary>
/// <param name="Events">The rows, in the order they arrived.</param>
/// <param name="Acknowledged">Set when the delivery is valid but stores nothing (a CloudWatch Logs control message).</param>
public sealed record Classification(IReadOnlyList<IncomingEvent> Events, string? Acknowledged = null);

/// <summary>
/// The one classifier both doors share: turns an incoming JSON document into event rows, or refuses it with an
/// <see cref="IngressRejectedException"/> that says why. Pure: it reads bytes and writes nothing.
/// </summary>
/// <remarks>
/// Recognised shapes, tried in this order: SQS records as delivered to Lambda (<c>Records[].eventSource = aws:sqs</c>,
/// each body classified again), CloudWatch Logs subscription deliveries (<c>awslogs.data</c>), API Gateway WebSocket
/// requests (<c>requestContext.eventType</c>), EventBridge events (<c>source</c>, <c>detail-type</c>, <c>detail</c>),
/// and this product's envelope (<c>event_type</c>, <c>payload</c>).
/// </remarks>
public sealed class EventClassifier(IngressLimits limits)
{
    /// <summary>The longest <c>event_type</c> the <c>events</c> table stores.</summary>
    public const int MaxEventTypeLength = 100;

    private const int MaxAggregateTypeLength = 50;
    private const int MaxNaturalIdLength = 500;

    private static readonly string[] EnvelopeProperties =
        ["event_type", "payload", "id", "aggregate_id", "aggregate_type", "metadata"];

    /// <summary>
    /// Metadata keys that the event processor writes, or reads to decide something: a sender may not set them. Were
    /// they taken as sent, a tenant could forge another's correlation, or an event's failures, tenant or replay marks.
    /// </summary>
    public static readonly IReadOnlySet<string> ReservedMetadataKeys = new HashSet<string>(StringComparer.Ordinal)
    {
        "retry_count", "last_error", "next_attempt_at", "dead_lettered", "skipped", "skip_reason", "replay_count",
        "replayed", "correlation_id", "causation_id", "tenant_id", "ingress", "aggregate_key", "sqs_message_id", "sqs_queue",
    };

    /// <summary>The limits this classifier enforces.</summary>
    public IngressLimits Limits { get; } = limits;

    /// <summary>Door 1, <c>POST /process</c>: one raw Lambda event (or an envelope).</summary>
    /// <param name="body">The request body, UTF-8.</param>
    /// <param name="door">Recorded in each row's metadata as <c>ingress</c>.</param>
    public Classification ClassifyLambdaEvent(ReadOnlyMemory<byte> body, string door = "http:/process")
    {
        using var document = Parse(body.Span, "The body");
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new IngressRejectedException($"The body is a JSON {Describe(root.ValueKind)}; a Lambda event is a JSON object.");
        }

        if (root.TryGetProperty("Records", out var records))
        {
            return new Classification(ClassifyRecords(records, door));
        }

        return ClassifyDocument(root, body.Span, tenantId: null, door, sqs: null)
            ?? throw new IngressRejectedException(
                "The body is not a shape this service knows. Expected an EventBridge event (source, detail-type, detail), " +
                "a CloudWatch Logs delivery (awslogs.data), an API Gateway WebSocket request (requestContext.eventType), " +
                "SQS records (Records[].eventSource = \"aws:sqs\") or an envelope (event_type, payload).");
    }

    /// <summary>Door 1, <c>POST /events</c>: one envelope or an array of them, published by an application.</summary>
    /// <param name="body">The request body, UTF-8.</param>
    /// <param name="tenantId">The authenticated client, stamped on every row; it also scopes non-UUID ids.</param>
    public IReadOnlyList<IncomingEvent> ClassifyEnvelopes(ReadOnlyMemory<byte> body, string? tenantId)
    {
        using var document = Parse(body.Span, "The body");
        var root = document.RootElement;
        var items = root.ValueKind switch
        {
            JsonValueKind.Object => [root],
            JsonValueKind.Array => root.EnumerateArray().ToList(),
            _ => throw new IngressRejectedException(
                $"The body is a JSON {Describe(root.ValueKind)}; send an envelope object or an array of them."),
        };
        if (items.Count == 0)
        {
            throw new IngressRejectedException("The array is empty; send at least one envelope.");
        }

        EnsureFewEnoughEvents(items.Count, "envelopes");

        var events = new List<IncomingEvent>(items.Count);
        var violations = new List<string>();
        for (var i = 0; i < items.Count; i++)
        {
            var prefix = root.ValueKind == JsonValueKind.Array ? $"[{i}]." : "";
            var incoming = ReadEnvelope(items[i], prefix, tenantId, "http:/events", sqs: null, violations);
            if (incoming is not null)
            {
                events.Add(incoming);
            }
        }

        return violations.Count == 0
            ? events
            : throw new IngressRejectedException(IngressRejection.Malformed, "The envelope is invalid", violations);
    }

    /// <summary>
    /// Door 2: one message the SQS worker received, given in the shape SQS records have when delivered to Lambda
    /// (<c>messageId</c>, <c>body</c>, <c>attributes</c>, <c>messageAttributes</c>, <c>eventSourceARN</c>). Unlike a
    /// Lambda delivery, a body that is not JSON is refused: this product's queues carry JSON.
    /// </summary>
    public IReadOnlyList<IncomingEvent> ClassifySqsMessage(ReadOnlyMemory<byte> record)
    {
        using var document = Parse(record.Span, "The SQS message");
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new IngressRejectedException($"The SQS message is a JSON {Describe(root.ValueKind)}; expected one SQS record object.");
        }

        return ClassifyRecord(root, "sqs", requireJsonBody: true);
    }

    private List<IncomingEvent> ClassifyRecords(JsonElement records, string door)
    {
        if (records.ValueKind != JsonValueKind.Array || records.GetArrayLength() == 0)
        {
            throw new IngressRejectedException("Records must be a non-empty array of SQS records.");
        }

        EnsureFewEnoughEvents(records.GetArrayLength(), "records");
        var events = new List<IncomingEvent>();
        var index = 0;
        foreach (var record in records.EnumerateArray())
        {
            var source = record.ValueKind == JsonValueKind.Object ? Text(record, "eventSource") : null;
            if (!string.Equals(source, "aws:sqs", StringComparison.Ordinal))
            {
                throw new IngressRejectedException(
                    $"Records[{index}] comes from '{source ?? "(no eventSource)"}'; only SQS records (eventSource \"aws:sqs\") are accepted.");
            }

            try
            {
                events.AddRange(ClassifyRecord(record, door, requireJsonBody: false));
            }
            catch (IngressRejectedException rejected) when (rejected.Rejection == IngressRejection.Malformed)
            {
                throw new IngressRejectedException(IngressRejection.Malformed, $"Records[{index}]: {rejected.Message}", rejected.Violations);
            }

            index++;
        }

        return events;
    }

    private List<IncomingEvent> ClassifyRecord(JsonElement record, string door, bool requireJsonBody)
    {
        var messageId = RequiredText(record, "messageId", "The SQS record");
        if (!record.TryGetProperty("body", out var bodyElement) || bodyElement.ValueKind != JsonValueKind.String)
        {
            throw new IngressRejectedException("The SQS record has no body string.");
        }

        var queue = Text(record, "eventSourceARN") ?? "";
        var sqs = new SqsOrigin(queue, messageId, ClientIdOf(record), GroupIdOf(record));
        var body = bodyElement.GetString()!;
        var bodyBytes = Encoding.UTF8.GetBytes(body);

        JsonDocument? bodyDocument = null;
        try
        {
            try
            {
                bodyDocument = JsonDocument.Parse(bodyBytes, DocumentOptions);
            }
            catch (JsonException exception) when (!requireJsonBody && !IsTooDeep(exception))
            {
                // A Lambda delivery may carry any text; it is kept as a plain SQS message. JSON nested past the
                // limit is not plain text: it is refused below, as it is at every other door.
            }
            catch (JsonException exception)
            {
                throw new IngressRejectedException($"The message body is not JSON: {JsonProblem(exception)}", exception);
            }

            if (bodyDocument is not null)
            {
                EnsureStorable(bodyDocument.RootElement, bodyBytes, "The message body");
                EnsureNumbersStaySmall(bodyBytes, "The message body");
                if (bodyDocument.RootElement.ValueKind == JsonValueKind.Object)
                {
                    var classified = ClassifyDocument(bodyDocument.RootElement, bodyBytes, sqs.ClientId, door, sqs);
                    if (classified is not null)
                    {
                        return [.. classified.Events.Select(incoming => InMessageGroup(incoming, sqs))];
                    }
                }
            }

            return [PlainSqsMessage(record, body, door, sqs)];
        }
        finally
        {
            bodyDocument?.Dispose();
        }
    }

    /// <summary>The non-SQS shapes; null when the document is none of them.</summary>
    private Classification? ClassifyDocument(JsonElement root, ReadOnlySpan<byte> raw, string? tenantId, string door, SqsOrigin? sqs)
    {
        if (root.TryGetProperty("awslogs", out var awslogs))
        {
            return ClassifyLogs(awslogs, tenantId, door, sqs);
        }

        if (root.TryGetProperty("requestContext", out var requestContext)
            && requestContext.ValueKind == JsonValueKind.Object
            && requestContext.TryGetProperty("eventType", out _))
        {
            return new Classification([ClassifyWebSocket(requestContext, raw, tenantId, door, sqs)]);
        }

        if (root.TryGetProperty("source", out var source) && source.ValueKind == JsonValueKind.String
            && root.TryGetProperty("detail-type", out var detailType) && detailType.ValueKind == JsonValueKind.String
            && root.TryGetProperty("detail", out _))
        {
            return new Classification([ClassifyEventBridge(root, source.GetString()!, detailType.GetString()!, raw, tenantId, door, sqs)]);
        }

        if (root.TryGetProperty("event_type", out _) && root.TryGetProperty("payload", out _))
        {
            var violations = new List<string>();
            var incoming = ReadEnvelope(root, "", tenantId, door, sqs, violations);
            return incoming is not null
                ? new Classification([incoming])
                : throw new IngressRejectedException(IngressRejection.Malformed, "The envelope is invalid", violations);
        }

        return null;
    }

    private static IncomingEvent ClassifyEventBridge(
        JsonElement root, string source, string detailType, ReadOnlySpan<byte> raw, string? tenantId, string door, SqsOrigin? sqs)
    {
        var eventType = $"{source}.{Normalize(detailType)}";
        if (!EventTypes.IsValid(eventType))
        {
            throw new IngressRejectedException(
                $"The EventBridge event's source and detail-type make the event type {Quote(eventType)}, which is not valid: " +
                EventTypes.Rule);
        }

        var naturalId = RequiredText(root, "id", "The EventBridge event");
        var id = Guid.TryParse(naturalId, out var parsed) ? parsed : Derive($"eventbridge/{source}/{naturalId}");

        // Events of one ECS task stay in order; other detail types have no aggregate the classifier could know.
        Guid? aggregateId = null;
        string? aggregateType = null;
        if (root.GetProperty("detail") is { ValueKind: JsonValueKind.Object } detail && Text(detail, "taskArn") is { } taskArn)
        {
            aggregateId = Derive($"aws.ecs.task/{taskArn}");
            aggregateType = "aws.ecs.task";
        }

        return new IncomingEvent(InTenant(id, tenantId), eventType, aggregateId, aggregateType, Encoding.UTF8.GetString(raw), Metadata(door, sqs), tenantId);
    }

    private Classification ClassifyLogs(JsonElement awslogs, string? tenantId, string door, SqsOrigin? sqs)
    {
        if (awslogs.ValueKind != JsonValueKind.Object
            || !awslogs.TryGetProperty("data", out var data)
            || data.ValueKind != JsonValueKind.String)
        {
            throw new IngressRejectedException("awslogs.data must be a string: base64 of a gzip-compressed CloudWatch Logs document.");
        }

        var decoded = Decompress(data);
        using var document = Parse(decoded, "The decompressed awslogs.data");
        var logs = document.RootElement;
        if (logs.ValueKind != JsonValueKind.Object)
        {
            throw new IngressRejectedException("The decompressed awslogs.data is not a JSON object.");
        }

        var messageType = RequiredText(logs, "messageType", "The CloudWatch Logs document");
        if (messageType == "CONTROL_MESSAGE")
        {
            // CloudWatch Logs checks that the destination is reachable; there is nothing to store.
            return new Classification([], Acknowledged: "CloudWatch Logs CONTROL_MESSAGE");
        }

        if (messageType != "DATA_MESSAGE")
        {
            throw new IngressRejectedException(
                $"The CloudWatch Logs messageType '{messageType}' is unknown; expected DATA_MESSAGE or CONTROL_MESSAGE.");
        }

        var logGroup = RequiredText(logs, "logGroup", "The CloudWatch Logs document");
        var logStream = RequiredText(logs, "logStream", "The CloudWatch Logs document");
        if (!logs.TryGetProperty("logEvents", out var logEvents) || logEvents.ValueKind != JsonValueKind.Array)
        {
            throw new IngressRejectedException("The CloudWatch Logs document has no logEvents array.");
        }

        // A redelivered batch carries the same log event ids, whatever its gzip bytes look like.
        var name = new StringBuilder($"aws.logs/{Text(logs, "owner")}/{logGroup}/{logStream}/");
        foreach (var logEvent in logEvents.EnumerateArray())
        {
            name.Append(logEvent.ValueKind == JsonValueKind.Object ? Text(logEvent, "id") : null).Append(',');
        }

        var incoming = new IncomingEvent(
            InTenant(Derive(name.ToString()), tenantId),
            "aws.logs.batch",
            Derive($"aws.logs.stream/{logGroup}/{logStream}"),
            "aws.logs.stream",
            Encoding.UTF8.GetString(decoded),
            Metadata(door, sqs),
            tenantId);
        return new Classification([incoming]);
    }

    private static IncomingEvent ClassifyWebSocket(
        JsonElement requestContext, ReadOnlySpan<byte> raw, string? tenantId, string door, SqsOrigin? sqs)
    {
        var kind = RequiredText(requestContext, "eventType", "The WebSocket requestContext");
        var eventType = kind switch
        {
            "CONNECT" => "websocket.connect",
            "DISCONNECT" => "websocket.disconnect",
            "MESSAGE" => "websocket.message",
            _ => throw new IngressRejectedException(
                $"requestContext.eventType '{kind}' is unknown; expected CONNECT, DISCONNECT or MESSAGE."),
        };
        var connectionId = RequiredText(requestContext, "connectionId", "The WebSocket requestContext");
        var apiId = Text(requestContext, "apiId") ?? "";
        var request = Text(requestContext, "requestId")
            ?? Text(requestContext, "messageId")
            ?? Number(requestContext, "requestTimeEpoch")
            ?? throw new IngressRejectedException("The WebSocket requestContext has no requestId, messageId or requestTimeEpoch.");

        return new IncomingEvent(
            InTenant(Derive($"websocket/{apiId}/{connectionId}/{kind}/{request}"), tenantId),
            eventType,
            Derive($"websocket.connection/{apiId}/{connectionId}"),
            "websocket.connection",
            Encoding.UTF8.GetString(raw),
            Metadata(door, sqs),
            tenantId);
    }

    private static IncomingEvent? ReadEnvelope(
        JsonElement envelope, string prefix, string? tenantId, string door, SqsOrigin? sqs, List<string> violations)
    {
        if (envelope.ValueKind != JsonValueKind.Object)
        {
            violations.Add($"{(prefix.Length == 0 ? "$" : prefix.TrimEnd('.'))}: expected an envelope object, got a JSON {Describe(envelope.ValueKind)}.");
            return null;
        }

        var before = violations.Count;
        foreach (var property in envelope.EnumerateObject())
        {
            if (Array.IndexOf(EnvelopeProperties, property.Name) < 0)
            {
                violations.Add($"{prefix}{property.Name}: unknown property; an envelope has {string.Join(", ", EnvelopeProperties)}.");
            }
        }

        var eventType = Text(envelope, "event_type");
        if (string.IsNullOrWhiteSpace(eventType))
        {
            violations.Add($"{prefix}event_type: required, a non-empty string such as \"user.created\".");
        }
        else if (!EventTypes.IsValid(eventType))
        {
            violations.Add($"{prefix}event_type: {Quote(eventType)} is not valid: {EventTypes.Rule}");
        }

        if (!envelope.TryGetProperty("payload", out var payload) || payload.ValueKind == JsonValueKind.Null)
        {
            violations.Add($"{prefix}payload: required, any JSON value but null.");
        }

        var tenantScope = tenantId ?? "";
        Guid id;
        if (!envelope.TryGetProperty("id", out var idElement) || idElement.ValueKind == JsonValueKind.Null)
        {
            // Without an id a retried publish cannot be recognised; SQS's message id stands in when there is one.
            id = sqs is null ? Guid.CreateVersion7() : InTenant(Derive($"aws.sqs/{sqs.Queue}/{sqs.MessageId}"), tenantId);
        }
        else if (idElement.ValueKind != JsonValueKind.String || idElement.GetString() is not { Length: > 0 and <= MaxNaturalIdLength } idText)
        {
            violations.Add($"{prefix}id: must be a UUID or a non-empty string of at most {MaxNaturalIdLength} characters.");
            id = Guid.Empty;
        }
        else if (Guid.TryParse(idText, out var parsed))
        {
            // A UUID is stored as sent only without a tenant (the admin, an open door, SQL): a tenant's ids are its own,
            // so that no tenant can take, or find out about, an id another will send.
            id = tenantId is null ? parsed : Derive($"envelope/{tenantScope}/{parsed:D}");
        }
        else
        {
            id = Derive($"envelope/{tenantScope}/{idText}");
        }

        Guid? aggregateId = null;
        string? aggregateKey = null;
        if (envelope.TryGetProperty("aggregate_id", out var aggregateElement) && aggregateElement.ValueKind != JsonValueKind.Null)
        {
            if (aggregateElement.ValueKind != JsonValueKind.String || aggregateElement.GetString() is not { Length: > 0 and <= MaxNaturalIdLength } aggregateText)
            {
                violations.Add($"{prefix}aggregate_id: must be a UUID or a non-empty string of at most {MaxNaturalIdLength} characters.");
            }
            else if (Guid.TryParse(aggregateText, out var parsed))
            {
                aggregateId = parsed;
            }
            else
            {
                aggregateId = Derive($"aggregate/{tenantScope}/{aggregateText}");
                aggregateKey = aggregateText;
            }
        }

        string? aggregateType = null;
        if (envelope.TryGetProperty("aggregate_type", out var aggregateTypeElement) && aggregateTypeElement.ValueKind != JsonValueKind.Null)
        {
            aggregateType = aggregateTypeElement.ValueKind == JsonValueKind.String ? aggregateTypeElement.GetString() : null;
            if (aggregateType is null || aggregateType.Length > MaxAggregateTypeLength)
            {
                violations.Add($"{prefix}aggregate_type: must be a string of at most {MaxAggregateTypeLength} characters.");
            }
        }

        JsonElement? metadata = null;
        if (envelope.TryGetProperty("metadata", out var metadataElement) && metadataElement.ValueKind != JsonValueKind.Null)
        {
            if (metadataElement.ValueKind == JsonValueKind.Object)
            {
                metadata = metadataElement;
                foreach (var property in metadataElement.EnumerateObject())
                {
                    if (ReservedMetadataKeys.Contains(property.Name))
                    {
                        violations.Add(
                            $"{prefix}metadata.{property.Name}: reserved: the event processor writes it; use a name of your own.");
                    }
                }
            }
            else
            {
                violations.Add($"{prefix}metadata: must be a JSON object.");
            }
        }

        if (violations.Count > before)
        {
            return null;
        }

        return new IncomingEvent(
            id,
            eventType!,
            aggregateId,
            aggregateType,
            payload.GetRawText(),
            Metadata(door, sqs, metadata, aggregateKey),
            tenantId);
    }

    private static IncomingEvent PlainSqsMessage(JsonElement record, string body, string door, SqsOrigin sqs)
    {
        var buffer = new ArrayBufferWriter<byte>(body.Length + 256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("messageId", sqs.MessageId);
            writer.WriteString("body", body);
            foreach (var name in (ReadOnlySpan<string>)["attributes", "messageAttributes", "eventSourceARN"])
            {
                if (record.TryGetProperty(name, out var value))
                {
                    writer.WritePropertyName(name);
                    value.WriteTo(writer);
                }
            }

            writer.WriteEndObject();
        }

        var plain = new IncomingEvent(
            InTenant(Derive($"aws.sqs/{sqs.Queue}/{sqs.MessageId}"), sqs.ClientId),
            "aws.sqs.message",
            null,
            null,
            Encoding.UTF8.GetString(buffer.WrittenSpan),
            Metadata(door, sqs),
            sqs.ClientId);
        return InMessageGroup(plain, sqs);
    }

    /// <summary>
    /// FIFO queues keep order per message group; so do the rows, unless the event names an aggregate of its own
    /// (an envelope's aggregate_id, an ECS task), which the sender chose over the group.
    /// </summary>
    private static IncomingEvent InMessageGroup(IncomingEvent incoming, SqsOrigin sqs) =>
        sqs.GroupId is null || incoming.AggregateId is not null
            ? incoming
            : incoming with
            {
                AggregateId = Derive($"aws.sqs.group/{sqs.Queue}/{sqs.GroupId}"),
                AggregateType = "aws.sqs.message_group",
            };

    private static string Metadata(string door, SqsOrigin? sqs, JsonElement? given = null, string? aggregateKey = null)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            if (given is { } metadata)
            {
                // No reserved key is among them (ReadEnvelope refused those).
                foreach (var property in metadata.EnumerateObject())
                {
                    property.WriteTo(writer);
                }
            }

            writer.WriteString("ingress", door);
            if (aggregateKey is not null)
            {
                writer.WriteString("aggregate_key", aggregateKey);
            }

            if (sqs is not null)
            {
                writer.WriteString("sqs_message_id", sqs.MessageId);
                if (sqs.Queue.Length > 0)
                {
                    writer.WriteString("sqs_queue", sqs.Queue);
                }
            }

            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private byte[] Decompress(JsonElement data)
    {
        byte[] compressed;
        try
        {
            compressed = data.GetBytesFromBase64();
        }
        catch (FormatException exception)
        {
            throw new IngressRejectedException("awslogs.data is not valid base64.", exception);
        }

        if (compressed.Length < 2 || compressed[0] != 0x1f || compressed[1] != 0x8b)
        {
            throw new IngressRejectedException("awslogs.data is not gzip-compressed (it does not start with the gzip magic bytes).");
        }

        // Read in slices and stop one byte past the limit: memory stays at the limit whatever the ratio.
        var limit = Limits.MaxDecompressedBytes;
        using var output = new MemoryStream();
        var chunk = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            using var gzip = new GZipStream(new MemoryStream(compressed), CompressionMode.Decompress);
            int read;
            while ((read = gzip.Read(chunk, 0, chunk.Length)) > 0)
            {
                if (output.Length + read > limit)
                {
                    throw new IngressRejectedException(
                        IngressRejection.TooLarge,
                        $"awslogs.data decompresses to more than {limit} bytes (the limit); it was not stored.");
                }

                output.Write(chunk, 0, read);
            }
        }
        catch (InvalidDataException exception)
        {
            throw new IngressRejectedException($"awslogs.data is not valid gzip: {exception.Message}", exception);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        return output.ToArray();
    }

    private JsonDocumentOptions DocumentOptions => new() { MaxDepth = Limits.MaxJsonDepth };

    private JsonDocument Parse(ReadOnlySpan<byte> utf8, string what)
    {
        if (utf8.Length > Limits.MaxBodyBytes && what != "The decompressed awslogs.data")
        {
            throw new IngressRejectedException(
                IngressRejection.TooLarge, $"{what} is {utf8.Length} bytes, over the limit of {Limits.MaxBodyBytes}.");
        }

        // System.Text.Json checks UTF-8 only in the strings it is asked to decode: a bad byte elsewhere would
        // surface later as an InvalidOperationException, or be stored as U+FFFD, changing what was sent.
        if (!Utf8.IsValid(utf8))
        {
            throw new IngressRejectedException($"{what} is not valid UTF-8.");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8.ToArray(), DocumentOptions);
        }
        catch (JsonException exception)
        {
            throw new IngressRejectedException($"{what} is not valid JSON: {JsonProblem(exception)}", exception);
        }

        try
        {
            EnsureStorable(document.RootElement, utf8, what);
            EnsureNumbersStaySmall(utf8, what);
        }
        catch
        {
            document.Dispose();
            throw;
        }

        return document;
    }

    private string JsonProblem(JsonException exception) =>
        IsTooDeep(exception)
            ? $"it is nested deeper than the limit of {Limits.MaxJsonDepth} levels"
            : exception.Message;

    // System.Text.Json tells the depth limit apart only in its message; "Expected depth to be zero at the end of the
    // JSON payload" is a truncated document, not a deep one.
    private static bool IsTooDeep(JsonException exception) =>
        exception.Message.Contains("maximum configured depth", StringComparison.Ordinal);

    /// <summary>
    /// <c>jsonb</c> stores numbers as <c>numeric</c> and prints them back in full: the 8 bytes <c>1e131071</c> read
    /// back as 131,072 digits. What the exponents of a document add when printed may not exceed the body limit, so
    /// reading an event back costs at most about twice what arrived.
    /// </summary>
    private void EnsureNumbersStaySmall(ReadOnlySpan<byte> raw, string what)
    {
        if (raw.IndexOfAny("eE"u8) < 0)
        {
            return;
        }

        var reader = new Utf8JsonReader(raw, new JsonReaderOptions { MaxDepth = Limits.MaxJsonDepth });
        long expansion = 0;
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.Number)
            {
                continue;
            }

            var number = reader.ValueSpan;
            var e = number.IndexOfAny("eE"u8);
            if (e < 0)
            {
                continue;
            }

            expansion += int.TryParse(number[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var exponent)
                ? Math.Abs((long)exponent)
                : long.MaxValue / 2;
            if (expansion > Limits.MaxBodyBytes)
            {
                throw new IngressRejectedException(
                    IngressRejection.TooLarge,
                    $"{what} has numbers whose exponents would print as more than {Limits.MaxBodyBytes} digits once stored " +
                    "(PostgreSQL keeps every digit of 1e100000); send such values as strings.");
            }
        }
    }

    /// <summary>
    /// PostgreSQL's <c>jsonb</c> refuses <c>\u0000</c> and unpaired surrogate escapes, both of which JSON allows.
    /// In valid UTF-8 they can only be written as <c>\u</c> escapes, so a document without one needs no walk.
    /// </summary>
    private static void EnsureStorable(JsonElement root, ReadOnlySpan<byte> raw, string what)
    {
        if (raw.IndexOf("\\u"u8) < 0)
        {
            return;
        }

        if (FindUnstorable(root, "$") is { } path)
        {
            throw new IngressRejectedException(
                $"{what} has a string at {path} that contains \\u0000 or an unpaired surrogate, which PostgreSQL's jsonb cannot store.");
        }
    }

    private static string? FindUnstorable(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                return IsStorable(element) ? null : path;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = property.Name;
                    }
                    catch (InvalidOperationException)
                    {
                        return path;
                    }

                    if (name.Contains('\0', StringComparison.Ordinal) || !IsWellFormed(name))
                    {
                        return path;
                    }

                    if (FindUnstorable(property.Value, $"{path}.{name}") is { } found)
                    {
                        return found;
                    }
                }

                return null;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (FindUnstorable(item, $"{path}[{index++}]") is { } found)
                    {
                        return found;
                    }
                }

                return null;
            default:
                return null;
        }
    }

    private static bool IsStorable(JsonElement text)
    {
        try
        {
            var value = text.GetString()!;
            return !value.Contains('\0', StringComparison.Ordinal) && IsWellFormed(value);
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static bool IsWellFormed(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            if (char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(value[i]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The detail-type lowercased, every run of non-alphanumerics turned into one underscore.</summary>
    internal static string Normalize(string detailType)
    {
        var builder = new StringBuilder(detailType.Length);
        var inRun = false;
        foreach (var c in detailType.ToLowerInvariant())
        {
            if (char.IsAsciiLetterOrDigit(c))
            {
                builder.Append(c);
                inRun = false;
            }
            else if (!inRun)
            {
                builder.Append('_');
                inRun = true;
            }
        }

        return builder.ToString();
    }

    private static Guid Derive(string naturalKey) => DeterministicGuid.Create(naturalKey);

    /// <summary>
    /// The id of a tenant's row: every tenant has ids of its own, derived from its id and the source's, so that a row
    /// of one tenant can never take (or reveal) the id of another's. Rows without a tenant keep the source's id.
    /// </summary>
    private static Guid InTenant(Guid sourceId, string? tenantId) =>
        tenantId is null ? sourceId : Derive($"tenant/{tenantId}/{sourceId:D}");

    /// <summary>A sender's text, quoted and escaped as JSON, so that a control character in it shows as an escape.</summary>
    private static string Quote(string text) => JsonSerializer.Serialize(text);

    private void EnsureFewEnoughEvents(int count, string what)
    {
        if (count > Limits.MaxEventsPerRequest)
        {
            throw new IngressRejectedException(
                IngressRejection.TooLarge,
                $"The delivery has {count} {what}, over the limit of {Limits.MaxEventsPerRequest} per request " +
                "(MAX_EVENTS_PER_REQUEST); send them in smaller requests.");
        }
    }

    private static string? ClientIdOf(JsonElement record) =>
        record.TryGetProperty("messageAttributes", out var attributes)
        && attributes.ValueKind == JsonValueKind.Object
        && attributes.TryGetProperty("client_id", out var clientId)
        && clientId.ValueKind == JsonValueKind.Object
            ? Text(clientId, "stringValue")
            : null;

    private static string? GroupIdOf(JsonElement record) =>
        record.TryGetProperty("attributes", out var attributes) && attributes.ValueKind == JsonValueKind.Object
            ? Text(attributes, "MessageGroupId")
            : null;

    private static string? Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static string? Number(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number
            ? value.GetRawText()
            : null;

    private static string RequiredText(JsonElement element, string name, string what)
    {
        var value = Text(element, name);
        return string.IsNullOrEmpty(value)
            ? throw new IngressRejectedException($"{what} has no '{name}' string.")
            : value;
    }

    private static string Describe(JsonValueKind kind) => kind.ToString().ToLower(CultureInfo.InvariantCulture);

    /// <summary>Where an SQS message came from, and who it says sent it.</summary>
    private sealed record SqsOrigin(string Queue, string MessageId, string? ClientId, string? GroupId);
}
