using System.IO.Compression;
using System.Text.Json.Nodes;
using EventProcessor.Ingress;
using EventProcessor.Ingress.Classification;
using static EventProcessor.Tests.Ingress.Deliveries;

namespace EventProcessor.Tests.Ingress;

/// <summary>The Lambda door (<c>POST /process</c>): EventBridge, CloudWatch Logs and API Gateway WebSocket deliveries.</summary>
public sealed class EventClassifierTests
{
    private readonly EventClassifier _classifier = new(new IngressLimits());

    private IncomingEvent ClassifyOne(JsonNode delivery)
    {
        var classification = _classifier.ClassifyLambdaEvent(Utf8(delivery));
        Assert.That(classification.Events, Has.Count.EqualTo(1));
        return classification.Events[0];
    }

    [Test]
    public void The_ECS_task_state_change_fixture_is_an_EventBridge_event_with_its_own_id_and_the_whole_event_as_payload()
    {
        var fixture = Fixtures.Aws(Fixtures.EcsTaskStateChange);

        var classification = _classifier.ClassifyLambdaEvent(fixture);

        var incoming = classification.Events.Single();
        Assert.Multiple(() =>
        {
            Assert.That(classification.Acknowledged, Is.Null);
            Assert.That(incoming.EventType, Is.EqualTo("aws.ecs.ecs_task_state_change"));
            Assert.That(incoming.Id, Is.EqualTo(Guid.Parse("9bcdac79-b31f-4d3d-9410-fbd727c29fab")), "the event's own UUID is the row id");
            Assert.That(incoming.AggregateId, Is.EqualTo(Guid.Parse("378b4c92-4665-543e-976d-df60d014ab75")), "uuid5 of the task ARN");
            Assert.That(incoming.AggregateType, Is.EqualTo("aws.ecs.task"));
            Assert.That(JsonNode.DeepEquals(PayloadOf(incoming), JsonNode.Parse(fixture)), Is.True, "the payload is the whole event");
            Assert.That(SameJson(incoming.MetadataJson, """{"ingress":"http:/process"}"""), Is.True, incoming.MetadataJson);
            Assert.That(incoming.TenantId, Is.Null);
        });
    }

    [Test]
    public void A_stopped_task_with_several_containers_keeps_every_container_and_shares_the_aggregate_of_its_task()
    {
        var stopped = ClassifyOne(StoppedEcsTask("7f3c0e1a-64c5-4f6b-9d0f-3c4b5a6d7e8f", TaskArn, 0, 137, 1));
        var running = ClassifyOne(EventBridge("aws.ecs", "ECS Task State Change", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            new JsonObject { ["lastStatus"] = "RUNNING", ["taskArn"] = TaskArn }));
        var otherTask = ClassifyOne(StoppedEcsTask("1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7081", TaskArn + "ff", 0));

        var detail = PayloadOf(stopped)["detail"]!;
        Assert.Multiple(() =>
        {
            Assert.That(stopped.EventType, Is.EqualTo("aws.ecs.ecs_task_state_change"));
            Assert.That(stopped.Id, Is.EqualTo(Guid.Parse("7f3c0e1a-64c5-4f6b-9d0f-3c4b5a6d7e8f")));
            Assert.That(detail["containers"]!.AsArray().Select(c => (int)c!["exitCode"]!), Is.EqualTo(new[] { 0, 137, 1 }));
            Assert.That(Text(detail["stoppedReason"]), Is.EqualTo("Essential container in task exited"));
            Assert.That(stopped.AggregateId, Is.EqualTo(DeterministicGuid.Create($"aws.ecs.task/{TaskArn}")));
            Assert.That(running.AggregateId, Is.EqualTo(stopped.AggregateId), "one task's events are handled in order");
            Assert.That(otherTask.AggregateId, Is.Not.EqualTo(stopped.AggregateId));
        });
    }

    [TestCase("ECS Task State Change", "ecs_task_state_change")]
    [TestCase("EC2 Instance State-change Notification", "ec2_instance_state_change_notification")]
    [TestCase("AWS API Call via CloudTrail", "aws_api_call_via_cloudtrail")]
    [TestCase("Scheduled Event", "scheduled_event")]
    [TestCase("Object Created", "object_created")]
    [TestCase("OrderPlaced", "orderplaced")]
    [TestCase("order.placed/v2", "order_placed_v2")]
    [TestCase("  Spaces -- and !! punctuation  ", "_spaces_and_punctuation_")]
    [TestCase("Café Ordered", "caf_ordered")]
    public void The_event_type_is_the_source_and_the_detail_type_lowercased_with_runs_of_other_characters_as_one_underscore(
        string detailType, string normalized)
    {
        var incoming = ClassifyOne(EventBridge("com.example.shop", detailType, Guid.NewGuid().ToString(), new JsonObject()));

        Assert.That(incoming.EventType, Is.EqualTo($"com.example.shop.{normalized}"));
    }

    [Test]
    public void An_EventBridge_id_that_is_not_a_UUID_becomes_a_v5_UUID_of_source_and_id()
    {
        var first = ClassifyOne(EventBridge("com.example.billing", "Invoice Paid", "inv-0001", new JsonObject { ["amount"] = 12 }));
        var again = ClassifyOne(EventBridge("com.example.billing", "Invoice Paid", "inv-0001", new JsonObject { ["amount"] = 12 }));
        var otherSource = ClassifyOne(EventBridge("com.example.shop", "Invoice Paid", "inv-0001", new JsonObject { ["amount"] = 12 }));

        Assert.Multiple(() =>
        {
            Assert.That(first.Id, Is.EqualTo(Guid.Parse("9d3ea532-d0e2-5fe3-9c12-0ecbbc93a892")), "uuid5(namespace, 'eventbridge/com.example.billing/inv-0001')");
            Assert.That(first.Id.Version, Is.EqualTo(5));
            Assert.That(again.Id, Is.EqualTo(first.Id));
            Assert.That(otherSource.Id, Is.Not.EqualTo(first.Id), "ids are scoped by source");
            Assert.That(first.AggregateId, Is.Null, "only ECS task events have an aggregate the classifier knows");
            Assert.That(first.AggregateType, Is.Null);
            Assert.That((int)PayloadOf(first)["detail"]!["amount"]!, Is.EqualTo(12));
        });
    }

    [Test]
    public void An_EventBridge_event_without_an_id_is_rejected()
    {
        var delivery = EventBridge("aws.ecs", "ECS Task State Change", "x", new JsonObject());
        delivery.Remove("id");

        var rejected = Assert.Throws<IngressRejectedException>(() => _classifier.ClassifyLambdaEvent(Utf8(delivery)))!;

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Is.EqualTo("The EventBridge event has no 'id' string."));
        });
    }

    [Test]
    public void An_EventBridge_event_type_longer_than_the_column_is_rejected()
    {
        var delivery = EventBridge("com.example", new string('x', EventClassifier.MaxEventTypeLength), "e-1", new JsonObject());

        var rejected = Assert.Throws<IngressRejectedException>(() => _classifier.ClassifyLambdaEvent(Utf8(delivery)))!;

        Assert.That(rejected.Message, Does.Contain("is not valid: an event type is 1 to 100 letters"));
    }

    [TestCase("com.example\nforged")]
    [TestCase("my app")]
    [TestCase("com/example")]
    public void An_EventBridge_source_that_makes_an_invalid_event_type_is_rejected(string source)
    {
        var delivery = EventBridge(source, "Order Placed", "e-1", new JsonObject());

        var rejected = Assert.Throws<IngressRejectedException>(() => _classifier.ClassifyLambdaEvent(Utf8(delivery)))!;

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Does.Contain("is not valid").And.Not.Contain("\n"), "a control character shows as an escape");
        });
    }

    [Test]
    public void The_CloudWatch_Logs_fixture_is_one_batch_whose_payload_is_the_decoded_document()
    {
        var incoming = ClassifyOne(Fixtures.AwsNode(Fixtures.CloudWatchLogs));

        var payload = PayloadOf(incoming);
        Assert.Multiple(() =>
        {
            Assert.That(incoming.EventType, Is.EqualTo("aws.logs.batch"));
            Assert.That(incoming.Id, Is.EqualTo(Guid.Parse("0048cec0-dee3-5d7b-a333-4da95f897974")), "uuid5 of owner, group, stream and log event ids");
            Assert.That(incoming.AggregateId, Is.EqualTo(Guid.Parse("9b0c2c98-4e02-5065-a969-714d12a3ec8f")), "uuid5 of group and stream");
            Assert.That(incoming.AggregateType, Is.EqualTo("aws.logs.stream"));
            Assert.That(Text(payload["messageType"]), Is.EqualTo("DATA_MESSAGE"));
            Assert.That(Text(payload["logGroup"]), Is.EqualTo("testLogGroup"));
            Assert.That(Text(payload["logStream"]), Is.EqualTo("testLogStream"));
            Assert.That(payload["logEvents"]!.AsArray().Select(e => Text(e!["message"])),
                Is.EqualTo(new[] { "[ERROR] First test message", "[ERROR] Second test message" }));
            Assert.That(SameJson(incoming.MetadataJson, """{"ingress":"http:/process"}"""), Is.True, incoming.MetadataJson);
        });
    }

    [Test]
    public void A_logs_delivery_of_several_log_events_keeps_them_all_in_order()
    {
        string[] messages = ["START RequestId: 1", "[ERROR] boom", "{\"level\":\"warn\",\"msg\":\"slow\"}", "END RequestId: 1", "REPORT Duration: 12 ms"];

        var incoming = ClassifyOne(Logs(LogsDocument("/aws/lambda/orders", "2024/05/01/[$LATEST]abc", messages)));

        var logEvents = PayloadOf(incoming)["logEvents"]!.AsArray();
        Assert.Multiple(() =>
        {
            Assert.That(incoming.EventType, Is.EqualTo("aws.logs.batch"));
            Assert.That(logEvents.Select(e => Text(e!["message"])), Is.EqualTo(messages));
            Assert.That(logEvents.Select(e => Text(e!["id"])), Is.EqualTo(Enumerable.Range(0, 5).Select(i => $"2024/05/01/[$LATEST]abc-{i}")));
            Assert.That(incoming.AggregateId, Is.EqualTo(DeterministicGuid.Create("aws.logs.stream//aws/lambda/orders/2024/05/01/[$LATEST]abc")));
        });
    }

    [Test]
    public void Log_batches_share_an_aggregate_exactly_when_they_share_log_group_and_stream()
    {
        var first = ClassifyOne(Logs(LogsDocument("/aws/lambda/orders", "stream-a", "one")));
        var sameStream = ClassifyOne(Logs(LogsDocument("/aws/lambda/orders", "stream-a", "two", "three")));
        var otherStream = ClassifyOne(Logs(LogsDocument("/aws/lambda/orders", "stream-b", "one")));
        var otherGroup = ClassifyOne(Logs(LogsDocument("/aws/lambda/billing", "stream-a", "one")));

        Assert.Multiple(() =>
        {
            Assert.That(sameStream.AggregateId, Is.EqualTo(first.AggregateId));
            Assert.That(otherStream.AggregateId, Is.Not.EqualTo(first.AggregateId));
            Assert.That(otherGroup.AggregateId, Is.Not.EqualTo(first.AggregateId));
            Assert.That(sameStream.Id, Is.Not.EqualTo(first.Id), "different log events are a different batch");
        });
    }

    [Test]
    public void A_redelivered_logs_batch_keeps_its_id_whatever_its_gzip_bytes()
    {
        var document = LogsDocument("/aws/ecs/api", "api/web/1234", "GET /health 200", "GET /orders 500");
        var fast = Logs(document, CompressionLevel.Fastest);
        var small = Logs(document, CompressionLevel.SmallestSize);
        Assume.That(Text(fast["awslogs"]!["data"]), Is.Not.EqualTo(Text(small["awslogs"]!["data"])));

        Assert.That(ClassifyOne(small).Id, Is.EqualTo(ClassifyOne(fast).Id));
    }

    [Test]
    public void A_logs_control_message_is_acknowledged_and_stores_nothing()
    {
        var control = """
            {"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"",
             "subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1440442987000,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}
            """;

        var classification = _classifier.ClassifyLambdaEvent(Utf8(Logs(control)));

        Assert.Multiple(() =>
        {
            Assert.That(classification.Events, Is.Empty);
            Assert.That(classification.Acknowledged, Is.EqualTo("CloudWatch Logs CONTROL_MESSAGE"));
        });
    }

    [TestCase("""{"messageType":"SOMETHING_ELSE","logGroup":"g","logStream":"s","logEvents":[]}""",
        "The CloudWatch Logs messageType 'SOMETHING_ELSE' is unknown; expected DATA_MESSAGE or CONTROL_MESSAGE.")]
    [TestCase("""{"logGroup":"g","logStream":"s","logEvents":[]}""", "The CloudWatch Logs document has no 'messageType' string.")]
    [TestCase("""{"messageType":"DATA_MESSAGE","logStream":"s","logEvents":[]}""", "The CloudWatch Logs document has no 'logGroup' string.")]
    [TestCase("""{"messageType":"DATA_MESSAGE","logGroup":"g","logEvents":[]}""", "The CloudWatch Logs document has no 'logStream' string.")]
    [TestCase("""{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":{}}""", "The CloudWatch Logs document has no logEvents array.")]
    [TestCase("""["DATA_MESSAGE"]""", "The decompressed awslogs.data is not a JSON object.")]
    public void A_logs_document_missing_what_a_batch_needs_is_rejected(string document, string message)
    {
        var rejected = Assert.Throws<IngressRejectedException>(() => _classifier.ClassifyLambdaEvent(Utf8(Logs(document))))!;

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Is.EqualTo(message));
        });
    }

    [TestCase("""{"awslogs":"H4sI"}""")]
    [TestCase("""{"awslogs":{"data":42}}""")]
    [TestCase("""{"awslogs":{}}""")]
    public void An_awslogs_property_without_a_data_string_is_rejected(string delivery)
    {
        var rejected = Assert.Throws<IngressRejectedException>(() => _classifier.ClassifyLambdaEvent(Utf8(delivery)))!;

        Assert.That(rejected.Message, Is.EqualTo("awslogs.data must be a string: base64 of a gzip-compressed CloudWatch Logs document."));
    }

    [Test]
    public void The_WebSocket_connect_fixture_is_a_connect_event_grouped_by_its_connection()
    {
        var fixture = Fixtures.Aws(Fixtures.WebSocketConnect);

        var incoming = _classifier.ClassifyLambdaEvent(fixture).Events.Single();

        Assert.Multiple(() =>
        {
            Assert.That(incoming.EventType, Is.EqualTo("websocket.connect"));
            Assert.That(incoming.Id, Is.EqualTo(Guid.Parse("4b80cb5e-c2d1-57f0-b56e-1389654ae775")), "uuid5 of api, connection, kind and request id");
            Assert.That(incoming.AggregateId, Is.EqualTo(Guid.Parse("92071e6d-71f6-5c70-83ad-c724747cb686")), "uuid5 of api and connection id");
            Assert.That(incoming.AggregateType, Is.EqualTo("websocket.connection"));
            Assert.That(JsonNode.DeepEquals(PayloadOf(incoming), JsonNode.Parse(fixture)), Is.True, "the payload is the whole request");
            Assert.That(Text(MetadataOf(incoming)["ingress"]), Is.EqualTo("http:/process"));
        });
    }

    [Test]
    public void Connect_message_and_disconnect_of_one_connection_share_its_aggregate()
    {
        var connect = ClassifyOne(WebSocket("CONNECT", "conn-1=", "req-1"));
        var message = ClassifyOne(WebSocket("MESSAGE", "conn-1=", "req-2", body: """{"action":"sendMessage","text":"hi"}"""));
        var disconnect = ClassifyOne(WebSocket("DISCONNECT", "conn-1=", "req-3"));
        var otherConnection = ClassifyOne(WebSocket("MESSAGE", "conn-2=", "req-2", body: "{}"));

        Assert.Multiple(() =>
        {
            Assert.That(new[] { connect.EventType, message.EventType, disconnect.EventType },
                Is.EqualTo(new[] { "websocket.connect", "websocket.message", "websocket.disconnect" }));
            Assert.That(message.AggregateId, Is.EqualTo(connect.AggregateId));
            Assert.That(disconnect.AggregateId, Is.EqualTo(connect.AggregateId));
            Assert.That(connect.AggregateId, Is.EqualTo(DeterministicGuid.Create("websocket.connection/abc123/conn-1=")));
            Assert.That(otherConnection.AggregateId, Is.Not.EqualTo(connect.AggregateId));
            Assert.That(new[] { connect.Id, message.Id, disconnect.Id, otherConnection.Id }, Is.Unique);
            Assert.That(Text(PayloadOf(message)["body"]), Is.EqualTo("""{"action":"sendMessage","text":"hi"}"""), "the body stays the text the client sent");
            Assert.That(Text(PayloadOf(disconnect)["requestContext"]!["disconnectReason"]), Is.EqualTo("Going away"));
        });
    }

    [Test]
    public void A_redelivered_WebSocket_message_keeps_its_id()
    {
        var first = ClassifyOne(WebSocket("MESSAGE", "conn-1=", "req-9", body: "ping"));
        var again = ClassifyOne(WebSocket("MESSAGE", "conn-1=", "req-9", body: "ping"));

        Assert.That(again.Id, Is.EqualTo(first.Id));
    }

    [Test]
    public void A_WebSocket_request_without_a_request_id_falls_back_to_its_request_time()
    {
        var request = WebSocket("CONNECT", "conn-1=", "unused");
        request["requestContext"]!.AsObject().Remove("requestId");

        var incoming = ClassifyOne(request);

        Assert.That(incoming.Id, Is.EqualTo(DeterministicGuid.Create("websocket/abc123/conn-1=/CONNECT/1700000000000")));
    }

    [TestCase("eventType", "\"UPGRADE\"", "requestContext.eventType 'UPGRADE' is unknown; expected CONNECT, DISCONNECT or MESSAGE.")]
    [TestCase("eventType", "7", "The WebSocket requestContext has no 'eventType' string.")]
    [TestCase("connectionId", null, "The WebSocket requestContext has no 'connectionId' string.")]
    [TestCase("connectionId", "\"\"", "The WebSocket requestContext has no 'connectionId' string.")]
    public void A_WebSocket_request_with_a_wrong_or_missing_field_is_rejected(string field, string? json, string message)
    {
        var request = WebSocket("CONNECT", "conn-1=", "req-1");
        var context = request["requestContext"]!.AsObject();
        context.Remove(field);
        if (json is not null)
        {
            context[field] = JsonNode.Parse(json);
        }

        var rejected = Assert.Throws<IngressRejectedException>(() => _classifier.ClassifyLambdaEvent(Utf8(request)))!;

        Assert.That(rejected.Message, Is.EqualTo(message));
    }

    [Test]
    public void A_WebSocket_request_with_no_request_id_message_id_or_time_is_rejected()
    {
        var request = WebSocket("CONNECT", "conn-1=", "req-1");
        request["requestContext"]!.AsObject().Remove("requestId");
        request["requestContext"]!.AsObject().Remove("requestTimeEpoch");

        var rejected = Assert.Throws<IngressRejectedException>(() => _classifier.ClassifyLambdaEvent(Utf8(request)))!;

        Assert.That(rejected.Message, Is.EqualTo("The WebSocket requestContext has no requestId, messageId or requestTimeEpoch."));
    }

    [Test]
    public void An_envelope_sent_to_the_Lambda_door_is_that_event()
    {
        var incoming = ClassifyOne(Parse("""{"event_type":"order.placed","id":"order-7","payload":{"total":9.5},"metadata":{"trace":"t-1"}}"""));

        Assert.Multiple(() =>
        {
            Assert.That(incoming.EventType, Is.EqualTo("order.placed"));
            Assert.That(incoming.Id, Is.EqualTo(DeterministicGuid.Create("envelope//order-7")), "no tenant: the empty scope");
            Assert.That((decimal)PayloadOf(incoming)["total"]!, Is.EqualTo(9.5m));
            Assert.That(SameJson(incoming.MetadataJson, """{"trace":"t-1","ingress":"http:/process"}"""), Is.True, incoming.MetadataJson);
        });
    }

    [Test]
    public void An_invalid_envelope_sent_to_the_Lambda_door_lists_its_violations()
    {
        var rejected = Assert.Throws<IngressRejectedException>(() =>
            _classifier.ClassifyLambdaEvent(Utf8("""{"event_type":"","payload":null,"extra":1}""")))!;

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Message, Is.EqualTo("The envelope is invalid"));
            Assert.That(rejected.Violations, Has.Count.EqualTo(3));
            Assert.That(rejected.Violations, Has.Some.StartsWith("extra: unknown property"));
            Assert.That(rejected.Violations, Has.Some.StartsWith("event_type: required"));
            Assert.That(rejected.Violations, Has.Some.StartsWith("payload: required"));
        });
    }

    [TestCase("""{"hello":"world"}""")]
    [TestCase("""{}""")]
    [TestCase("""{"source":"aws.ecs","detail-type":"ECS Task State Change"}""")]
    [TestCase("""{"requestContext":{"routeKey":"GET /"},"body":"x"}""")]
    [TestCase("""{"event_type":"order.placed"}""")]
    public void A_JSON_object_of_no_known_shape_is_rejected_with_the_shapes_that_are_known(string delivery)
    {
        var rejected = Assert.Throws<IngressRejectedException>(() => _classifier.ClassifyLambdaEvent(Utf8(delivery)))!;

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Does.StartWith("The body is not a shape this service knows."));
            Assert.That(rejected.Message, Does.Contain("EventBridge").And.Contain("awslogs.data").And.Contain("requestContext.eventType"));
        });
    }

    [TestCaseSource(typeof(Fixtures), nameof(Fixtures.All))]
    public void Classifying_a_fixture_twice_gives_the_same_rows(string fixture)
    {
        var delivery = Fixtures.Aws(fixture);

        var first = _classifier.ClassifyLambdaEvent(delivery).Events;
        var again = new EventClassifier(new IngressLimits()).ClassifyLambdaEvent(delivery).Events;

        Assert.Multiple(() =>
        {
            Assert.That(first, Is.Not.Empty);
            Assert.That(again, Is.EqualTo(first), "records compare by value: same ids, types, aggregates, payloads and metadata");
        });
    }

    [Test]
    public void Limits_are_the_documented_defaults()
    {
        var limits = new IngressLimits();

        Assert.Multiple(() =>
        {
            Assert.That(limits.MaxBodyBytes, Is.EqualTo(1024 * 1024));
            Assert.That(limits.MaxDecompressedBytes, Is.EqualTo(8 * 1024 * 1024));
            Assert.That(limits.MaxJsonDepth, Is.EqualTo(64));
            Assert.That(_classifier.Limits.MaxJsonDepth, Is.EqualTo(64));
        });
    }
}
