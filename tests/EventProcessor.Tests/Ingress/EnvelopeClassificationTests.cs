using EventProcessor.Ingress;
using EventProcessor.Ingress.Classification;
using static EventProcessor.Tests.Ingress.Deliveries;

namespace EventProcessor.Tests.Ingress;

/// <summary>The envelope door, <c>POST /events</c>: what an application publishes, one envelope or an array.</summary>
public sealed class EnvelopeClassificationTests
{
    private readonly EventClassifier _classifier = new(new IngressLimits());

    private IReadOnlyList<IncomingEvent> Classify(string body, string? tenantId = "acme") =>
        _classifier.ClassifyEnvelopes(Utf8(body), tenantId);

    private IngressRejectedException Reject(string body, string? tenantId = "acme") =>
        Assert.Throws<IngressRejectedException>(() => Classify(body, tenantId))!;

    [Test]
    public void A_single_envelope_is_one_event_stamped_with_the_tenant()
    {
        var incoming = Classify("""
            {"event_type":"user.created","id":"7d8a3f0e-2b1c-4d5e-9f60-718293a4b5c6","payload":{"email":"a@example.com","age":41}}
            """).Single();

        Assert.Multiple(() =>
        {
            Assert.That(incoming.EventType, Is.EqualTo("user.created"));
            Assert.That(
                incoming.Id,
                Is.EqualTo(DeterministicGuid.Create("envelope/acme/7d8a3f0e-2b1c-4d5e-9f60-718293a4b5c6")),
                "a tenant's UUID id is its own: derived from the tenant and the id");
            Assert.That(incoming.TenantId, Is.EqualTo("acme"));
            Assert.That(incoming.AggregateId, Is.Null);
            Assert.That(incoming.AggregateType, Is.Null);
            Assert.That(Text(PayloadOf(incoming)["email"]), Is.EqualTo("a@example.com"));
            Assert.That((int)PayloadOf(incoming)["age"]!, Is.EqualTo(41));
            Assert.That(SameJson(incoming.MetadataJson, """{"ingress":"http:/events"}"""), Is.True, incoming.MetadataJson);
        });
    }

    [Test]
    public void An_array_of_envelopes_is_one_event_each_in_order_all_stamped_with_the_tenant()
    {
        var events = Classify("""
            [{"event_type":"cart.opened","id":"c-1","payload":{"n":1}},
             {"event_type":"cart.item_added","id":"c-2","payload":{"n":2}},
             {"event_type":"cart.closed","id":"c-3","payload":{"n":3}}]
            """);

        Assert.Multiple(() =>
        {
            Assert.That(events.Select(e => e.EventType), Is.EqualTo(new[] { "cart.opened", "cart.item_added", "cart.closed" }));
            Assert.That(events.Select(e => (int)PayloadOf(e)["n"]!), Is.EqualTo(new[] { 1, 2, 3 }));
            Assert.That(events.Select(e => e.TenantId), Is.All.EqualTo("acme"));
            Assert.That(events.Select(e => e.Id), Is.EqualTo(new[] { "c-1", "c-2", "c-3" }.Select(id => DeterministicGuid.Create($"envelope/acme/{id}"))));
        });
    }

    [Test]
    public void An_empty_array_is_rejected()
    {
        var rejected = Reject("[]");

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Is.EqualTo("The array is empty; send at least one envelope."));
        });
    }

    [TestCase("42", "number")]
    [TestCase("\"user.created\"", "string")]
    [TestCase("null", "null")]
    [TestCase("true", "true")]
    public void A_body_that_is_neither_an_envelope_nor_an_array_is_rejected(string body, string kind)
    {
        var rejected = Reject(body);

        Assert.That(rejected.Message, Is.EqualTo($"The body is a JSON {kind}; send an envelope object or an array of them."));
    }

    [Test]
    public void Every_violation_is_listed_with_its_index_and_path_and_nothing_is_accepted()
    {
        var rejected = Reject($$$"""
            [{"event_type":"fine.one","payload":{}},
             {"evnt_type":"typo","payload":{}},
             {"event_type":"bad.fields","payload":null,"id":42,"aggregate_type":"{{{new string('t', 51)}}}","metadata":"x"},
             "not an envelope",
             {"event_type":"bad.ids","payload":1,"id":"","aggregate_id":{"k":1},"aggregate_type":7}]
            """);

        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
            Assert.That(rejected.Message, Is.EqualTo("The envelope is invalid"));
            Assert.That(rejected.Violations.Select(v => v[..v.IndexOf(':', StringComparison.Ordinal)]), Is.EqualTo(new[]
            {
                "[1].evnt_type", "[1].event_type",
                "[2].payload", "[2].id", "[2].aggregate_type", "[2].metadata",
                "[3]",
                "[4].id", "[4].aggregate_id", "[4].aggregate_type",
            }));
            Assert.That(rejected.Violations[0], Does.Contain("unknown property"));
            Assert.That(rejected.Violations[1], Does.Contain("required"));
            Assert.That(rejected.Violations[2], Is.EqualTo("[2].payload: required, any JSON value but null."));
            Assert.That(rejected.Violations[4], Is.EqualTo("[2].aggregate_type: must be a string of at most 50 characters."));
            Assert.That(rejected.Violations[5], Is.EqualTo("[2].metadata: must be a JSON object."));
            Assert.That(rejected.Violations[6], Is.EqualTo("[3]: expected an envelope object, got a JSON string."));
            Assert.That(rejected.Describe(), Does.StartWith("The envelope is invalid: [1].evnt_type"));
        });
    }

    [Test]
    public void The_violations_of_a_single_envelope_have_no_index()
    {
        var rejected = Reject("""{"payload":{},"metadata":[1]}""");

        Assert.That(rejected.Violations, Is.EqualTo(new[]
        {
            "event_type: required, a non-empty string such as \"user.created\".",
            "metadata: must be a JSON object.",
        }));
    }

    [TestCase("""{"event_type":"   ","payload":1}""", "event_type: required")]
    [TestCase("""{"event_type":7,"payload":1}""", "event_type: required")]
    [TestCase("""{"event_type":"t"}""", "payload: required")]
    [TestCase("""{"event_type":"t","payload":1,"id":true}""", "id: must be a UUID or a non-empty string of at most 500 characters.")]
    [TestCase("""{"event_type":"t","payload":1,"aggregate_id":""}""", "aggregate_id: must be a UUID or a non-empty string of at most 500 characters.")]
    public void A_wrong_field_is_named_in_the_violation(string body, string violation)
    {
        Assert.That(Reject(body).Violations.Single(), Does.StartWith(violation));
    }

    [Test]
    public void Limits_on_event_type_id_and_aggregate_type_are_inclusive()
    {
        var atLimit = Classify($$"""
            {"event_type":"{{new string('e', 100)}}","id":"{{new string('i', 500)}}","aggregate_id":"{{new string('a', 500)}}",
             "aggregate_type":"{{new string('t', 50)}}","payload":1}
            """).Single();
        var over = Reject($$"""
            {"event_type":"{{new string('e', 101)}}","id":"{{new string('i', 501)}}","aggregate_id":"{{new string('a', 501)}}",
             "aggregate_type":"{{new string('t', 51)}}","payload":1}
            """);

        Assert.Multiple(() =>
        {
            Assert.That(atLimit.EventType, Has.Length.EqualTo(100));
            Assert.That(atLimit.AggregateType, Has.Length.EqualTo(50));
            Assert.That(over.Violations.Select(v => v[..v.IndexOf(':', StringComparison.Ordinal)]),
                Is.EqualTo(new[] { "event_type", "id", "aggregate_id", "aggregate_type" }));
        });
    }

    [Test]
    public void Non_UUID_ids_become_v5_ids_scoped_by_tenant()
    {
        const string Body = """{"event_type":"order.placed","id":"order-1","aggregate_id":"order-1","payload":{}}""";

        var acme = Classify(Body, "acme").Single();
        var acmeAgain = Classify(Body, "acme").Single();
        var globex = Classify(Body, "globex").Single();
        var admin = Classify(Body, tenantId: null).Single();

        Assert.Multiple(() =>
        {
            Assert.That(acme.Id, Is.EqualTo(Guid.Parse("5a80f3f9-5ca0-50d2-ac63-c3d6dc56e82c")), "uuid5(namespace, 'envelope/acme/order-1')");
            Assert.That(acme.AggregateId, Is.EqualTo(Guid.Parse("8ffa5a03-3a79-5dd9-aad5-6c99f049eef5")), "uuid5(namespace, 'aggregate/acme/order-1')");
            Assert.That(acme.Id.Version, Is.EqualTo(5));
            Assert.That(acmeAgain.Id, Is.EqualTo(acme.Id), "a retried publish is the same row");
            Assert.That(acmeAgain.AggregateId, Is.EqualTo(acme.AggregateId));
            Assert.That(globex.Id, Is.Not.EqualTo(acme.Id), "the same id from two tenants is two rows");
            Assert.That(globex.AggregateId, Is.Not.EqualTo(acme.AggregateId), "and two aggregates");
            Assert.That(admin.Id, Is.Not.EqualTo(acme.Id));
            Assert.That(admin.TenantId, Is.Null);
            Assert.That(acme.Id, Is.Not.EqualTo(acme.AggregateId), "ids and aggregate ids live in separate name spaces");
        });
    }

    [Test]
    public void A_non_UUID_aggregate_id_is_kept_in_metadata_as_aggregate_key()
    {
        var events = Classify("""
            [{"event_type":"order.placed","aggregate_id":"order-1","aggregate_type":"order","payload":{}},
             {"event_type":"order.paid","aggregate_id":"order-1","aggregate_type":"order","payload":{}},
             {"event_type":"order.placed","aggregate_id":"order-2","aggregate_type":"order","payload":{}}]
            """);

        Assert.Multiple(() =>
        {
            Assert.That(events[1].AggregateId, Is.EqualTo(events[0].AggregateId));
            Assert.That(events[2].AggregateId, Is.Not.EqualTo(events[0].AggregateId));
            Assert.That(events.Select(e => e.AggregateType), Is.All.EqualTo("order"));
            Assert.That(events.Select(e => Text(MetadataOf(e)["aggregate_key"])), Is.EqualTo(new[] { "order-1", "order-1", "order-2" }));
        });
    }

    [Test]
    public void A_UUID_aggregate_id_is_used_as_it_is_and_needs_no_aggregate_key()
    {
        var incoming = Classify("""{"event_type":"t","aggregate_id":"0f8fad5b-d9cb-469f-a165-70867728950e","payload":{}}""").Single();

        Assert.Multiple(() =>
        {
            Assert.That(incoming.AggregateId, Is.EqualTo(Guid.Parse("0f8fad5b-d9cb-469f-a165-70867728950e")));
            Assert.That(MetadataOf(incoming).ContainsKey("aggregate_key"), Is.False);
        });
    }

    [Test]
    public void Envelopes_without_an_id_get_distinct_time_ordered_ids()
    {
        var events = Classify("""[{"event_type":"t","payload":1},{"event_type":"t","payload":1}]""");

        Assert.Multiple(() =>
        {
            Assert.That(events[0].Id, Is.Not.EqualTo(events[1].Id));
            Assert.That(events.Select(e => e.Id.Version), Is.All.EqualTo(7));
        });
    }

    [Test]
    public void Given_metadata_is_kept_and_ingress_is_added()
    {
        var incoming = Classify("""
            {"event_type":"t","payload":{},"aggregate_id":"k-1",
             "metadata":{"trace_id":"abc","source":{"app":"shop","version":3},"tags":["a","b"]}}
            """).Single();

        Assert.That(SameJson(incoming.MetadataJson, """
            {"trace_id":"abc","source":{"app":"shop","version":3},"tags":["a","b"],"ingress":"http:/events","aggregate_key":"k-1"}
            """), Is.True, incoming.MetadataJson);
    }

    [TestCaseSource(typeof(EventClassifier), nameof(EventClassifier.ReservedMetadataKeys))]
    public void A_reserved_metadata_key_is_refused_whoever_sends_it(string key)
    {
        var body = $$$"""[{"event_type":"t","payload":{}},{"event_type":"t","payload":{},"metadata":{"note":"x","{{{key}}}":-1}}]""";

        foreach (var tenant in new[] { "acme", null })
        {
            var rejected = Reject(body, tenant);
            Assert.Multiple(() =>
            {
                Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.Malformed));
                Assert.That(rejected.Violations, Is.EqualTo(new[] { $"[1].metadata.{key}: reserved: the event processor writes it; use a name of your own." }));
            });
        }
    }

    [TestCase("user.created")]
    [TestCase("A")]
    [TestCase("aws.ecs.ecs_task_state_change")]
    [TestCase("billing:invoice-paid.v2")]
    public void An_event_type_of_letters_digits_and_dots_colons_dashes_or_underscores_is_accepted(string eventType)
    {
        Assert.That(Classify($$"""{"event_type":"{{eventType}}","payload":1}""").Single().EventType, Is.EqualTo(eventType));
    }

    [TestCase("user.created\\n2026-12-03 [INF] forged line")]
    [TestCase("user.created\\n")]
    [TestCase("user created")]
    [TestCase(".user")]
    [TestCase("-user")]
    [TestCase("_user")]
    [TestCase("user/created")]
    [TestCase("user\\u0007")]
    [TestCase("ünicode")]
    [TestCase("t{x}")]
    public void Any_other_event_type_is_refused_with_the_rule(string eventType)
    {
        var rejected = Reject($$"""{"event_type":"{{eventType}}","payload":1}""");

        Assert.That(rejected.Violations.Single(), Does.StartWith("event_type: ").And.Contain("is not valid: an event type is 1 to 100 letters"));
    }

    [Test]
    public void An_event_type_longer_than_100_characters_is_refused()
    {
        Assert.That(Classify($$"""{"event_type":"{{new string('a', 100)}}","payload":1}""").Single().EventType, Has.Length.EqualTo(100));
        Assert.That(Reject($$"""{"event_type":"{{new string('a', 101)}}","payload":1}""").Violations.Single(), Does.Contain("is not valid"));
    }

    [Test]
    public void More_envelopes_than_a_request_may_carry_are_refused_as_too_large()
    {
        var classifier = new EventClassifier(new IngressLimits { MaxEventsPerRequest = 3 });
        var three = "[" + string.Join(",", Enumerable.Repeat("""{"event_type":"t","payload":1}""", 3)) + "]";
        var four = "[" + string.Join(",", Enumerable.Repeat("""{"event_type":"t","payload":1}""", 4)) + "]";

        Assert.That(classifier.ClassifyEnvelopes(Utf8(three), "acme"), Has.Count.EqualTo(3));
        var rejected = Assert.Throws<IngressRejectedException>(() => classifier.ClassifyEnvelopes(Utf8(four), "acme"))!;
        Assert.Multiple(() =>
        {
            Assert.That(rejected.Rejection, Is.EqualTo(IngressRejection.TooLarge));
            Assert.That(rejected.Message, Does.Contain("4 envelopes, over the limit of 3 per request (MAX_EVENTS_PER_REQUEST)"));
        });
    }

    [TestCase("0")]
    [TestCase("false")]
    [TestCase("\"\"")]
    [TestCase("[]")]
    [TestCase("{}")]
    [TestCase("-1.5e-7")]
    public void Any_JSON_payload_but_null_is_accepted_as_it_was_sent(string payload)
    {
        var incoming = Classify($$"""{"event_type":"t","payload":{{payload}}}""").Single();

        Assert.That(incoming.PayloadJson, Is.EqualTo(payload));
    }

    [TestCase("{7d8a3f0e-2b1c-4d5e-9f60-718293a4b5c6}")]
    [TestCase("7d8a3f0e2b1c4d5e9f60718293a4b5c6")]
    [TestCase("7D8A3F0E-2B1C-4D5E-9F60-718293A4B5C6")]
    public void Any_spelling_of_a_UUID_is_that_UUID(string id)
    {
        var uuid = Guid.Parse("7d8a3f0e-2b1c-4d5e-9f60-718293a4b5c6");
        Assert.Multiple(() =>
        {
            Assert.That(Classify($$"""{"event_type":"t","id":"{{id}}","payload":1}""", tenantId: null).Single().Id, Is.EqualTo(uuid), "without a tenant, as sent");
            Assert.That(Classify($$"""{"event_type":"t","id":"{{id}}","payload":1}""").Single().Id, Is.EqualTo(DeterministicGuid.Create($"envelope/acme/{uuid}")), "a tenant's");
        });
    }

    [Test]
    public void Two_tenants_that_send_the_same_id_get_two_events_and_neither_can_send_the_others()
    {
        // B's order-42, and what A would send to take it: B's stored id, sent as a UUID.
        var ofB = Classify("""{"event_type":"t","id":"order-42","payload":1}""", "tenant-b").Single().Id;
        var ofA = Classify("""{"event_type":"t","id":"order-42","payload":1}""", "tenant-a").Single().Id;
        var forged = Classify($$"""{"event_type":"t","id":"{{ofB}}","payload":1}""", "tenant-a").Single().Id;

        Assert.Multiple(() =>
        {
            Assert.That(ofA, Is.Not.EqualTo(ofB));
            Assert.That(forged, Is.Not.EqualTo(ofB), "a tenant's UUID never lands on another tenant's id");
            Assert.That(forged, Is.Not.EqualTo(ofA));
        });
    }
}
