using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using EventProcessor.Ingress;

namespace EventProcessor.Tests.Ingress;

/// <summary>Builders for the shapes AWS delivers, written by hand so that tests can vary one field at a time.</summary>
internal static class Deliveries
{
    public const string FifoQueueArn = "arn:aws:sqs:eu-west-1:111122223333:orders.fifo";
    public const string TaskArn = "arn:aws:ecs:eu-west-1:111122223333:task/prod/5e1f6a0c2d9b4c7e8f0a1b2c3d4e5f60";

    public static byte[] Utf8(string json) => Encoding.UTF8.GetBytes(json);

    public static byte[] Utf8(JsonNode node) => Encoding.UTF8.GetBytes(node.ToJsonString());

    public static JsonNode Parse(string json) => JsonNode.Parse(json)!;

    public static byte[] Gzip(ReadOnlySpan<byte> data, CompressionLevel level = CompressionLevel.Optimal)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, level))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }

    /// <summary>A CloudWatch Logs subscription delivery: <c>awslogs.data</c> is base64 of gzip of the document.</summary>
    public static JsonObject Logs(string document, CompressionLevel level = CompressionLevel.Optimal) =>
        LogsData(Convert.ToBase64String(Gzip(Utf8(document), level)));

    public static JsonObject LogsData(string data) => new() { ["awslogs"] = new JsonObject { ["data"] = data } };

    /// <summary>A DATA_MESSAGE with one log event per message, ids <c>{stream}-{index}</c>.</summary>
    public static string LogsDocument(string logGroup, string logStream, params string[] messages)
    {
        var logEvents = new JsonArray();
        for (var i = 0; i < messages.Length; i++)
        {
            logEvents.Add(new JsonObject
            {
                ["id"] = $"{logStream}-{i}",
                ["timestamp"] = 1_700_000_000_000L + i,
                ["message"] = messages[i],
            });
        }

        return new JsonObject
        {
            ["messageType"] = "DATA_MESSAGE",
            ["owner"] = "111122223333",
            ["logGroup"] = logGroup,
            ["logStream"] = logStream,
            ["subscriptionFilters"] = new JsonArray("errors"),
            ["logEvents"] = logEvents,
        }.ToJsonString();
    }

    /// <summary>An ECS task that stopped, with one container per exit code.</summary>
    public static JsonObject StoppedEcsTask(string id, string taskArn = TaskArn, params int[] exitCodes)
    {
        var containers = new JsonArray();
        for (var i = 0; i < exitCodes.Length; i++)
        {
            containers.Add(new JsonObject
            {
                ["containerArn"] = $"arn:aws:ecs:eu-west-1:111122223333:container/prod/{i}",
                ["exitCode"] = exitCodes[i],
                ["lastStatus"] = "STOPPED",
                ["name"] = $"container-{i}",
                ["taskArn"] = taskArn,
            });
        }

        return EventBridge("aws.ecs", "ECS Task State Change", id, new JsonObject
        {
            ["clusterArn"] = "arn:aws:ecs:eu-west-1:111122223333:cluster/prod",
            ["containers"] = containers,
            ["desiredStatus"] = "STOPPED",
            ["lastStatus"] = "STOPPED",
            ["stopCode"] = "EssentialContainerExited",
            ["stoppedReason"] = "Essential container in task exited",
            ["taskArn"] = taskArn,
            ["version"] = 7,
        });
    }

    public static JsonObject EventBridge(string source, string detailType, string id, JsonNode detail) => new()
    {
        ["version"] = "0",
        ["id"] = id,
        ["detail-type"] = detailType,
        ["source"] = source,
        ["account"] = "111122223333",
        ["time"] = "2024-05-01T12:00:00Z",
        ["region"] = "eu-west-1",
        ["resources"] = new JsonArray(),
        ["detail"] = detail,
    };

    /// <summary>An API Gateway WebSocket request as a Lambda integration receives it.</summary>
    public static JsonObject WebSocket(string eventType, string connectionId, string requestId, string? body = null)
    {
        var request = new JsonObject
        {
            ["requestContext"] = new JsonObject
            {
                ["routeKey"] = eventType switch { "CONNECT" => "$connect", "DISCONNECT" => "$disconnect", _ => "sendMessage" },
                ["eventType"] = eventType,
                ["messageDirection"] = "IN",
                ["stage"] = "production",
                ["requestTimeEpoch"] = 1_700_000_000_000L,
                ["requestId"] = requestId,
                ["domainName"] = "abc123.execute-api.eu-west-1.amazonaws.com",
                ["connectionId"] = connectionId,
                ["apiId"] = "abc123",
            },
            ["isBase64Encoded"] = false,
        };
        if (eventType == "MESSAGE")
        {
            request["requestContext"]!["messageId"] = $"m-{requestId}";
        }

        if (eventType == "DISCONNECT")
        {
            request["requestContext"]!["disconnectStatusCode"] = 1001;
            request["requestContext"]!["disconnectReason"] = "Going away";
        }

        if (body is not null)
        {
            request["body"] = body;
        }

        return request;
    }

    /// <summary>One SQS record as delivered to Lambda (and as the SQS worker rewrites what it receives).</summary>
    public static JsonObject SqsRecord(
        string messageId, string body, string? messageGroupId = null, string? clientId = null, string queueArn = FifoQueueArn)
    {
        var attributes = new JsonObject
        {
            ["ApproximateReceiveCount"] = "1",
            ["SentTimestamp"] = "1700000000000",
        };
        if (messageGroupId is not null)
        {
            attributes["MessageGroupId"] = messageGroupId;
            attributes["MessageDeduplicationId"] = $"dedup-{messageId}";
        }

        var messageAttributes = new JsonObject();
        if (clientId is not null)
        {
            messageAttributes["client_id"] = new JsonObject { ["stringValue"] = clientId, ["dataType"] = "String" };
        }

        return new JsonObject
        {
            ["messageId"] = messageId,
            ["receiptHandle"] = $"handle-{messageId}",
            ["body"] = body,
            ["attributes"] = attributes,
            ["messageAttributes"] = messageAttributes,
            ["md5OfBody"] = "00000000000000000000000000000000",
            ["eventSource"] = "aws:sqs",
            ["eventSourceARN"] = queueArn,
            ["awsRegion"] = "eu-west-1",
        };
    }

    /// <summary>A Lambda SQS event: the records, in order.</summary>
    public static JsonObject Lambda(params JsonObject[] records) => new() { ["Records"] = new JsonArray([.. records]) };

    /// <summary><paramref name="depth"/> nested arrays around the number 1; depth 0 is the number alone.</summary>
    public static string NestedArrays(int depth) => new string('[', depth) + "1" + new string(']', depth);

    /// <summary>An envelope whose whole document is exactly <paramref name="depth"/> containers deep.</summary>
    public static string EnvelopeOfDepth(int depth) =>
        $$"""{"event_type":"deep.thing","payload":{{NestedArrays(depth - 1)}}}""";

    public static JsonNode PayloadOf(IncomingEvent incoming) => JsonNode.Parse(incoming.PayloadJson)!;

    public static JsonObject MetadataOf(IncomingEvent incoming) => JsonNode.Parse(incoming.MetadataJson)!.AsObject();

    /// <summary>True when both texts are the same JSON value, whitespace and property order aside.</summary>
    public static bool SameJson(string left, string right) =>
        JsonNode.DeepEquals(JsonNode.Parse(left), JsonNode.Parse(right));

    public static string Text(JsonNode? node) => node!.GetValue<string>();
}
