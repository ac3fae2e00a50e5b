using EventProcessor.Ingress;

namespace EventProcessor.Tests.Ingress;

public sealed class DeterministicGuidTests
{
    private static readonly Guid NamespaceDns = Guid.Parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    private static readonly Guid NamespaceUrl = Guid.Parse("6ba7b811-9dad-11d1-80b4-00c04fd430c8");

    [Test]
    public void Matches_the_published_version_5_vector_for_www_example_com()
    {
        // RFC 9562 appendix A.4; also Python's uuid.uuid5(uuid.NAMESPACE_DNS, "www.example.com").
        Assert.That(DeterministicGuid.Create(NamespaceDns, "www.example.com"), Is.EqualTo(Guid.Parse("2ed6657d-e927-568b-95e1-2665a8aea6a2")));
    }

    [Test]
    public void Hashes_the_name_as_UTF8()
    {
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, "https://example.com/ü")
        Assert.That(DeterministicGuid.Create(NamespaceUrl, "https://example.com/ü"), Is.EqualTo(Guid.Parse("a17f7a1d-6bb5-51a9-9d32-f9d2fdeec8b6")));
    }

    [Test]
    public void The_product_namespace_is_the_default_and_its_ids_never_change()
    {
        // Python: uuid.uuid5(uuid.UUID("5b1c3a52-7d0e-4f45-9a8e-6c2f1e0b9d47"), name). A change here would give every
        // redelivery after an upgrade a new id, and the same event would be stored twice.
        Assert.Multiple(() =>
        {
            Assert.That(DeterministicGuid.Namespace, Is.EqualTo(Guid.Parse("5b1c3a52-7d0e-4f45-9a8e-6c2f1e0b9d47")));
            Assert.That(DeterministicGuid.Create("aws.sqs/arn:aws:sqs:us-west-2:123456789012:SQSQueue/MessageID"),
                Is.EqualTo(Guid.Parse("3c912c09-f8e1-5b44-84dd-afee0c32f489")));
            Assert.That(DeterministicGuid.Create("envelope/acme/order-1"),
                Is.EqualTo(DeterministicGuid.Create(DeterministicGuid.Namespace, "envelope/acme/order-1")));
        });
    }

    [TestCase("", "fc63ce94-eb1a-5990-ac8f-defb53ce6fd2")]
    [TestCase("a", "cc59947e-643c-5b85-a6b5-4e2543c8c8fa")]
    [TestCase("aws.logs.stream/group/stream", "bfe2de03-d332-56c4-bbfb-40d032a9df75")]
    [TestCase("😀 non-ASCII ü 中文", "30a975c6-51c5-51c8-8eb3-69f6457b46c0")]
    public void Every_id_has_version_5_and_the_RFC_variant_and_matches_an_independent_implementation(string name, string python)
    {
        var id = DeterministicGuid.Create(name);
        var text = id.ToString();

        Assert.Multiple(() =>
        {
            Assert.That(id, Is.EqualTo(Guid.Parse(python)), "Python's uuid.uuid5 in the product namespace");
            Assert.That(id.Version, Is.EqualTo(5));
            Assert.That(id.Variant >> 2, Is.EqualTo(0b10), "variant bits 10xx");
            Assert.That(text[14], Is.EqualTo('5'));
            Assert.That(text[19], Is.AnyOf('8', '9', 'a', 'b'));
        });
    }

    [Test]
    public void Equal_names_give_equal_ids_and_any_difference_gives_another()
    {
        var id = DeterministicGuid.Create("websocket.connection/abc/conn-1");

        Assert.Multiple(() =>
        {
            Assert.That(DeterministicGuid.Create("websocket.connection/abc/conn-1"), Is.EqualTo(id));
            Assert.That(DeterministicGuid.Create("websocket.connection/abc/conn-2"), Is.Not.EqualTo(id));
            Assert.That(DeterministicGuid.Create("Websocket.connection/abc/conn-1"), Is.Not.EqualTo(id), "names are case-sensitive");
            Assert.That(DeterministicGuid.Create(NamespaceDns, "websocket.connection/abc/conn-1"), Is.Not.EqualTo(id), "namespaces separate");
        });
    }

    [Test]
    public void Ten_thousand_names_give_ten_thousand_ids()
    {
        var ids = Enumerable.Range(0, 10_000).Select(i => DeterministicGuid.Create($"aws.sqs/q/{i}")).ToHashSet();

        Assert.That(ids, Has.Count.EqualTo(10_000));
    }

    [Test]
    public void A_null_name_is_refused()
    {
        Assert.Throws<ArgumentNullException>(() => DeterministicGuid.Create(null!));
    }
}
