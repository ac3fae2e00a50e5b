using System.IO.Compression;
using System.Text;
using EventProcessor.Ingress;
using EventProcessor.Ingress.Classification;
using static EventProcessor.Tests.Ingress.Deliveries;

namespace EventProcessor.Tests.Ingress;

/// <summary>
/// Deliveries built to hurt: bombs, broken encodings, documents PostgreSQL cannot store, shapes that only look
/// right. Each must be refused with a rejection that says why, never an unexpected exception or a stored row.
/// </summary>
public sealed class HostileInputTests
{
    private const int OneMiB = 1024 * 1024;

    private readonly EventClassifier _classifier = new(new IngressLimits());

    private static IngressRejectedException Rejects(Action classify) => Assert.Throws<IngressRejectedException>(() => classify())!;

    private IngressRejectedException RejectsLambda(string body) => Rejects(() => _classifier.ClassifyLambdaEvent(Utf8(body)));

    private IngressRejectedException RejectsLambda(byte[] body) => Rejects(() => _classifier.ClassifyLambdaEvent(body));

    /// <summary>
    /// A logs document that is 100 MB of '0' characters inside a log message, gzip-compressed in slices so that the
    /// test itself never holds the 100 MB either.
    /// </summary>
    private static byte[] GzipBomb(long decompressedBytes)
    {
        var head = Utf8("""{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","message":" """);
        var slice = Enumerable.Repeat((byte)'0', OneMiB).ToArray();
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.SmallestSize))
        {
            gzip.Write(head);
            for (var written = (long)head.Length; written < decompressedBytes; written += slice.Length)
            {
                gzip.Write(slice, 0, (int)Math.Min(slice.Length, decompressedBytes - written));
            }
        }

        return output.ToArray();
    }

    [Test]
    public void A_gzip_bomb_in_awslogs_data_is_too_large_and_memory_stays_flat()
    {
        const long Decompressed = 100L * OneMiB;
        var bomb = GzipBomb(Decompressed);
        var delivery = Utf8(LogsData(Convert.ToBase64String(bomb)));
        var classifier = new EventClassifier(new IngressLimits { MaxDecompressedBytes = OneMiB });
        Assume.That(bomb, Has.Length.LessThan(200 * 1024), "100 MB of one byte compresses to about 100 KB");

        var before = GC.GetAllocatedBytesForCurrentThread();
        var rejected = Rejects(() => classifier.ClassifyLambdaEvent(delivery));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        TestContext.Out.WriteLine($"{bomb.Length:N0} compressed bytes; the classifier allocated {allocated:N0} bytes to refuse them");

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.TooLarge));
            Assert.That(rejected.Message, Is.EqualTo($"awslogs.data decompresses to more than {OneMiB} bytes (the limit); it was not stored."));
            Assert.That(allocated, Is.LessThan(8L * OneMiB),
                $"the classifier allocated {allocated:N0} bytes for a delivery that decompresses to {Decompressed:N0}");
        });
    }

    [Test]
    public void A_gzip_bomb_is_refused_at_the_default_limit_too()
    {
        var delivery = Utf8(LogsData(Convert.ToBase64String(GzipBomb(100L * OneMiB))));

        var before = GC.GetAllocatedBytesForCurrentThread();
        var rejected = RejectsLambda(delivery);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.TooLarge));
            Assert.That(allocated, Is.LessThan(40L * OneMiB), $"{allocated:N0} bytes for a limit of 8 MiB");
        });
    }

    [Test]
    public void A_gzip_bomb_in_an_SQS_body_is_too_large_through_either_door()
    {
        var logs = LogsData(Convert.ToBase64String(GzipBomb(20L * OneMiB)));
        var classifier = new EventClassifier(new IngressLimits { MaxDecompressedBytes = OneMiB });

        var viaLambda = Rejects(() => classifier.ClassifyLambdaEvent(Utf8(Lambda(SqsRecord("m-1", logs.ToJsonString())))));
        var viaWorker = Rejects(() => classifier.ClassifySqsMessage(Utf8(SqsRecord("m-1", logs.ToJsonString()))));

        Assert.Multiple(() =>
        {
            Assert.That(viaLambda.Rejection, Is.EqualTo(IngressRejection.TooLarge));
            Assert.That(viaWorker.Rejection, Is.EqualTo(IngressRejection.TooLarge));
        });
    }

    [Test]
    public void The_decompressed_limit_is_inclusive()
    {
        var document = Utf8(LogsDocument("g", "s", new string('x', 10_000)));
        var delivery = Utf8(LogsData(Convert.ToBase64String(Gzip(document))));

        var atLimit = new EventClassifier(new IngressLimits { MaxDecompressedBytes = document.Length }).ClassifyLambdaEvent(delivery);
        var rejected = Rejects(() => new EventClassifier(new IngressLimits { MaxDecompressedBytes = document.Length - 1 }).ClassifyLambdaEvent(delivery));

        Assert.Multiple(() =>
        {
            Assert.That(atLimit.Events.Single().PayloadJson, Is.EqualTo(Encoding.UTF8.GetString(document)));
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.TooLarge));
        });
    }

    [TestCase("not base64 at all!")]
    [TestCase("H4sI=AAA")]
    [TestCase("H4sIAAAAAAAAA")]
    public void Awslogs_data_that_is_not_base64_is_rejected(string data)
    {
        var rejected = RejectsLambda(LogsData(data).ToJsonString());

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Is.EqualTo("awslogs.data is not valid base64."));
        });
    }

    [TestCase("")]
    [TestCase("eyJtZXNzYWdlVHlwZSI6IkRBVEFfTUVTU0FHRSJ9")]
    public void Awslogs_data_that_is_base64_of_something_other_than_gzip_is_rejected(string data)
    {
        var rejected = RejectsLambda(LogsData(data).ToJsonString());

        Assert.That(rejected.Message, Is.EqualTo("awslogs.data is not gzip-compressed (it does not start with the gzip magic bytes)."));
    }

    [Test]
    public void Gzip_with_a_corrupt_stream_is_rejected()
    {
        var gzip = Gzip(Utf8(LogsDocument("g", "s", "hello")));
        gzip[10] ^= 0xFF;
        gzip[11] ^= 0xFF;

        var rejected = RejectsLambda(LogsData(Convert.ToBase64String(gzip)).ToJsonString());

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Does.StartWith("awslogs.data is not valid gzip: "));
        });
    }

    [Test]
    public void Truncated_gzip_is_rejected()
    {
        var gzip = Gzip(Utf8(LogsDocument("g", "s", "hello", "world")));

        var rejected = RejectsLambda(LogsData(Convert.ToBase64String(gzip.AsSpan(0, gzip.Length / 2))).ToJsonString());

        Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
        Assert.That(rejected.Message, Does.StartWith("awslogs.data is not valid gzip").Or.StartWith("The decompressed awslogs.data is not valid JSON"));
    }

    [TestCase("[ERROR] not json")]
    [TestCase("{\"messageType\":\"DATA_MESSAGE\",")]
    [TestCase(" ")]
    public void Gzip_of_something_other_than_JSON_is_rejected(string decompressed)
    {
        var rejected = RejectsLambda(Logs(decompressed).ToJsonString());

        Assert.That(rejected.Message, Does.StartWith("The decompressed awslogs.data is not valid JSON: "));
    }

    [TestCase("{\"source\":\"aws.ecs\",\"detail-type\":\"ECS Task State Change\",\"id\":\"x\",\"detail\":{")]
    [TestCase("{\"event_type\":\"t\",\"payload\":")]
    [TestCase("{\"Records\":[{\"messageId\":\"m\"")]
    [TestCase("")]
    [TestCase("   ")]
    [TestCase("{} {}")]
    [TestCase("{\"a\":1,}")]
    [TestCase("{'a':1}")]
    [TestCase("{\"a\":NaN}")]
    [TestCase("{\"a\":01}")]
    [TestCase("{\"a\":\"tab\tinside\"}")]
    [TestCase("/* comment */ {}")]
    public void Truncated_or_malformed_JSON_is_rejected(string body)
    {
        var rejected = RejectsLambda(body);

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Does.StartWith("The body is not valid JSON: "));
        });
    }

    [TestCase("{\"event_type\":\"t\",\"payload\":[[1]")]
    [TestCase("{")]
    [TestCase("[[[[")]
    public void A_truncated_document_is_reported_as_truncated_not_as_too_deep(string body)
    {
        var rejected = RejectsLambda(body);

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Message, Does.StartWith("The body is not valid JSON: "));
            Assert.That(rejected.Message, Does.Not.Contain("nested deeper"));
        });
    }

    [Test]
    public void A_truncated_SQS_body_in_a_Lambda_delivery_is_plain_text_not_a_rejection()
    {
        var incoming = _classifier.ClassifyLambdaEvent(Utf8(Lambda(SqsRecord("m-1", "{\"event_type\":\"t\",\"payload\":[[1]")))).Events.Single();

        Assert.Multiple(() =>
        {
            Assert.That(incoming.EventType, Is.EqualTo("aws.sqs.message"));
            Assert.That(Text(PayloadOf(incoming)["body"]), Is.EqualTo("{\"event_type\":\"t\",\"payload\":[[1]"));
        });
    }

    [TestCase("[]", "array")]
    [TestCase("[{\"event_type\":\"t\",\"payload\":1}]", "array")]
    [TestCase("42", "number")]
    [TestCase("\"hello\"", "string")]
    [TestCase("null", "null")]
    [TestCase("false", "false")]
    public void A_Lambda_event_that_is_not_a_JSON_object_is_rejected(string body, string kind)
    {
        var rejected = RejectsLambda(body);

        Assert.That(rejected.Message, Is.EqualTo($"The body is a JSON {kind}; a Lambda event is a JSON object."));
    }

    [Test]
    public void Nesting_up_to_the_limit_is_accepted_and_one_level_deeper_is_rejected()
    {
        var classifier = new EventClassifier(new IngressLimits { MaxJsonDepth = 16 });

        var atLimit = classifier.ClassifyLambdaEvent(Utf8(EnvelopeOfDepth(16))).Events.Single();
        var rejected = Rejects(() => classifier.ClassifyLambdaEvent(Utf8(EnvelopeOfDepth(17))));
        var rejectedEnvelope = Rejects(() => classifier.ClassifyEnvelopes(Utf8(EnvelopeOfDepth(17)), "acme"));

        Assert.Multiple(() =>
        {
            Assert.That(atLimit.PayloadJson, Is.EqualTo(NestedArrays(15)));
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Is.EqualTo("The body is not valid JSON: it is nested deeper than the limit of 16 levels"));
            Assert.That(rejectedEnvelope.Message, Is.EqualTo(rejected.Message));
        });
    }

    [Test]
    public void Nesting_beyond_the_default_limit_is_rejected_even_when_very_deep()
    {
        var rejected = RejectsLambda(EnvelopeOfDepth(100_000));

        Assert.That(rejected.Message, Is.EqualTo("The body is not valid JSON: it is nested deeper than the limit of 64 levels"));
    }

    [Test]
    public void Nesting_too_deep_inside_the_decompressed_logs_is_rejected()
    {
        var document = $$"""{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","message":"m","extracted":{{NestedArrays(64)}}}]}""";

        var rejected = RejectsLambda(Logs(document).ToJsonString());

        Assert.That(rejected.Message, Is.EqualTo("The decompressed awslogs.data is not valid JSON: it is nested deeper than the limit of 64 levels"));
    }

    [Test]
    public void Nesting_too_deep_inside_an_SQS_body_is_rejected_through_either_door()
    {
        var record = SqsRecord("m-1", EnvelopeOfDepth(65));

        var viaWorker = Rejects(() => _classifier.ClassifySqsMessage(Utf8(record)));
        var viaLambda = Rejects(() => _classifier.ClassifyLambdaEvent(Utf8(Lambda(SqsRecord("m-1", EnvelopeOfDepth(65))))));

        Assert.Multiple(() =>
        {
            Assert.That(viaWorker.Message, Is.EqualTo("The message body is not JSON: it is nested deeper than the limit of 64 levels"));
            Assert.That(viaLambda.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(viaLambda.Message, Is.EqualTo("Records[0]: The message body is not JSON: it is nested deeper than the limit of 64 levels"));
        });
    }

    [Test]
    public void An_SQS_body_nested_to_the_limit_is_accepted()
    {
        var incoming = _classifier.ClassifySqsMessage(Utf8(SqsRecord("m-1", EnvelopeOfDepth(64)))).Single();

        Assert.That(incoming.PayloadJson, Is.EqualTo(NestedArrays(63)));
    }

    private static readonly string[] UnstorableStrings =
    [
        "\\u0000",
        "before\\u0000after",
        "\\ud800",
        "\\udfff",
        "x\\ud800y",
        "\\ud800\\ud800",
        "\\ude00\\ud83d",
        "\\ud83d",
    ];

    [TestCaseSource(nameof(UnstorableStrings))]
    public void A_string_jsonb_cannot_store_is_rejected_wherever_it_is(string escaped)
    {
        string[] bodies =
        [
            $$"""{"event_type":"t","payload":"{{escaped}}"}""",
            $$$"""{"event_type":"t","payload":{"deep":[{"x":["{{{escaped}}}"]}]}}""",
            $$$"""{"event_type":"t","payload":{"{{{escaped}}}":1}}""",
            $$$"""{"event_type":"t","payload":{},"metadata":{"k":"{{{escaped}}}"}}""",
            $$$"""{"source":"aws.ecs","detail-type":"ECS Task State Change","id":"e-1","detail":{"reason":"{{{escaped}}}"}}""",
            $$$"""{"source":"aws.ecs","detail-type":"ECS Task State Change","id":"e-1","detail":{},"extra":{"{{{escaped}}}":true}}""",
        ];

        foreach (var body in bodies)
        {
            var rejected = RejectsLambda(body);
            Assert.Multiple(() =>
            {
                Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed), body);
                Assert.That(rejected.Message, Does.StartWith("The body has a string at $").And.EndWith("which PostgreSQL's jsonb cannot store."), body);
            });
        }
    }

    [TestCaseSource(nameof(UnstorableStrings))]
    public void A_string_jsonb_cannot_store_is_rejected_at_the_envelope_door(string escaped)
    {
        var rejected = Rejects(() => _classifier.ClassifyEnvelopes(Utf8($$"""[{"event_type":"t","payload":1},{"event_type":"t","payload":["{{escaped}}"]}]"""), "acme"));

        Assert.That(rejected.Message, Is.EqualTo(
            "The body has a string at $[1].payload[0] that contains \\u0000 or an unpaired surrogate, which PostgreSQL's jsonb cannot store."));
    }

    [TestCaseSource(nameof(UnstorableStrings))]
    public void A_string_jsonb_cannot_store_is_rejected_inside_the_decompressed_logs(string escaped)
    {
        var document = $$"""{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","message":"{{escaped}}"}]}""";

        var rejected = RejectsLambda(Logs(document).ToJsonString());

        Assert.That(rejected.Message, Does.StartWith("The decompressed awslogs.data has a string at $.logEvents[0].message"));
    }

    [TestCaseSource(nameof(UnstorableStrings))]
    public void A_string_jsonb_cannot_store_nested_in_an_SQS_body_is_rejected_through_either_door(string escaped)
    {
        // The body is JSON text inside a JSON string: its escapes survive the record's own decoding.
        var body = $$$"""{"event_type":"t","payload":{"list":[1,{"note":"{{{escaped}}}"}]}}""";
        var plainBody = $$$"""{"anything":{"{{{escaped}}}":1}}""";

        var viaWorker = Rejects(() => _classifier.ClassifySqsMessage(Utf8(SqsRecord("m-1", body))));
        var viaLambda = Rejects(() => _classifier.ClassifyLambdaEvent(Utf8(Lambda(SqsRecord("m-1", body)))));
        var plain = Rejects(() => _classifier.ClassifyLambdaEvent(Utf8(Lambda(SqsRecord("m-1", plainBody)))));

        Assert.Multiple(() =>
        {
            Assert.That(viaWorker.Message, Does.StartWith("The message body has a string at $.payload.list[1].note"));
            Assert.That(viaLambda.Message, Does.StartWith("Records[0]: The message body has a string at $.payload.list[1].note"));
            Assert.That(plain.Message, Does.StartWith("Records[0]: The message body has a string at $.anything"));
        });
    }

    [TestCase("\\u0000")]
    [TestCase("\\ud800")]
    public void A_string_jsonb_cannot_store_in_the_SQS_record_itself_is_rejected(string escaped)
    {
        var record = $$"""{"messageId":"m-1","body":"text{{escaped}}","eventSource":"aws:sqs","eventSourceARN":"q"}""";

        var viaWorker = Rejects(() => _classifier.ClassifySqsMessage(Utf8(record)));

        Assert.That(viaWorker.Message, Does.StartWith("The SQS message has a string at $.body"));
    }

    [TestCase("\\\\u0000")]
    [TestCase("\\\\ud800")]
    [TestCase("\\ud83d\\ude00")]
    [TestCase("\\u0001\\u001f")]
    [TestCase("\\uffff\\ufffe")]
    public void Escapes_that_jsonb_can_store_are_accepted(string escaped)
    {
        var incoming = _classifier.ClassifyEnvelopes(Utf8($$$"""{"event_type":"t","payload":{"{{{escaped}}}":"{{{escaped}}}"}}"""), "acme").Single();

        Assert.That(incoming.PayloadJson, Is.EqualTo($$"""{"{{escaped}}":"{{escaped}}"}"""), "the payload is the text as sent");
    }

    private static readonly byte[][] InvalidUtf8 =
    [
        [0xFF],
        [0xC3],
        [0xC0, 0xAF],
        [0xE2, 0x82],
        [0xED, 0xA0, 0x80],
        [0xF4, 0x90, 0x80, 0x80],
        [0x80],
    ];

    private static byte[] Spliced(string before, byte[] bytes, string after) => [.. Utf8(before), .. bytes, .. Utf8(after)];

    [TestCaseSource(nameof(InvalidUtf8))]
    public void Invalid_UTF8_in_a_string_value_is_rejected(byte[] bytes)
    {
        var body = Spliced("""{"event_type":"t","payload":{"text":"ok""", bytes, """ok"}}""");

        var rejected = RejectsLambda(body);

        Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
    }

    [TestCaseSource(nameof(InvalidUtf8))]
    public void Invalid_UTF8_in_a_property_name_is_rejected(byte[] bytes)
    {
        var body = Spliced("""{"event_type":"t","payload":{"k""", bytes, "\":1}}");

        var rejected = RejectsLambda(body);

        Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
    }

    [TestCaseSource(nameof(InvalidUtf8))]
    public void Invalid_UTF8_inside_the_decompressed_logs_is_rejected(byte[] bytes)
    {
        var document = Spliced("""{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","message":"ok""", bytes, "\"}]}");

        var rejected = RejectsLambda(LogsData(Convert.ToBase64String(Gzip(document))).ToJsonString());

        Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
    }

    [Test]
    public void A_body_over_the_limit_is_too_large_at_every_door_and_one_at_the_limit_is_accepted()
    {
        var envelope = Utf8($$"""{"event_type":"t","payload":"{{new string('x', 1000)}}"}""");
        var record = Utf8(SqsRecord("m-1", "text"));
        var atLimit = new EventClassifier(new IngressLimits { MaxBodyBytes = envelope.Length });
        var under = new EventClassifier(new IngressLimits { MaxBodyBytes = envelope.Length - 1 });
        var tooSmallForRecord = new EventClassifier(new IngressLimits { MaxBodyBytes = record.Length - 1 });

        var lambda = Rejects(() => under.ClassifyLambdaEvent(envelope));
        var envelopes = Rejects(() => under.ClassifyEnvelopes(envelope, "acme"));
        var sqs = Rejects(() => tooSmallForRecord.ClassifySqsMessage(record));

        Assert.Multiple(() =>
        {
            Assert.That(atLimit.ClassifyLambdaEvent(envelope).Events, Has.Count.EqualTo(1));
            Assert.That(atLimit.ClassifyEnvelopes(envelope, "acme"), Has.Count.EqualTo(1));
            Assert.That(lambda.Rejection, Is.EqualTo(IngressRejection.TooLarge));
            Assert.That(lambda.Message, Is.EqualTo($"The body is {envelope.Length} bytes, over the limit of {envelope.Length - 1}."));
            Assert.That(envelopes.Rejection, Is.EqualTo(IngressRejection.TooLarge));
            Assert.That(sqs.Rejection, Is.EqualTo(IngressRejection.TooLarge));
            Assert.That(sqs.Message, Does.StartWith("The SQS message is"));
        });
    }

    [TestCase("aws:s3")]
    [TestCase("aws:sns")]
    [TestCase("aws:dynamodb")]
    [TestCase("AWS:SQS")]
    public void Records_from_another_event_source_are_rejected(string eventSource)
    {
        var record = SqsRecord("m-1", "text");
        record["eventSource"] = eventSource;

        var rejected = RejectsLambda(Lambda(SqsRecord("m-0", "fine"), record).ToJsonString());

        Assert.That(rejected.Message, Is.EqualTo(
            $"Records[1] comes from '{eventSource}'; only SQS records (eventSource \"aws:sqs\") are accepted."));
    }

    [TestCase("""{"Records":[]}""", "Records must be a non-empty array of SQS records.")]
    [TestCase("""{"Records":{}}""", "Records must be a non-empty array of SQS records.")]
    [TestCase("""{"Records":null}""", "Records must be a non-empty array of SQS records.")]
    [TestCase("""{"Records":[42]}""", "Records[0] comes from '(no eventSource)'; only SQS records (eventSource \"aws:sqs\") are accepted.")]
    [TestCase("""{"Records":[{"messageId":"m-1","body":"x"}]}""", "Records[0] comes from '(no eventSource)'; only SQS records (eventSource \"aws:sqs\") are accepted.")]
    [TestCase("""{"Records":[{"eventSource":"aws:sqs","body":"x"}]}""", "Records[0]: The SQS record has no 'messageId' string.")]
    [TestCase("""{"Records":[{"eventSource":"aws:sqs","messageId":"","body":"x"}]}""", "Records[0]: The SQS record has no 'messageId' string.")]
    [TestCase("""{"Records":[{"eventSource":"aws:sqs","messageId":"m-1"}]}""", "Records[0]: The SQS record has no body string.")]
    [TestCase("""{"Records":[{"eventSource":"aws:sqs","messageId":"m-1","body":null}]}""", "Records[0]: The SQS record has no body string.")]
    [TestCase("""{"Records":[{"eventSource":"aws:sqs","messageId":"m-1","body":"x"},{"eventSource":"aws:sqs","body":"y"}]}""", "Records[1]: The SQS record has no 'messageId' string.")]
    public void Records_that_are_not_complete_SQS_records_are_rejected(string body, string message)
    {
        var rejected = RejectsLambda(body);

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Is.EqualTo(message));
        });
    }

    [Test]
    public void A_body_with_duplicate_keys_is_classified_by_the_last_one_as_jsonb_keeps_it()
    {
        var incoming = _classifier.ClassifyLambdaEvent(Utf8(
            """{"source":"aws.ecs","detail-type":"Decoy","id":"e-1","detail":{},"detail-type":"ECS Task State Change"}""")).Events.Single();

        Assert.That(incoming.EventType, Is.EqualTo("aws.ecs.ecs_task_state_change"));
    }

    [Test]
    public void A_hostile_delivery_does_not_leave_the_classifier_unusable()
    {
        Rejects(() => _classifier.ClassifyLambdaEvent(Utf8(LogsData(Convert.ToBase64String(GzipBomb(20L * OneMiB))))));
        RejectsLambda(EnvelopeOfDepth(1000));

        var incoming = _classifier.ClassifyLambdaEvent(Fixtures.Aws(Fixtures.CloudWatchLogs)).Events.Single();

        Assert.That(Text(PayloadOf(incoming)["logGroup"]), Is.EqualTo("testLogGroup"));
    }

    [Test]
    public void Every_rejection_message_is_a_sentence_without_exception_jargon()
    {
        string[] bodies = ["{", "[]", "{}", """{"awslogs":{"data":"!"}}""", """{"Records":[]}""", """{"event_type":"t","payload":"\u0000"}"""];

        foreach (var body in bodies)
        {
            var rejected = RejectsLambda(body);
            Assert.That(rejected.Message, Does.Not.Contain("Exception").And.Not.Contain("System."), body);
        }
    }
}
