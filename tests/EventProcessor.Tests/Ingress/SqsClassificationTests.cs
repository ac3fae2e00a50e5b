using System.Text.Json.Nodes;
using EventProcessor.Ingress;
using EventProcessor.Ingress.Classification;
using static EventProcessor.Tests.Ingress.Deliveries;

namespace EventProcessor.Tests.Ingress;

/// <summary>
/// SQS records, through both doors: a Lambda delivery (<c>Records[]</c>, <c>POST /process</c>) and the SQS worker's
/// <see cref="EventClassifier.ClassifySqsMessage"/>, which gets one record in the same shape.
/// </summary>
public sealed class SqsClassificationTests
{
    private const string FixtureQueueArn = "arn:aws:sqs:us-west-2:123456789012:SQSQueue";

    private readonly EventClassifier _classifier = new(new IngressLimits());

    private IReadOnlyList<IncomingEvent> ClassifyLambda(params JsonObject[] records) =>
        _classifier.ClassifyLambdaEvent(Utf8(Lambda(records))).Events;

    [Test]
    public void The_SQS_fixture_with_a_plain_text_body_is_one_SQS_message_carrying_body_and_attributes()
    {
        var fixture = Fixtures.AwsNode(Fixtures.SqsLambda);
        var record = fixture["Records"]![0]!;

        var incoming = _classifier.ClassifyLambdaEvent(Fixtures.Aws(Fixtures.SqsLambda)).Events.Single();

        var payload = PayloadOf(incoming);
        Assert.Multiple(() =>
        {
            Assert.That(incoming.EventType, Is.EqualTo("aws.sqs.message"));
            Assert.That(incoming.Id, Is.EqualTo(Guid.Parse("3c912c09-f8e1-5b44-84dd-afee0c32f489")), "uuid5 of queue ARN and message id");
            Assert.That(incoming.AggregateId, Is.Null, "a standard queue has no order to keep");
            Assert.That(incoming.AggregateType, Is.Null);
            Assert.That(incoming.TenantId, Is.Null);
            Assert.That(Text(payload["messageId"]), Is.EqualTo("MessageID"));
            Assert.That(Text(payload["body"]), Is.EqualTo("Message Body"));
            Assert.That(Text(payload["eventSourceARN"]), Is.EqualTo(FixtureQueueArn));
            Assert.That(JsonNode.DeepEquals(payload["attributes"], record["attributes"]), Is.True);
            Assert.That(JsonNode.DeepEquals(payload["messageAttributes"], record["messageAttributes"]), Is.True);
            Assert.That(payload.AsObject().Select(p => p.Key), Is.EquivalentTo(new[] { "messageId", "body", "attributes", "messageAttributes", "eventSourceARN" }),
                "the receipt handle and md5s are delivery details, not the message");
            Assert.That(SameJson(incoming.MetadataJson, $$"""{"ingress":"http:/process","sqs_message_id":"MessageID","sqs_queue":"{{FixtureQueueArn}}"}"""),
                Is.True, incoming.MetadataJson);
        });
    }

    [Test]
    public void A_JSON_body_of_no_known_shape_is_an_SQS_message_whose_body_is_the_text_as_sent()
    {
        const string Body = """{"orderId": 42, "items": ["a", "b"]}""";

        var incoming = ClassifyLambda(SqsRecord("m-1", Body)).Single();

        Assert.Multiple(() =>
        {
            Assert.That(incoming.EventType, Is.EqualTo("aws.sqs.message"));
            Assert.That(Text(PayloadOf(incoming)["body"]), Is.EqualTo(Body), "the body is kept as the text it was, not re-serialised");
            Assert.That(incoming.Id, Is.EqualTo(DeterministicGuid.Create($"aws.sqs/{FifoQueueArn}/m-1")));
        });
    }

    [Test]
    public void AWS_notifications_that_reach_a_queue_as_JSON_of_another_shape_are_SQS_messages()
    {
        // S3 event notifications carry Records of their own (eventSource aws:s3); SNS wraps its message in a
        // Notification. Neither is refused: the body is kept for a handler of aws.sqs.message.
        const string S3 = """{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}""";
        const string Sns = """{"Type":"Notification","MessageId":"n-1","TopicArn":"arn:aws:sns:eu-west-1:111122223333:t","Message":"{\"a\":1}"}""";

        var events = ClassifyLambda(SqsRecord("m-1", S3), SqsRecord("m-2", Sns));

        Assert.Multiple(() =>
        {
            Assert.That(events.Select(e => e.EventType), Is.All.EqualTo("aws.sqs.message"));
            Assert.That(Text(PayloadOf(events[0])["body"]), Is.EqualTo(S3));
            Assert.That(Text(PayloadOf(events[1])["body"]), Is.EqualTo(Sns));
        });
    }

    [Test]
    public void A_logs_control_message_in_an_SQS_body_stores_nothing_for_that_record()
    {
        var control = Logs("""{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","logEvents":[]}""");

        var events = ClassifyLambda(SqsRecord("m-1", control.ToJsonString()), SqsRecord("m-2", "kept"));

        Assert.That(events.Select(e => Text(MetadataOf(e)["sqs_message_id"])), Is.EqualTo(new[] { "m-2" }));
    }

    [Test]
    public void Records_become_rows_in_the_order_they_arrived()
    {
        var events = ClassifyLambda(
            SqsRecord("m-1", "first"),
            SqsRecord("m-2", StoppedEcsTask("a3c7e5f1-0b2d-4e6f-8a1c-3e5f7a9b1d2f", TaskArn, 0).ToJsonString()),
            SqsRecord("m-3", "third"));

        Assert.Multiple(() =>
        {
            Assert.That(events.Select(e => e.EventType), Is.EqualTo(new[] { "aws.sqs.message", "aws.ecs.ecs_task_state_change", "aws.sqs.message" }));
            Assert.That(events.Select(e => Text(MetadataOf(e)["sqs_message_id"])), Is.EqualTo(new[] { "m-1", "m-2", "m-3" }));
        });
    }

    [Test]
    public void FIFO_records_keep_the_order_of_their_message_group_through_the_aggregate()
    {
        var events = ClassifyLambda(
            SqsRecord("m-1", "created", messageGroupId: "order-1"),
            SqsRecord("m-2", "created", messageGroupId: "order-2"),
            SqsRecord("m-3", "paid", messageGroupId: "order-1"));

        Assert.Multiple(() =>
        {
            Assert.That(events[0].AggregateId, Is.EqualTo(DeterministicGuid.Create($"aws.sqs.group/{FifoQueueArn}/order-1")));
            Assert.That(events[2].AggregateId, Is.EqualTo(events[0].AggregateId), "one group, one aggregate");
            Assert.That(events[1].AggregateId, Is.Not.EqualTo(events[0].AggregateId));
            Assert.That(events.Select(e => e.AggregateType), Is.All.EqualTo("aws.sqs.message_group"));
            Assert.That(Text(PayloadOf(events[0])["attributes"]!["MessageGroupId"]), Is.EqualTo("order-1"));
            Assert.That(events.Select(e => e.Id), Is.Unique);
        });
    }

    [Test]
    public void The_same_message_group_in_another_queue_is_another_aggregate()
    {
        var events = ClassifyLambda(
            SqsRecord("m-1", "x", messageGroupId: "g", queueArn: "arn:aws:sqs:eu-west-1:111122223333:a.fifo"),
            SqsRecord("m-1", "x", messageGroupId: "g", queueArn: "arn:aws:sqs:eu-west-1:111122223333:b.fifo"));

        Assert.Multiple(() =>
        {
            Assert.That(events[1].AggregateId, Is.Not.EqualTo(events[0].AggregateId));
            Assert.That(events[1].Id, Is.Not.EqualTo(events[0].Id), "message ids are unique per queue only");
        });
    }

    [Test]
    public void An_EventBridge_event_in_an_SQS_body_is_that_EventBridge_event()
    {
        var eventBridge = StoppedEcsTask("c0ffee00-1234-4567-89ab-cdef01234567", TaskArn, 0, 2);

        var incoming = ClassifyLambda(SqsRecord("m-7", eventBridge.ToJsonString(), clientId: "acme")).Single();

        Assert.Multiple(() =>
        {
            Assert.That(incoming.EventType, Is.EqualTo("aws.ecs.ecs_task_state_change"));
            Assert.That(
                incoming.Id,
                Is.EqualTo(DeterministicGuid.Create("tenant/acme/c0ffee00-1234-4567-89ab-cdef01234567")),
                "the event's id, in its tenant's own id space");
            Assert.That(incoming.AggregateId, Is.EqualTo(DeterministicGuid.Create($"aws.ecs.task/{TaskArn}")));
            Assert.That(JsonNode.DeepEquals(PayloadOf(incoming), eventBridge), Is.True, "the payload is the event, not the SQS record");
            Assert.That(incoming.TenantId, Is.EqualTo("acme"));
            Assert.That(SameJson(incoming.MetadataJson, $$"""{"ingress":"http:/process","sqs_message_id":"m-7","sqs_queue":"{{FifoQueueArn}}"}"""),
                Is.True, incoming.MetadataJson);
        });
    }

    [Test]
    public void A_logs_delivery_and_a_WebSocket_request_in_SQS_bodies_are_classified_as_they_would_be_directly()
    {
        var logs = Logs(LogsDocument("/aws/lambda/orders", "s-1", "hello"));
        var webSocket = WebSocket("DISCONNECT", "conn-1=", "req-1");

        var events = ClassifyLambda(SqsRecord("m-1", logs.ToJsonString()), SqsRecord("m-2", webSocket.ToJsonString()));

        Assert.Multiple(() =>
        {
            Assert.That(events[0].EventType, Is.EqualTo("aws.logs.batch"));
            Assert.That(events[0].Id, Is.EqualTo(ClassifyDirectly(logs).Id));
            Assert.That(Text(PayloadOf(events[0])["logEvents"]![0]!["message"]), Is.EqualTo("hello"));
            Assert.That(events[1].EventType, Is.EqualTo("websocket.disconnect"));
            Assert.That(events[1].Id, Is.EqualTo(ClassifyDirectly(webSocket).Id));
        });
    }

    [Test]
    public void An_envelope_in_an_SQS_body_with_an_id_is_that_event_scoped_by_the_sending_client()
    {
        const string Envelope = """
            {"event_type":"order.placed","id":"order-1","aggregate_id":"order-1","aggregate_type":"order",
             "payload":{"total":12.5},"metadata":{"trace":"t-1"}}
            """;

        var incoming = ClassifyLambda(SqsRecord("m-1", Envelope, clientId: "acme")).Single();

        Assert.Multiple(() =>
        {
            Assert.That(incoming.EventType, Is.EqualTo("order.placed"));
            Assert.That(incoming.Id, Is.EqualTo(Guid.Parse("5a80f3f9-5ca0-50d2-ac63-c3d6dc56e82c")), "uuid5(namespace, 'envelope/acme/order-1')");
            Assert.That(incoming.AggregateId, Is.EqualTo(Guid.Parse("8ffa5a03-3a79-5dd9-aad5-6c99f049eef5")), "uuid5(namespace, 'aggregate/acme/order-1')");
            Assert.That(incoming.AggregateType, Is.EqualTo("order"));
            Assert.That(incoming.TenantId, Is.EqualTo("acme"));
            Assert.That(SameJson(incoming.PayloadJson, """{"total":12.5}"""), Is.True, incoming.PayloadJson);
            Assert.That(SameJson(incoming.MetadataJson,
                $$"""{"trace":"t-1","ingress":"http:/process","aggregate_key":"order-1","sqs_message_id":"m-1","sqs_queue":"{{FifoQueueArn}}"}"""),
                Is.True, incoming.MetadataJson);
        });
    }

    [Test]
    public void An_envelope_in_an_SQS_body_without_an_id_takes_its_id_from_the_SQS_message()
    {
        var record = SqsRecord("m-42", """{"event_type":"order.placed","payload":{"n":1}}""");

        var first = ClassifyLambda(record).Single();
        var redelivered = ClassifyLambda(SqsRecord("m-42", """{"event_type":"order.placed","payload":{"n":1}}""")).Single();
        var another = ClassifyLambda(SqsRecord("m-43", """{"event_type":"order.placed","payload":{"n":1}}""")).Single();

        Assert.Multiple(() =>
        {
            Assert.That(first.EventType, Is.EqualTo("order.placed"));
            Assert.That(first.Id, Is.EqualTo(DeterministicGuid.Create($"aws.sqs/{FifoQueueArn}/m-42")));
            Assert.That(redelivered.Id, Is.EqualTo(first.Id), "a redelivery of the message is the same row");
            Assert.That(another.Id, Is.Not.EqualTo(first.Id));
            Assert.That((int)PayloadOf(first)["n"]!, Is.EqualTo(1));
        });
    }

    [Test]
    public void An_event_in_a_FIFO_body_with_no_aggregate_of_its_own_keeps_the_order_of_its_message_group()
    {
        var events = ClassifyLambda(
            SqsRecord("m-1", """{"event_type":"order.placed","payload":{"n":1}}""", messageGroupId: "order-1"),
            SqsRecord("m-2", EventBridge("com.example", "Order Paid", "p-1", new JsonObject()).ToJsonString(), messageGroupId: "order-1"),
            SqsRecord("m-3", """{"event_type":"order.placed","payload":{"n":2},"aggregate_id":"order-9"}""", messageGroupId: "order-1"),
            SqsRecord("m-4", StoppedEcsTask("d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6", TaskArn, 0).ToJsonString(), messageGroupId: "order-1"));

        var group = DeterministicGuid.Create($"aws.sqs.group/{FifoQueueArn}/order-1");
        Assert.Multiple(() =>
        {
            Assert.That(events[0].AggregateId, Is.EqualTo(group));
            Assert.That(events[0].AggregateType, Is.EqualTo("aws.sqs.message_group"));
            Assert.That(events[1].AggregateId, Is.EqualTo(group));
            Assert.That(events[2].AggregateId, Is.EqualTo(DeterministicGuid.Create("aggregate//order-9")), "an aggregate the event names wins");
            Assert.That(events[3].AggregateId, Is.EqualTo(DeterministicGuid.Create($"aws.ecs.task/{TaskArn}")), "an ECS task stays its own aggregate");
        });
    }

    [Test]
    public void An_invalid_envelope_in_a_record_is_rejected_with_the_record_index_and_every_violation()
    {
        var rejected = Assert.Throws<IngressRejectedException>(() => ClassifyLambda(
            SqsRecord("m-1", "fine"),
            SqsRecord("m-2", """{"event_type":"order.placed","payload":null,"id":7}""")))!;

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Is.EqualTo("Records[1]: The envelope is invalid"));
            Assert.That(rejected.Violations, Has.Count.EqualTo(2));
            Assert.That(rejected.Violations, Has.Some.StartsWith("payload: required"));
            Assert.That(rejected.Violations, Has.Some.StartsWith("id: must be a UUID"));
            Assert.That(rejected.Describe(), Does.Contain("payload: required").And.Contain("id: must be a UUID"));
        });
    }

    [Test]
    public void The_SQS_worker_refuses_a_body_that_is_not_JSON()
    {
        var record = Fixtures.AwsNode(Fixtures.SqsLambda)["Records"]![0]!;

        var rejected = Assert.Throws<IngressRejectedException>(() => _classifier.ClassifySqsMessage(Utf8(record)))!;

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Does.StartWith("The message body is not JSON: "));
        });
    }

    [Test]
    public void The_SQS_worker_takes_the_tenant_from_the_client_id_message_attribute()
    {
        var plain = _classifier.ClassifySqsMessage(Utf8(SqsRecord("m-1", """{"anything":true}""", clientId: "acme"))).Single();
        var envelope = _classifier.ClassifySqsMessage(Utf8(SqsRecord("m-2", """{"event_type":"order.placed","id":"order-1","payload":{}}""", clientId: "acme"))).Single();
        var anonymous = _classifier.ClassifySqsMessage(Utf8(SqsRecord("m-3", """{"anything":true}"""))).Single();

        Assert.Multiple(() =>
        {
            Assert.That(plain.TenantId, Is.EqualTo("acme"));
            Assert.That(plain.EventType, Is.EqualTo("aws.sqs.message"));
            Assert.That(Text(PayloadOf(plain)["messageAttributes"]!["client_id"]!["stringValue"]), Is.EqualTo("acme"));
            Assert.That(envelope.TenantId, Is.EqualTo("acme"));
            Assert.That(envelope.Id, Is.EqualTo(DeterministicGuid.Create("envelope/acme/order-1")));
            Assert.That(anonymous.TenantId, Is.Null);
            Assert.That(Text(MetadataOf(plain)["ingress"]), Is.EqualTo("sqs"));
            Assert.That(Text(MetadataOf(plain)["sqs_message_id"]), Is.EqualTo("m-1"));
        });
    }

    [Test]
    public void A_client_id_that_is_not_a_string_attribute_names_no_tenant()
    {
        var record = SqsRecord("m-1", "{}");
        record["messageAttributes"] = Parse("""{"client_id":{"binaryValue":"YWNtZQ==","dataType":"Binary"}}""");

        Assert.That(_classifier.ClassifySqsMessage(Utf8(record)).Single().TenantId, Is.Null);
    }

    [Test]
    public void Both_doors_map_one_SQS_message_to_the_same_row_id()
    {
        string[] bodies =
        [
            """{"anything":true}""",
            """{"event_type":"order.placed","payload":{}}""",
            """{"event_type":"order.placed","id":"order-1","payload":{}}""",
            StoppedEcsTask("e1e2e3e4-b5c6-4d7e-8f90-a1b2c3d4e5f6", TaskArn, 0).ToJsonString(),
        ];

        foreach (var body in bodies)
        {
            var viaLambda = ClassifyLambda(SqsRecord("m-1", body, messageGroupId: "g", clientId: "acme")).Single();
            var viaWorker = _classifier.ClassifySqsMessage(Utf8(SqsRecord("m-1", body, messageGroupId: "g", clientId: "acme"))).Single();

            Assert.Multiple(() =>
            {
                Assert.That(viaWorker.Id, Is.EqualTo(viaLambda.Id), body);
                Assert.That(viaWorker.AggregateId, Is.EqualTo(viaLambda.AggregateId), body);
                Assert.That(viaWorker.PayloadJson, Is.EqualTo(viaLambda.PayloadJson), body);
                Assert.That(viaWorker.TenantId, Is.EqualTo(viaLambda.TenantId), body);
            });
        }
    }

    [Test]
    public void An_envelope_published_over_HTTP_and_over_SQS_by_one_client_is_one_row()
    {
        const string Envelope = """{"event_type":"order.placed","id":"order-1","aggregate_id":"order-1","payload":{}}""";

        var overHttp = _classifier.ClassifyEnvelopes(Utf8(Envelope), "acme").Single();
        var overSqs = _classifier.ClassifySqsMessage(Utf8(SqsRecord("m-1", Envelope, clientId: "acme"))).Single();

        Assert.Multiple(() =>
        {
            Assert.That(overSqs.Id, Is.EqualTo(overHttp.Id));
            Assert.That(overSqs.AggregateId, Is.EqualTo(overHttp.AggregateId));
        });
    }

    [TestCase("""[{"messageId":"m-1","body":"{}"}]""", "The SQS message is a JSON array; expected one SQS record object.")]
    [TestCase("\"just text\"", "The SQS message is a JSON string; expected one SQS record object.")]
    [TestCase("""{"body":"{}"}""", "The SQS record has no 'messageId' string.")]
    [TestCase("""{"messageId":"m-1"}""", "The SQS record has no body string.")]
    [TestCase("""{"messageId":"m-1","body":{"event_type":"x","payload":1}}""", "The SQS record has no body string.")]
    public void The_SQS_worker_rejects_a_message_that_is_not_an_SQS_record(string message, string reason)
    {
        var rejected = Assert.Throws<IngressRejectedException>(() => _classifier.ClassifySqsMessage(Utf8(message)))!;

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Is.EqualTo(reason));
        });
    }

    private IncomingEvent ClassifyDirectly(JsonObject delivery) => _classifier.ClassifyLambdaEvent(Utf8(delivery)).Events.Single();
}
