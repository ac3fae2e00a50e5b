using System.Text.Json;
using System.Text.Json.Nodes;
using EventProcessor.Ingress;
using EventProcessor.Ingress.Classification;
using EventProcessor.Tests.Support;
using Npgsql;
using static EventProcessor.Tests.Ingress.Deliveries;

namespace EventProcessor.Tests.Ingress;

/// <summary>
/// Whatever the classifier accepts, PostgreSQL's <c>jsonb</c> accepts: the classifier is where a delivery is
/// refused with a reason, so a row it lets through must not fail later in the writer. Every door is exercised
/// with each tricky value, and both <c>PayloadJson</c> and <c>MetadataJson</c> are cast to <c>jsonb</c>.
/// </summary>
public sealed class JsonbAcceptanceTests
{
    private readonly EventClassifier _classifier = new(new IngressLimits());
    private NpgsqlDataSource _dataSource = null!;

    [OneTimeSetUp]
    public void OpenDataSource() => _dataSource = NpgsqlDataSource.Create(PostgresServer.AdminConnectionString);

    [OneTimeTearDown]
    public Task CloseDataSourceAsync() => _dataSource.DisposeAsync().AsTask();

    public static IEnumerable<TestCaseData> TrickyValues()
    {
        yield return new TestCaseData("""{"text":"caf\u00e9 \u4E2D\u6587 \u0041 \u00df"}""").SetArgDisplayNames("escaped unicode");
        yield return new TestCaseData("""{"text":"\ud83d\ude00 \uD83D\uDC68\u200D\uD83D\uDC69 raw 😀👨‍👩‍👧"}""").SetArgDisplayNames("emoji surrogate pairs");
        yield return new TestCaseData("""{"text":"\u0001\u001f\b\f\n\r\t\"\\\/ \u007f"}""").SetArgDisplayNames("control character escapes");
        yield return new TestCaseData("""{"text":"\u2028\u2029\ufeff\uffff\ufffe\ud83f\udffe"}""").SetArgDisplayNames("separators and noncharacters");
        yield return new TestCaseData("""{"text":"\\u0000 and \\ud800 are only text here"}""").SetArgDisplayNames("escaped backslashes");
        yield return new TestCaseData("""{"\u00e9\ud83d\ude00":"escaped key","":"empty key","a b\n":"odd key"}""").SetArgDisplayNames("tricky keys");
        yield return new TestCaseData("""[1e308,-1e308,1.7976931348623157e308,5e-324,1e-308,2.2250738585072014E-308]""").SetArgDisplayNames("double extremes");
        yield return new TestCaseData("""[123456789012345678901234567890,-9223372036854775809,18446744073709551616,0.1,1E+2,0e0,1.000000000000000000000001]""").SetArgDisplayNames("beyond 64 bits");
        yield return new TestCaseData("""[1e400,-1e400,1e-400,1e4000,1e-16383]""").SetArgDisplayNames("beyond double, within numeric");
        yield return new TestCaseData("""{"a":1,"a":{"b":2},"a":"last"}""").SetArgDisplayNames("duplicate keys");
        yield return new TestCaseData("\"just a string\"").SetArgDisplayNames("a string payload");
        yield return new TestCaseData("true").SetArgDisplayNames("a boolean payload");
        yield return new TestCaseData($$"""{"text":"{{new string('x', 200_000)}}"}""").SetArgDisplayNames("a long string");
        yield return new TestCaseData("""  {  "spaced" :  [ 1 , 2 ]  }  """).SetArgDisplayNames("insignificant whitespace");
    }

    [TestCaseSource(nameof(TrickyValues))]
    public async Task A_tricky_value_accepted_at_any_door_is_accepted_by_jsonb_with_the_same_content(string value)
    {
        var events = ThroughEveryDoor(value);

        foreach (var (door, incoming) in events)
        {
            var payloadKept = await RoundTripAsync(incoming.PayloadJson);
            var metadataKept = await RoundTripAsync(incoming.MetadataJson);
            Assert.Multiple(() =>
            {
                Assert.That(payloadKept, Is.True, $"{door}: payload {Abbreviate(incoming.PayloadJson)}");
                Assert.That(metadataKept, Is.True, $"{door}: metadata {Abbreviate(incoming.MetadataJson)}");
            });
        }

        Assert.That(events, Has.Count.EqualTo(7), "every door saw the value");
    }

    [Test]
    public async Task Emoji_and_escapes_read_back_from_jsonb_as_the_classifier_read_them()
    {
        const string Payload = """{"text":"caf\u00e9 \ud83d\ude00 \u2028 tab\t"}""";

        var incoming = _classifier.ClassifyEnvelopes(Utf8($$"""{"event_type":"t","payload":{{Payload}}}"""), "acme").Single();

        await using var command = _dataSource.CreateCommand("SELECT (@p::jsonb) ->> 'text'");
        command.Parameters.AddWithValue("p", incoming.PayloadJson);
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo("café 😀 \u2028 tab\t"));
    }

    [Test]
    public async Task Nesting_at_the_limit_is_accepted_by_jsonb_at_every_door()
    {
        var limit = _classifier.Limits.MaxJsonDepth;
        var deepPayload = EnvelopeOfDepth(limit);
        var deepDetail = $$"""{"source":"com.example","detail-type":"Deep","id":"d-1","detail":{{NestedArrays(limit - 1)}}}""";
        var deepLogs = $$"""{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","message":"m","x":{{NestedArrays(limit - 3)}}}]}""";
        var deepMetadata = $$$"""{"event_type":"t","payload":1,"metadata":{"d":{{{NestedArrays(limit - 2)}}}}}""";

        IncomingEvent[] events =
        [
            .. _classifier.ClassifyEnvelopes(Utf8(deepPayload), "acme"),
            .. _classifier.ClassifyEnvelopes(Utf8(deepMetadata), "acme"),
            .. _classifier.ClassifyLambdaEvent(Utf8(deepDetail)).Events,
            .. _classifier.ClassifyLambdaEvent(Utf8(Logs(deepLogs))).Events,
            .. _classifier.ClassifySqsMessage(Utf8(SqsRecord("m-1", deepPayload))),
            .. _classifier.ClassifySqsMessage(Utf8(SqsRecord("m-2", deepDetail))),
        ];

        foreach (var incoming in events)
        {
            Assert.That(await RoundTripAsync(incoming.PayloadJson), Is.True, incoming.EventType);
            Assert.That(await RoundTripAsync(incoming.MetadataJson), Is.True, incoming.EventType);
        }

        Assert.That(events, Has.Length.EqualTo(6));
    }

    [TestCase("1e131072")]
    [TestCase("1e-16384")]
    public async Task A_number_beyond_numeric_passes_the_classifier_and_jsonb_refuses_it_as_a_data_error(string number)
    {
        // Known and accepted: the classifier bounds only the total of the exponents; the writers map PostgreSQL's class 22 "data
        // exception" to a rejection (400 on HTTP, a dead letter on SQS). This test pins the SQLSTATE they rely on.
        var incoming = _classifier.ClassifyEnvelopes(Utf8($$$"""{"event_type":"t","payload":{"n":{{{number}}}}}"""), "acme").Single();

        await using var command = _dataSource.CreateCommand("SELECT @p::jsonb");
        command.Parameters.AddWithValue("p", incoming.PayloadJson);
        var refused = Assert.ThrowsAsync<PostgresException>(() => command.ExecuteScalarAsync());

        Assert.Multiple(() =>
        {
            Assert.That(incoming.PayloadJson, Is.EqualTo($$"""{"n":{{number}}}"""));
            Assert.That(refused!.SqlState, Is.EqualTo(PostgresErrorCodes.NumericValueOutOfRange));
            Assert.That(refused.SqlState, Does.StartWith("22"));
        });
    }

    [TestCase("1e131071", 100)]
    [TestCase("1e2000000", 1)]
    [TestCase("-1e2000000", 1)]
    [TestCase("1e-2000000", 1)]
    [TestCase("1e99999999999999999999", 1)]
    public void Numbers_whose_exponents_would_print_past_the_body_limit_are_refused_before_jsonb_expands_them(string number, int count)
    {
        // jsonb stores 1e131071 in a few bytes but prints it with 131,072 digits: a 1 MiB body of such numbers would
        // read back as gigabytes of text every time the event is loaded.
        var numbers = string.Join(',', Enumerable.Repeat(number, count));

        var rejected = Assert.Throws<IngressRejectedException>(
            () => _classifier.ClassifyEnvelopes(Utf8($$"""{"event_type":"t","payload":[{{numbers}}]}"""), "acme"));

        Assert.Multiple(() =>
        {
            Assert.That(rejected!.Rejection, Is.EqualTo(IngressRejection.TooLarge));
            Assert.That(rejected.Message, Does.Contain("send such values as strings"));
        });
    }

    /// <summary>The value through each door, paired with the door's name.</summary>
    private List<(string Door, IncomingEvent Incoming)> ThroughEveryDoor(string value)
    {
        var envelope = $$$"""{"event_type":"tricky.value","id":"v-1","payload":{{{value}}},"metadata":{"echo":{{{value}}}}}""";
        var eventBridge = $$"""{"version":"0","id":"v-1","source":"com.example","detail-type":"Tricky Value","detail":{{value}}}""";
        var logs = $$"""{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":0,"message":"m","extracted":{{value}}}]}""";
        var webSocket = $$"""{"requestContext":{"eventType":"MESSAGE","connectionId":"c=","requestId":"r","apiId":"a"},"body":{{value}}}""";

        return
        [
            ("POST /events", _classifier.ClassifyEnvelopes(Utf8(envelope), "acme").Single()),
            ("POST /process envelope", _classifier.ClassifyLambdaEvent(Utf8(envelope)).Events.Single()),
            ("POST /process EventBridge", _classifier.ClassifyLambdaEvent(Utf8(eventBridge)).Events.Single()),
            ("POST /process CloudWatch Logs", _classifier.ClassifyLambdaEvent(Utf8(Logs(logs))).Events.Single()),
            ("POST /process WebSocket", _classifier.ClassifyLambdaEvent(Utf8(webSocket)).Events.Single()),
            ("SQS worker envelope", _classifier.ClassifySqsMessage(Utf8(SqsRecord("m-1", envelope, "g", "acme"))).Single()),
            ("SQS worker plain message", _classifier.ClassifySqsMessage(Utf8(SqsRecord("m-2", value, "g", "acme"))).Single()),
        ];
    }

    /// <summary>Casts the text to jsonb and reads it back: true when PostgreSQL kept what System.Text.Json read.</summary>
    private async Task<bool> RoundTripAsync(string json)
    {
        await using var command = _dataSource.CreateCommand("SELECT (@p::jsonb)::text");
        command.Parameters.AddWithValue("p", json);
        var stored = (string)(await command.ExecuteScalarAsync())!;
        return JsonNode.DeepEquals(AsJsonbKeepsIt(json), AsJsonbKeepsIt(stored));
    }

    /// <summary>The JSON as a node tree in which, as in jsonb, the last of duplicate keys wins.</summary>
    private static JsonNode? AsJsonbKeepsIt(string json)
    {
        using var document = JsonDocument.Parse(json);
        return ToNode(document.RootElement);

        static JsonNode? ToNode(JsonElement element)
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.Object:
                    var obj = new JsonObject();
                    foreach (var property in element.EnumerateObject())
                    {
                        obj[property.Name] = ToNode(property.Value);
                    }

                    return obj;
                case JsonValueKind.Array:
                    return new JsonArray([.. element.EnumerateArray().Select(ToNode)]);
                default:
                    return JsonValue.Create(element.Clone());
            }
        }
    }

    private static string Abbreviate(string json) => json.Length <= 200 ? json : $"{json[..200]}... ({json.Length} chars)";
}
